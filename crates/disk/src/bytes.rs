//! Byte order, once for every on-disk format.
//!
//! Structures are `#[repr(C)]` structs of endian-typed fields ([`le`], [`be`]) deriving
//! [`FromBytes`], [`IntoBytes`], [`KnownLayout`] and [`Immutable`], with their size pinned by
//! a `const _: () = assert!(size_of::<T>() == N)`: the same definition serves the writer
//! (`as_bytes`) and the reader (`read_from_prefix`), and no offset is written twice. The
//! `le16`..`be64` functions read one field of a structure that has no such type.

pub use zerocopy::byteorder::{big_endian as be, little_endian as le};
pub use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The little-endian `u16` at `at` (the caller has checked the length).
pub fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(array(b, at))
}

/// The little-endian `u32` at `at`.
pub fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(array(b, at))
}

/// The little-endian `u64` at `at`.
pub fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(array(b, at))
}

/// The big-endian `u32` at `at`.
pub fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(array(b, at))
}

/// The big-endian `u64` at `at`.
pub fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(array(b, at))
}

/// Stores `value` little-endian at `at`.
pub fn put_le16(b: &mut [u8], at: usize, value: u16) {
    b[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

/// Stores `value` little-endian at `at`.
pub fn put_le32(b: &mut [u8], at: usize, value: u32) {
    b[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// Stores `value` little-endian at `at`.
pub fn put_le64(b: &mut [u8], at: usize, value: u64) {
    b[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// Stores `value` big-endian at `at`.
pub fn put_be32(b: &mut [u8], at: usize, value: u32) {
    b[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Stores `value` big-endian at `at`.
pub fn put_be64(b: &mut [u8], at: usize, value: u64) {
    b[at..at + 8].copy_from_slice(&value.to_be_bytes());
}

/// `N` bytes at `at`; panics when `b` is too short, a bug of the caller, which has checked
/// the structure's length.
fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

/// Whether every byte is zero: 64-byte blocks folded with OR (the compiler vectorises it),
/// stopping at the first block that is not. Used to leave zero blocks as holes.
pub fn is_zero(bytes: &[u8]) -> bool {
    bytes
        .chunks(64)
        .all(|block| block.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0; 4096]));
        let mut b = [0u8; 4097];
        assert!(is_zero(&b));
        b[4096] = 1;
        assert!(!is_zero(&b));
        b[4096] = 0;
        b[0] = 0x80;
        assert!(!is_zero(&b));
    }

    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
    #[repr(C)]
    struct Pair {
        little: le::U32,
        big: be::U32,
    }
    const _: () = assert!(size_of::<Pair>() == 8);

    #[test]
    fn typed_fields_and_single_reads_agree() {
        let pair = Pair {
            little: 0x0102_0304.into(),
            big: 0x0102_0304.into(),
        };
        let bytes = pair.as_bytes();
        assert_eq!(bytes, [4, 3, 2, 1, 1, 2, 3, 4]);
        assert_eq!(le32(bytes, 0), 0x0102_0304);
        assert_eq!(be32(bytes, 4), 0x0102_0304);
        let back = Pair::read_from_bytes(bytes).unwrap();
        assert_eq!(back.big.get(), 0x0102_0304);
        let mut out = [0u8; 8];
        put_le32(&mut out, 0, 0x0102_0304);
        put_be32(&mut out, 4, 0x0102_0304);
        assert_eq!(out, bytes);
    }
}
