//! MBR (DOS) table: one active primary partition of type 0x83. Encoding by `mbrman`.

use std::io::Cursor;

use crate::layout::{DiskLayout, SECTOR_BYTES};
use crate::{DiskIds, Result};

/// MBR partition type "Linux native" (the 0x83 of fdisk's type list).
pub(crate) const TYPE_LINUX: u8 = 0x83;
/// The EFI System Partition's MBR type (UEFI spec 2.10 §5.2.2, Table 5-3).
pub(crate) const TYPE_EFI_SYSTEM: u8 = 0xef;

/// CHS geometry used for the legacy CHS fields: 255 heads, 63 sectors per track, as fdisk
/// and parted write for LBA-addressed disks.
const CHS_HEADS: u8 = 255;
/// See [`CHS_HEADS`].
const CHS_SECTORS: u8 = 63;
/// Largest cylinder a CHS field can hold (10 bits).
const CHS_MAX_CYLINDER: u16 = 1023;

/// Encodes sector 0 of an MBR disk: boot code (or zeros), disk signature, the one entry,
/// 55 AA. Pure: the caller writes the 512 bytes at offset 0.
pub(crate) fn encode(
    layout: &DiskLayout,
    ids: &DiskIds,
    boot_code: Option<&[u8; 440]>,
) -> Result<[u8; SECTOR_BYTES as usize]> {
    // `validate` has checked that both fit in u32 (the partition ends at or below 2 TiB).
    let start = u32::try_from(layout.partition_first_lba()).expect("validated below 2 TiB");
    let sectors = u32::try_from(layout.partition_sectors()).expect("validated below 2 TiB");
    let mut header = mbrman::MBRHeader::new(ids.mbr_signature.to_le_bytes());
    if let Some(code) = boot_code {
        header.bootstrap_code = *code;
    }
    let entry = |boot, sys, start: u32, sectors: u32| mbrman::MBRPartitionEntry {
        boot,
        first_chs: chs(start),
        sys,
        last_chs: chs(start + (sectors - 1)),
        starting_lba: start,
        sectors,
    };
    let root = entry(mbrman::BOOT_ACTIVE, TYPE_LINUX, start, sectors);
    match layout.esp {
        None => header[1] = root,
        Some(esp) => {
            let esp_start = u32::try_from(esp.start / SECTOR_BYTES).expect("before the root");
            let esp_sectors = u32::try_from(esp.bytes / SECTOR_BYTES).expect("before the root");
            // Not active: the BIOS boot code (mbr.bin) boots the active partition, the root
            // with extlinux; UEFI firmware finds the ESP by its type.
            header[1] = entry(
                mbrman::BOOT_INACTIVE,
                TYPE_EFI_SYSTEM,
                esp_start,
                esp_sectors,
            );
            header[2] = root;
        }
    }
    let mut sector = [0u8; SECTOR_BYTES as usize];
    header.write_into(&mut Cursor::new(&mut sector[..]))?;
    Ok(sector)
}

/// CHS address of an LBA, or the conventional "beyond CHS" value 1023/254/63.
fn chs(lba: u32) -> mbrman::CHS {
    mbrman::CHS::from_lba_exact(lba, CHS_MAX_CYLINDER, CHS_HEADS, CHS_SECTORS)
        .unwrap_or_else(|_| mbrman::CHS::new(CHS_MAX_CYLINDER, CHS_HEADS - 1, CHS_SECTORS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TableKind;

    #[test]
    fn sector_zero_field_by_field() {
        let layout = DiskLayout::plan(TableKind::Mbr, 3 * 1024 * 1024).unwrap();
        let ids = DiskIds {
            mbr_signature: 0x1234_5678,
            disk_guid: [0; 16],
            partition_guid: [0; 16],
            esp_guid: [0; 16],
            esp_volume_id: 1,
        };
        let s = encode(&layout, &ids, Some(&[0xaa; 440])).unwrap();
        assert_eq!(&s[..440], &[0xaa; 440][..], "boot code");
        assert_eq!(
            &s[440..444],
            &[0x78, 0x56, 0x34, 0x12],
            "disk signature, LE"
        );
        assert_eq!(&s[444..446], &[0, 0], "copy-protect");
        let e = &s[446..462];
        assert_eq!(e[0], 0x80, "active");
        // LBA 2048 = C0 H32 S33 with 255/63: bytes head, sector|cyl-hi, cyl-lo.
        assert_eq!(&e[1..4], &[32, 33, 0], "first CHS");
        assert_eq!(e[4], 0x83, "type");
        assert_eq!(&e[8..12], &2048u32.to_le_bytes(), "start LBA");
        assert_eq!(&e[12..16], &(3 * 2048u32).to_le_bytes(), "sectors");
        assert_eq!(&s[462..510], &[0; 48][..], "entries 2-4 empty");
        assert_eq!(&s[510..], &[0x55, 0xaa], "boot signature");
    }

    #[test]
    fn an_esp_is_entry_1_and_the_active_root_entry_2() {
        let layout = DiskLayout::plan_with_esp(TableKind::Mbr, Some(1 << 20), 1 << 20).unwrap();
        let s = encode(&layout, &DiskIds::derive(&[1; 32]), None).unwrap();
        let (esp, root) = (&s[446..462], &s[462..478]);
        assert_eq!((esp[0], esp[4]), (0, 0xef));
        assert_eq!(&esp[8..12], &2048u32.to_le_bytes());
        assert_eq!(&esp[12..16], &2048u32.to_le_bytes());
        assert_eq!((root[0], root[4]), (0x80, 0x83));
        assert_eq!(&root[8..12], &4096u32.to_le_bytes());
        assert_eq!(&s[478..510], &[0; 32][..], "entries 3-4 empty");
    }

    #[test]
    fn no_boot_code_leaves_zeros() {
        let layout = DiskLayout::plan(TableKind::Mbr, 1).unwrap();
        let s = encode(&layout, &DiskIds::derive(&[1; 32]), None).unwrap();
        assert!(s[..440].iter().all(|&b| b == 0));
    }

    #[test]
    fn chs_clamps_past_1023_cylinders() {
        let c = chs(u32::MAX);
        assert_eq!((c.cylinder, c.head, c.sector), (1023, 254, 63));
    }
}
