//! ext4's CRC32C checksums (metadata_csum).
//!
//! The kernel's `ext4_chksum(seed, data)` is the raw CRC32C update: no inversion on the way in
//! or out. The `crc32c` crate computes the standard CRC (inverted in and out), so
//! `raw(seed, data) = !crc32c_append(!seed, data)`.

/// Raw CRC32C update, as the kernel's `ext4_chksum`.
pub(crate) fn ext4_chksum(seed: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!seed, data)
}

/// The filesystem's checksum seed: `ext4_chksum(~0, uuid)` (no `metadata_csum_seed` feature).
pub fn fs_seed(uuid: &[u8; 16]) -> u32 {
    ext4_chksum(!0, uuid)
}

/// Per-inode checksum seed, used for the inode itself, its extent blocks and directory blocks:
/// `ext4_chksum(ext4_chksum(fs_seed, le32(ino)), le32(generation))`.
pub fn inode_seed(fs_seed: u32, ino: u32, generation: u32) -> u32 {
    let seed = ext4_chksum(fs_seed, &ino.to_le_bytes());
    ext4_chksum(seed, &generation.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_crc_is_the_standard_crc_without_final_inversion() {
        // Standard CRC32C of "123456789" is 0xE3069283 (RFC 3720, appendix B.4 check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(ext4_chksum(!0, b"123456789"), !0xE306_9283);
        // Chaining: raw updates compose.
        let whole = ext4_chksum(7, b"abcdef");
        assert_eq!(ext4_chksum(ext4_chksum(7, b"abc"), b"def"), whole);
    }
}
