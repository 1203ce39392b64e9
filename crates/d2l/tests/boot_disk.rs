//! The end-to-end proof of `d2l build`'s disks: QEMU (software emulation) boots them through
//! SeaBIOS (extlinux) or OVMF (UEFI, GRUB) into the image's kernel and systemd, where root logs
//! in with the password given to d2l and finds `/` as it should be; the partitions are then
//! checked: e2fsck on the root, fsck.fat on the ESP, sfdisk/sgdisk on the table.
//!
//! A hybrid disk (the default) boots with both firmwares. Between two boots of one disk the
//! test does to `/boot` what a Debian kernel upgrade does (a new version's kernel and initrd,
//! `/vmlinuz` and `/initrd.img` moved to them, the old files deleted) and boots it with the
//! other firmware: both loaders must follow the links to the new files.
//!
//! Boots are heavy under software emulation: two at a time (the CI machine has two cores).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use common::{d2l, run_ok, stderr};
use d2l_testkit::qemu::{Drive, Qemu};
use d2l_testkit::qemu_img;

/// Boots running at once.
const MAX_BOOTS: u32 = 2;
static BOOTS: Mutex<u32> = Mutex::new(0);
static BOOT_ENDED: Condvar = Condvar::new();
/// The budget for one boot to the login prompt.
const BOOT_BUDGET: Duration = Duration::from_secs(240);
/// Time for one shell command in the booted system.
const COMMAND_TIME: Duration = Duration::from_secs(60);
const PASSWORD: &str = "d2l-boot-test";
/// The kernel version the simulated upgrade installs.
const UPGRADED: &str = "6.1.0-999-amd64";

/// One of [`MAX_BOOTS`] boot slots, held while a machine runs.
struct BootSlot;

impl BootSlot {
    fn take() -> BootSlot {
        let mut running = BOOTS.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= MAX_BOOTS {
            running = BOOT_ENDED.wait(running).unwrap_or_else(|e| e.into_inner());
        }
        *running += 1;
        BootSlot
    }
}

impl Drop for BootSlot {
    fn drop(&mut self) {
        *BOOTS.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        BOOT_ENDED.notify_one();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Firmware {
    /// SeaBIOS, QEMU's default.
    Bios,
    /// OVMF.
    Uefi,
}

/// A disk built for the test and what its build said.
struct Built {
    _dir: tempfile::TempDir,
    image: PathBuf,
    format: &'static str,
    uuid: String,
    label: String,
}

/// Builds the fixture into `linux.EXT` with `--table TABLE` and `extra` options.
fn build(table: &str, ext: &str, format: &'static str, extra: &[&str]) -> Built {
    let debian = d2l_testkit::debian();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join(format!("linux.{ext}"));
    let mut args = vec![
        "build",
        &debian.oci,
        "-o",
        image.to_str().unwrap(),
        "--table",
        table,
        "--root-password",
        PASSWORD,
    ];
    args.extend(extra);
    let run = d2l(&args);
    assert!(run.status.success(), "build: {}", stderr(&run));
    let built = stderr(&run);
    let uuid = built
        .split("UUID ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .expect("the summary names the filesystem UUID")
        .to_string();
    Built {
        label: format!("{table}/{ext} {}", extra.join(" ")),
        _dir: dir,
        image,
        format,
        uuid,
    }
}

/// Runs `command` in the VM's shell; returns its output.
fn shell(vm: &mut Qemu, command: &str) -> String {
    vm.shell(command, COMMAND_TIME)
        .unwrap_or_else(|t| panic!("{command}: no answer: {t:?}"))
}

/// Boots `disk` with `firmware`, logs in as root and checks the system: the loader of that
/// firmware ran, `/` is the ext4 root by UUID, read-write, systemd is up, and
/// `/sys/firmware/efi` exists exactly under UEFI. Returns the logged-in machine.
fn boot(disk: &Built, firmware: Firmware) -> (Qemu, BootSlot) {
    let slot = BootSlot::take();
    let what = format!("{} with {firmware:?}", disk.label);
    let mut builder =
        Qemu::builder()
            .memory_mib(1024)
            .drive(Drive::new(&disk.image, disk.format, "virtio"));
    let loader = match firmware {
        Firmware::Bios => "SYSLINUX",
        Firmware::Uefi => {
            builder = builder.uefi();
            "GNU GRUB"
        }
    };
    let mut vm = builder
        .start()
        .expect("start qemu-system-x86_64 (package qemu-system-x86; ovmf for UEFI)");
    for step in [loader, "Linux version", "systemd", "login:"] {
        vm.wait_for(step, BOOT_BUDGET)
            .unwrap_or_else(|t| panic!("{what}: no {step:?} on the console: {t}"));
    }
    assert!(vm.elapsed() < BOOT_BUDGET, "boot took {:?}", vm.elapsed());
    eprintln!("{what}: login prompt after {:?}", vm.elapsed());
    vm.log_in("root", PASSWORD, "root@d2l", COMMAND_TIME)
        .unwrap_or_else(|t| panic!("{what}: login as root failed: {t}"));

    let root = shell(&mut vm, "findmnt -n -o FSTYPE,OPTIONS /");
    assert!(root.contains("ext4"), "{what}: / is not ext4: {root}");
    assert!(root.contains("rw"), "{what}: / is not read-write: {root}");
    let cmdline = shell(&mut vm, "cat /proc/cmdline");
    assert!(
        cmdline.contains(&format!("root=UUID={}", disk.uuid)),
        "{what}: root not by UUID: {cmdline}"
    );
    // Both loaders were given the link the distribution moves, not the versioned file.
    assert!(
        cmdline.contains("BOOT_IMAGE=/vmlinuz "),
        "{what}: the loader did not boot /vmlinuz: {cmdline}"
    );
    let fstab = shell(&mut vm, "grep -v '^#' /etc/fstab");
    assert!(
        fstab.contains(&format!("UUID={} / ext4", disk.uuid)),
        "{what}: fstab: {fstab}"
    );
    // Spelled as arithmetic so that the echoed command line cannot match.
    let efi = shell(
        &mut vm,
        "test -d /sys/firmware/efi && echo UEFI-$((6*7)) || echo BIOS-$((6*7))",
    );
    let expected = match firmware {
        Firmware::Bios => "BIOS-42",
        Firmware::Uefi => "UEFI-42",
    };
    assert!(
        efi.contains(expected),
        "{what}: booted through the wrong firmware: {efi}"
    );
    let state = shell(&mut vm, "timeout 90 systemctl is-system-running --wait");
    assert!(
        !state.contains("maintenance"),
        "{what}: systemd is in maintenance: {state}"
    );
    assert!(
        state.contains("running") || state.contains("degraded"),
        "{what}: systemd state: {state}"
    );
    (vm, slot)
}

/// Does to `/boot` what installing kernel [`UPGRADED`] and removing the running one does on
/// Debian: the new files, the links moved (relative, as `linux-update-symlinks` makes
/// them), the old files deleted.
fn upgrade_kernel(vm: &mut Qemu) {
    let out = shell(
        vm,
        &format!(
            "set -e; old=$(uname -r); cd /boot; \
             cp vmlinuz-$old vmlinuz-{UPGRADED}; cp initrd.img-$old initrd.img-{UPGRADED}; \
             ln -sfn boot/vmlinuz-{UPGRADED} /vmlinuz; \
             ln -sfn boot/initrd.img-{UPGRADED} /initrd.img; \
             rm vmlinuz-$old initrd.img-$old; sync; ls /boot; echo upgraded"
        ),
    );
    assert!(out.contains("upgraded"), "the upgrade failed: {out}");
}

/// Powers the machine off and waits for QEMU to exit.
fn power_off(mut vm: Qemu, what: &str) {
    vm.send_line("systemctl poweroff").unwrap();
    let status = vm.wait_exit(Duration::from_secs(120));
    assert!(
        status.is_some(),
        "{what}: the machine did not power off: {}",
        vm.transcript_tail(2000)
    );
}

/// The disk as raw bytes in a file (converted with qemu-img when it is not raw).
fn raw_copy(disk: &Built) -> PathBuf {
    if disk.format == "raw" {
        return disk.image.clone();
    }
    qemu_img::assert_check(&disk.image, disk.format);
    let raw = disk.image.with_extension("raw");
    qemu_img::convert(&["-f", disk.format, "-O", "raw"], &disk.image, &raw);
    raw
}

/// Copies `len` bytes at `offset` of `from` into a new file `to`.
fn extract(from: &Path, offset: u64, len: u64, to: &Path) {
    use std::os::unix::fs::FileExt;
    let src = std::fs::File::open(from).unwrap();
    let dst = std::fs::File::create(to).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0;
    while done < len {
        let n = buf.len().min(usize::try_from(len - done).unwrap());
        src.read_exact_at(&mut buf[..n], offset + done).unwrap();
        dst.write_all_at(&buf[..n], done).unwrap();
        done += n as u64;
    }
}

/// The table and both filesystems after the boots: the table verifies, the ESP is clean
/// FAT (when there is one), the root is clean ext4 holding what the machine wrote and, after
/// an upgrade, only the new kernel.
fn check_partitions(disk: &Built, upgraded: bool) {
    let raw = raw_copy(disk);
    let raw_str = raw.to_str().unwrap();
    run_ok("sfdisk", &["--verify", raw_str]);
    let table: serde_json::Value =
        serde_json::from_str(&run_ok("sfdisk", &["--json", raw_str])).unwrap();
    let table = &table["partitiontable"];
    if table["label"] == "gpt" {
        let verify = run_ok("sgdisk", &["-v", raw_str]);
        assert!(verify.contains("No problems found"), "sgdisk -v: {verify}");
    }
    let parts = table["partitions"].as_array().unwrap();
    let sectors = |p: &serde_json::Value, key: &str| p[key].as_u64().unwrap() * 512;
    let root = parts.last().unwrap();
    if parts.len() == 2 {
        let esp = &parts[0];
        let fat = disk.image.with_extension("esp");
        extract(&raw, sectors(esp, "start"), sectors(esp, "size"), &fat);
        // fsck.fat exits 0 after reporting some problems: its only lines must be its
        // version and the summary.
        let fsck = run_ok("fsck.fat", &["-n", fat.to_str().unwrap()]);
        let unexpected: Vec<&str> = fsck
            .lines()
            .filter(|l| !l.starts_with("fsck.fat ") && !l.contains(" files, "))
            .collect();
        assert!(unexpected.is_empty(), "fsck.fat -n on the ESP: {fsck}");
    }
    let fs = disk.image.with_extension("ext4");
    extract(&raw, sectors(root, "start"), sectors(root, "size"), &fs);
    let fs_str = fs.to_str().unwrap();
    let fsck = Command::new("e2fsck")
        .args(["-fn", fs_str])
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}: e2fsck after the boots: {}",
        disk.label,
        String::from_utf8_lossy(&fsck.stdout)
    );
    let proof = run_ok("debugfs", &["-R", "cat /root/proof.txt", fs_str]);
    assert_eq!(proof, "written-in-the-vm\n", "{}", disk.label);
    if upgraded {
        let boot = run_ok("debugfs", &["-R", "ls /boot", fs_str]);
        assert!(boot.contains(&format!("vmlinuz-{UPGRADED}")), "{boot}");
        assert!(
            !boot.contains("vmlinuz-6.1.0-50"),
            "old kernel kept: {boot}"
        );
    }
}

/// Boots `disk` with `first`; with `then`, upgrades the kernel, powers off and boots it with
/// `then`. Then checks the partitions.
fn boot_and_check(disk: &Built, first: Firmware, then: Option<Firmware>) {
    let (mut vm, slot) = boot(disk, first);
    shell(&mut vm, "echo written-in-the-vm > /root/proof.txt && sync");
    if then.is_some() {
        upgrade_kernel(&mut vm);
    }
    power_off(vm, &disk.label);
    drop(slot);
    if let Some(then) = then {
        let (mut vm, slot) = boot(disk, then);
        let boot = shell(&mut vm, "ls /boot");
        assert!(boot.contains(UPGRADED), "{boot}");
        power_off(vm, &disk.label);
        drop(slot);
    }
    check_partitions(disk, then.is_some());
}

#[test]
fn hybrid_mbr_disk_boots_bios_then_uefi_after_a_kernel_upgrade() {
    let disk = build("mbr", "img", "raw", &[]);
    boot_and_check(&disk, Firmware::Bios, Some(Firmware::Uefi));
}

#[test]
fn hybrid_gpt_disk_boots_uefi_then_bios_after_a_kernel_upgrade() {
    let disk = build("gpt", "img", "raw", &["--firmware", "hybrid"]);
    boot_and_check(&disk, Firmware::Uefi, Some(Firmware::Bios));
}

#[test]
fn vdi_disk_boots_through_the_bios() {
    let disk = build("mbr", "vdi", "vdi", &[]);
    boot_and_check(&disk, Firmware::Bios, None);
}

#[test]
fn uefi_only_qcow2_disk_boots_through_ovmf_and_has_no_bios_boot_code() {
    let disk = build("gpt", "qcow2", "qcow2", &["--firmware", "uefi"]);
    boot_and_check(&disk, Firmware::Uefi, None);
    // Nothing a BIOS could run: the protective MBR's boot code is zeros, and there is no
    // extlinux in the root filesystem.
    use std::os::unix::fs::FileExt;
    let raw = raw_copy(&disk);
    let mut mbr = [0u8; 440];
    std::fs::File::open(&raw)
        .unwrap()
        .read_exact_at(&mut mbr, 0)
        .unwrap();
    assert!(mbr.iter().all(|&b| b == 0), "boot code in the MBR");
    let syslinux = run_ok(
        "debugfs",
        &[
            "-R",
            "ls /boot",
            disk.image.with_extension("ext4").to_str().unwrap(),
        ],
    );
    assert!(
        !syslinux.contains("syslinux"),
        "extlinux installed: {syslinux}"
    );
}
