//! The layout of `ldlinux.sys` and the boot sector template, and the pure patching steps.
//!
//! Facts from `shared/notes/extlinux-offline.md` (SYSLINUX 6.04); nothing here does I/O.

use crate::error::{Error, Result};
use std::path::PathBuf;

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
/// Size of a packed extent record `{u64 lba, u16 len}`.
const EXTENT_RECORD: usize = 10;

/// Boot sector: jump and OEM name "SYSLINUX" kept from the template (bytes 0..0x0B).
const BS_OEM: std::ops::Range<usize> = 3..11;
/// Boot sector: start of the parameter block we write.
const BS_BPB_START: usize = 0x0B;
/// Boot sector: start of the boot code kept from the template.
pub(crate) const BS_CODE_START: usize = 0x5A;
/// Boot sector: u16 bytes per sector.
const BS_BYTES_PER_SECTOR: usize = 0x0B;
/// Boot sector: u16 total sectors when below 65536, else 0.
const BS_SECTORS16: usize = 0x13;
/// Boot sector: u16 sectors per track.
const BS_SECTORS_PER_TRACK: usize = 0x18;
/// Boot sector: u16 heads.
const BS_HEADS: usize = 0x1A;
/// Boot sector: u32 hidden sectors = partition start LBA.
const BS_HIDDEN: usize = 0x1C;
/// Boot sector: u32 partition size in sectors.
const BS_SECTORS32: usize = 0x20;
/// Boot sector: the ldlinux magic at 0x1F8.
const BS_MAGIC: usize = 0x1F8;
/// Boot sector: the 0x55 0xAA signature.
const BS_SIGNATURE: usize = 0x1FE;
/// Sectors per track extlinux reports for a device without a geometry (loop devices, files).
pub(crate) const DEFAULT_SECTORS_PER_TRACK: u16 = 32;
/// Heads extlinux reports for a device without a geometry.
pub(crate) const DEFAULT_HEADS: u16 = 64;

pub(crate) fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
pub(crate) fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

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

// Fields of the patch area, offsets from its magic.
const PA_STAMP: usize = 4;
const PA_DATA_SECTORS: usize = 8;
const PA_ADV_SECTORS: usize = 10;
const PA_DWORDS: usize = 12;
const PA_CHECKSUM: usize = 16;
const PA_EPA: usize = 22;
const PA_LEN: usize = 24;
/// Eleven u16 in the EPA.
const EPA_LEN: usize = 22;

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
        if sys.is_empty() || sys.len() % SECTOR != 0 {
            return Err(bad(format!(
                "size {:#x} is not a non-zero multiple of 512",
                sys.len()
            )));
        }
        let offset = (0..sys.len().saturating_sub(PA_LEN))
            .step_by(4)
            .find(|&i| get32(sys, i) == LDLINUX_MAGIC)
            .ok_or_else(|| bad(format!("no patch area (magic {LDLINUX_MAGIC:#010x})")))?;
        let data_sectors = get16(sys, offset + PA_DATA_SECTORS);
        let adv_sectors = get16(sys, offset + PA_ADV_SECTORS);
        let file_sectors = sys.len() / SECTOR;
        if adv_sectors != ADV_SECTORS
            || usize::from(data_sectors) + usize::from(adv_sectors) != file_sectors
        {
            return Err(bad(format!(
                "patch area at {offset:#x}: {data_sectors} code + {adv_sectors} ADV sectors \
                 do not make the file's {file_sectors} sectors"
            )));
        }
        let dwords = get32(sys, offset + PA_DWORDS);
        if dwords != u32::from(data_sectors) * (SECTOR as u32 / 4) {
            return Err(bad(format!(
                "patch area at {offset:#x}: dwords {dwords} != {data_sectors} sectors * 128"
            )));
        }
        let epa = usize::from(get16(sys, offset + PA_EPA));
        if epa + EPA_LEN > sys.len() {
            return Err(bad(format!(
                "extended patch area at {epa:#x} beyond the file"
            )));
        }
        let e = |i: usize| usize::from(get16(sys, epa + 2 * i));
        let pa = PatchArea {
            offset,
            stamp: get32(sys, offset + PA_STAMP),
            data_sectors,
            adv_ptr: e(0),
            dir: e(1),
            dir_len: e(2),
            subvol: e(3),
            subvol_len: e(4),
            sec_ptr: e(5),
            sec_ptr_count: e(6),
            sect1_ptr0: e(7),
            sect1_ptr1: e(8),
        };
        let code_len = usize::from(data_sectors) * SECTOR;
        for (name, at, len) in [
            ("ADV pointers", pa.adv_ptr, 16),
            ("directory", pa.dir, pa.dir_len),
            ("subvolume", pa.subvol, pa.subvol_len),
            ("extent list", pa.sec_ptr, pa.sec_ptr_count * EXTENT_RECORD),
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
    let bs: [u8; SECTOR] = raw
        .try_into()
        .map_err(|_| bad(format!("size {:#x}, want 0x200", raw.len())))?;
    if &bs[BS_OEM] != b"SYSLINUX" {
        return Err(bad("no \"SYSLINUX\" OEM name at 0x3".into()));
    }
    if bs[BS_SIGNATURE..] != [0x55, 0xAA] {
        return Err(bad("no 55 AA signature at 0x1fe".into()));
    }
    if get32(&bs, BS_MAGIC) != LDLINUX_MAGIC {
        return Err(bad(format!("no magic {LDLINUX_MAGIC:#010x} at 0x1f8")));
    }
    let stamp = pa.stamp.to_le_bytes();
    if !bs[BS_CODE_START..BS_MAGIC].windows(4).any(|w| w == stamp) {
        return Err(bad(format!(
            "build stamp {:#010x} of ldlinux.sys not in the boot code: pieces from different \
             syslinux builds",
            pa.stamp
        )));
    }
    let mut out = bs;
    out[BS_BPB_START..BS_CODE_START].fill(0);
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
        .fold(0u32, |acc, w| acc.wrapping_add(get32(w, 0)));
    LDLINUX_MAGIC.wrapping_sub(sum)
}

/// One empty ADV block: head magic, checksum, 500 zero bytes (tag 0 ends), tail magic.
pub(crate) fn empty_adv_block() -> [u8; ADV_BLOCK] {
    let mut b = [0u8; ADV_BLOCK];
    put32(&mut b, 0, ADV_MAGIC_HEAD);
    put32(&mut b, ADV_BLOCK - 4, ADV_MAGIC_TAIL);
    let sum = b[8..ADV_BLOCK - 4]
        .chunks_exact(4)
        .fold(0u32, |acc, w| acc.wrapping_add(get32(w, 0)));
    put32(&mut b, 4, ADV_CHECKSUM_BASE.wrapping_sub(sum));
    b
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
    let list_area = pa.sec_ptr..pa.sec_ptr + pa.sec_ptr_count * EXTENT_RECORD;
    out[list_area].fill(0);
    for (i, (lba, len)) in list.iter().enumerate() {
        let at = pa.sec_ptr + i * EXTENT_RECORD;
        put64(&mut out, at, *lba);
        put16(&mut out, at + 8, *len);
    }
    // The two ADV sectors.
    put64(&mut out, pa.adv_ptr, sectors[n]);
    put64(&mut out, pa.adv_ptr + 8, sectors[n + 1]);
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
    put32(&mut out, ck, 0);
    let sum = checksum(&out[..n * SECTOR]);
    put32(&mut out, ck, sum);
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
    let mut bs = *template;
    bs[BS_BPB_START..BS_CODE_START].fill(0);
    put16(&mut bs, BS_BYTES_PER_SECTOR, SECTOR as u16);
    put16(&mut bs, BS_SECTORS16, u16::try_from(size).unwrap_or(0));
    put16(&mut bs, BS_SECTORS_PER_TRACK, DEFAULT_SECTORS_PER_TRACK);
    put16(&mut bs, BS_HEADS, DEFAULT_HEADS);
    put32(&mut bs, BS_HIDDEN, start);
    put32(&mut bs, BS_SECTORS32, size);
    put32(&mut bs, pa.sect1_ptr0, first as u32);
    put32(&mut bs, pa.sect1_ptr1, (first >> 32) as u32);
    Ok(bs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_adv_checksum_is_the_base() {
        let b = empty_adv_block();
        assert_eq!(get32(&b, 0), ADV_MAGIC_HEAD);
        assert_eq!(get32(&b, 4), ADV_CHECKSUM_BASE);
        assert!(b[8..508].iter().all(|&x| x == 0));
        assert_eq!(get32(&b, 508), ADV_MAGIC_TAIL);
        // Words 8..508 plus the checksum sum to the base.
        let sum = b[4..508]
            .chunks_exact(4)
            .fold(0u32, |a, w| a.wrapping_add(get32(w, 0)));
        assert_eq!(sum, ADV_CHECKSUM_BASE);
    }

    #[test]
    fn checksum_makes_words_sum_to_magic() {
        let mut code: Vec<u8> = (0..1024u32)
            .flat_map(|i| i.wrapping_mul(0x9E37_79B9).to_le_bytes())
            .collect();
        code[16..20].fill(0);
        let ck = checksum(&code);
        put32(&mut code, 16, ck);
        let sum = code
            .chunks_exact(4)
            .fold(0u32, |a, w| a.wrapping_add(get32(w, 0)));
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
        put32(&mut s, 0x18, LDLINUX_MAGIC);
        put32(&mut s, 0x1C, 0x1234_5678); // build stamp
        put16(&mut s, 0x20, 4); // data sectors
        put16(&mut s, 0x22, 2); // ADV sectors
        put32(&mut s, 0x24, 4 * 128); // dwords
        put16(&mut s, 0x2C, 127); // maxtransfer
        put16(&mut s, 0x2E, 0x100); // EPA
        let epa = [
            0x200u16, 0x210, 0x40, 0x250, 0x10, 0x300, 4, 0x11A, 0x120, 0x1CA, 0,
        ];
        for (i, v) in epa.iter().enumerate() {
            put16(&mut s, 0x100 + 2 * i, *v);
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
        assert_eq!(get16(&out, 0x308), 2);
        assert_eq!(
            u64::from_le_bytes(out[0x30A..0x312].try_into().unwrap()),
            200
        );
        assert_eq!(get16(&out, 0x312), 1);
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
            .fold(0u32, |a, w| a.wrapping_add(get32(w, 0)));
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
        put32(&mut t, 0x1F8, LDLINUX_MAGIC);
        t[0x1FE] = 0x55;
        t[0x1FF] = 0xAA;
        t[0x30] = 0xFF; // leftover FAT parameter block byte, cleaned away
        let t = clean_boot_sector(&t, &pa).unwrap();
        let bs = boot_sector(&t, &pa, 0x1_0000_0042, 2048, 100_000).unwrap();
        assert_eq!(get16(&bs, 0x0B), 512);
        assert_eq!(get16(&bs, 0x13), 0); // >= 65536 sectors
        assert_eq!(get16(&bs, 0x18), 32);
        assert_eq!(get16(&bs, 0x1A), 64);
        assert_eq!(get32(&bs, 0x1C), 2048);
        assert_eq!(get32(&bs, 0x20), 100_000);
        assert_eq!(bs[0x30], 0);
        assert_eq!(get32(&bs, 0x11A), 0x42);
        assert_eq!(get32(&bs, 0x120), 1);
        let small = boot_sector(&t, &pa, 8, 0, 4096).unwrap();
        assert_eq!(get16(&small, 0x13), 4096);
        assert!(boot_sector(&t, &pa, 8, 1 << 32, 4096).is_err());
        // A template from another build is refused.
        let mut other = t;
        other[0x12F] ^= 1;
        assert!(clean_boot_sector(&other, &pa).is_err());
    }
}
