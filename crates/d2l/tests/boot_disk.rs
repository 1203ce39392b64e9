//! Issue 4's end-to-end proof: `d2l build` of the Debian fixture gives a disk that QEMU's BIOS
//! (SeaBIOS, software emulation) boots through extlinux into the image's kernel and systemd,
//! where root logs in with the password given to d2l, finds `/` as it should be, writes a
//! file and powers off; the partition is then fsck-clean and holds the file. Issue 6 adds the
//! same proof for a disk built straight into VDI and into qcow2.

mod common;

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::{d2l, stderr};
use d2l_testkit::qemu::{Drive, Qemu};
use d2l_testkit::qemu_img;

/// Boots are heavy under software emulation on 2 cores: one at a time.
static ONE_BOOT_AT_A_TIME: Mutex<()> = Mutex::new(());
/// The budget for one boot to the login prompt.
const BOOT_BUDGET: Duration = Duration::from_secs(180);
/// Time for one shell command in the booted system.
const COMMAND_TIME: Duration = Duration::from_secs(60);
const PASSWORD: &str = "d2l-boot-test";

/// Runs `command` in the VM's shell; returns its output.
fn shell(vm: &mut Qemu, command: &str) -> String {
    vm.shell(command, COMMAND_TIME)
        .unwrap_or_else(|t| panic!("{command}: no answer: {t:?}"))
}

/// Builds the fixture into `linux.EXT` with `--table TABLE`, boots it (QEMU format
/// `format`), logs in, checks the system and the file it wrote.
fn boot_and_check(table: &str, ext: &str, format: &str) {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join(format!("linux.{ext}"));
    let run = d2l(&[
        "build",
        &debian.oci,
        "-o",
        image.to_str().unwrap(),
        "--table",
        table,
        "--root-password",
        PASSWORD,
    ]);
    assert!(run.status.success(), "build: {}", stderr(&run));
    let built = stderr(&run);
    let uuid = built
        .split("UUID ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .expect("the summary names the filesystem UUID")
        .to_string();

    let _one = ONE_BOOT_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut vm = Qemu::builder()
        .memory_mib(1024)
        .drive(Drive::new(&image, format, "virtio"))
        .start()
        .expect("start qemu-system-x86_64 (package qemu-system-x86)");
    for step in ["SYSLINUX", "Linux version", "systemd", "login:"] {
        vm.wait_for(step, BOOT_BUDGET)
            .unwrap_or_else(|t| panic!("{table}/{ext}: no {step:?} on the console: {t:?}"));
    }
    assert!(vm.elapsed() < BOOT_BUDGET, "boot took {:?}", vm.elapsed());
    eprintln!("{table}/{ext}: login prompt after {:?}", vm.elapsed());

    vm.log_in("root", PASSWORD, "root@d2l", COMMAND_TIME)
        .unwrap_or_else(|t| panic!("{table}/{ext}: login as root failed: {t:?}"));

    let root = shell(&mut vm, "findmnt -n -o FSTYPE,OPTIONS /");
    assert!(root.contains("ext4"), "/ is not ext4: {root}");
    assert!(root.contains("rw"), "/ is not read-write: {root}");
    let cmdline = shell(&mut vm, "cat /proc/cmdline");
    assert!(
        cmdline.contains(&format!("root=UUID={uuid}")),
        "root not by UUID: {cmdline}"
    );
    let fstab = shell(&mut vm, "grep -v '^#' /etc/fstab");
    assert!(
        fstab.contains(&format!("UUID={uuid} / ext4")),
        "fstab: {fstab}"
    );
    let state = shell(&mut vm, "timeout 90 systemctl is-system-running --wait");
    assert!(
        !state.contains("maintenance"),
        "systemd is in maintenance: {state}"
    );
    assert!(
        state.contains("running") || state.contains("degraded"),
        "systemd state: {state}"
    );
    shell(&mut vm, "echo written-in-the-vm > /root/proof.txt && sync");
    vm.send_line("systemctl poweroff").unwrap();
    let status = vm.wait_exit(Duration::from_secs(120));
    assert!(
        status.is_some(),
        "{table}/{ext}: the machine did not power off: {}",
        vm.transcript_tail(2000)
    );
    drop(vm);

    // The partition afterwards: clean, and the file is there.
    let raw = if format == "raw" {
        image.clone()
    } else {
        qemu_img::assert_check(&image, format);
        let raw = tmp.path().join("after-boot.img");
        qemu_img::convert(&["-f", format, "-O", "raw"], &image, &raw);
        raw
    };
    let bytes = std::fs::read(&raw).unwrap();
    let start = 1 << 20;
    let blocks = u32::from_le_bytes(
        bytes[start + 1024 + 4..start + 1024 + 8]
            .try_into()
            .unwrap(),
    );
    let fs = tmp.path().join("root.ext4");
    std::fs::write(&fs, &bytes[start..start + blocks as usize * 4096]).unwrap();
    let fsck = Command::new("e2fsck")
        .arg("-fn")
        .arg(&fs)
        .output()
        .expect("e2fsck");
    assert!(
        fsck.status.success(),
        "{table}/{ext}: e2fsck after the boot: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let cat = Command::new("debugfs")
        .args(["-R", "cat /root/proof.txt"])
        .arg(&fs)
        .output()
        .expect("debugfs");
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "written-in-the-vm\n");
}

#[test]
fn mbr_disk_boots_logs_in_and_keeps_what_was_written() {
    boot_and_check("mbr", "img", "raw");
}

#[test]
fn gpt_disk_boots_logs_in_and_keeps_what_was_written() {
    boot_and_check("gpt", "img", "raw");
}

#[test]
fn vdi_disk_boots_logs_in_and_keeps_what_was_written() {
    boot_and_check("mbr", "vdi", "vdi");
}

#[test]
fn qcow2_disk_boots_logs_in_and_keeps_what_was_written() {
    boot_and_check("gpt", "qcow2", "qcow2");
}
