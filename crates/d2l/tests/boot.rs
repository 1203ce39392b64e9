//! Booting what d2l builds, in QEMU with software emulation (TCG; no KVM needed), through the
//! harness in `d2l_testkit::qemu`, and `d2l run`'s refusals.
//!
//! The Debian fixture, built with `--table none`, boots by direct kernel boot: its own kernel
//! and initramfs, read out of the image with debugfs, `root=/dev/vda`. The test waits for the
//! kernel banner, systemd's welcome and the login prompt, pulls the plug, and checks the
//! filesystem: clean before the boot, its journal replays after the unclean stop, clean after.
//!
//! Needs the fixtures (`cargo xtask fixtures`), qemu-system-x86_64 (package qemu-system-x86)
//! and e2fsprogs; a missing one fails the test, never skips it. One boot takes about a minute
//! on two cores; the budget is [`BOOT_BUDGET`].

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{d2l, stderr};
use d2l_testkit::debugfs;
use d2l_testkit::qemu::{Drive, Qemu, QEMU, QEMU_PACKAGE};

/// The longest a boot to the login prompt may take.
const BOOT_BUDGET: Duration = Duration::from_secs(180);

/// Runs `program ARGS`, returning its exit code and output (stdout then stderr).
fn tool(program: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// `e2fsck ARGS IMAGE`, returning its exit code and output.
fn e2fsck(args: &[&str], image: &Path) -> (i32, String) {
    let mut all = args.to_vec();
    all.push(image.to_str().unwrap());
    tool("e2fsck", &all)
}

/// The name in `/boot` of the fixture's kernel (`vmlinuz-*`) and initramfs (`initrd.img-*`).
fn boot_files(image: &Path) -> (String, String) {
    let (code, listing) = tool("debugfs", &["-R", "ls -l /boot", image.to_str().unwrap()]);
    assert_eq!(code, 0, "debugfs ls /boot: {listing}");
    let names: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    let pick = |prefix: &str| {
        let found: Vec<&&str> = names.iter().filter(|n| n.starts_with(prefix)).collect();
        assert_eq!(found.len(), 1, "one {prefix}* in /boot: {listing}");
        found[0].to_string()
    };
    (pick("vmlinuz-"), pick("initrd.img-"))
}

/// Copies `/boot/NAME` out of `image` to `dir/NAME`.
fn dump(image: &Path, name: &str, dir: &Path) -> PathBuf {
    let out = dir.join(name);
    let (code, text) = tool(
        "debugfs",
        &[
            "-R",
            &format!("dump /boot/{name} {}", out.display()),
            image.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "debugfs dump {name}: {text}");
    let len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    assert!(len > 1 << 20, "{name} dumped as {len} bytes: {text}");
    out
}

fn require_qemu() {
    debugfs::require(QEMU, QEMU_PACKAGE);
}

#[test]
fn debian_fixture_boots_to_login_by_direct_kernel_boot() {
    require_qemu();
    debugfs::require("e2fsck", "e2fsprogs");
    debugfs::require("debugfs", "e2fsprogs");
    let debian = d2l_testkit::debian();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("root.ext4");
    let started = Instant::now();
    let out = d2l(&[
        "build",
        &debian.oci,
        "-o",
        image.to_str().unwrap(),
        "--table",
        "none",
        "--size",
        "+256M",
    ]);
    assert!(out.status.success(), "d2l build: {}", stderr(&out));
    eprintln!("built in {:.1}s", started.elapsed().as_secs_f64());

    // The image d2l wrote is clean before anything touches it.
    let (code, text) = e2fsck(&["-fn"], &image);
    assert_eq!(code, 0, "e2fsck -fn before the boot:\n{text}");

    let (kernel, initrd) = boot_files(&image);
    let kernel = dump(&image, &kernel, dir.path());
    let initrd = dump(&image, &initrd, dir.path());

    let mut vm = Qemu::builder()
        .memory_mib(1024)
        .kernel(
            &kernel,
            Some(&initrd),
            "root=/dev/vda rw console=ttyS0,115200n8",
        )
        .drive(Drive::raw(&image))
        .start()
        .unwrap();
    eprintln!("$ {}", vm.command());
    let stage = |vm: &mut Qemu, wanted: &[&str], name: &str| {
        let remaining = BOOT_BUDGET.saturating_sub(vm.elapsed());
        match vm.wait_for_any(wanted, remaining) {
            Ok(_) => eprintln!("{name} after {:.1}s", vm.elapsed().as_secs_f64()),
            Err(timeout) => panic!("boot stage {name}: {timeout}"),
        }
    };
    stage(&mut vm, &["Linux version "], "kernel banner");
    stage(&mut vm, &["Run /init as init process"], "initramfs");
    stage(&mut vm, &["Welcome to "], "systemd");
    stage(&mut vm, &["Reached target", "Started "], "systemd units");
    stage(&mut vm, &["login:"], "login prompt");
    let booted = vm.elapsed();
    let transcript = vm.transcript();
    // Layer 2 replaced /etc/issue, which getty prints above the prompt.
    assert!(
        transcript.contains("d2l test image (Debian GNU/Linux 12)"),
        "no /etc/issue from layer 2 before the prompt:\n{}",
        vm.transcript_tail(2000)
    );
    for bad in ["Kernel panic", "emergency mode", "Failed to mount"] {
        assert!(
            !transcript.contains(bad),
            "{bad:?} in the console:\n{transcript}"
        );
    }
    // Pull the plug: an unclean stop with the root mounted read-write.
    vm.shutdown();
    drop(vm);
    eprintln!(
        "boot to login: {:.1}s (budget {}s)",
        booted.as_secs_f64(),
        BOOT_BUDGET.as_secs()
    );

    // The journal replays and leaves nothing to fix beyond what an unclean stop leaves
    // (exit 0 or 1: "errors corrected"), then a read-only check finds it clean.
    let (code, text) = e2fsck(&["-fy"], &image);
    assert!(
        code == 0 || code == 1,
        "e2fsck -fy after the boot ({code}):\n{text}"
    );
    let (code, text) = e2fsck(&["-fn"], &image);
    assert_eq!(code, 0, "e2fsck -fn after the replay:\n{text}");
}

#[test]
fn harness_reports_the_transcript_when_qemu_exits() {
    require_qemu();
    // No kernel, no disk: SeaBIOS prints its banner on the serial console, finds nothing to
    // boot and waits; the wait times out with the transcript; then QEMU is killed.
    let mut vm = Qemu::builder().memory_mib(64).start().unwrap();
    let err = vm
        .wait_for("this never appears", Duration::from_secs(5))
        .unwrap_err();
    assert!(!err.exited, "{err}");
    let message = err.to_string();
    assert!(message.contains("this never appears"), "{message}");
    assert!(message.contains("console tail"), "{message}");
    vm.shutdown();

    // An argument QEMU refuses: it exits at once and the error says so, with its stderr.
    let mut vm = Qemu::builder().args(["-no-such-option"]).start().unwrap();
    let err = vm.wait_for("login:", Duration::from_secs(30)).unwrap_err();
    assert!(err.exited, "{err}");
    assert!(err.stderr.contains("no-such-option"), "{err}");
}

#[test]
fn run_refuses_a_bare_ext4_and_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    // A bare ext4: the magic at byte 1080 is all `d2l run` looks at.
    let image = dir.path().join("root.ext4");
    let mut bytes = vec![0u8; 4096];
    bytes[1080..1082].copy_from_slice(&0xef53_u16.to_le_bytes());
    std::fs::write(&image, &bytes).unwrap();
    let out = d2l(&["run", image.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("d2l: error:"), "{err}");
    for needle in ["bare ext4", "-kernel", "--table none", "root.ext4"] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }

    let missing = dir.path().join("nope.img");
    let out = d2l(&["run", missing.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("nope.img"), "{err}");
    assert!(err.contains("No such file"), "{err}");

    // Not a size: a usage error (exit 2) naming the option and the accepted forms.
    let out = d2l(&["run", "--memory", "lots", image.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--memory") && err.contains("K, M, G or T"),
        "{err}"
    );
    // A size that is not whole MiB.
    let out = d2l(&["run", "--memory", "1000K", image.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--memory 1024000") && err.contains("whole number of MiB"),
        "{err}"
    );
}

#[test]
fn run_passes_qemus_exit_status_on() {
    require_qemu();
    // A raw disk with a boot sector that powers off at once? Not without a payload: instead
    // an option QEMU rejects via the format (no magic, so raw), forced to a wrong format:
    // QEMU fails to open the drive and exits 1, and so does d2l, with QEMU's message.
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    std::fs::write(&image, vec![0u8; 1 << 20]).unwrap();
    let out = d2l(&["run", "--format", "qcow2", image.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("qcow2"), "QEMU's own message: {err}");
    assert!(!err.contains("d2l: error"), "{err}");
}

#[test]
fn run_picks_ovmf_for_a_disk_without_bios_boot_code() {
    require_qemu();
    // As above, QEMU is made to fail at once (a raw file forced to qcow2), after d2l has
    // logged the command it ran: the firmware is in it.
    let dir = tempfile::tempdir().unwrap();
    let uefi = dir.path().join("uefi.img");
    std::fs::write(&uefi, vec![0u8; 1 << 20]).unwrap();
    let mut with_code = vec![0u8; 1 << 20];
    with_code[..3].copy_from_slice(&[0xeb, 0x63, 0x90]); // a jump, as mbr.bin starts
    let bios = dir.path().join("bios.img");
    std::fs::write(&bios, &with_code).unwrap();
    let command = |args: &[&str]| {
        let mut all = vec!["-v", "run", "--format", "qcow2"];
        all.extend(args);
        let out = d2l(&all);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        err.lines()
            .find(|l| l.contains("running"))
            .unwrap_or_else(|| panic!("no command logged: {err}"))
            .to_owned()
    };
    let ovmf = "OVMF_CODE_4M.fd";
    assert!(command(&[uefi.to_str().unwrap()]).contains(ovmf));
    assert!(!command(&[bios.to_str().unwrap()]).contains(ovmf));
    assert!(!command(&["--firmware", "bios", uefi.to_str().unwrap()]).contains(ovmf));
    assert!(command(&["--firmware", "uefi", bios.to_str().unwrap()]).contains(ovmf));
}
