//! Checks against e2fsprogs: our blocks are written into a real ext4 image made by mke2fs,
//! then `e2fsck -fn` must find nothing wrong and `debugfs htree_dump` must read back
//! exactly our tree with e2fsprogs' own hashes; and after `e2fsck -fD` rebuilds the index
//! the same way, its tree must have our depth and our order of names.
#![allow(clippy::cast_possible_truncation)] // fixtures: small, known values

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::e2fs::{e2fs_tool, seed_from_uuid, seed_uuid_text, Rng};
use d2l_fs_writer::internals::test_reader::{check_hash_order, read_tree, Tree};
use d2l_fs_writer::internals::{
    build_directory, directory_block_count, empty_directory_blocks, fits_linear, fs_seed,
    half_md4_hash, inode_seed, rec_len, DirBlocks, DirEntryIn, HashParams, HtreeShape,
};

fn entry(name: &[u8], inode: u32, file_type: u8) -> DirEntryIn<'_> {
    DirEntryIn {
        name,
        inode,
        file_type,
    }
}

/// `n` names `prefix000123`-style, padded with `x` to `len` bytes, sorted.
fn numbered_names(n: usize, len: usize) -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut name = format!("n{i:06}").into_bytes();
            name.resize(len.max(name.len()), b'x');
            name
        })
        .collect();
    names.sort();
    names
}

const UUID: [u8; 16] = *b"d2l-dir-test-uid";
const HASH_SEED: [u8; 16] = [0x5e, 0xed, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];
/// Regular files the generated names are hard links to.
const REGULAR: usize = 16;

struct Image {
    _dir: tempfile::TempDir,
    img: PathBuf,
    hash: HashParams,
    /// Inode and generation of the test directory `/d`.
    d_ino: u32,
    d_gen: u32,
    regular: Vec<u32>,
    sub: u32,
    lnk: u32,
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.env("DEBUGFS_PAGER", "__none__").output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn debugfs(img: &Path, write: bool, commands: &[String]) -> Vec<u8> {
    let script = img.with_extension("cmds");
    std::fs::write(&script, commands.join("\n") + "\n").unwrap();
    let mut cmd = Command::new(e2fs_tool("debugfs"));
    if write {
        cmd.arg("-w");
    }
    let out = run(cmd.arg("-f").arg(&script).arg(img));
    let err = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = err.lines().filter(|l| !l.starts_with("debugfs ")).collect();
    assert!(complaints.is_empty(), "debugfs {commands:?}: {err}");
    // Drop the echo of each command ("debugfs: CMD").
    let mut stdout = Vec::new();
    for line in out.stdout.split_inclusive(|&b| b == b'\n') {
        if !line.starts_with(b"debugfs: ") {
            stdout.extend_from_slice(line);
        }
    }
    stdout
}

fn field<'t>(text: &'t str, label: &str) -> &'t str {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {text}"))
        + label.len();
    text[at..].split_whitespace().next().unwrap()
}

/// mke2fs an image whose `/d` holds 16 regular files, a directory and a symlink.
fn make_image(signed_chars: bool) -> Image {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("d/sub")).unwrap();
    for i in 0..REGULAR {
        std::fs::write(src.join(format!("d/r{i}")), b"").unwrap();
    }
    std::os::unix::fs::symlink("r0", src.join("d/lnk")).unwrap();
    let img = dir.path().join("img");
    run(Command::new(e2fs_tool("mke2fs"))
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-b",
            "4096",
            "-I",
            "256",
            "-O",
            "^64bit,metadata_csum",
        ])
        .args(["-U", &seed_uuid_text(seed_from_uuid(&UUID))])
        .args([
            "-E",
            &format!("hash_seed={}", seed_uuid_text(seed_from_uuid(&HASH_SEED))),
        ])
        .arg("-d")
        .arg(&src)
        .arg(&img)
        .arg("128M"));
    if !signed_chars {
        // s_flags: EXT2_FLAGS_UNSIGNED_HASH (0x2) instead of _SIGNED_HASH (0x1).
        debugfs(&img, true, &["ssv flags 2".into()]);
    }
    let header = run(Command::new(e2fs_tool("dumpe2fs")).arg("-h").arg(&img));
    let header = String::from_utf8_lossy(&header.stdout).into_owned();
    assert_eq!(
        field(&header, "Directory Hash Seed:"),
        seed_uuid_text(seed_from_uuid(&HASH_SEED))
    );
    let want_flag = if signed_chars {
        "signed_directory_hash"
    } else {
        "unsigned_directory_hash"
    };
    assert_eq!(field(&header, "Filesystem flags:"), want_flag);

    let stat = String::from_utf8_lossy(&debugfs(&img, false, &["stat d".into()])).into_owned();
    let listing = String::from_utf8_lossy(&debugfs(&img, false, &["ls -p d".into()])).into_owned();
    let ino_of = |name: &str| -> u32 {
        listing
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split('/').collect();
                (f.len() > 5 && f[5] == name).then(|| f[1].parse().unwrap())
            })
            .unwrap_or_else(|| panic!("{name} not in {listing}"))
    };
    Image {
        img: img.clone(),
        hash: HashParams {
            seed: seed_from_uuid(&HASH_SEED),
            signed_chars,
        },
        d_ino: field(&stat, "Inode:").parse().unwrap(),
        d_gen: field(&stat, "Generation:").parse().unwrap(),
        regular: (0..REGULAR).map(|i| ino_of(&format!("r{i}"))).collect(),
        sub: ino_of("sub"),
        lnk: ino_of("lnk"),
        _dir: dir,
    }
}

/// Replaces `/d`'s blocks with ours: grow it to our block count with `expand_dir`, write
/// our bytes over its blocks, set its flags and its files' link counts.
fn install(image: &Image, entries: &[DirEntryIn], built: &DirBlocks) {
    let img = &image.img;
    let grow: Vec<String> = (1..built.blocks.len())
        .map(|_| "expand_dir d".to_string())
        .collect();
    if !grow.is_empty() {
        debugfs(img, true, &grow);
    }
    let listed = String::from_utf8_lossy(&debugfs(img, false, &["blocks d".into()])).into_owned();
    let phys: Vec<u64> = listed
        .split_whitespace()
        .map(|b| b.parse().unwrap())
        .collect();
    assert_eq!(phys.len(), built.blocks.len(), "expand_dir gave {listed}");
    let mut file = std::fs::OpenOptions::new().write(true).open(img).unwrap();
    for (block, &p) in built.blocks.iter().zip(&phys) {
        file.seek(SeekFrom::Start(p * 4096)).unwrap();
        file.write_all(&block[..]).unwrap();
    }
    drop(file);
    // EXT4_EXTENTS_FL, plus EXT4_INDEX_FL for an htree.
    let flags = 0x80000 | if built.indexed { 0x1000 } else { 0 };
    let mut cmds = vec![format!("sif d flags {flags:#x}")];
    for &ino in &image.regular {
        let links = entries.iter().filter(|e| e.inode == ino).count();
        cmds.push(format!("sif <{ino}> links_count {links}"));
    }
    debugfs(img, true, &cmds);
}

fn e2fsck(img: &Path, args: &[&str]) -> std::process::Output {
    Command::new(e2fs_tool("e2fsck"))
        .args(args)
        .arg(img)
        .output()
        .unwrap()
}

fn assert_clean(img: &Path) {
    let out = e2fsck(img, &["-fn"]);
    assert!(
        out.status.success(),
        "e2fsck -fn found problems ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An entry as htree_dump prints it: (inode, major hash, minor hash, name).
type DumpEntry = (u32, u32, u32, Vec<u8>);
/// (logical block, index hash, entries).
type DumpLeaf = (u32, u32, Vec<DumpEntry>);

/// Parses `debugfs htree_dump`: levels, and per leaf (block, index hash, entries with
/// the hashes e2fsprogs computed).
#[derive(Debug)]
struct Dump {
    levels: u8,
    leaves: Vec<DumpLeaf>,
}

fn htree_dump(img: &Path) -> Dump {
    let out = debugfs(img, false, &["htree_dump d".into()]);
    let mut levels = None;
    let mut last_index = (0u32, 0u32);
    // htree_dump prints 0 for entry 0 of every index block; that leaf is really
    // indexed under the hash of the parent entry leading to the block.
    let mut block_hash = 0u32;
    let mut leaves: Vec<DumpLeaf> = Vec::new();
    let mut in_leaf = false;
    let hex = |s: &[u8]| u32::from_str_radix(std::str::from_utf8(s).unwrap(), 16).unwrap();
    for line in out.split(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line);
        assert!(!text.contains("EXPECTED"), "bad dx checksum: {text}");
        assert!(!text.contains("Corrupted"), "{text}");
        if let Some(rest) = text.trim().strip_prefix("Indirect levels: ") {
            levels = Some(rest.parse().unwrap());
        } else if text.starts_with("Number of entries (count)") {
            block_hash = last_index.0;
        } else if let Some(rest) = text.strip_prefix("Entry #") {
            in_leaf = false;
            let hash = &rest[rest.find("Hash 0x").unwrap() + 7..][..8];
            let hash = if rest.starts_with("0:") {
                block_hash
            } else {
                hex(hash.as_bytes())
            };
            let block = rest[rest.find("block ").unwrap() + 6..].trim();
            last_index = (hash, block.parse().unwrap());
        } else if let Some(rest) = text.strip_prefix("Reading directory block ") {
            let block: u32 = rest.split(',').next().unwrap().parse().unwrap();
            assert_eq!(block, last_index.1);
            leaves.push((block, last_index.0, Vec::new()));
            in_leaf = true;
        } else if text.starts_with("---") {
            // Not on empty lines: a leaf's listing may start with a line break.
            in_leaf = false;
        } else if in_leaf {
            let tokens: Vec<&[u8]> = line
                .split(|&b| b == b' ')
                .filter(|t| !t.is_empty())
                .collect();
            let mut t = tokens.as_slice();
            while !t.is_empty() {
                if t[0] == b"leaf" {
                    t = &t[4..]; // "leaf block checksum: 0x..."
                    continue;
                }
                let ino = std::str::from_utf8(t[0]).unwrap().parse().unwrap();
                let (h, m) = t[1][2..].split_at(8);
                leaves
                    .last_mut()
                    .unwrap()
                    .2
                    .push((ino, hex(h), hex(&m[1..]), t[3].to_vec()));
                t = &t[4..];
            }
        }
    }
    Dump {
        levels: levels.expect("htree_dump printed no root"),
        leaves,
    }
}

/// Names for the image tests: varied lengths (up to 255, several MD4 chunks), bytes
/// >= 0x80, nothing htree_dump's output could split (space, newline).
fn mixed_names(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let alphabet: Vec<u8> = (0x21u8..=0xff).filter(|&b| b != b'/').collect();
    let mut rng = Rng(seed);
    let mut names = std::collections::BTreeSet::new();
    while names.len() < n {
        let len = match rng.below(10) {
            0 => 200 + rng.below(56),
            1..=3 => 30 + rng.below(70),
            _ => 1 + rng.below(30),
        } as usize;
        let name: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
            .collect();
        if name != b"." && name != b".." {
            names.insert(name);
        }
    }
    names.into_iter().collect()
}

/// Entries for `names` as hard links to the image's regular files, plus the real
/// directory `sub` and symlink `lnk`; in byte order of names.
fn image_entries<'n>(image: &Image, names: &'n [Vec<u8>]) -> Vec<DirEntryIn<'n>> {
    let mut entries: Vec<DirEntryIn> = names
        .iter()
        .enumerate()
        .map(|(i, n)| entry(n, image.regular[i % REGULAR], 1))
        .collect();
    entries.push(entry(b"sub", image.sub, 2));
    entries.push(entry(b"lnk", image.lnk, 7));
    entries.sort_by(|a, b| a.name.cmp(b.name));
    entries
}

fn csum_seed(image: &Image) -> u32 {
    inode_seed(fs_seed(&UUID), image.d_ino, image.d_gen)
}

/// Builds, installs and checks a directory of `names`; returns our tree.
fn verify(image: &Image, names: &[Vec<u8>]) -> (Tree, DirBlocks) {
    let entries = image_entries(image, names);
    let built = build_directory(&entries, image.d_ino, 2, &image.hash, csum_seed(image)).unwrap();
    assert_eq!(built.blocks.len(), directory_block_count(&entries).unwrap());
    install(image, &entries, &built);
    assert_clean(&image.img);
    assert!(built.indexed);
    let ours = read_tree(&built.blocks, image.d_ino, 2, csum_seed(image));
    check_hash_order(&ours, &image.hash, built.blocks.len());

    // debugfs reads back our tree, hashing every name with e2fsprogs' dirhash.
    let dump = htree_dump(&image.img);
    assert_eq!(dump.levels, ours.levels);
    assert_eq!(dump.leaves.len(), ours.leaves.len());
    for ((block, hash, entries), (d_block, d_hash, d_entries)) in
        ours.leaves.iter().zip(&dump.leaves)
    {
        assert_eq!((block, hash), (d_block, d_hash));
        assert_eq!(entries.len(), d_entries.len(), "leaf {block}");
        for ((ino, name), (d_ino, d_major, d_minor, d_name)) in entries.iter().zip(d_entries) {
            assert_eq!((ino, name), (d_ino, d_name));
            let ours = half_md4_hash(name, image.hash.seed, image.hash.signed_chars);
            assert_eq!(
                ours,
                (*d_major, *d_minor),
                "hash of {:?}",
                String::from_utf8_lossy(name)
            );
        }
    }
    (ours, built)
}

/// Lets `e2fsck -fD` rebuild the index of our directory and compares its tree with ours:
/// same depth, same order of names; leaf counts close (e2fsck fills leaves greedily to
/// 80%, we cut at evenly spaced byte positions of the same 80% average).
fn compare_with_e2fsck_rebuild(image: &Image, ours: &Tree) -> (usize, usize) {
    let copy = image.img.with_extension("rehashed");
    std::fs::copy(&image.img, &copy).unwrap();
    let out = e2fsck(&copy, &["-fyD"]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "e2fsck -fyD: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_clean(&copy);
    let theirs = htree_dump(&copy);
    assert_eq!(theirs.levels, ours.levels, "index depth");
    let their_names: Vec<&Vec<u8>> = theirs
        .leaves
        .iter()
        .flat_map(|l| l.2.iter().map(|e| &e.3))
        .collect();
    let our_names: Vec<&Vec<u8>> = ours
        .leaves
        .iter()
        .flat_map(|l| l.2.iter().map(|e| &e.1))
        .collect();
    assert!(
        their_names == our_names,
        "e2fsck orders the names differently"
    );
    // Their index hashes follow the same rule as ours.
    for (k, leaf) in theirs.leaves.iter().enumerate().skip(1) {
        let first = leaf.2[0].1;
        let prev_last = theirs.leaves[k - 1].2.last().unwrap().1;
        assert_eq!(leaf.1, if prev_last == first { first | 1 } else { first });
    }
    let (a, b) = (ours.leaves.len(), theirs.leaves.len());
    assert!(
        a.abs_diff(b) <= 1 + b / 50,
        "our {a} leaves vs e2fsck's {b}"
    );
    (a, b)
}

#[test]
fn linear_directory_passes_e2fsck() {
    let image = make_image(true);
    let names = mixed_names(40, 1);
    let entries = image_entries(&image, &names);
    let built = build_directory(&entries, image.d_ino, 2, &image.hash, csum_seed(&image)).unwrap();
    assert!(!built.indexed && built.blocks.len() == 1);
    install(&image, &entries, &built);
    assert_clean(&image.img);
    let listing = debugfs(&image.img, false, &["ls -p d".into()]);
    let listed: Vec<(u32, Vec<u8>)> = listing
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"/"))
        .map(|l| {
            let f: Vec<&[u8]> = l.split(|&b| b == b'/').collect();
            (
                std::str::from_utf8(f[1]).unwrap().parse().unwrap(),
                f[5].to_vec(),
            )
        })
        .collect();
    let mut want = vec![(image.d_ino, b".".to_vec()), (2, b"..".to_vec())];
    want.extend(entries.iter().map(|e| (e.inode, e.name.to_vec())));
    assert_eq!(listed, want);
}

#[test]
fn htree_one_level_matches_e2fsprogs() {
    let image = make_image(true);
    let names = mixed_names(3000, 2);
    let (ours, _) = verify(&image, &names);
    assert_eq!(ours.levels, 0);
    assert!(ours.leaves.len() > 20);
    let (a, b) = compare_with_e2fsck_rebuild(&image, &ours);
    eprintln!("3000 mixed names: {a} leaves, e2fsck -D {b}");
}

#[test]
fn htree_unsigned_hash_matches_e2fsprogs() {
    let image = make_image(false);
    let names = mixed_names(2000, 3);
    let (ours, _) = verify(&image, &names);
    compare_with_e2fsck_rebuild(&image, &ours);
}

#[test]
fn htree_two_levels_100k_matches_e2fsprogs() {
    let image = make_image(true);
    let names = numbered_names(100_000, 11);
    let (ours, built) = verify(&image, &names);
    assert_eq!(ours.levels, 1);
    let (a, b) = compare_with_e2fsck_rebuild(&image, &ours);
    eprintln!(
        "100000 names: {} blocks, {a} leaves, e2fsck -D {b}",
        built.blocks.len()
    );
}

#[test]
fn hash_collision_across_leaves_passes_e2fsck() {
    let image = make_image(true);
    let hash = |n: &[u8]| half_md4_hash(n, image.hash.seed, true);
    // Birthday search for two names with the same major hash (about 2^16 tries).
    let mut seen = std::collections::HashMap::new();
    let (a, b) = (0u32..)
        .find_map(|i| {
            let name = format!("c{i}").into_bytes();
            let (major, _) = hash(&name);
            seen.insert(major, name.clone()).map(|other| (other, name))
        })
        .unwrap();
    let collision = hash(&a).0;
    // Fillers of one size (rec_len 16) hashing below and above the pair: the sorted
    // directory is [below.., the pair, above..] (plus `sub` and `lnk` on their side).
    let (mut below, mut above) = (Vec::new(), Vec::new());
    for j in 0u32.. {
        let name = format!("f{j:05}").into_bytes();
        match hash(&name).0.cmp(&collision) {
            std::cmp::Ordering::Less if below.len() < 3000 => below.push(name),
            std::cmp::Ordering::Greater if above.len() < 300 => above.push(name),
            _ => {}
        }
        if below.len() == 3000 && above.len() == 300 {
            break;
        }
    }
    // Pick counts that put a leaf cut between the pair: a cut falls between byte
    // positions s and s' when s * L / total and s' * L / total differ.
    let side = |n: &[u8]| usize::from(hash(n).0 < collision) * rec_len(n.len());
    let fixed_below = side(b"sub") + side(b"lnk");
    let fixed_total = rec_len(3) * 2 + rec_len(a.len()) + rec_len(b.len());
    let pair_first = if hash(&a).1 < hash(&b).1 { &a } else { &b };
    let (n_below, n_above) = (1..3000)
        .flat_map(|lo| (1..300).map(move |hi| (lo, hi)))
        .find(|&(lo, hi)| {
            let total = fixed_total + 16 * (lo + hi);
            if fits_linear(total) {
                return false;
            }
            let leaves = HtreeShape::for_entries_len(total).unwrap().leaves;
            let s_first = fixed_below + 16 * lo;
            let s_second = s_first + rec_len(pair_first.len());
            s_first * leaves / total != s_second * leaves / total
        })
        .expect("no filler counts put the collision across a leaf cut");
    let mut names: Vec<Vec<u8>> = below[..n_below].to_vec();
    names.extend_from_slice(&above[..n_above]);
    names.push(a.clone());
    names.push(b.clone());
    names.sort();

    let (ours, built) = verify(&image, &names);
    let split = ours
        .leaves
        .iter()
        .position(|l| l.1 & 1 == 1)
        .expect("continuation");
    assert_eq!(ours.leaves[split].1, collision | 1);
    assert_eq!(ours.leaves[split - 1].2.last().unwrap().1, *pair_first);
    assert_eq!(ours.leaves.len() + 1, built.blocks.len());
    // htree_dump marks it "(**)"; e2fsck accepted it in verify().
}

#[test]
fn lost_found_matches_mke2fs() {
    let image = make_image(true);
    let stat = String::from_utf8_lossy(&debugfs(&image.img, false, &["stat lost+found".into()]))
        .into_owned();
    let ino: u32 = field(&stat, "Inode:").parse().unwrap();
    let generation: u32 = field(&stat, "Generation:").parse().unwrap();
    let listed =
        String::from_utf8_lossy(&debugfs(&image.img, false, &["blocks lost+found".into()]))
            .into_owned();
    let phys: Vec<u64> = listed
        .split_whitespace()
        .map(|b| b.parse().unwrap())
        .collect();
    let disk = std::fs::read(&image.img).unwrap();
    let ours = empty_directory_blocks(
        ino,
        2,
        phys.len(),
        inode_seed(fs_seed(&UUID), ino, generation),
    );
    assert_eq!(ours.len(), 4);
    for (k, (block, &p)) in ours.iter().zip(&phys).enumerate() {
        let theirs = &disk[p as usize * 4096..][..4096];
        assert!(
            &block[..] == theirs,
            "lost+found block {k} differs from mke2fs'"
        );
    }
}
