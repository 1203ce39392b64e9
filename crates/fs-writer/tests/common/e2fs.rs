//! Helpers of the tests comparing with e2fsprogs (`debugfs`, `mke2fs`, `e2fsck`): finding the
//! tools, hash seeds in UUID form, a deterministic generator of names.
#![allow(dead_code)] // each test file uses part of it

use std::path::PathBuf;

/// Finds an e2fsprogs tool on `PATH` or in the sbin directories, or fails the test saying
/// what to install.
pub fn e2fs_tool(name: &str) -> PathBuf {
    d2l_testkit::which(name).unwrap_or_else(|| {
        panic!(
            "`{name}` from e2fsprogs is required by this test but was not found on PATH or \
             in /usr/sbin, /sbin: install e2fsprogs (e.g. `apt-get install e2fsprogs`)"
        )
    })
}

/// The superblock's `s_hash_seed` words for a seed written in UUID form (`-E hash_seed=UUID`,
/// `dumpe2fs`' "Directory Hash Seed"): the 16 UUID bytes read as four little-endian words.
pub fn seed_from_uuid(uuid: &[u8; 16]) -> [u32; 4] {
    let word = |i: usize| u32::from_le_bytes([uuid[i], uuid[i + 1], uuid[i + 2], uuid[i + 3]]);
    [word(0), word(4), word(8), word(12)]
}

/// The UUID text form of a seed, as `debugfs dx_hash -s` and `mke2fs -E hash_seed=` take it.
pub fn seed_uuid_text(seed: [u32; 4]) -> String {
    let b: Vec<u8> = seed.iter().flat_map(|w| w.to_le_bytes()).collect();
    let hex =
        |r: std::ops::Range<usize>| -> String { b[r].iter().map(|x| format!("{x:02x}")).collect() };
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
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
