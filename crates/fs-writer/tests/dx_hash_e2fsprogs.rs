//! `half_md4_hash` against `debugfs dx_hash` (e2fsprogs' own dirhash), for a few hundred
//! names and seeds, signed and unsigned.
#![allow(clippy::cast_possible_truncation)] // fixtures: small, known values

mod common;

use std::process::Command;

use common::e2fs::{e2fs_tool, seed_from_uuid, seed_uuid_text, Rng};
use d2l_fs_writer::internals::half_md4_hash;

/// Asks `debugfs dx_hash` (no filesystem open) for the hash of every name, in one run.
/// `hash_alg` is debugfs' `-h` argument: `half_md4`, or `4` for half_md4_unsigned (the
/// name table has no entry for the unsigned variants).
fn debugfs_hashes(names: &[Vec<u8>], seed: [u32; 4], hash_alg: &str) -> Vec<(u32, u32)> {
    let debugfs = e2fs_tool("debugfs");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("cmds");
    let seed = seed_uuid_text(seed);
    let mut text = Vec::new();
    for name in names {
        text.extend_from_slice(format!("dx_hash -h {hash_alg} -s {seed} -- ").as_bytes());
        text.extend_from_slice(name);
        text.push(b'\n');
    }
    std::fs::write(&script, text).unwrap();
    let out = Command::new(&debugfs)
        .arg("-f")
        .arg(&script)
        .output()
        .unwrap();
    assert!(out.status.success(), "debugfs failed: {out:?}");
    let answers: Vec<(u32, u32)> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|line| line.starts_with(b"Hash of "))
        .map(|line| {
            // "Hash of NAME is 0x%x (minor 0x%x)"; NAME may hold any byte but newline.
            let line = String::from_utf8_lossy(line);
            let tail = &line[line.rfind(" is 0x").expect("hash line") + 6..];
            let (major, minor) = tail.split_once(" (minor 0x").expect("minor");
            let minor = minor.trim_end_matches(')');
            (
                u32::from_str_radix(major, 16).unwrap(),
                u32::from_str_radix(minor, 16).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        answers.len(),
        names.len(),
        "debugfs answered {} of {} dx_hash commands; stderr: {}",
        answers.len(),
        names.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    answers
}

/// Names debugfs' command parser passes through unchanged: no whitespace, quotes,
/// backslash or NUL; bytes >= 0x80 included.
fn test_names() -> Vec<Vec<u8>> {
    let safe: Vec<u8> = (0x21u8..=0xff)
        .filter(|b| !matches!(b, b'"' | b'\'' | b'\\' | b'#' | 0x7f | 0xa0))
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut names: Vec<Vec<u8>> = [
        &b"a"[..],
        b"hello",
        b"lost+found",
        b"abc\xe9",
        b"\x80",
        b"\xff\xfe\xfd\xfc",
        // Exactly one and two chunks, and one byte either side.
        &[b'x'; 31],
        &[b'x'; 32],
        &[b'x'; 33],
        &[b'y'; 64],
        &[b'\xc3'; 65],
        &[b'z'; 255],
        &[b'\xe4'; 255],
    ]
    .iter()
    .map(|n| n.to_vec())
    .collect();
    for i in 0..400 {
        let len = match i % 4 {
            0 => 1 + rng.below(16),
            1 => 17 + rng.below(48),
            2 => 65 + rng.below(191),
            _ => 1 + rng.below(255),
        } as usize;
        names.push(
            (0..len)
                .map(|_| safe[rng.below(safe.len() as u64) as usize])
                .collect(),
        );
    }
    names
}

#[test]
fn dx_hash_matches_debugfs() {
    let names = test_names();
    let seeds = [
        [0; 4],
        // Real seeds are random (mke2fs); a few fixed ones.
        seed_from_uuid(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
        [0xdead_beef, 0x0123_4567, 0x89ab_cdef, 0xffff_ffff],
    ];
    let mut high_byte_names_differ = 0;
    for seed in seeds {
        for (alg, signed) in [("half_md4", true), ("4", false)] {
            let expected = debugfs_hashes(&names, seed, alg);
            for (name, want) in names.iter().zip(&expected) {
                let got = half_md4_hash(name, seed, signed);
                assert_eq!(
                    got,
                    *want,
                    "half_md4 (signed {signed}) of {:?} (len {}) with seed {}",
                    String::from_utf8_lossy(name),
                    name.len(),
                    seed_uuid_text(seed)
                );
            }
        }
        high_byte_names_differ += names
            .iter()
            .filter(|n| half_md4_hash(n, seed, true) != half_md4_hash(n, seed, false))
            .count();
    }
    // The signed/unsigned distinction was really exercised.
    assert!(high_byte_names_differ > 100);
}
