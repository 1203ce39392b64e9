//! Bootable disks: what a build refuses without a kernel or syslinux, and --boot none.

use crate::prelude::*;

#[test]
fn bootable_builds_fail_cleanly_without_a_kernel_or_syslinux() {
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(&tmp.path().join("src"), &small_layers(), Compress::Gzip);
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let out = work.join("disk.img");
    let o = out.to_str().unwrap();
    // The crafted image has no kernel and no os-release: no recipe can install one, and the
    // error says so, what to do instead, or to use --boot none.
    for args in [
        vec!["build", &source, "-o", o],
        vec!["build", &source, "-o", o, "--table", "mbr"],
        vec!["build", &source, "-o", o, "--table", "gpt"],
    ] {
        let run = d2l(&args);
        assert_clean_failure(
            &run,
            &work,
            &[],
            &["no /etc/os-release", "-f", "--boot none"],
        );
    }
    // Without recipes, the error says what to add.
    let run = d2l(&["build", &source, "-o", o, "--install-kernel", "never"]);
    assert_clean_failure(&run, &work, &[], &["linux-image-amd64", "--boot none"]);
    // No syslinux (an empty --syslinux-dir): a clear error before any work.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let run = d2l(&[
        "build",
        &source,
        "-o",
        o,
        "--syslinux-dir",
        empty.to_str().unwrap(),
    ]);
    assert_clean_failure(&run, &work, &[], &["syslinux", empty.to_str().unwrap()]);
    // Nor to standard output.
    let run = build(&source, Path::new("-"), &[]);
    assert_clean_failure(&run, &work, &[], &["standard output"]);
    assert!(run.stdout.is_empty());
    assert_eq!(list_dir(&work), Vec::<String>::new());
}

#[test]
fn boot_none_still_writes_a_partitioned_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(&tmp.path().join("src"), &small_layers(), Compress::Gzip);
    let out = tmp.path().join("disk.img");
    let run = d2l(&[
        "build",
        &source,
        "-o",
        out.to_str().unwrap(),
        "--boot",
        "none",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let table = Command::new("sfdisk")
        .arg("--json")
        .arg(&out)
        .output()
        .expect("sfdisk (fdisk)");
    let json: serde_json::Value = serde_json::from_slice(&table.stdout).unwrap();
    let part = &json["partitiontable"]["partitions"][0];
    assert_eq!(part["start"], 2048);
    assert_eq!(json["partitiontable"]["label"], "dos");
    // The partition holds a clean ext4 filesystem, prepared as a machine's.
    let bytes = std::fs::read(&out).unwrap();
    let fs = tmp.path().join("part.ext4");
    std::fs::write(&fs, &bytes[1 << 20..]).unwrap();
    let fsck = Command::new("e2fsck").arg("-fn").arg(&fs).output().unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let cat = Command::new("debugfs")
        .args(["-R", "cat /etc/fstab"])
        .arg(&fs)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&cat.stdout).contains(" / ext4 "));
}
