//! The archives of `create_bundle`, read back by tools that know nothing of d2l: GNU tar lists
//! and extracts them (the Compute Engine image's `disk.raw` sparse, its map long enough to
//! need extension blocks), `sha256sum` recomputes the OVA's manifest, Python's tarfile reads
//! the headers, and qemu-img finds in each the same disk as the raw image. The disk is
//! synthetic: 40 runs of data between holes, written in any order, some past the last MiB.

mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::{new_file, pattern};
use d2l_disk_format::{create_bundle, Bundle, BundleOptions, VirtualDisk};
use d2l_testkit::{qemu_img, run_ok_in};

/// 40 runs of data between holes in a disk of 23 MiB + 4 KiB (not a whole MiB); writes
/// them through `disk` (backwards, to be out of order) and into the raw reference `raw`.
fn write_disk(disk: &dyn VirtualDisk, raw: &File) -> u64 {
    let size = (23 << 20) + 4096;
    raw.set_len(size).unwrap();
    for i in (0..40u64).rev() {
        let at = i * 600_000 + (i % 3) * 512;
        let bytes = pattern(i, 20_000 + (i as usize % 7) * 3000);
        disk.write_at(&bytes, at).unwrap();
        raw.write_all_at(&bytes, at).unwrap();
    }
    disk.write_at(b"end", size - 3).unwrap();
    raw.write_all_at(b"end", size - 3).unwrap();
    size
}

/// Writes `bundle` to `dir/name` from the synthetic disk; returns the raw reference's path.
fn build(dir: &Path, name: &str, edit: &dyn Fn(&mut BundleOptions)) -> std::path::PathBuf {
    let bundle = Bundle::from_path(Path::new(name)).unwrap();
    let mut options = BundleOptions::new(bundle, name);
    options.disk.timestamp = 1_700_000_000;
    options.disk.identity = d2l_disk_format::identity(name.as_bytes());
    options.disk.scratch_dir = Some(dir.to_path_buf());
    edit(&mut options);
    let writer = create_bundle(new_file(&dir.join(name)), &options).unwrap();
    let raw_path = dir.join(format!("{name}.raw"));
    let raw = File::create(&raw_path).unwrap();
    write_disk(writer.as_disk(), &raw);
    writer.finish().unwrap();
    raw_path
}

/// `tar -tv` of an archive: (mode, owner, size, name) of each member, in order.
fn listing(dir: &Path, archive: &str, extra: &[&str]) -> Vec<(String, String, u64, String)> {
    let mut args = vec!["--numeric-owner", "-tv"];
    args.extend_from_slice(extra);
    args.extend(["-f", archive]);
    run_ok_in(dir, "tar", &args)
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (
                f[0].to_owned(),
                f[1].to_owned(),
                f[2].parse().unwrap(),
                f[5].to_owned(),
            )
        })
        .collect()
}

#[test]
fn ova_members_manifest_and_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let raw = build(dir, "my vm.ova", &|o| o.hardware.cpus = 3);
    let list = listing(dir, "my vm.ova", &[]);
    let names: Vec<&str> = list.iter().map(|m| m.3.as_str()).collect();
    assert_eq!(names, ["my_vm.ovf", "my_vm.mf", "my_vm-disk1.vmdk"]);
    for (mode, owner, _, name) in &list {
        assert_eq!(
            (mode.as_str(), owner.as_str()),
            ("-rw-r--r--", "0/0"),
            "{name}"
        );
    }
    run_ok_in(dir, "tar", &["-xf", "my vm.ova"]);
    // The manifest's digests are the files'.
    let check = run_ok_in(dir, "sha256sum", &["-c", "--strict", "my_vm.mf"]);
    assert_eq!(check.lines().count(), 2, "{check}");
    let mf = std::fs::read_to_string(dir.join("my_vm.mf")).unwrap();
    assert!(mf.starts_with("SHA256(my_vm.ovf)= "), "{mf}");
    let ovf = std::fs::read_to_string(dir.join("my_vm.ovf")).unwrap();
    let vmdk_len = std::fs::metadata(dir.join("my_vm-disk1.vmdk"))
        .unwrap()
        .len();
    assert!(ovf.contains(&format!("ovf:size=\"{vmdk_len}\"")), "{ovf}");
    assert!(ovf.contains("<rasd:VirtualQuantity>3</rasd:VirtualQuantity>"));
    // The disk: the synthetic one, rounded up to whole MiB.
    let vmdk = dir.join("my_vm-disk1.vmdk");
    // Its descriptor names it and the controller the OVF attaches it to.
    let head = std::fs::read(&vmdk).unwrap()[512..2048].to_vec();
    let head = String::from_utf8_lossy(&head);
    assert!(head.contains("createType=\"streamOptimized\""), "{head}");
    assert!(
        head.contains("RW 49152 SPARSE \"my_vm-disk1.vmdk\""),
        "{head}"
    );
    assert!(head.contains("ddb.adapterType = \"lsilogic\""), "{head}");
    qemu_img::assert_check(&vmdk, "vmdk");
    assert_eq!(qemu_img::info(&vmdk, Some("vmdk")).virtual_size, 24 << 20);
    qemu_img::assert_identical(&raw, "raw", &vmdk, "vmdk");
    assert!(ovf.contains("ovf:capacity=\"25165824\""));
}

#[test]
fn gce_image_is_a_sparse_gnu_tar_of_whole_gib() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let raw = build(dir, "image.tar.gz", &|_| {});
    let list = listing(dir, "image.tar.gz", &["-z"]);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].3, "disk.raw");
    assert_eq!(list[0].2, 1 << 30, "the real size, whole GiB");
    // Python's tarfile, another reader, sees a sparse member with many runs.
    let py = run_ok_in(
        dir,
        "python3",
        &[
            "-c",
            "import tarfile; t = tarfile.open('image.tar.gz'); m = t.getmembers(); \
             print(len(m), m[0].name, m[0].issparse(), len(m[0].sparse), m[0].size)",
        ],
    );
    let f: Vec<&str> = py.split_whitespace().collect();
    assert_eq!(&f[..3], ["1", "disk.raw", "True"], "{py}");
    assert!(
        f[3].parse::<usize>().unwrap() > 25,
        "extension blocks needed: {py}"
    );
    assert_eq!(f[4], (1u64 << 30).to_string());
    run_ok_in(dir, "tar", &["-xSzf", "image.tar.gz"]);
    let disk = dir.join("disk.raw");
    let meta = std::fs::metadata(&disk).unwrap();
    assert_eq!(meta.len(), 1 << 30);
    use std::os::unix::fs::MetadataExt;
    assert!(
        meta.blocks() * 512 < 8 << 20,
        "extracted sparse: {} bytes",
        meta.blocks() * 512
    );
    qemu_img::assert_identical(&raw, "raw", &disk, "raw");
}

#[test]
fn vagrant_box_holds_metadata_vagrantfile_and_qcow2() {
    for compress in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let raw = build(dir, "debian.box", &|o| o.disk.compress = compress);
        let list = listing(dir, "debian.box", &[]);
        let names: Vec<&str> = list.iter().map(|m| m.3.as_str()).collect();
        assert_eq!(names, ["metadata.json", "Vagrantfile", "box.img"]);
        run_ok_in(dir, "tar", &["-xf", "debian.box"]);
        let metadata = std::fs::read_to_string(dir.join("metadata.json")).unwrap();
        assert_eq!(
            metadata,
            "{\"provider\":\"libvirt\",\"format\":\"qcow2\",\"virtual_size\":1}\n"
        );
        let img = dir.join("box.img");
        qemu_img::assert_check(&img, "qcow2");
        assert_eq!(qemu_img::info(&img, Some("qcow2")).virtual_size, 24 << 20);
        qemu_img::assert_identical(&raw, "raw", &img, "qcow2");
    }
}

#[test]
fn the_same_disk_gives_the_same_archive() {
    for name in ["a.ova", "a.tar.gz", "a.box"] {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        build(one.path(), name, &|_| {});
        build(two.path(), name, &|_| {});
        assert_eq!(
            std::fs::read(one.path().join(name)).unwrap(),
            std::fs::read(two.path().join(name)).unwrap(),
            "{name}"
        );
    }
}
