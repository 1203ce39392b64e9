//! qcow2's on-disk structures (QEMU's docs/interop/qcow2.txt), defined once for the writer
//! and the reader: the header, the header extension marker, and the limits a reader holds
//! an image to.

use d2l_disk::bytes::{be, FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The header's magic, `QFI\xfb` (qcow2.txt, "Header", bytes 0-3).
pub(crate) const MAGIC: [u8; 4] = crate::format::QCOW2_MAGIC;
/// Header version written (qcow2.txt, "Header", bytes 4-7).
pub(crate) const VERSION: u32 = 3;
/// log2 of the cluster size we write.
pub(crate) const CLUSTER_BITS: u32 = 16;
/// Cluster size: 64 KiB, QEMU's default.
pub(crate) const CLUSTER: u64 = 1 << CLUSTER_BITS;
/// Entries in an L2 table (one cluster of u64).
pub(crate) const L2_ENTRIES: u64 = CLUSTER / 8;
/// Guest bytes one L2 table maps: 512 MiB.
pub(crate) const L2_SPAN: u64 = L2_ENTRIES * CLUSTER;
/// Length of a version 2 header, and of the fields common to both versions (qcow2.txt,
/// "Header": "For version 2 images, the length is always assumed to be 72 bytes").
pub(crate) const V2_HEADER_LENGTH: u64 = 72;
/// The smallest version 3 header (qcow2.txt, "Header", header_length: "at least 104
/// bytes").
pub(crate) const V3_HEADER_LENGTH: u64 = 104;
/// Header length written: the version 3 fields and the compression type byte, padded to 8
/// (qcow2.txt, "Header": bytes 0..112).
pub(crate) const HEADER_LENGTH: u32 = 112;
/// refcount_order 4: 16-bit refcounts (qcow2.txt, "Header", bytes 96-99; QEMU's default
/// and the implied order of version 2).
pub(crate) const REFCOUNT_ORDER: u32 = 4;
/// Refcounts in one refcount block.
pub(crate) const REFCOUNTS_PER_BLOCK: u64 = CLUSTER / 2;
/// L1/L2 entry bit 63: the cluster's refcount is exactly one (qcow2.txt, "Cluster
/// mapping").
pub(crate) const COPIED: u64 = 1 << 63;
/// L2 entry bit 62: the cluster is compressed (qcow2.txt, "Cluster mapping").
pub(crate) const COMPRESSED: u64 = 1 << 62;
/// Bits 9..55 of a standard L1/L2 entry: the host offset (qcow2.txt, "Cluster mapping").
pub(crate) const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// L1 entry bits that must be zero: 1..8 and 56..62 (qcow2.txt, "L1 table entry").
pub(crate) const L1_RESERVED: u64 = 0x7f00_0000_0000_01fe;
/// Standard L2 entry bits that must be zero: 1..8 and 56..61 (qcow2.txt, "Standard Cluster
/// Descriptor").
pub(crate) const L2_RESERVED: u64 = 0x3f00_0000_0000_01fe;
/// Standard L2 entry bit 0: the cluster reads as zeros (version 3; qcow2.txt, "Standard
/// Cluster Descriptor").
pub(crate) const ZERO_FLAG: u64 = 1;
/// Incompatible feature bit 0: the image was not closed cleanly (qcow2.txt, "Header",
/// bytes 72-79).
pub(crate) const INCOMPAT_DIRTY: u64 = 1 << 0;
/// Incompatible feature bit 1: QEMU found the image corrupt.
pub(crate) const INCOMPAT_CORRUPT: u64 = 1 << 1;
/// Incompatible feature bit 2: the data is in an external file.
pub(crate) const INCOMPAT_DATA_FILE: u64 = 1 << 2;
/// Incompatible feature bit 3: the compression type field is valid.
pub(crate) const INCOMPAT_COMPRESSION: u64 = 1 << 3;
/// Incompatible feature bit 4: extended L2 entries (subclusters).
pub(crate) const INCOMPAT_EXTL2: u64 = 1 << 4;
/// Compression type 0: deflate (qcow2.txt, "Header", byte 104).
pub(crate) const COMPRESSION_DEFLATE: u8 = 0;
/// Compression type 1: zstd.
pub(crate) const COMPRESSION_ZSTD: u8 = 1;

/// The smallest cluster_bits read: 512-byte clusters (QEMU's MIN_CLUSTER_BITS;
/// qcow2.txt, "Header", bytes 20-23).
pub const QCOW2_MIN_CLUSTER_BITS: u32 = 9;
/// The largest cluster_bits read: 2 MiB clusters (QEMU's MAX_CLUSTER_BITS).
pub const QCOW2_MAX_CLUSTER_BITS: u32 = 21;
/// The largest refcount_order: 64-bit refcounts (qcow2.txt, "Header", bytes 96-99:
/// "refcount_order ... may not exceed 6").
pub const QCOW2_MAX_REFCOUNT_ORDER: u32 = 6;
/// The largest L1 table read, in bytes: 32 MiB (QEMU's QCOW_MAX_L1_SIZE), 4 Mi entries.
pub const QCOW2_MAX_L1_BYTES: u64 = 32 << 20;
/// The largest refcount table accepted, in bytes: 8 MiB (QEMU's QCOW_MAX_REFTABLE_SIZE).
pub const QCOW2_MAX_REFCOUNT_TABLE_BYTES: u64 = 8 << 20;

/// For compressed clusters, the host offset takes bits 0..x-1 with
/// x = 62 - (cluster_bits - 8); the number of additional 512-byte sectors takes bits
/// x..61 (qcow2.txt, "Compressed Clusters Descriptor").
pub(crate) const fn compressed_sector_shift(cluster_bits: u32) -> u32 {
    62 - (cluster_bits - 8)
}

/// The qcow2 header (qcow2.txt, "Header"), big-endian: the version 2 fields (bytes 0..72),
/// the version 3 fields and the compression type (bytes 72..112). A version 2 header is
/// read into it with the version 3 part zero.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct Header {
    /// [`MAGIC`].
    pub magic: [u8; 4],
    /// 2 or 3.
    pub version: be::U32,
    /// Offset of the backing file's name (0: none).
    pub backing_file_offset: be::U64,
    /// Length of the backing file's name.
    pub backing_file_size: be::U32,
    /// log2 of the cluster size.
    pub cluster_bits: be::U32,
    /// Virtual size in bytes.
    pub size: be::U64,
    /// 0: no encryption.
    pub crypt_method: be::U32,
    /// Entries in the L1 table.
    pub l1_size: be::U32,
    /// Host offset of the L1 table.
    pub l1_table_offset: be::U64,
    /// Host offset of the refcount table.
    pub refcount_table_offset: be::U64,
    /// Clusters of the refcount table.
    pub refcount_table_clusters: be::U32,
    /// Snapshots in the image.
    pub nb_snapshots: be::U32,
    /// Host offset of the snapshot table.
    pub snapshots_offset: be::U64,
    /// Version 3: incompatible feature bits.
    pub incompatible_features: be::U64,
    /// Version 3: compatible feature bits.
    pub compatible_features: be::U64,
    /// Version 3: auto-clear feature bits.
    pub autoclear_features: be::U64,
    /// Version 3: log2 of a refcount's width in bits.
    pub refcount_order: be::U32,
    /// Version 3: the header's length in bytes.
    pub header_length: be::U32,
    /// Version 3 with [`INCOMPAT_COMPRESSION`]: how compressed clusters are compressed.
    pub compression_type: u8,
    /// Padding to a multiple of 8.
    pub padding: [u8; 7],
}
const _: () = assert!(size_of::<Header>() == HEADER_LENGTH as usize);

/// A header extension's type and length (qcow2.txt, "Header extensions"); type 0 with
/// length 0 ends the extension area.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct HeaderExtension {
    /// Extension type (0: end of the area).
    pub kind: be::U32,
    /// Bytes of data after this marker, before padding to 8.
    pub length: be::U32,
}
const _: () = assert!(size_of::<HeaderExtension>() == 8);

impl HeaderExtension {
    /// The end of the header extension area.
    pub const END: HeaderExtension = HeaderExtension {
        kind: be::U32::ZERO,
        length: be::U32::ZERO,
    };
}

/// An L1, L2 or refcount table entry: big-endian (qcow2.txt, "Cluster mapping").
pub(crate) type Entry = be::U64;
/// A 16-bit refcount, as d2l writes them ([`REFCOUNT_ORDER`] 4).
pub(crate) type Refcount = be::U16;

impl Header {
    /// The header d2l writes: version 3, 64 KiB clusters, no backing file, no encryption,
    /// no snapshots, no feature bits, 16-bit refcounts, compression type deflate.
    pub fn new(
        size: u64,
        l1_size: u32,
        l1_table_offset: u64,
        refcount_table_offset: u64,
        refcount_table_clusters: u32,
    ) -> Header {
        Header {
            magic: MAGIC,
            version: VERSION.into(),
            backing_file_offset: 0.into(),
            backing_file_size: 0.into(),
            cluster_bits: CLUSTER_BITS.into(),
            size: size.into(),
            crypt_method: 0.into(),
            l1_size: l1_size.into(),
            l1_table_offset: l1_table_offset.into(),
            refcount_table_offset: refcount_table_offset.into(),
            refcount_table_clusters: refcount_table_clusters.into(),
            nb_snapshots: 0.into(),
            snapshots_offset: 0.into(),
            incompatible_features: 0.into(),
            compatible_features: 0.into(),
            autoclear_features: 0.into(),
            refcount_order: REFCOUNT_ORDER.into(),
            header_length: HEADER_LENGTH.into(),
            compression_type: COMPRESSION_DEFLATE,
            padding: [0; 7],
        }
    }

    /// The header's bytes followed by the empty header extension area's end marker.
    pub fn encode(&self) -> [u8; HEADER_LENGTH as usize + 8] {
        let mut b = [0u8; HEADER_LENGTH as usize + 8];
        let (head, tail) = b.split_at_mut(HEADER_LENGTH as usize);
        head.copy_from_slice(self.as_bytes());
        tail.copy_from_slice(HeaderExtension::END.as_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_field_by_field() {
        let b = Header::new(0x5000_0000, 2, 0x30000, 0x50000, 1).encode();
        assert_eq!(&b[0..4], b"QFI\xfb");
        assert_eq!(&b[4..8], &[0, 0, 0, 3], "version 3");
        assert_eq!(&b[20..24], &[0, 0, 0, 16], "cluster_bits");
        assert_eq!(&b[24..32], &[0, 0, 0, 0, 0x50, 0, 0, 0], "size");
        assert_eq!(&b[36..40], &[0, 0, 0, 2], "l1_size");
        assert_eq!(&b[40..48], &[0, 0, 0, 0, 0, 3, 0, 0], "l1_table_offset");
        assert_eq!(
            &b[48..56],
            &[0, 0, 0, 0, 0, 5, 0, 0],
            "refcount_table_offset"
        );
        assert_eq!(&b[56..60], &[0, 0, 0, 1], "refcount_table_clusters");
        assert_eq!(&b[96..100], &[0, 0, 0, 4], "refcount_order");
        assert_eq!(&b[100..104], &[0, 0, 0, 112], "header_length");
        assert!(b[104..].iter().all(|&x| x == 0), "deflate, no extensions");
        let back = Header::read_from_prefix(&b).unwrap().0;
        assert_eq!(back.l1_table_offset.get(), 0x30000);
    }
}
