//! Cylinder/head/sector geometries that VHD footers and VMDK descriptors carry for BIOSes
//! that still ask.

/// The VHD specification's geometry for a disk of `sectors` 512-byte sectors (VHD spec,
/// Appendix "CHS Calculation"), capped at 65535 cylinders, 16 heads, 255 sectors per track.
pub(crate) fn vhd_geometry(sectors: u64) -> (u16, u8, u8) {
    let total = sectors.min(65535 * 16 * 255);
    let (mut spt, mut heads, mut cyl_times_heads);
    if total >= 65535 * 16 * 63 {
        spt = 255;
        heads = 16;
        cyl_times_heads = total / spt;
    } else {
        spt = 17;
        cyl_times_heads = total / spt;
        heads = cyl_times_heads.div_ceil(1024).max(4);
        if cyl_times_heads >= heads * 1024 || heads > 16 {
            spt = 31;
            heads = 16;
            cyl_times_heads = total / spt;
        }
        if cyl_times_heads >= heads * 1024 {
            spt = 63;
            heads = 16;
            cyl_times_heads = total / spt;
        }
    }
    let cylinders = cyl_times_heads / heads;
    // Cannot truncate: the total is capped at 65535 * 16 * 255 sectors, so cylinders stay
    // at most 65535, heads at most 16 and sectors per track at most 255.
    #[allow(clippy::cast_possible_truncation)]
    (cylinders as u16, heads as u8, spt as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhd_geometries_from_the_specification_algorithm() {
        // 1 GiB: the 63-sectors branch.
        assert_eq!(vhd_geometry(2 * 1024 * 1024), (2080, 16, 63));
        // 10 MiB: 17 sectors, 4 heads.
        assert_eq!(vhd_geometry(20480), (301, 4, 17));
        // Past 65535*16*63 sectors: 255 sectors per track.
        assert_eq!(vhd_geometry(200 << 21), (65535, 16, 255));
        // The cap.
        assert_eq!(vhd_geometry(u64::MAX), (65535, 16, 255));
    }
}
