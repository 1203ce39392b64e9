//! Sparse files, made by the system's GNU tar.

use crate::helpers::*;

/// Makes `d/sparse.img` of `size` bytes with data at `runs` (offset, length; 4 KiB aligned so
/// the filesystem reports exactly those runs) and archives `d` with GNU tar and `args`.
fn sparse_archive(args: &[&str], size: u64, runs: &[(u64, u64)]) -> Vec<u8> {
    gnu_sparse_tar(args, "sparse.img", size, runs)
}

/// Applies a sparse archive and checks the tree: only `d` and `d/sparse.img`, the right size,
/// extents exactly the data runs, holes reading as zeros.
fn check_sparse(args: &[&str], size: u64, runs: &[(u64, u64)]) {
    let archive = sparse_archive(args, size, runs);
    let a = apply(&[archive]);
    let mut paths = Vec::new();
    let mut walk = a.tree.walk();
    while let Some(entry) = walk.next_entry() {
        paths.push(entry.path.escape_ascii().to_string());
    }
    assert_eq!(paths, ["d", "d/sparse.img"], "{args:?}");
    let file = inode(&a, "d/sparse.img").as_file().unwrap();
    assert_eq!(file.size, size, "{args:?}");
    assert_eq!(extents(&a, "d/sparse.img"), runs, "{args:?}");
    let stored: u64 = runs.iter().map(|r| r.1).sum();
    assert_eq!(file.stored_bytes(), stored);
    assert_eq!(a.stored, stored, "only the data runs are stored");
    if size <= 64 << 20 {
        let mut expected = vec![0u8; size as usize];
        for &(offset, len) in runs {
            expected[offset as usize..(offset + len) as usize]
                .copy_from_slice(&pattern(offset, len));
        }
        assert!(content(&a, "d/sparse.img") == expected, "{args:?}: content");
    } else {
        for &(offset, len) in runs {
            let extent = file
                .extents
                .iter()
                .find(|e| e.file_offset == offset)
                .unwrap();
            let mut buf = vec![0u8; len as usize];
            a.data.read_exact_at(&mut buf, extent.store_offset).unwrap();
            assert!(buf == pattern(offset, len), "{args:?}: run at {offset}");
        }
    }
}

const GNU: &[&str] = &["--format=gnu", "--sparse"];
const PAX_0_0: &[&str] = &["--format=pax", "--sparse", "--sparse-version=0.0"];
const PAX_0_1: &[&str] = &["--format=pax", "--sparse", "--sparse-version=0.1"];
const PAX_1_0: &[&str] = &["--format=pax", "--sparse", "--sparse-version=1.0"];

/// Holes at the start, between runs and at the end.
const FEW_RUNS: &[(u64, u64)] = &[(65_536, 4096), (409_600, 8192)];

/// Data at the start and at the very end.
const EDGE_RUNS: &[(u64, u64)] = &[(0, 4096), (1 << 20, 4096), ((2 << 20) - 4096, 4096)];

/// Forty runs: GNU tar needs two extension blocks; the PAX 1.0 map spans two blocks.
fn many_runs() -> Vec<(u64, u64)> {
    (0..40).map(|i| (i * 65_536 + 8192, 4096)).collect()
}

#[test]
fn sparse_gnu_format_is_expanded() {
    check_sparse(GNU, 1 << 20, FEW_RUNS);
    check_sparse(GNU, 2 << 20, EDGE_RUNS);
    check_sparse(GNU, 40 << 16, &many_runs());
    check_sparse(GNU, 1 << 20, &[]);
}

#[test]
fn sparse_pax_0_0_is_expanded() {
    check_sparse(PAX_0_0, 1 << 20, FEW_RUNS);
    check_sparse(PAX_0_0, 2 << 20, EDGE_RUNS);
    check_sparse(PAX_0_0, 40 << 16, &many_runs());
}

#[test]
fn sparse_pax_0_1_is_expanded() {
    check_sparse(PAX_0_1, 1 << 20, FEW_RUNS);
    check_sparse(PAX_0_1, 2 << 20, EDGE_RUNS);
    check_sparse(PAX_0_1, 40 << 16, &many_runs());
    check_sparse(PAX_0_1, 1 << 20, &[]);
}

#[test]
fn sparse_pax_1_0_is_expanded() {
    check_sparse(PAX_1_0, 1 << 20, FEW_RUNS);
    check_sparse(PAX_1_0, 2 << 20, EDGE_RUNS);
    check_sparse(PAX_1_0, 40 << 16, &many_runs());
    check_sparse(PAX_1_0, 1 << 20, &[]);
}

/// Runs past 8 GiB: GNU tar writes their offsets in base-256, in the header's four slots and
/// in the extension blocks alike.
fn runs_past_8_gib() -> Vec<(u64, u64)> {
    (9..15).map(|gib| (gib << 30, 4096)).collect()
}

#[test]
fn sparse_gnu_format_with_offsets_over_8_gib() {
    // Three runs and GNU tar's zero-length end marker fit in the header's four slots...
    check_sparse(GNU, 20 << 30, &runs_past_8_gib()[..3]);
    // ...six need an extension block, whose base-256 numbers must be read too.
    check_sparse(GNU, 20 << 30, &runs_past_8_gib());
}

#[test]
fn sparse_pax_with_offsets_over_8_gib() {
    check_sparse(PAX_0_1, 20 << 30, &runs_past_8_gib());
    check_sparse(PAX_1_0, 20 << 30, &runs_past_8_gib());
}
