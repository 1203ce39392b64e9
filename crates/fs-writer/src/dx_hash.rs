//! The directory-index hash: ext4's `DX_HASH_HALF_MD4` and `DX_HASH_HALF_MD4_UNSIGNED`.
//!
//! kernel.org ext4 "Data Structures and Algorithms", section "Hash Tree Directories": the hash
//! of a name orders the leaves of an htree directory. `half_md4` runs a cut-down MD4 transform
//! (three rounds of eight steps instead of 16, over eight 32-bit input words) once per 32 bytes
//! of the name, starting from a four-word state that is the superblock's `s_hash_seed` (or
//! MD4's initial values when the seed is all zero). The major hash is state word 1 with its low
//! bit cleared (that bit marks hash-collision continuation in index entries), the minor hash is
//! state word 2.
//!
//! The name's bytes are fed in as C `char`s: sign-extended on hosts where `char` is signed
//! (the superblock then carries `EXT2_FLAGS_SIGNED_HASH`), zero-extended otherwise
//! (`EXT2_FLAGS_UNSIGNED_HASH`, the `_UNSIGNED` hash variants). The two only differ for names
//! with bytes >= 0x80.

/// MD4's initial state (RFC 1320 section 3.3), used when the filesystem's hash seed is zero.
const DEFAULT_SEED: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// Round 2 additive constant, sqrt(2) * 2^30 (RFC 1320 section 3.4).
const K2: u32 = 0x5a82_7999;
/// Round 3 additive constant, sqrt(3) * 2^30 (RFC 1320 section 3.4).
const K3: u32 = 0x6ed9_eba1;

/// Bytes of the name consumed per transform: eight 32-bit words.
const CHUNK_BYTES: usize = 32;
/// Input words per transform.
const CHUNK_WORDS: usize = CHUNK_BYTES / 4;

/// The kernel's end-of-directory marker for 32-bit hash cookies (`EXT4_HTREE_EOF_32BIT`);
/// `ext4fs_dirhash` never returns `EOF << 1` as a major hash and substitutes `(EOF - 1) << 1`.
const HTREE_EOF_32BIT: u32 = 0x7fff_ffff;

/// ext4's `half_md4` directory hash of `name`: `(major, minor)`, the major hash with its low
/// bit clear.
///
/// `seed` is the superblock's `s_hash_seed` (all zero selects MD4's default state);
/// `signed_chars` selects `DX_HASH_HALF_MD4` (true) or `DX_HASH_HALF_MD4_UNSIGNED` (false).
/// Like the kernel's `ext4fs_dirhash` (and unlike e2fsprogs' `ext2fs_dirhash`), a major hash of
/// `0xfffffffe` is returned as `0xfffffffc`, so that it never equals the readdir EOF cookie.
pub fn half_md4_hash(name: &[u8], seed: [u32; 4], signed_chars: bool) -> (u32, u32) {
    let mut state = if seed == [0; 4] { DEFAULT_SEED } else { seed };
    let mut rest = name;
    // The kernel loops `while (len > 0)`: an empty name leaves the state untouched.
    while !rest.is_empty() {
        let words = message_words(rest, signed_chars);
        half_md4_transform(&mut state, &words);
        rest = &rest[rest.len().min(CHUNK_BYTES)..];
    }
    let mut major = state[1] & !1;
    if major == HTREE_EOF_32BIT << 1 {
        major = (HTREE_EOF_32BIT - 1) << 1;
    }
    (major, state[2])
}

/// Packs the first (up to) 32 bytes of `rest` into eight words, as the kernel's `str2hashbuf`:
/// each word holds four characters, the first in the most significant byte, added (not OR-ed)
/// onto a padding value; unused words and the unused part of a partial word carry the padding,
/// which is the length of the *remaining* name (not just this chunk) repeated in every byte.
fn message_words(rest: &[u8], signed_chars: bool) -> [u32; CHUNK_WORDS] {
    // The remaining length is at most 255 (the longest name), the kernel truncates to a byte
    // position the same way with its `len | len << 8` construction.
    #[allow(clippy::cast_possible_truncation)] // at most 255, see above
    let len = rest.len() as u32;
    let mut pad = len | (len << 8);
    pad |= pad << 16;

    let mut words = [pad; CHUNK_WORDS];
    for (word, chars) in words
        .iter_mut()
        .zip(rest[..rest.len().min(CHUNK_BYTES)].chunks(4))
    {
        let mut val = pad;
        for &byte in chars {
            let c = if signed_chars {
                byte as i8 as i32 as u32
            } else {
                u32::from(byte)
            };
            val = c.wrapping_add(val << 8);
        }
        *word = val;
    }
    words
}

/// The cut-down MD4 compression function: MD4's three rounds (RFC 1320 section 3.4) reduced
/// to eight steps each over eight input words, feeding the result forward into `state`.
fn half_md4_transform(state: &mut [u32; 4], input: &[u32; CHUNK_WORDS]) {
    /// Round 1 selection: `x ? y : z` bit by bit.
    fn f(x: u32, y: u32, z: u32) -> u32 {
        z ^ (x & (y ^ z))
    }
    /// Round 2 majority.
    fn g(x: u32, y: u32, z: u32) -> u32 {
        (x & y).wrapping_add((x ^ y) & z)
    }
    /// Round 3 parity.
    fn h(x: u32, y: u32, z: u32) -> u32 {
        x ^ y ^ z
    }

    /// One step: `(order[0] + fun(order[1..]) + word) <<< shift`, written back to `order[0]`.
    /// The four registers rotate roles each step: a, d, c, b.
    type Fun = fn(u32, u32, u32) -> u32;
    fn round(v: &mut [u32; 4], fun: Fun, k: u32, schedule: [(usize, u32); 8], input: &[u32; 8]) {
        for (step, &(word, shift)) in schedule.iter().enumerate() {
            // Step 0 updates a (from b, c, d), step 1 updates d (from a, b, c), and so on.
            let target = (4 - step % 4) % 4;
            let (x, y, z) = (
                v[(target + 1) % 4],
                v[(target + 2) % 4],
                v[(target + 3) % 4],
            );
            let sum = v[target]
                .wrapping_add(fun(x, y, z))
                .wrapping_add(input[word].wrapping_add(k));
            v[target] = sum.rotate_left(shift);
        }
    }

    let mut v = *state;
    round(
        &mut v,
        f,
        0,
        [
            (0, 3),
            (1, 7),
            (2, 11),
            (3, 19),
            (4, 3),
            (5, 7),
            (6, 11),
            (7, 19),
        ],
        input,
    );
    round(
        &mut v,
        g,
        K2,
        [
            (1, 3),
            (3, 5),
            (5, 9),
            (7, 13),
            (0, 3),
            (2, 5),
            (4, 9),
            (6, 13),
        ],
        input,
    );
    round(
        &mut v,
        h,
        K3,
        [
            (3, 3),
            (7, 9),
            (2, 11),
            (6, 15),
            (1, 3),
            (5, 9),
            (0, 11),
            (4, 15),
        ],
        input,
    );
    for (s, x) in state.iter_mut().zip(v) {
        *s = s.wrapping_add(x);
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // fixtures: small, known values
pub(crate) mod tests {
    use super::*;

    /// The superblock's `s_hash_seed` words for a seed written in UUID form (`-E hash_seed=UUID`,
    /// `dumpe2fs`' "Directory Hash Seed"): the 16 UUID bytes read as four little-endian words.
    pub(crate) fn seed_from_uuid(uuid: &[u8; 16]) -> [u32; 4] {
        let word = |i: usize| u32::from_le_bytes([uuid[i], uuid[i + 1], uuid[i + 2], uuid[i + 3]]);
        [word(0), word(4), word(8), word(12)]
    }

    /// The UUID text form of a seed, as `debugfs dx_hash -s` and `mke2fs -E hash_seed=` take it.
    pub(crate) fn seed_uuid_text(seed: [u32; 4]) -> String {
        let b: Vec<u8> = seed.iter().flat_map(|w| w.to_le_bytes()).collect();
        let hex = |r: std::ops::Range<usize>| -> String {
            b[r].iter().map(|x| format!("{x:02x}")).collect()
        };
        format!(
            "{}-{}-{}-{}-{}",
            hex(0..4),
            hex(4..6),
            hex(6..8),
            hex(8..10),
            hex(10..16)
        )
    }

    /// Deterministic xorshift generator, so the names are the same on every run.
    pub(crate) struct Rng(pub(crate) u64);
    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn zero_seed_is_md4_default_state() {
        let name = b"some-file.txt";
        assert_eq!(
            half_md4_hash(name, [0; 4], true),
            half_md4_hash(name, DEFAULT_SEED, true)
        );
        // Known value, cross-checked with `debugfs -R "dx_hash -h half_md4 hello"`.
        assert_eq!(
            half_md4_hash(b"hello", [0; 4], true),
            (0x1746_da32, 0x4200_13b5)
        );
        assert_eq!(
            half_md4_hash(
                b"hello",
                seed_from_uuid(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
                true
            ),
            (0xe2dd_f968, 0xc8bc_0924)
        );
    }

    #[test]
    fn seed_uuid_round_trip() {
        let seed = seed_from_uuid(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
        assert_eq!(seed, [0x0403_0201, 0x0807_0605, 0x0c0b_0a09, 0x100f_0e0d]);
        assert_eq!(seed_uuid_text(seed), "01020304-0506-0708-090a-0b0c0d0e0f10");
    }

    #[test]
    fn major_hash_low_bit_is_clear() {
        let mut rng = Rng(42);
        for _ in 0..2000 {
            let name: Vec<u8> = (0..1 + rng.below(40)).map(|_| rng.next() as u8).collect();
            assert_eq!(half_md4_hash(&name, [7, 0, 0, 0], false).0 & 1, 0);
        }
    }
}
