//! Round trips through outside judges: fsck.fat checks what `write_fat` wrote, mtools reads
//! it back, and `FatVolume` reads what mkfs.fat and mcopy wrote. Needs packages dosfstools
//! and mtools; a missing tool fails the test with the package to install.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use d2l_fat::{write_fat, FatKind, FatOptions, FatSummary, FatTree, FatVolume};

const MIB: u64 = 1 << 20;

/// Runs a tool, failing with the package to install when it is missing; returns stdout
/// and stderr together.
fn run(tool: &str, package: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        // mtools refuses images whose geometry it finds odd; the judge here is fsck.fat.
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{tool}` ({e}): install package `{package}` (apt-get install {package})")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "`{tool} {}` failed: {}\n{text}",
        args.join(" "),
        out.status
    );
    text
}

/// fsck.fat's path: /usr/sbin is not on every user's PATH.
fn fsck_fat() -> &'static str {
    ["/usr/sbin/fsck.fat", "/sbin/fsck.fat"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("fsck.fat")
}

fn mkfs_fat() -> &'static str {
    ["/usr/sbin/mkfs.fat", "/sbin/mkfs.fat"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("mkfs.fat")
}

/// Runs `fsck.fat -n -v` and fails on any line that is not one of its reports of what it
/// found (sizes, offsets, "Checking ..."): a warning or a repair it would make.
fn assert_fsck_clean(image: &Path) -> String {
    let out = run(
        fsck_fat(),
        "dosfstools",
        &["-n", "-v", image.to_str().unwrap()],
    );
    let informational = [
        "fsck.fat ",
        "Checking ",
        "Boot sector contents:",
        "System ID ",
        "Media byte ",
        "First FAT starts ",
        "Root directory start",
        "Data area starts ",
    ];
    let image_line = format!("{}: ", image.display());
    for line in out.lines() {
        let line = line.trim_start();
        let ok = line.is_empty()
            || line.starts_with(|c: char| c.is_ascii_digit())
            || line.starts_with(&image_line)
            || informational.iter().any(|p| line.starts_with(p));
        assert!(ok, "fsck.fat reports {line:?}:\n{out}");
    }
    assert!(out.contains("Checking free cluster summary") || !out.contains("32 bit entries"));
    out
}

/// Deterministic bytes that differ from one offset to the next (xorshift).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The files of the sample ESP, by path (directories implied).
fn sample_files(cluster_bytes: usize) -> Vec<(String, Vec<u8>)> {
    vec![
        ("EFI/BOOT/BOOTX64.EFI".into(), pattern(150_000, 1)),
        (
            "EFI/BOOT/grub.cfg".into(),
            b"set timeout=0\nlinux /vmlinuz\n".to_vec(),
        ),
        (
            "EFI/BOOT/A long file name, with spaces+more.conf".into(),
            pattern(700, 2),
        ),
        (
            "EFI/Linux/nested/deeper/initrd.img".into(),
            pattern(3 * MIB as usize + 17, 3),
        ),
        ("EFI/Linux/empty".into(), Vec::new()),
        ("EFI/Linux/ONECLUS.BIN".into(), pattern(cluster_bytes, 4)),
        ("loader/loader.conf".into(), b"default arch\n".to_vec()),
    ]
}

fn sample_tree(cluster_bytes: usize) -> FatTree {
    let mut tree = FatTree::new();
    tree.add_dir("EFI/Linux/nested/empty-dir").unwrap();
    for (path, data) in sample_files(cluster_bytes) {
        tree.add_file(&path, data).unwrap();
    }
    tree
}

fn options() -> FatOptions {
    FatOptions {
        volume_id: 0x1234_ABCD,
        label: "ESP".into(),
        modified: 1_700_000_000,
    }
}

/// The cluster size `write_fat` picks for `size` (from a first write of an empty tree).
fn cluster_bytes_for(size: u64) -> usize {
    let disk = tempfile::tempfile().unwrap();
    write_fat(&disk, 0, size, &FatTree::new(), &options())
        .unwrap()
        .cluster_bytes as usize
}

/// Writes the sample tree as a volume of `size` bytes at `offset` of a new image.
fn write_sample(size: u64, offset: u64) -> (tempfile::NamedTempFile, FatSummary) {
    let image = tempfile::NamedTempFile::new().unwrap();
    let tree = sample_tree(cluster_bytes_for(size));
    let summary = write_fat(image.as_file(), offset, size, &tree, &options()).unwrap();
    (image, summary)
}

/// fsck.fat's "N files, U/C clusters" agrees with the summary.
fn assert_fsck_counts(out: &str, summary: &FatSummary) {
    let counts = format!("{}/{} clusters", summary.used_clusters, summary.clusters);
    assert!(out.contains(&counts), "expected {counts}:\n{out}");
    let entries = format!("{} bytes per cluster", summary.cluster_bytes);
    assert!(out.contains(&entries), "expected {entries}:\n{out}");
}

#[test]
fn fsck_finds_fat16_and_fat32_volumes_clean() {
    for (size, kind, cluster_bytes) in [
        (d2l_fat::MIN_VOLUME_BYTES + 5 * MIB, FatKind::Fat16, 1024),
        (16 * MIB, FatKind::Fat16, 2048),
        (32 * MIB, FatKind::Fat16, 2048),
        (64 * MIB, FatKind::Fat32, 512),
        (260 * MIB, FatKind::Fat32, 512),
        (300 * MIB, FatKind::Fat32, 4096),
    ] {
        let (image, summary) = write_sample(size, 0);
        assert_eq!(
            (summary.kind, summary.cluster_bytes),
            (kind, cluster_bytes),
            "{size}"
        );
        let out = assert_fsck_clean(image.path());
        assert_fsck_counts(&out, &summary);
        let bits = match kind {
            FatKind::Fat16 => "16 bit entries",
            FatKind::Fat32 => "32 bit entries",
        };
        assert!(out.contains(bits), "{out}");
        // Only metadata and the tree were written: the free data area is a hole.
        let allocated = image.as_file().metadata().unwrap().blocks() * 512;
        assert!(allocated < 8 * MIB, "{size}: {allocated} bytes allocated");
    }
}

#[test]
fn the_fsck_judge_has_teeth() {
    // A wrong free count in FSInfo is only a message to fsck.fat (exit status 0): the
    // judge must still fail on it.
    let (image, _) = write_sample(64 * MIB, 0);
    image
        .as_file()
        .write_all_at(&1u32.to_le_bytes(), 512 + 488)
        .unwrap();
    let judged = std::panic::catch_unwind(|| assert_fsck_clean(image.path()));
    assert!(judged.is_err(), "a wrong FSInfo free count passed");
}

#[test]
fn fsck_finds_the_smallest_volume_clean_and_its_files_fill_it() {
    let size = d2l_fat::MIN_VOLUME_BYTES;
    let image = tempfile::NamedTempFile::new().unwrap();
    let mut tree = FatTree::new();
    // 4085 clusters of 512 bytes: a directory, a file of 4000 clusters.
    tree.add_file("EFI/BOOT/BOOTX64.EFI", pattern(4000 * 512 - 3, 9))
        .unwrap();
    let summary = write_fat(image.as_file(), 0, size, &tree, &options()).unwrap();
    assert_eq!((summary.kind, summary.clusters), (FatKind::Fat16, 4085));
    let out = assert_fsck_clean(image.path());
    assert_fsck_counts(&out, &summary);
}

#[test]
fn a_volume_inside_a_bigger_disk_records_its_offset() {
    let offset = MIB;
    let size = 64 * MIB;
    let (image, summary) = write_sample(size, offset);
    // A partition after it: the volume must not reach past its size.
    image.as_file().set_len(offset + size + MIB).unwrap();
    image
        .as_file()
        .write_all_at(&[0xEE; 512], offset + size)
        .unwrap();
    let region = tempfile::NamedTempFile::new().unwrap();
    run(
        "dd",
        "coreutils",
        &[
            &format!("if={}", image.path().display()),
            &format!("of={}", region.path().display()),
            "bs=1M",
            &format!("skip={}", offset / MIB),
            &format!("count={}", size / MIB),
            "status=none",
        ],
    );
    let out = assert_fsck_clean(region.path());
    assert_fsck_counts(&out, &summary);
    assert!(out.contains("2048 hidden sectors"), "{out}");
    // mtools reads it in place, at the offset.
    let at = format!("{}@@{offset}", image.path().display());
    let listing = run("mdir", "mtools", &["-b", "-i", &at, "::/EFI/BOOT"]);
    assert!(listing.contains("::/EFI/BOOT/grub.cfg"), "{listing}");
    let copied = tempfile::NamedTempFile::new().unwrap();
    let dest = copied.path().to_str().unwrap();
    run(
        "mcopy",
        "mtools",
        &["-n", "-o", "-i", &at, "::/EFI/BOOT/grub.cfg", dest],
    );
    assert_eq!(
        std::fs::read(dest).unwrap(),
        b"set timeout=0\nlinux /vmlinuz\n"
    );
    let volume = FatVolume::open(image.as_file(), offset).unwrap();
    assert_eq!(volume.volume_bytes(), size);
}

/// Every file and directory of the sample, read back by mtools, byte for byte.
fn assert_mtools_reads_sample(image: &Path, cluster_bytes: usize) {
    let img = image.to_str().unwrap();
    // Recursive, bare: one path per line, long names, directories with a trailing slash.
    let listing = run("mdir", "mtools", &["-/", "-b", "-i", img, "::/"]);
    let mut listed: Vec<&str> = listing.lines().map(str::trim_end).collect();
    listed.sort_unstable();
    let mut expected = vec![
        "::/EFI/",
        "::/EFI/BOOT/",
        "::/EFI/Linux/",
        "::/EFI/Linux/nested/",
        "::/EFI/Linux/nested/deeper/",
        "::/EFI/Linux/nested/empty-dir/",
        "::/loader/",
    ];
    let files = sample_files(cluster_bytes);
    let file_paths: Vec<String> = files.iter().map(|(p, _)| format!("::/{p}")).collect();
    expected.extend(file_paths.iter().map(String::as_str));
    expected.sort_unstable();
    assert_eq!(listed, expected, "{listing}");
    let out_dir = tempfile::tempdir().unwrap();
    for (i, (path, data)) in files.iter().enumerate() {
        let dest = out_dir.path().join(i.to_string());
        run(
            "mcopy",
            "mtools",
            &[
                "-n",
                "-i",
                img,
                &format!("::/{path}"),
                dest.to_str().unwrap(),
            ],
        );
        assert!(std::fs::read(&dest).unwrap() == *data, "{path} differs");
    }
    // The header names the label and the serial number.
    let header = run("mdir", "mtools", &["-i", img, "::/EFI/BOOT"]);
    assert!(header.contains("Volume in drive : is ESP"), "{header}");
    assert!(
        header.contains("Volume Serial Number is 1234-ABCD"),
        "{header}"
    );
    // Short names as generated: lower-case 8.3 names as such, long ones with a tail.
    assert!(
        header.contains("GRUB     CFG") || header.contains("grub     cfg"),
        "{header}"
    );
    assert!(header.contains("ALONGF~1 CON"), "{header}");
}

#[test]
fn mtools_reads_back_every_file_fat16() {
    let (image, summary) = write_sample(32 * MIB, 0);
    assert_eq!(summary.kind, FatKind::Fat16);
    assert_mtools_reads_sample(image.path(), summary.cluster_bytes as usize);
}

#[test]
fn mtools_reads_back_every_file_fat32() {
    let (image, summary) = write_sample(64 * MIB, 0);
    assert_eq!(summary.kind, FatKind::Fat32);
    assert_mtools_reads_sample(image.path(), summary.cluster_bytes as usize);
}

#[test]
fn metadata_is_written_whole_over_old_bytes() {
    // A disk full of old bytes (0xA5) must give the same volume as a fresh one: every
    // region fsck and readers look at is written.
    for size in [16 * MIB, 64 * MIB] {
        let image = tempfile::NamedTempFile::new().unwrap();
        let garbage = vec![0xA5u8; size as usize];
        image.as_file().write_all_at(&garbage, 0).unwrap();
        let summary = write_fat(
            image.as_file(),
            0,
            size,
            &sample_tree(cluster_bytes_for(size)),
            &options(),
        )
        .unwrap();
        let out = assert_fsck_clean(image.path());
        assert_fsck_counts(&out, &summary);
        assert_mtools_reads_sample(image.path(), summary.cluster_bytes as usize);
    }
}

/// Makes a reference volume with mkfs.fat and fills it with mmd and mcopy.
fn reference_volume(
    fat_bits: &str,
    size: u64,
) -> (tempfile::NamedTempFile, Vec<(String, Vec<u8>)>) {
    let image = tempfile::NamedTempFile::new().unwrap();
    image.as_file().set_len(size).unwrap();
    let img = image.path().to_str().unwrap();
    run(
        mkfs_fat(),
        "dosfstools",
        &["-F", fat_bits, "-n", "REFVOL", "-i", "0BADCAFE", img],
    );
    run(
        "mmd",
        "mtools",
        &[
            "-i",
            img,
            "::/EFI",
            "::/EFI/BOOT",
            "::/EFI/Some Long Directory",
        ],
    );
    let files = vec![
        ("EFI/BOOT/BOOTX64.EFI".to_string(), pattern(200_000, 5)),
        ("EFI/BOOT/grub.cfg".to_string(), b"menuentry\n".to_vec()),
        (
            "EFI/Some Long Directory/a rather long file name.txt".to_string(),
            pattern(5000, 6),
        ),
        ("EFI/Some Long Directory/empty".to_string(), Vec::new()),
    ];
    let src = tempfile::tempdir().unwrap();
    for (i, (path, data)) in files.iter().enumerate() {
        let local = src.path().join(i.to_string());
        std::fs::write(&local, data).unwrap();
        run(
            "mcopy",
            "mtools",
            &["-i", img, local.to_str().unwrap(), &format!("::/{path}")],
        );
    }
    (image, files)
}

#[test]
fn the_reader_reads_what_mkfs_and_mcopy_wrote() {
    for (bits, size, kind) in [
        ("16", 32 * MIB, FatKind::Fat16),
        ("32", 100 * MIB, FatKind::Fat32),
    ] {
        let (image, files) = reference_volume(bits, size);
        let file = File::open(image.path()).unwrap();
        let volume = FatVolume::open(&file, 0).unwrap();
        assert_eq!(volume.kind(), kind);
        assert_eq!(volume.volume_id(), 0x0BAD_CAFE);
        assert_eq!(volume.label().unwrap().as_deref(), Some("REFVOL"));
        for (path, data) in &files {
            assert!(volume.read_file(path).unwrap() == *data, "{bits}: {path}");
            // Lookups ignore case, as FAT's do.
            assert!(volume.read_file(&path.to_uppercase()).unwrap() == *data);
        }
        let names: Vec<String> = volume
            .read_dir("EFI")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["BOOT", "Some Long Directory"]);
        let boot = volume.read_dir("/EFI/BOOT/").unwrap();
        let names: Vec<&str> = boot.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["BOOTX64.EFI", "grub.cfg"]);
        assert_eq!(boot[0].size, 200_000);
        assert!(matches!(
            volume.read_file("EFI/BOOT"),
            Err(d2l_fat::Error::IsADirectory { .. })
        ));
        assert!(matches!(
            volume.read_file("EFI/nothing"),
            Err(d2l_fat::Error::NotFound { .. })
        ));
        assert!(matches!(
            volume.read_dir("EFI/BOOT/grub.cfg"),
            Err(d2l_fat::Error::NotADirectory { .. })
        ));
    }
}
