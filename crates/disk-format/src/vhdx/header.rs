//! VHDX's on-disk structures ([MS-VHDX] "Virtual Hard Disk v2 (VHDX) File Format", version
//! 1.0), defined once for the writer and the reader: the file type identifier, the headers,
//! the region table, the metadata table and items, the block allocation table's entries and
//! its interleaving, and the limits a reader holds an image to. Every field is
//! little-endian; GUIDs are stored as Windows stores them (the first three fields
//! little-endian).

use d2l_disk::bytes::{le, FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// One mebibyte: the unit of every offset and length of the regions, the log and the blocks
/// (MS-VHDX 2.2.3.2, 2.5.1).
pub(crate) const MIB: u64 = 1 << 20;
/// The header section: file type identifier, two headers, two region tables, at the start of
/// the file (MS-VHDX 2.1).
pub(crate) const HEADER_SECTION: u64 = MIB;
/// Where each 64 KiB structure of the header section starts (MS-VHDX 2.1, figure 2).
pub(crate) const HEADER_OFFSETS: [u64; 2] = [64 << 10, 128 << 10];
/// The two copies of the region table.
pub(crate) const REGION_TABLE_OFFSETS: [u64; 2] = [192 << 10, 256 << 10];
/// The file type identifier's signature, "vhdxfile" (MS-VHDX 2.2.1).
pub(crate) const SIGNATURE: [u8; 8] = crate::format::VHDX_SIGNATURE;
/// A header's signature, "head" (MS-VHDX 2.2.2).
pub(crate) const HEADER_SIGNATURE: [u8; 4] = *b"head";
/// The only header version (MS-VHDX 2.2.2, Version).
pub(crate) const VERSION: u16 = 1;
/// The only log version (MS-VHDX 2.2.2, LogVersion).
pub(crate) const LOG_VERSION: u16 = 0;
/// Bytes a header's checksum covers: the 4 KiB structure (MS-VHDX 2.2.2).
pub(crate) const HEADER_SIZE: usize = 4096;
/// The region table's signature, "regi" (MS-VHDX 2.2.3.1).
pub(crate) const REGION_SIGNATURE: [u8; 4] = *b"regi";
/// The most entries a region table or metadata table holds (MS-VHDX 2.2.3.1, 2.6.1.1).
pub(crate) const MAX_TABLE_ENTRIES: u32 = 2047;
/// A region table entry's flag: an implementation that does not know the region must not
/// open the file (MS-VHDX 2.2.3.2, Required).
pub(crate) const REGION_REQUIRED: u32 = 1;
/// The metadata table's signature, "metadata" (MS-VHDX 2.6.1.1).
pub(crate) const METADATA_SIGNATURE: [u8; 8] = *b"metadata";
/// Bytes of the metadata table at the start of the metadata region; items follow it
/// (MS-VHDX 2.6.1.2, Offset: at least 64 KiB).
pub(crate) const METADATA_TABLE_SIZE: u64 = 64 << 10;
/// The largest metadata item (MS-VHDX 2.6.1.2, Length: at most 1 MiB).
pub(crate) const MAX_METADATA_ITEM: u32 = 1 << 20;
/// Metadata entry flags (MS-VHDX 2.6.1.2; bit 0, IsUser, unused here): the item describes the virtual disk (size, identity, sectors), not the file.
pub(crate) const METADATA_IS_VIRTUAL_DISK: u32 = 2;
/// An implementation that does not know the item must not open the file.
pub(crate) const METADATA_IS_REQUIRED: u32 = 4;
/// File parameters flag (MS-VHDX 2.6.2.1; bit 0, LeaveBlocksAllocated, marks a fixed VHDX,
/// read the same): a differencing VHDX, with a parent.
pub(crate) const HAS_PARENT: u32 = 2;
/// Sectors one sector bitmap block describes: 2^23 (MS-VHDX 2.4); with the logical sector
/// size it gives the chunk ratio.
pub(crate) const SECTORS_PER_BITMAP_BLOCK: u64 = 1 << 23;

/// Payload block states (MS-VHDX 2.5.1.1): not in the file, contents undefined (for a
/// dynamic VHDX; zeros in practice).
pub(crate) const PAYLOAD_BLOCK_NOT_PRESENT: u64 = 0;
/// Not in the file, contents undefined.
pub(crate) const PAYLOAD_BLOCK_UNDEFINED: u64 = 1;
/// Not in the file, reads as zeros: what d2l writes for blocks that hold only zeros.
pub(crate) const PAYLOAD_BLOCK_ZERO: u64 = 2;
/// Unmapped by a trim: contents undefined.
pub(crate) const PAYLOAD_BLOCK_UNMAPPED: u64 = 3;
/// In the file at the entry's offset, whole.
pub(crate) const PAYLOAD_BLOCK_FULLY_PRESENT: u64 = 6;
/// In part, the rest in the parent (differencing VHDX only).
pub(crate) const PAYLOAD_BLOCK_PARTIALLY_PRESENT: u64 = 7;
/// Sector bitmap state (MS-VHDX 2.5.1.2): not allocated, the only valid state without a
/// parent.
pub(crate) const SB_BLOCK_NOT_PRESENT: u64 = 0;
/// A BAT entry's state: its low 3 bits (MS-VHDX 2.5.1).
pub(crate) const BAT_STATE_MASK: u64 = 0b111;
/// A BAT entry's FileOffsetMB: its top 44 bits.
pub(crate) const BAT_OFFSET_SHIFT: u32 = 20;

/// The smallest block read (and the specification's): 1 MiB.
pub const VHDX_MIN_BLOCK_SIZE: u32 = 1 << 20;
/// The largest block read (and the specification's): 256 MiB.
pub const VHDX_MAX_BLOCK_SIZE: u32 = 256 << 20;
/// The largest virtual disk (the specification's): 64 TiB.
pub const VHDX_MAX_VIRTUAL_SIZE: u64 = 64 << 40;
/// The largest block allocation table read: 16 Mi entries (128 MiB), 16 TiB in 1 MiB
/// blocks and the largest disk in blocks of 4 MiB or more.
pub const VHDX_MAX_BAT_ENTRIES: u64 = 16 << 20;

/// A GUID as Windows stores it: `data1`, `data2` and `data3` little-endian, `data4` as it
/// is; written as the text form's groups.
pub(crate) const fn guid(data1: u32, data2: u16, data3: u16, data4: [u8; 8]) -> [u8; 16] {
    let a = data1.to_le_bytes();
    let b = data2.to_le_bytes();
    let c = data3.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], data4[0], data4[1], data4[2], data4[3],
        data4[4], data4[5], data4[6], data4[7],
    ]
}

/// A UUID in RFC 4122 byte order (d2l's identities) stored as a Windows GUID, so that both
/// print the same text.
pub(crate) fn guid_from_uuid(uuid: [u8; 16]) -> [u8; 16] {
    let [a0, a1, a2, a3, b0, b1, c0, c1, rest @ ..] = uuid;
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&[a3, a2, a1, a0, b1, b0, c1, c0]);
    out[8..].copy_from_slice(&rest);
    out
}

/// A stored GUID in its text form, for errors.
pub(crate) fn guid_text(g: &[u8; 16]) -> String {
    let u32_at = |i: usize| u32::from_le_bytes([g[i], g[i + 1], g[i + 2], g[i + 3]]);
    let u16_at = |i: usize| u16::from_le_bytes([g[i], g[i + 1]]);
    let tail: String = g[10..].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{tail}",
        u32_at(0),
        u16_at(4),
        u16_at(6),
        g[8],
        g[9]
    )
}

/// The BAT region (MS-VHDX 2.2.3.2): 2DC27766-F623-4200-9D64-115E9BFD4A08.
pub(crate) const BAT_REGION: [u8; 16] = guid(
    0x2dc2_7766,
    0xf623,
    0x4200,
    [0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08],
);
/// The metadata region: 8B7CA206-4790-4B9A-B8FE-575F050F886E.
pub(crate) const METADATA_REGION: [u8; 16] = guid(
    0x8b7c_a206,
    0x4790,
    0x4b9a,
    [0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e],
);
/// File Parameters (MS-VHDX 2.6.2.1): CAA16737-FA36-4D43-B3B6-33F0AA44E76B.
pub(crate) const FILE_PARAMETERS: [u8; 16] = guid(
    0xcaa1_6737,
    0xfa36,
    0x4d43,
    [0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b],
);
/// Virtual Disk Size (MS-VHDX 2.6.2.2): 2FA54224-CD1B-4876-B211-5DBED83BF4B8.
pub(crate) const VIRTUAL_DISK_SIZE: [u8; 16] = guid(
    0x2fa5_4224,
    0xcd1b,
    0x4876,
    [0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8],
);
/// Virtual Disk ID, the SCSI page 83 identifier (MS-VHDX 2.6.2.3):
/// BECA12AB-B2E6-4523-93EF-C309E000C746.
pub(crate) const VIRTUAL_DISK_ID: [u8; 16] = guid(
    0xbeca_12ab,
    0xb2e6,
    0x4523,
    [0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46],
);
/// Logical Sector Size (MS-VHDX 2.6.2.4): 8141BF1D-A96F-4709-BA47-F233A8FAAB5F.
pub(crate) const LOGICAL_SECTOR_SIZE: [u8; 16] = guid(
    0x8141_bf1d,
    0xa96f,
    0x4709,
    [0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f],
);
/// Physical Sector Size (MS-VHDX 2.6.2.5): CDA348C7-445D-4471-9CC9-E9885251C556.
pub(crate) const PHYSICAL_SECTOR_SIZE: [u8; 16] = guid(
    0xcda3_48c7,
    0x445d,
    0x4471,
    [0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56],
);
/// Parent Locator (MS-VHDX 2.6.2.6), in differencing VHDXs:
/// A8D35F2D-B30B-454D-ABF7-D3D84834AB0C.
pub(crate) const PARENT_LOCATOR: [u8; 16] = guid(
    0xa8d3_5f2d,
    0xb30b,
    0x454d,
    [0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c],
);

/// The file type identifier (MS-VHDX 2.2.1), at 0; the rest of its 64 KiB is reserved.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct FileIdentifier {
    /// [`SIGNATURE`].
    pub signature: [u8; 8],
    /// The application that created the file, UTF-16LE, diagnostic only.
    pub creator: [u8; 512],
}
const _: () = assert!(size_of::<FileIdentifier>() == 520);

/// A header (MS-VHDX 2.2.2): two copies, the current one the valid one with the higher
/// sequence number.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct Header {
    /// [`HEADER_SIGNATURE`].
    pub signature: [u8; 4],
    /// CRC-32C of the 4 KiB, this field counted as zero.
    pub checksum: le::U32,
    /// Which header is current.
    pub sequence_number: le::U64,
    /// Changes when the file is first written after it is opened.
    pub file_write_guid: [u8; 16],
    /// Changes when the virtual disk's data is first written after it is opened.
    pub data_write_guid: [u8; 16],
    /// Zero when the log holds nothing to replay.
    pub log_guid: [u8; 16],
    /// [`LOG_VERSION`].
    pub log_version: le::U16,
    /// [`VERSION`].
    pub version: le::U16,
    /// Bytes of the log, a multiple of 1 MiB.
    pub log_length: le::U32,
    /// Where the log is, a multiple of 1 MiB.
    pub log_offset: le::U64,
    /// Zeros.
    pub reserved: [u8; 4016],
}
const _: () = assert!(size_of::<Header>() == HEADER_SIZE);

/// The region table's header (MS-VHDX 2.2.3.1).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct RegionTableHeader {
    /// [`REGION_SIGNATURE`].
    pub signature: [u8; 4],
    /// CRC-32C of the 64 KiB table, this field counted as zero.
    pub checksum: le::U32,
    /// Entries that follow.
    pub entry_count: le::U32,
    /// Zero.
    pub reserved: le::U32,
}

/// A region table entry (MS-VHDX 2.2.3.2): where a region is.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct RegionTableEntry {
    /// Which region: [`BAT_REGION`], [`METADATA_REGION`]...
    pub guid: [u8; 16],
    /// Its offset, a multiple of 1 MiB.
    pub file_offset: le::U64,
    /// Its length, a multiple of 1 MiB.
    pub length: le::U32,
    /// [`REGION_REQUIRED`], the other bits reserved.
    pub required: le::U32,
}

/// The region table (MS-VHDX 2.2.3): a header and up to [`MAX_TABLE_ENTRIES`] entries in
/// 64 KiB.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct RegionTable {
    /// The header.
    pub header: RegionTableHeader,
    /// The entries, `header.entry_count` of them in use.
    pub entries: [RegionTableEntry; MAX_TABLE_ENTRIES as usize],
    /// Zeros: the rest of the 64 KiB.
    pub reserved: [u8; 16],
}
const _: () = assert!(size_of::<RegionTable>() == 64 << 10);

/// The metadata table's header (MS-VHDX 2.6.1.1).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct MetadataTableHeader {
    /// [`METADATA_SIGNATURE`].
    pub signature: [u8; 8],
    /// Zero.
    pub reserved: le::U16,
    /// Entries that follow.
    pub entry_count: le::U16,
    /// Zeros.
    pub reserved2: [u8; 20],
}

/// A metadata table entry (MS-VHDX 2.6.1.2): where an item is in the metadata region.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct MetadataTableEntry {
    /// Which item: [`FILE_PARAMETERS`], [`VIRTUAL_DISK_SIZE`]...
    pub item_id: [u8; 16],
    /// The item's offset from the region's start: at least 64 KiB (0 for an empty item).
    pub offset: le::U32,
    /// The item's length, at most 1 MiB.
    pub length: le::U32,
    /// [`METADATA_IS_USER`], [`METADATA_IS_VIRTUAL_DISK`], [`METADATA_IS_REQUIRED`].
    pub flags: le::U32,
    /// Zero.
    pub reserved: le::U32,
}

/// The metadata table (MS-VHDX 2.6.1): a header and up to [`MAX_TABLE_ENTRIES`] entries,
/// exactly 64 KiB.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct MetadataTable {
    /// The header.
    pub header: MetadataTableHeader,
    /// The entries, `header.entry_count` of them in use.
    pub entries: [MetadataTableEntry; MAX_TABLE_ENTRIES as usize],
}
const _: () = assert!(size_of::<MetadataTable>() as u64 == METADATA_TABLE_SIZE);

/// The File Parameters item (MS-VHDX 2.6.2.1).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct FileParameters {
    /// Bytes per payload block: a power of two from 1 MiB to 256 MiB.
    pub block_size: le::U32,
    /// [`LEAVE_BLOCKS_ALLOCATED`], [`HAS_PARENT`].
    pub flags: le::U32,
}

/// A BAT entry: state and FileOffsetMB (MS-VHDX 2.5.1).
pub(crate) type BatEntry = le::U64;

/// The BAT entry of a payload block stored at `offset` (a multiple of 1 MiB).
pub(crate) fn present(offset: u64) -> u64 {
    debug_assert_eq!(offset % MIB, 0);
    (offset / MIB) << BAT_OFFSET_SHIFT | PAYLOAD_BLOCK_FULLY_PRESENT
}

/// A BAT entry's state.
pub(crate) fn state(entry: u64) -> u64 {
    entry & BAT_STATE_MASK
}

/// A BAT entry's file offset in bytes.
pub(crate) fn file_offset(entry: u64) -> u64 {
    (entry >> BAT_OFFSET_SHIFT) * MIB
}

/// Payload blocks per chunk, one sector bitmap entry after each chunk's payload entries
/// (MS-VHDX 2.4): 2^23 sectors over the block size.
pub(crate) fn chunk_ratio(block_size: u64, logical_sector: u64) -> u64 {
    SECTORS_PER_BITMAP_BLOCK * logical_sector / block_size
}

/// Entries of the BAT of a dynamic or fixed VHDX of `blocks` payload blocks: every payload
/// entry, and the sector bitmap entries between the chunks (MS-VHDX 2.5).
pub(crate) fn bat_entries(blocks: u64, chunk_ratio: u64) -> u64 {
    match blocks {
        0 => 0,
        n => n + (n - 1) / chunk_ratio,
    }
}

/// Index in the BAT of payload block `block`.
pub(crate) fn bat_index(block: u64, chunk_ratio: u64) -> u64 {
    block + block / chunk_ratio
}

/// CRC-32C (Castagnoli) of `bytes` with the 4-byte checksum field at `at` counted as zero
/// (MS-VHDX 2.2.2, 2.2.3.1).
pub(crate) fn checksum(bytes: &[u8], at: usize) -> u32 {
    let crc = crc32c::crc32c(&bytes[..at]);
    let crc = crc32c::crc32c_append(crc, &[0; 4]);
    crc32c::crc32c_append(crc, &bytes[at + 4..])
}

/// Offset of the checksum in a header and in the region table.
pub(crate) const CHECKSUM_AT: usize = 4;

impl Header {
    /// The checksum this header should carry.
    pub fn computed_checksum(&self) -> u32 {
        checksum(self.as_bytes(), CHECKSUM_AT)
    }
}

impl RegionTable {
    /// The checksum this table should carry.
    pub fn computed_checksum(&self) -> u32 {
        checksum(self.as_bytes(), CHECKSUM_AT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_is_castagnoli() {
        // The check value of CRC-32C (RFC 3720, B.4: 32 bytes of zeros give 0x8a9136aa).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c::crc32c(&[0; 32]), 0x8a91_36aa);
        let mut b = *b"ab\xff\xff\xff\xffcd";
        let sum = checksum(&b, 2);
        b[2..6].fill(0);
        assert_eq!(sum, crc32c::crc32c(&b), "the field counts as zeros");
    }

    #[test]
    fn guids_as_windows_stores_them() {
        assert_eq!(
            BAT_REGION,
            [
                0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42, 0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd,
                0x4a, 0x08
            ]
        );
        assert_eq!(
            guid_text(&BAT_REGION),
            "2dc27766-f623-4200-9d64-115e9bfd4a08"
        );
        assert_eq!(
            guid_text(&METADATA_REGION),
            "8b7ca206-4790-4b9a-b8fe-575f050f886e"
        );
        let uuid = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef, 0x80, 1, 2, 3, 4, 5, 6, 7,
        ];
        assert_eq!(
            guid_text(&guid_from_uuid(uuid)),
            "12345678-9abc-4def-8001-020304050607"
        );
    }

    #[test]
    fn bat_interleaves_a_sector_bitmap_entry_after_each_chunk() {
        // 1 MiB blocks of 512-byte sectors: 4096 blocks a chunk (MS-VHDX 2.4).
        let ratio = chunk_ratio(1 << 20, 512);
        assert_eq!(ratio, 4096);
        assert_eq!(chunk_ratio(32 << 20, 512), 128);
        assert_eq!(chunk_ratio(256 << 20, 512), 16);
        assert_eq!(chunk_ratio(1 << 20, 4096), 32768);
        assert_eq!(bat_entries(0, ratio), 0);
        assert_eq!(bat_entries(1, ratio), 1);
        assert_eq!(
            bat_entries(4096, ratio),
            4096,
            "no bitmap entry after the last"
        );
        assert_eq!(bat_entries(4097, ratio), 4098);
        assert_eq!(bat_index(4095, ratio), 4095);
        assert_eq!(bat_index(4096, ratio), 4097, "entry 4096 is the bitmap's");
        assert_eq!(bat_index(8192, ratio), 8194);
    }

    #[test]
    fn bat_entries_hold_state_and_megabytes() {
        let entry = present(5 * MIB);
        assert_eq!(entry, 0x0050_0006);
        assert_eq!(state(entry), PAYLOAD_BLOCK_FULLY_PRESENT);
        assert_eq!(file_offset(entry), 5 * MIB);
        assert_eq!(file_offset(u64::MAX), (u64::MAX >> 20) * MIB);
    }
}
