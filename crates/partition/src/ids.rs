//! Disk identifiers: the MBR disk signature and the GPT disk and partition GUIDs.

use d2l_blob::Sha256;

/// Label hashed in front of the seed for each identifier, so the three never collide and
/// never equal a prefix of the seed itself.
const LABEL_MBR_SIGNATURE: &[u8] = b"d2l-partition mbr-signature\0";
/// See [`LABEL_MBR_SIGNATURE`].
const LABEL_DISK_GUID: &[u8] = b"d2l-partition disk-guid\0";
/// See [`LABEL_MBR_SIGNATURE`].
const LABEL_PARTITION_GUID: &[u8] = b"d2l-partition partition-guid\0";
const LABEL_ESP_GUID: &[u8] = b"d2l-partition esp-guid\0";
const LABEL_ESP_VOLUME_ID: &[u8] = b"d2l-partition esp-volume-id\0";

/// The identifiers written into the tables.
///
/// GUIDs are in RFC 4122 byte order, the order they are printed in
/// (`00112233-4455-6677-8899-aabbccddeeff` is `[0x00, 0x11, ...]`); the GPT writer converts to
/// the mixed-endian on-disk form (UEFI spec 2.10 Appendix A).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DiskIds {
    /// MBR disk signature (bytes 440..444, little endian); written on MBR and protective MBR.
    pub mbr_signature: u32,
    /// GPT disk GUID (header offset 56).
    pub disk_guid: [u8; 16],
    /// GPT unique partition GUID of the root partition (entry offset 16).
    pub partition_guid: [u8; 16],
    /// GPT unique partition GUID of the EFI System Partition, when there is one.
    pub esp_guid: [u8; 16],
    /// The ESP's FAT volume id (serial number), never 0.
    pub esp_volume_id: u32,
}

impl DiskIds {
    /// Derives all identifiers from a 32-byte seed (the image digest): the same seed always
    /// gives the same disk. GUIDs are shaped as RFC 4122 version 4 (random) GUIDs; the MBR
    /// signature is never zero (zero means "no signature" to some tools).
    pub fn derive(seed: &[u8; 32]) -> DiskIds {
        let hash = |label: &[u8]| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update(label);
            h.update(seed);
            h.finish()
                .bytes()
                .try_into()
                .expect("a sha256 digest is 32 bytes")
        };
        let mbr_signature = nonzero_u32(hash(LABEL_MBR_SIGNATURE));
        DiskIds {
            mbr_signature,
            disk_guid: guid_v4(hash(LABEL_DISK_GUID)),
            partition_guid: guid_v4(hash(LABEL_PARTITION_GUID)),
            esp_guid: guid_v4(hash(LABEL_ESP_GUID)),
            esp_volume_id: nonzero_u32(hash(LABEL_ESP_VOLUME_ID)),
        }
    }
}

/// Takes 16 bytes and stamps version 4 and the RFC 4122 variant (RFC 4122 §4.4).
/// The first four bytes, little-endian, with 0 ("no id" to some tools) made 1.
fn nonzero_u32(bytes: [u8; 32]) -> u32 {
    match u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) {
        0 => 1,
        n => n,
    }
}

fn guid_v4(bytes: [u8; 32]) -> [u8; 16] {
    let mut g = [0u8; 16];
    g.copy_from_slice(&bytes[..16]);
    g[6] = (g[6] & 0x0f) | 0x40;
    g[8] = (g[8] & 0x3f) | 0x80;
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derive_is_deterministic_and_distinct() {
        let a = DiskIds::derive(&[7; 32]);
        assert_eq!(a, DiskIds::derive(&[7; 32]));
        let b = DiskIds::derive(&[8; 32]);
        assert_ne!(a.disk_guid, b.disk_guid);
        assert_ne!(a.mbr_signature, b.mbr_signature);
        assert_ne!(a.disk_guid, a.partition_guid);
        assert_ne!(a.mbr_signature, 0);
    }

    #[test]
    fn guids_are_rfc4122_v4() {
        let ids = DiskIds::derive(&[0xab; 32]);
        for g in [ids.disk_guid, ids.partition_guid, ids.esp_guid] {
            let u = uuid::Uuid::from_bytes(g);
            assert_eq!(u.get_version_num(), 4);
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        }
    }

    #[test]
    fn derive_is_stable_across_releases() {
        // Pinned: changing the derivation changes every disk d2l builds.
        let ids = DiskIds::derive(&[0; 32]);
        let shown = format!(
            "{:08x} {} {}",
            ids.mbr_signature,
            uuid::Uuid::from_bytes(ids.disk_guid),
            uuid::Uuid::from_bytes(ids.partition_guid)
        );
        assert_eq!(
            shown,
            "1a471a4d 5b2d7402-d6cd-4af1-a4c7-0e697e2d677d 3c2e5854-5220-45dd-a135-5e372d02c949"
        );
    }
}
