//! Determinism and identity.

use crate::prelude::*;

/// Whether two files have the same bytes.
pub(crate) fn same_bytes(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (File::open(a).unwrap(), File::open(b).unwrap());
    if fa.metadata().unwrap().len() != fb.metadata().unwrap().len() {
        return false;
    }
    let (mut ba, mut bb) = (vec![0u8; 4 << 20], vec![0u8; 4 << 20]);
    loop {
        let n = fa.read(&mut ba).unwrap();
        if n == 0 {
            return true;
        }
        fb.read_exact(&mut bb[..n]).unwrap();
        if ba[..n] != bb[..n] {
            return false;
        }
    }
}

#[test]
fn two_builds_of_the_debian_fixture_are_identical() {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let a = build_ok(&debian.oci, &tmp.path().join("a.ext4"), &[]);
    let b = build_ok(&debian.oci, &tmp.path().join("b.ext4"), &[]);
    assert!(same_bytes(&a, &b), "two builds of the same source differ");
}

#[test]
fn builds_do_not_depend_on_layer_compression() {
    let tmp = tempfile::tempdir().unwrap();
    let mut images = Vec::new();
    for (i, compress) in [
        Compress::Gzip,
        Compress::Zstd,
        Compress::None,
        Compress::Gzip,
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("run{i}"));
        let source = crafted(&dir, &every_type_layers(), compress);
        images.push(build_ok(&source, &dir.join("rootfs.ext4"), &[]));
    }
    for other in &images[1..] {
        assert!(same_bytes(&images[0], other), "{} differs", other.display());
    }
}

#[test]
fn fs_uuid_sets_the_filesystem_uuid() {
    const UUID: &str = "01234567-89ab-cdef-0123-456789abcdef";
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(tmp.path(), &small_layers(), Compress::Gzip);
    let image = build_ok(
        &source,
        &tmp.path().join("rootfs.ext4"),
        &["--fs-uuid", UUID],
    );
    assert_eq!(debugfs::superblock(&image)["Filesystem UUID"], UUID);
    // Metadata checksums are seeded by the UUID: they must match the one given.
    debugfs::assert_fsck_clean(&image);
}

#[test]
fn default_uuids_differ_between_images() {
    let tmp = tempfile::tempdir().unwrap();
    let one = crafted(
        &tmp.path().join("one"),
        &every_type_layers(),
        Compress::Gzip,
    );
    let mut layer = LayerTar::new();
    layer.file("only", b"another image");
    let two = crafted(&tmp.path().join("two"), &[layer.finish()], Compress::Gzip);
    let uuid = |source: &str, name: &str| {
        let image = build_ok(source, &tmp.path().join(name), &[]);
        debugfs::superblock(&image)["Filesystem UUID"].clone()
    };
    let (a, a_again, b) = (uuid(&one, "a"), uuid(&one, "a2"), uuid(&two, "b"));
    assert_eq!(a, a_again, "the default UUID is stable");
    assert_ne!(a, b, "two images got the same default UUID");
    // RFC 4122 version 4 form, as mke2fs makes.
    for u in [&a, &b] {
        assert_eq!(&u[14..15], "4", "{u}");
        assert!("89ab".contains(&u[19..20]), "{u}");
    }
}

/// The seconds since the epoch now.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `d2l build --table none` with `SOURCE_DATE_EPOCH` set as given (unset with `None`).
fn build_dated(source: &str, out: &Path, epoch: Option<&str>) -> PathBuf {
    let mut cmd = build_command(source, out, &[]);
    if let Some(epoch) = epoch {
        cmd.env("SOURCE_DATE_EPOCH", epoch);
    }
    let run = cmd.output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    out.to_path_buf()
}

/// Two builds on different wall clocks give the same bytes. Not by accident: the second starts
/// in a later second than the first ended (ext4 times are seconds), the host dated the two
/// outputs differently, and the bytes do hold a time (another SOURCE_DATE_EPOCH changes them),
/// so a build that wrote the wall clock anywhere would differ. The layer leaves directories
/// implicit, which take their time from the environment rather than the tar.
#[test]
fn builds_on_different_wall_clocks_are_identical() {
    let mut layer = LayerTar::new();
    layer
        .mtime(1_600_000_000)
        .file("implicit/deeper/file", b"no parent entries")
        .dir("etc")
        .file("etc/hostname", b"clock\n");
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(tmp.path(), &[layer.finish()], Compress::Gzip);

    let a = build_dated(&source, &tmp.path().join("a.ext4"), None);
    let first_ended = unix_now();
    while unix_now() <= first_ended {
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let second_started = unix_now();
    let b = build_dated(&source, &tmp.path().join("b.ext4"), None);
    assert!(
        second_started > first_ended,
        "the builds ran in the same second"
    );
    let (ma, mb) = (
        std::fs::metadata(&a).unwrap(),
        std::fs::metadata(&b).unwrap(),
    );
    assert!(
        mb.mtime() > ma.mtime() && mb.ctime() > ma.ctime(),
        "the host's clock did not move between the builds: {} {}",
        ma.mtime(),
        mb.mtime()
    );
    assert!(same_bytes(&a, &b), "builds a second apart differ");

    // The control: a time does reach the bytes.
    let dated = build_dated(&source, &tmp.path().join("c.ext4"), Some("12345"));
    assert!(
        !same_bytes(&a, &dated),
        "SOURCE_DATE_EPOCH changed nothing: the comparison above could not see a time"
    );
}

#[test]
fn two_hybrid_disks_of_the_debian_fixture_are_identical() {
    // The ESP's volume id, its FAT timestamps, the GPT and partition GUIDs (the ESP's too)
    // and GRUB's image are derived or fixed, never random or the wall clock's.
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let disk = |name: &str| {
        let out = tmp.path().join(name);
        let run = d2l(&[
            "build",
            &debian.oci,
            "-o",
            out.to_str().unwrap(),
            "--table",
            "gpt",
            "--firmware",
            "hybrid",
        ]);
        assert!(run.status.success(), "{}", stderr(&run));
        out
    };
    let (a, b) = (disk("a.img"), disk("b.img"));
    assert!(
        same_bytes(&a, &b),
        "two hybrid disks of the same image differ"
    );
}
