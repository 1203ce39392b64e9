//! The layout of `ldlinux.sys` and the boot sector template, and the pure patching steps.
//!
//! Facts from `shared/notes/extlinux-offline.md` (SYSLINUX 6.04); nothing here does I/O.

use std::path::PathBuf;

use d2l_disk::bytes::{
    le, le32, put_le32, FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned,
};

use crate::error::{Error, Result};

/// Size of a logical sector; syslinux only supports 512-byte sectors.
pub(crate) const SECTOR: usize = 512;
/// Magic that starts the patch area of `ldlinux.sys` and sits at 0x1F8 in the boot sector;
/// also the value the code words of a correctly patched `ldlinux.sys` sum to.
pub(crate) const LDLINUX_MAGIC: u32 = 0x3EB2_02FE;
/// First word of each 512-byte ADV block.
pub(crate) const ADV_MAGIC_HEAD: u32 = 0x5A2D_2FA5;
/// The ADV checksum is this minus the sum of the words at bytes 8..508 of a block.
pub(crate) const ADV_CHECKSUM_BASE: u32 = 0xA304_1767;
/// Last word (at byte 508) of each 512-byte ADV block.
pub(crate) const ADV_MAGIC_TAIL: u32 = 0xDD28_BF64;
/// Size of one ADV copy; the tail of `ldlinux.sys` holds two.
pub(crate) const ADV_BLOCK: usize = 512;
/// Number of ADV sectors the tail of `ldlinux.sys` must have.
const ADV_SECTORS: u16 = 2;
/// Longest run of sectors one extent record may describe (the BIOS transfer limit used by
/// syslinux's loader, also the default `maxtransfer`).
pub(crate) const MAX_EXTENT_SECTORS: u64 = 127;

/// Boot sector: start of the parameter block we write.
const BS_BPB_START: usize = 0x0B;
/// Boot sector: start of the boot code kept from the template.
pub(crate) const BS_CODE_START: usize = 0x5A;
/// Boot sector: the ldlinux magic at 0x1F8.
const BS_MAGIC: usize = 0x1F8;
/// The boot sector's signature (BIOS Boot Specification 1.01, 6.5.1).
const BOOT_SIGNATURE: [u8; 2] = [0x55, 0xAA];
/// The boot sector's OEM name in syslinux's template.
const OEM_NAME: &[u8; 8] = b"SYSLINUX";
/// Sectors per track extlinux reports for a device without a geometry (loop devices, files).
pub(crate) const DEFAULT_SECTORS_PER_TRACK: u16 = 32;
/// Heads extlinux reports for a device without a geometry.
pub(crate) const DEFAULT_HEADS: u16 = 64;

/// The partition boot sector: syslinux's boot code with a FAT-style parameter block (BPB) that
/// d2l fills in (`ldlinux.bss`; syslinux `libinstaller/syslxint.h`, `struct fat_boot_sector`).
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct BootSector {
    /// x86 jump over the parameter block, kept from the template.
    jump: [u8; 3],
    /// OEM name, "SYSLINUX" in the template.
    oem: [u8; 8],
    /// The parameter block, written by d2l.
    bpb: Bpb,
    /// Boot code kept from the template; it embeds the sector of ldlinux.sys at the offsets
    /// the extended patch area gives (`sect1ptr0`, `sect1ptr1`).
    code: [u8; BS_MAGIC - BS_CODE_START],
    /// [`LDLINUX_MAGIC`].
    magic: le::U32,
    unused: [u8; 2],
    /// [`BOOT_SIGNATURE`].
    signature: [u8; 2],
}
const _: () = assert!(size_of::<BootSector>() == SECTOR);

/// The parameter block at 0x0B: FAT's BPB as extlinux fills it for ext2/3/4.
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Bpb {
    bytes_per_sector: le::U16,
    /// Cluster size, reserved sectors, FAT count, root entries: FAT only, zero.
    fat_geometry: [u8; 6],
    /// Total sectors when below 65536, else 0.
    sectors16: le::U16,
    /// Media byte and FAT size: FAT only, zero.
    fat_media: [u8; 3],
    sectors_per_track: le::U16,
    heads: le::U16,
    /// Partition start LBA.
    hidden_sectors: le::U32,
    /// Partition size in sectors.
    sectors32: le::U32,
    /// The rest of the FAT12/16/32 extended BPB: zero.
    extended: [u8; BS_CODE_START - 0x24],
}
const _: () = assert!(size_of::<Bpb>() == BS_CODE_START - BS_BPB_START);

/// The patch area that starts with [`LDLINUX_MAGIC`] in `ldlinux.sys` (syslinux
/// `libinstaller/syslxint.h`, `struct patch_area`).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RawPatchArea {
    magic: le::U32,
    /// Build stamp; the boot sector embeds the same value.
    instance: le::U32,
    data_sectors: le::U16,
    adv_sectors: le::U16,
    /// Code words covered by the checksum: `data_sectors * 128`.
    dwords: le::U32,
    checksum: le::U32,
    max_transfer: le::U16,
    /// Offset of the extended patch area in the file.
    epa_offset: le::U16,
}
const _: () = assert!(size_of::<RawPatchArea>() == 24);

/// The extended patch area (syslinux `struct ext_patch_area`): offsets in `ldlinux.sys` (for
/// `sect1_ptr*`, in the boot sector) of what the installer patches.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RawExtPatchArea {
    adv_ptr: le::U16,
    dir: le::U16,
    dir_len: le::U16,
    subvol: le::U16,
    subvol_len: le::U16,
    sec_ptr: le::U16,
    sec_ptr_count: le::U16,
    sect1_ptr0: le::U16,
    sect1_ptr1: le::U16,
    raid_patch: le::U16,
    banner: le::U16,
}
const _: () = assert!(size_of::<RawExtPatchArea>() == 22);

/// One record of the extent list: `len` sectors from `lba` (syslinux `struct syslinux_extent`).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct SectorExtent {
    lba: le::U64,
    len: le::U16,
}
const _: () = assert!(size_of::<SectorExtent>() == 10);

/// One copy of the auxiliary data vector (syslinux `libinstaller/advconst.h`): magic,
/// checksum, tagged data, magic.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct AdvBlock {
    head: le::U32,
    /// [`ADV_CHECKSUM_BASE`] minus the sum of the data words.
    checksum: le::U32,
    /// Tagged records; tag 0 ends them.
    data: [u8; ADV_BLOCK - 12],
    tail: le::U32,
}
const _: () = assert!(size_of::<AdvBlock>() == ADV_BLOCK);

/// The two ADV sector numbers in `ldlinux.sys`.
type AdvPointers = [le::U64; 2];

/// The patch area of one `ldlinux.sys` and its extended patch area (EPA), read from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatchArea {
    /// Offset of the magic in the file.
    pub offset: usize,
    /// Build stamp (the word after the magic); the boot sector embeds the same value.
    pub stamp: u32,
    /// Code sectors N (without the ADV).
    pub data_sectors: u16,
    /// Offset in the file of the ADV sector pointers (two u64).
    pub adv_ptr: usize,
    /// Offset in the file of the install directory string.
    pub dir: usize,
    /// Room for the install directory, NUL included.
    pub dir_len: usize,
    /// Offset in the file of the subvolume string.
    pub subvol: usize,
    /// Room for the subvolume string.
    pub subvol_len: usize,
    /// Offset in the file of the extent list.
    pub sec_ptr: usize,
    /// Number of extent records the list holds.
    pub sec_ptr_count: usize,
    /// Offset in the boot sector of the low 32 bits of the first sector.
    pub sect1_ptr0: usize,
    /// Offset in the boot sector of the high 32 bits of the first sector.
    pub sect1_ptr1: usize,
}

/// Offset of the checksum in the patch area.
const PA_CHECKSUM: usize = std::mem::offset_of!(RawPatchArea, checksum);

fn invalid(path: &str, reason: String) -> Error {
    Error::Invalid {
        path: PathBuf::from(path),
        reason,
    }
}

impl PatchArea {
    /// Finds and checks the patch area of `sys` (an unpatched or already patched file).
    pub(crate) fn parse(sys: &[u8]) -> Result<PatchArea> {
        let bad = |r: String| invalid("ldlinux.sys", r);
        if sys.is_empty() || !sys.len().is_multiple_of(SECTOR) {
            return Err(bad(format!(
                "size {:#x} is not a non-zero multiple of 512",
                sys.len()
            )));
        }
        let offset = (0..sys.len().saturating_sub(size_of::<RawPatchArea>()))
            .step_by(4)
            .find(|&i| le32(sys, i) == LDLINUX_MAGIC)
            .ok_or_else(|| bad(format!("no patch area (magic {LDLINUX_MAGIC:#010x})")))?;
        let (raw, _) = RawPatchArea::ref_from_prefix(&sys[offset..])
            .map_err(|_| bad(format!("patch area at {offset:#x} beyond the file")))?;
        let data_sectors = raw.data_sectors.get();
        let adv_sectors = raw.adv_sectors.get();
        let file_sectors = sys.len() / SECTOR;
        if adv_sectors != ADV_SECTORS
            || usize::from(data_sectors) + usize::from(adv_sectors) != file_sectors
        {
            return Err(bad(format!(
                "patch area at {offset:#x}: {data_sectors} code + {adv_sectors} ADV sectors \
                 do not make the file's {file_sectors} sectors"
            )));
        }
        let dwords = raw.dwords.get();
        if dwords != u32::from(data_sectors) * (SECTOR as u32 / 4) {
            return Err(bad(format!(
                "patch area at {offset:#x}: dwords {dwords} != {data_sectors} sectors * 128"
            )));
        }
        let epa = usize::from(raw.epa_offset.get());
        let Some((e, _)) = sys
            .get(epa..)
            .and_then(|rest| RawExtPatchArea::ref_from_prefix(rest).ok())
        else {
            return Err(bad(format!(
                "extended patch area at {epa:#x} beyond the file"
            )));
        };
        let pa = PatchArea {
            offset,
            stamp: raw.instance.get(),
            data_sectors,
            adv_ptr: usize::from(e.adv_ptr.get()),
            dir: usize::from(e.dir.get()),
            dir_len: usize::from(e.dir_len.get()),
            subvol: usize::from(e.subvol.get()),
            subvol_len: usize::from(e.subvol_len.get()),
            sec_ptr: usize::from(e.sec_ptr.get()),
            sec_ptr_count: usize::from(e.sec_ptr_count.get()),
            sect1_ptr0: usize::from(e.sect1_ptr0.get()),
            sect1_ptr1: usize::from(e.sect1_ptr1.get()),
        };
        let code_len = usize::from(data_sectors) * SECTOR;
        for (name, at, len) in [
            ("ADV pointers", pa.adv_ptr, size_of::<AdvPointers>()),
            ("directory", pa.dir, pa.dir_len),
            ("subvolume", pa.subvol, pa.subvol_len),
            (
                "extent list",
                pa.sec_ptr,
                pa.sec_ptr_count * size_of::<SectorExtent>(),
            ),
        ] {
            if at + len > code_len {
                return Err(bad(format!(
                    "EPA at {epa:#x}: {name} {at:#x}+{len:#x} beyond the code part"
                )));
            }
        }
        for (name, at) in [("sect1ptr0", pa.sect1_ptr0), ("sect1ptr1", pa.sect1_ptr1)] {
            if at < BS_CODE_START || at + 4 > BS_MAGIC {
                return Err(bad(format!(
                    "EPA at {epa:#x}: {name} {at:#x} outside the boot sector code"
                )));
            }
        }
        Ok(pa)
    }

    /// The number of 512-byte sectors of the whole file, ADV included.
    pub(crate) fn file_sectors(&self) -> usize {
        usize::from(self.data_sectors) + usize::from(ADV_SECTORS)
    }
}

/// Checks a boot sector template and returns it with the parameter block zeroed.
pub(crate) fn clean_boot_sector(raw: &[u8], pa: &PatchArea) -> Result<[u8; SECTOR]> {
    let bad = |r: String| invalid("ldlinux.bss", r);
    let mut bs = BootSector::read_from_bytes(raw)
        .map_err(|_| bad(format!("size {:#x}, want 0x200", raw.len())))?;
    if &bs.oem != OEM_NAME {
        return Err(bad("no \"SYSLINUX\" OEM name at 0x3".into()));
    }
    if bs.signature != BOOT_SIGNATURE {
        return Err(bad("no 55 AA signature at 0x1fe".into()));
    }
    if bs.magic.get() != LDLINUX_MAGIC {
        return Err(bad(format!("no magic {LDLINUX_MAGIC:#010x} at 0x1f8")));
    }
    let stamp = pa.stamp.to_le_bytes();
    if !bs.code.windows(4).any(|w| w == stamp) {
        return Err(bad(format!(
            "build stamp {:#010x} of ldlinux.sys not in the boot code: pieces from different \
             syslinux builds",
            pa.stamp
        )));
    }
    bs.bpb = Bpb::new_zeroed();
    let mut out = [0u8; SECTOR];
    out.copy_from_slice(bs.as_bytes());
    Ok(out)
}

/// Groups sector numbers into runs of consecutive sectors, each at most
/// [`MAX_EXTENT_SECTORS`] long.
pub(crate) fn extents(sectors: &[u64]) -> Vec<(u64, u16)> {
    let mut out: Vec<(u64, u16)> = Vec::new();
    for &s in sectors {
        match out.last_mut() {
            Some((start, len))
                if *start + u64::from(*len) == s && u64::from(*len) < MAX_EXTENT_SECTORS =>
            {
                *len += 1
            }
            _ => out.push((s, 1)),
        }
    }
    out
}

/// The checksum that makes the `u32` words of `code` (with the checksum field holding it)
/// sum to [`LDLINUX_MAGIC`]; `code` must have the field zeroed.
pub(crate) fn checksum(code: &[u8]) -> u32 {
    let sum = code
        .chunks_exact(4)
        .fold(0u32, |acc, w| acc.wrapping_add(le32(w, 0)));
    LDLINUX_MAGIC.wrapping_sub(sum)
}

/// One empty ADV block: head magic, checksum, 500 zero bytes (tag 0 ends), tail magic.
pub(crate) fn empty_adv_block() -> [u8; ADV_BLOCK] {
    // The data is all zero words, so the checksum is the base itself.
    let block = AdvBlock {
        head: ADV_MAGIC_HEAD.into(),
        checksum: ADV_CHECKSUM_BASE.into(),
        data: [0; ADV_BLOCK - 12],
        tail: ADV_MAGIC_TAIL.into(),
    };
    let mut out = [0u8; ADV_BLOCK];
    out.copy_from_slice(block.as_bytes());
    out
}

/// Patches a copy of `sys` for the sectors `sectors` and install directory `dir`.
pub(crate) fn patch(sys: &[u8], pa: &PatchArea, sectors: &[u64], dir: &str) -> Result<Vec<u8>> {
    let n = usize::from(pa.data_sectors);
    if sectors.len() != pa.file_sectors() {
        return Err(Error::Placement(format!(
            "ldlinux.sys has {} sectors, {} sector numbers given",
            pa.file_sectors(),
            sectors.len()
        )));
    }
    if !dir.starts_with('/') || dir.contains('\0') {
        return Err(Error::Placement(format!(
            "install directory {dir:?} is not an absolute path"
        )));
    }
    if dir.len() + 1 > pa.dir_len {
        return Err(Error::Placement(format!(
            "install directory {dir:?} longer than the {} bytes ldlinux.sys has room for",
            pa.dir_len - 1
        )));
    }
    let list = extents(&sectors[1..n]);
    if list.len() > pa.sec_ptr_count {
        return Err(Error::Placement(format!(
            "ldlinux.sys placed in {} extents, at most {} fit",
            list.len(),
            pa.sec_ptr_count
        )));
    }
    let mut out = sys.to_vec();
    // Extent list for S[1]..S[N-1].
    let record = size_of::<SectorExtent>();
    let list_area = pa.sec_ptr..pa.sec_ptr + pa.sec_ptr_count * record;
    out[list_area].fill(0);
    for (i, (lba, len)) in list.iter().enumerate() {
        let at = pa.sec_ptr + i * record;
        let extent = SectorExtent {
            lba: (*lba).into(),
            len: (*len).into(),
        };
        out[at..at + record].copy_from_slice(extent.as_bytes());
    }
    // The two ADV sectors.
    let adv_ptrs: AdvPointers = [sectors[n].into(), sectors[n + 1].into()];
    out[pa.adv_ptr..pa.adv_ptr + size_of::<AdvPointers>()].copy_from_slice(adv_ptrs.as_bytes());
    // Install directory and subvolume.
    out[pa.dir..pa.dir + pa.dir_len].fill(0);
    out[pa.dir..pa.dir + dir.len()].copy_from_slice(dir.as_bytes());
    out[pa.subvol..pa.subvol + pa.subvol_len].fill(0);
    // Empty ADV tail.
    let adv = empty_adv_block();
    out[n * SECTOR..n * SECTOR + ADV_BLOCK].copy_from_slice(&adv);
    out[n * SECTOR + ADV_BLOCK..].copy_from_slice(&adv);
    // Checksum last.
    let ck = pa.offset + PA_CHECKSUM;
    put_le32(&mut out, ck, 0);
    let sum = checksum(&out[..n * SECTOR]);
    put_le32(&mut out, ck, sum);
    Ok(out)
}

/// Builds the partition boot sector from a cleaned template.
pub(crate) fn boot_sector(
    template: &[u8; SECTOR],
    pa: &PatchArea,
    first: u64,
    start_lba: u64,
    partition_sectors: u64,
) -> Result<[u8; SECTOR]> {
    let start = u32::try_from(start_lba).map_err(|_| {
        Error::Placement(format!(
            "partition start LBA {start_lba:#x} beyond 2 TiB, the boot sector holds 32 bits"
        ))
    })?;
    let size = u32::try_from(partition_sectors).map_err(|_| {
        Error::Placement(format!(
            "partition of {partition_sectors:#x} sectors beyond 2 TiB, the boot sector holds 32 bits"
        ))
    })?;
    let mut bs = BootSector::read_from_bytes(template).expect("a sector is a boot sector");
    bs.bpb = Bpb {
        bytes_per_sector: (SECTOR as u16).into(),
        sectors16: u16::try_from(size).unwrap_or(0).into(),
        sectors_per_track: DEFAULT_SECTORS_PER_TRACK.into(),
        heads: DEFAULT_HEADS.into(),
        hidden_sectors: start.into(),
        sectors32: size.into(),
        ..Bpb::new_zeroed()
    };
    let mut out = [0u8; SECTOR];
    out.copy_from_slice(bs.as_bytes());
    // The first sector of ldlinux.sys, in two halves where the boot code reads them.
    put_le32(&mut out, pa.sect1_ptr0, first as u32);
    put_le32(&mut out, pa.sect1_ptr1, (first >> 32) as u32);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use d2l_disk::bytes::{le16, put_le16};

    #[test]
    fn empty_adv_checksum_is_the_base() {
        let b = empty_adv_block();
        assert_eq!(le32(&b, 0), ADV_MAGIC_HEAD);
        assert_eq!(le32(&b, 4), ADV_CHECKSUM_BASE);
        assert!(b[8..508].iter().all(|&x| x == 0));
        assert_eq!(le32(&b, 508), ADV_MAGIC_TAIL);
        // Words 8..508 plus the checksum sum to the base.
        let sum = b[4..508]
            .chunks_exact(4)
            .fold(0u32, |a, w| a.wrapping_add(le32(w, 0)));
        assert_eq!(sum, ADV_CHECKSUM_BASE);
    }

    #[test]
    fn checksum_makes_words_sum_to_magic() {
        let mut code: Vec<u8> = (0..1024u32)
            .flat_map(|i| i.wrapping_mul(0x9E37_79B9).to_le_bytes())
            .collect();
        code[16..20].fill(0);
        let ck = checksum(&code);
        put_le32(&mut code, 16, ck);
        let sum = code
            .chunks_exact(4)
            .fold(0u32, |a, w| a.wrapping_add(le32(w, 0)));
        assert_eq!(sum, LDLINUX_MAGIC);
        // All zero code: the checksum is the magic itself.
        assert_eq!(checksum(&[0u8; 512]), LDLINUX_MAGIC);
    }

    #[test]
    fn extents_split_at_gaps_and_127() {
        let contiguous: Vec<u64> = (1000..1113).collect();
        assert_eq!(extents(&contiguous), vec![(1000, 113)]);
        let long: Vec<u64> = (0..300).collect();
        assert_eq!(extents(&long), vec![(0, 127), (127, 127), (254, 46)]);
        assert_eq!(
            extents(&[5, 6, 7, 20, 21, 9]),
            vec![(5, 3), (20, 2), (9, 1)]
        );
        assert!(extents(&[]).is_empty());
    }

    /// A synthetic ldlinux.sys: 4 code sectors + 2 ADV, patch area at 0x18, EPA at 0x100.
    fn synthetic() -> Vec<u8> {
        let mut s = vec![0u8; 6 * SECTOR];
        put_le32(&mut s, 0x18, LDLINUX_MAGIC);
        put_le32(&mut s, 0x1C, 0x1234_5678); // build stamp
        put_le16(&mut s, 0x20, 4); // data sectors
        put_le16(&mut s, 0x22, 2); // ADV sectors
        put_le32(&mut s, 0x24, 4 * 128); // dwords
        put_le16(&mut s, 0x2C, 127); // maxtransfer
        put_le16(&mut s, 0x2E, 0x100); // EPA
        let epa = [
            0x200u16, 0x210, 0x40, 0x250, 0x10, 0x300, 4, 0x11A, 0x120, 0x1CA, 0,
        ];
        for (i, v) in epa.iter().enumerate() {
            put_le16(&mut s, 0x100 + 2 * i, *v);
        }
        s
    }

    #[test]
    fn patch_synthetic() {
        let sys = synthetic();
        let pa = PatchArea::parse(&sys).unwrap();
        assert_eq!(pa.offset, 0x18);
        assert_eq!(pa.file_sectors(), 6);
        let sectors = [100, 101, 102, 200, 201, 202];
        let out = patch(&sys, &pa, &sectors, "/boot/syslinux").unwrap();
        // Extent list: S[1]..S[2] = (101, 2), then S[3] = (200, 1).
        assert_eq!(
            u64::from_le_bytes(out[0x300..0x308].try_into().unwrap()),
            101
        );
        assert_eq!(le16(&out, 0x308), 2);
        assert_eq!(
            u64::from_le_bytes(out[0x30A..0x312].try_into().unwrap()),
            200
        );
        assert_eq!(le16(&out, 0x312), 1);
        assert!(out[0x314..0x300 + 40].iter().all(|&b| b == 0));
        // ADV pointers.
        assert_eq!(
            u64::from_le_bytes(out[0x200..0x208].try_into().unwrap()),
            201
        );
        assert_eq!(
            u64::from_le_bytes(out[0x208..0x210].try_into().unwrap()),
            202
        );
        assert_eq!(&out[0x210..0x21F], b"/boot/syslinux\0");
        // Checksum and ADV.
        let sum = out[..4 * SECTOR]
            .chunks_exact(4)
            .fold(0u32, |a, w| a.wrapping_add(le32(w, 0)));
        assert_eq!(sum, LDLINUX_MAGIC);
        assert_eq!(&out[4 * SECTOR..5 * SECTOR], &empty_adv_block()[..]);
        assert_eq!(&out[5 * SECTOR..], &empty_adv_block()[..]);
        // Errors: wrong count, too many extents, relative dir.
        assert!(patch(&sys, &pa, &sectors[..5], "/").is_err());
        assert!(patch(&sys, &pa, &[1, 10, 20, 30, 40, 50], "/").is_ok());
        assert!(patch(&sys, &pa, &sectors, "boot").is_err());
    }

    #[test]
    fn boot_sector_fields() {
        let pa = PatchArea::parse(&synthetic()).unwrap();
        let mut t = [0u8; SECTOR];
        t[0..3].copy_from_slice(&[0xEB, 0x58, 0x90]);
        t[3..11].copy_from_slice(b"SYSLINUX");
        t[0x12F..0x133].copy_from_slice(&0x1234_5678u32.to_le_bytes());
        put_le32(&mut t, 0x1F8, LDLINUX_MAGIC);
        t[0x1FE] = 0x55;
        t[0x1FF] = 0xAA;
        t[0x30] = 0xFF; // leftover FAT parameter block byte, cleaned away
        let t = clean_boot_sector(&t, &pa).unwrap();
        let bs = boot_sector(&t, &pa, 0x1_0000_0042, 2048, 100_000).unwrap();
        assert_eq!(le16(&bs, 0x0B), 512);
        assert_eq!(le16(&bs, 0x13), 0); // >= 65536 sectors
        assert_eq!(le16(&bs, 0x18), 32);
        assert_eq!(le16(&bs, 0x1A), 64);
        assert_eq!(le32(&bs, 0x1C), 2048);
        assert_eq!(le32(&bs, 0x20), 100_000);
        assert_eq!(bs[0x30], 0);
        assert_eq!(le32(&bs, 0x11A), 0x42);
        assert_eq!(le32(&bs, 0x120), 1);
        let small = boot_sector(&t, &pa, 8, 0, 4096).unwrap();
        assert_eq!(le16(&small, 0x13), 4096);
        assert!(boot_sector(&t, &pa, 8, 1 << 32, 4096).is_err());
        // A template from another build is refused.
        let mut other = t;
        other[0x12F] ^= 1;
        assert!(clean_boot_sector(&other, &pa).is_err());
    }
}
