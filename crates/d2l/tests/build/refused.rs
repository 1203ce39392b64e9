//! Options refused before anything is read or written: values that would become lines of
//! extlinux.conf, /etc/fstab, /etc/hosts or /etc/hostname, a boot loader with no table, and
//! firmware the disk cannot have. Usage errors: exit code 2, one line naming the option,
//! nothing at `-o`. Once the image is open, firmware its architecture cannot boot: exit 1.

use crate::prelude::*;

/// Runs `d2l build SOURCE -o DIR/disk.img ARGS` on a source that is never opened; asserts
/// exit code 2, one stderr line naming `option` (clap's "error: ..." line), and `dir` empty.
fn assert_refused(args: &[&str], option: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("disk.img");
    let mut all = vec![
        "build",
        "oci:/nonexistent/layout",
        "-o",
        out.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let run = d2l(&all);
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(2), "{args:?}: {err}");
    let naming: Vec<&str> = err.lines().filter(|l| l.contains(option)).collect();
    assert_eq!(naming.len(), 1, "one line naming {option}: {err}");
    assert!(naming[0].starts_with("error:"), "{err}");
    assert_eq!(list_dir(tmp.path()), Vec::<String>::new(), "nothing left");
}

#[test]
fn a_newline_in_cmdline_is_refused() {
    assert_refused(&["--cmdline", "quiet\nMENU LABEL evil"], "--cmdline");
    assert_refused(&["--cmdline", "a\rb"], "--cmdline");
}

#[test]
fn control_characters_in_hostname_kernel_initrd_are_refused() {
    assert_refused(&["--hostname", "box\n127.0.0.1 evil"], "--hostname");
    assert_refused(&["--hostname", "two words"], "--hostname");
    assert_refused(
        &["--kernel", "/boot/vmlinuz\nAPPEND init=/bin/sh"],
        "--kernel",
    );
    assert_refused(&["--initrd", "/boot/initrd.img\t"], "--initrd");
}

#[test]
fn boot_extlinux_with_table_none_is_refused() {
    assert_refused(
        &["--table", "none", "--boot", "extlinux"],
        "--boot extlinux",
    );
}

/// The root password file's first line goes into /etc/shadow's hash input: control
/// characters there (an escape sequence, a tab) are refused, naming the option; exit 1 as for other
/// unreadable input, and nothing at `-o`.
#[test]
fn a_control_character_in_the_root_password_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(&tmp.path().join("src"), &small_layers(), Compress::Gzip);
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "sec\u{1b}[2Jret\n").unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let out = work.join("rootfs.ext4");
    let run = build(
        &source,
        &out,
        &["--root-password-file", pw.to_str().unwrap()],
    );
    assert_clean_failure(
        &run,
        &work,
        &[],
        &["--root-password-file", "control character"],
    );
}

#[test]
fn firmware_conflicts_are_refused() {
    assert_refused(&["--table", "none", "--firmware", "uefi"], "--firmware");
    assert_refused(&["--boot", "none", "--firmware", "hybrid"], "--firmware");
    assert_refused(&["--boot", "extlinux", "--firmware", "uefi"], "--firmware");
}

#[test]
fn an_arm64_image_boots_only_through_uefi() {
    // The arm64 fixture: the platform is known once the image is opened.
    let arm64 = format!("oci:{}:arm64", d2l_testkit::arm64_layout().display());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("disk.img");
    let build = |extra: &[&str]| {
        let mut args = vec![
            "build",
            &arm64,
            "--platform",
            "linux/arm64",
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        d2l(&args)
    };
    for firmware in ["bios", "hybrid"] {
        let run = build(&["--firmware", firmware]);
        let err = stderr(&run);
        assert_eq!(run.status.code(), Some(1), "{err}");
        assert!(err.contains("arm64 machines have no PC BIOS"), "{err}");
        assert_eq!(list_dir(tmp.path()), Vec::<String>::new(), "nothing left");
    }
    // By default a UEFI disk, with GRUB for arm64: taken from the host's packages, and this
    // x86-64 machine does not have them, or the image its kernel (and no recipe knows the
    // fixture's made-up distribution).
    let run = build(&[]);
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(
        err.contains("grub-efi-arm64-bin") || err.contains("has no kernel"),
        "{err}"
    );
    assert_eq!(list_dir(tmp.path()), Vec::<String>::new(), "nothing left");
}
