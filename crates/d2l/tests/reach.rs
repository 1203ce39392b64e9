//! Issue 15's proof: a machine you can reach. Two disks are built from the machine fixture
//! (Debian with openssh-server, sudo, systemd-resolved, cloud-init, cloud-guest-utils),
//! both enlarged by 1 GiB with `qemu-img resize`, and booted at once under QEMU (software
//! emulation) with user networking and a host port forwarded to their port 22:
//!
//! - A: a GPT `.qcow2` with `--user alice --user-password --ssh-key --cloud-init SEED`,
//!   booted through UEFI (OVMF): the root (partition 2, after the ESP) grows through
//!   systemd-repart and systemd-growfs; alice logs in with the key and can sudo; the seed's
//!   file is there.
//! - B: an MBR raw disk with `--ssh-key` (root's), booted through the BIOS: the root grows
//!   through d2l's own unit (growpart, resize2fs); root logs in with the key.
//!
//! On each, over ssh (never the serial console): `systemctl is-system-running --wait` says
//! `running` (else the failed units are listed), `ip -4 addr` shows QEMU's DHCP address
//! 10.0.2.15, a name resolves through QEMU's DNS, the filesystem is about 1 GiB larger than
//! built. The two machines' SSH host keys differ. After a poweroff each filesystem is
//! e2fsck-clean.
//!
//! Needs the machine fixture (`cargo xtask fixtures`), qemu-system-x86_64, qemu-img, ssh and
//! ssh-keygen (openssh-client), e2fsprogs; a missing one fails the test, never skips it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{d2l, run_ok, stderr};
use d2l_testkit::qemu::{Drive, Qemu};
use d2l_testkit::qemu_img;

/// From QEMU's start to sshd answering (first boot: host keys, cloud-init, growing).
const SSH_BUDGET: Duration = Duration::from_secs(900);
/// For the system to finish starting once ssh answers (`is-system-running --wait`).
const SETTLE_SECONDS: u32 = 600;
/// For the guest to power off.
const POWEROFF_BUDGET: Duration = Duration::from_secs(300);
const PASSWORD: &str = "d2l-reach-test";
/// The address QEMU's user-network DHCP server hands out.
const GUEST_ADDRESS: &str = "inet 10.0.2.15/";
/// A name QEMU's DNS (10.0.2.3, the host's resolver) can resolve here.
const NAME: &str = "deb.debian.org";
const GIB: u64 = 1 << 30;
/// What the cloud-init seed writes, and where.
const SEED_FILE: &str = "/var/lib/d2l-seed-proof";
const SEED_TEXT: &str = "seeded by d2l";

/// Where the root partition (the last one: after the ESP on d2l's hybrid disks) starts on
/// the raw disk `raw`, from sfdisk.
fn root_offset(raw: &Path) -> u64 {
    let json: serde_json::Value =
        serde_json::from_str(&run_ok("sfdisk", &["--json", raw.to_str().unwrap()])).unwrap();
    let parts = json["partitiontable"]["partitions"].as_array().unwrap();
    parts.last().unwrap()["start"].as_u64().unwrap() * 512
}

/// The ext4 block count of the root partition of the raw disk `raw`.
fn block_count(raw: &Path) -> u64 {
    let image = format!("{}?offset={}", raw.display(), root_offset(raw));
    let out = run_ok("dumpe2fs", &["-h", &image]);
    out.lines()
        .find_map(|l| l.strip_prefix("Block count:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no block count from dumpe2fs: {out}"))
}

/// `e2fsck -fn` of the root partition of `raw`.
fn assert_fsck_clean(raw: &Path, what: &str) {
    let image = format!("{}?offset={}", raw.display(), root_offset(raw));
    let out = Command::new("e2fsck")
        .args(["-fn", &image])
        .output()
        .expect("e2fsck (e2fsprogs)");
    assert!(
        out.status.success(),
        "{what}: e2fsck after the boot: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// One machine being checked over ssh.
struct Machine<'a> {
    name: &'static str,
    port: u16,
    key: &'a Path,
    user: &'static str,
    /// Runs a command as root: empty for root, `sudo -S` with the password for alice.
    as_root: String,
}

impl Machine<'_> {
    /// `ssh USER@127.0.0.1 -p PORT COMMAND`, bounded by `timeout`.
    fn ssh(&self, command: &str, seconds: u32) -> Output {
        let key = self.key.to_str().unwrap();
        Command::new("timeout")
            .arg(seconds.to_string())
            .args(["ssh", "-i", key, "-p", &self.port.to_string()])
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=20",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg(format!("{}@127.0.0.1", self.user))
            .arg(command)
            .output()
            .expect("ssh (openssh-client)")
    }

    /// The output of `command`, which must succeed.
    fn check(&self, command: &str) -> String {
        let out = self.ssh(command, 120);
        assert!(
            out.status.success(),
            "{}: `{command}` over ssh: {:?}\n{}{}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until sshd lets the user in with the key.
    fn wait_for_ssh(&self, vm: &mut Qemu) {
        let started = Instant::now();
        loop {
            let out = self.ssh("true", 60);
            if out.status.success() {
                eprintln!(
                    "{}: ssh as {} after {:.0}s",
                    self.name,
                    self.user,
                    vm.elapsed().as_secs_f64()
                );
                return;
            }
            assert!(
                started.elapsed() < SSH_BUDGET,
                "{}: no ssh login as {} in {SSH_BUDGET:?}: {}\n--- console ---\n{}",
                self.name,
                self.user,
                String::from_utf8_lossy(&out.stderr),
                vm.transcript_tail(6000)
            );
            std::thread::sleep(Duration::from_secs(5));
        }
    }

    /// The checks both machines share; returns the machine's ed25519 host key.
    fn check_common(&self, blocks_built: u64) -> String {
        // The state, then the failed units and the end of their logs.
        let state = self.check(&format!(
            "timeout {SETTLE_SECONDS} systemctl is-system-running --wait; \
             for unit in $(systemctl --failed --no-legend --plain | cut -d' ' -f1); do \
             echo \"--- $unit\"; {} journalctl -b -u $unit --no-pager | tail -25; done; true",
            self.as_root
        ));
        assert_eq!(
            state.lines().next(),
            Some("running"),
            "{}: systemd's state, then the failed units:\n{state}",
            self.name
        );
        let addresses = self.check("ip -4 addr");
        assert!(
            addresses.contains(GUEST_ADDRESS),
            "{}: no DHCP address: {addresses}",
            self.name
        );
        let resolved = self.check(&format!("getent hosts {NAME}"));
        assert!(
            resolved.contains(NAME),
            "{}: {NAME} does not resolve: {resolved}",
            self.name
        );
        // The root grew: the block count by about 1 GiB (less the GPT's backup and alignment;
        // a little more where the partition also takes the room d2l's GPT leaves at the end),
        // and what df reports is more than the whole filesystem as built plus 0.9 GiB.
        let super_block = self.check(&format!(
            "{} dumpe2fs -h $(findmnt -n -o SOURCE /) 2>/dev/null",
            self.as_root
        ));
        let blocks: u64 = super_block
            .lines()
            .find_map(|l| l.strip_prefix("Block count:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{}: dumpe2fs: {super_block}", self.name));
        let grown = (blocks - blocks_built.min(blocks)) * 4096;
        assert!(
            grown > GIB * 95 / 100 && grown <= GIB + (4 << 20),
            "{}: the filesystem grew by {grown} bytes, not about 1 GiB ({blocks_built} -> \
             {blocks} blocks)",
            self.name
        );
        let df = self.check("df -B1 --output=size / | tail -1");
        let size: u64 = df.trim().parse().expect("df's size");
        assert!(
            size > blocks_built * 4096 + GIB * 9 / 10,
            "{}: df / says {size} bytes, built {} bytes",
            self.name,
            blocks_built * 4096
        );
        eprintln!(
            "{}: running, {GUEST_ADDRESS}.., {NAME} resolves, / grew by {} MiB (df {} MiB)",
            self.name,
            grown >> 20,
            size >> 20
        );
        self.check("cat /etc/ssh/ssh_host_ed25519_key.pub")
    }

    /// Powers the machine off and waits for QEMU to exit.
    fn power_off(&self, vm: &mut Qemu) {
        // The connection drops as the machine goes down: its status says nothing.
        let _ = self.ssh(&format!("{} systemctl poweroff", self.as_root), 60);
        assert!(
            vm.wait_exit(POWEROFF_BUDGET).is_some(),
            "{}: did not power off: {}",
            self.name,
            vm.transcript_tail(3000)
        );
    }
}

/// `d2l build FIXTURE -o OUT ARGS...`.
fn build(fixture: &str, out: &Path, args: &[&str]) {
    let mut all = vec!["build", fixture, "-o", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let run = d2l(&all);
    assert!(run.status.success(), "build {args:?}: {}", stderr(&run));
    eprintln!("built {}:\n{}", out.display(), stderr(&run));
}

fn boot(image: &Path, format: &str, port: u16, uefi: bool) -> Qemu {
    let builder = Qemu::builder();
    let builder = if uefi { builder.uefi() } else { builder };
    builder
        .memory_mib(1024)
        .drive(Drive::new(image, format, "virtio"))
        .args([
            "-netdev".to_owned(),
            format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22"),
            "-device".to_owned(),
            "virtio-net-pci,netdev=n0".to_owned(),
        ])
        .start()
        .expect("start qemu-system-x86_64 (package qemu-system-x86)")
}

#[test]
fn two_machines_from_one_image_are_reachable_and_their_own() {
    let started = Instant::now();
    let fixture = d2l_testkit::machine();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key: PathBuf = dir.join("id_ed25519");
    run_ok(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()],
    );
    let public = format!("{}.pub", key.display());
    let seed = dir.join("seed");
    std::fs::create_dir(&seed).unwrap();
    std::fs::write(
        seed.join("user-data"),
        // `locale: false`: cloud-init's locale module cannot make en_US.UTF-8 in a minbase
        // image (update-locale refuses it), which would fail cloud-config.service.
        format!(
            "#cloud-config\nlocale: false\nwrite_files:\n  - path: {SEED_FILE}\n    \
             content: \"{SEED_TEXT}\\n\"\n"
        ),
    )
    .unwrap();

    let a = dir.join("a.qcow2");
    build(
        &fixture.oci,
        &a,
        &[
            "--table",
            "gpt",
            "--ssh-key",
            &public,
            "--user",
            "alice",
            "--user-password",
            PASSWORD,
            "--cloud-init",
            seed.to_str().unwrap(),
        ],
    );
    let b = dir.join("b.img");
    build(&fixture.oci, &b, &["--table", "mbr", "--ssh-key", &public]);
    // The filesystems as built, then the disks 1 GiB larger.
    let a_raw = dir.join("a-built.img");
    qemu_img::convert(&["-f", "qcow2", "-O", "raw"], &a, &a_raw);
    let a_blocks = block_count(&a_raw);
    std::fs::remove_file(&a_raw).unwrap();
    let b_blocks = block_count(&b);
    run_ok(
        "qemu-img",
        &["resize", "-f", "qcow2", a.to_str().unwrap(), "+1G"],
    );
    run_ok(
        "qemu-img",
        &["resize", "-f", "raw", b.to_str().unwrap(), "+1G"],
    );

    let (a_port, b_port) = (free_port(), free_port());
    let alice = Machine {
        name: "A (gpt qcow2, alice)",
        port: a_port,
        key: &key,
        user: "alice",
        as_root: format!("echo {PASSWORD} | sudo -S -p ''"),
    };
    let root = Machine {
        name: "B (mbr raw, root)",
        port: b_port,
        key: &key,
        user: "root",
        as_root: String::new(),
    };
    // Both boot at once: the proof costs one boot's time.
    let (a_key, b_key) = std::thread::scope(|s| {
        let a_thread = s.spawn(|| {
            let mut vm = boot(&a, "qcow2", alice.port, true);
            alice.wait_for_ssh(&mut vm);
            let host_key = alice.check_common(a_blocks);
            let sudo = alice.check(&format!("{} id -u", alice.as_root));
            assert_eq!(sudo.trim(), "0", "alice cannot sudo: {sudo}");
            let groups = alice.check("id -nG");
            assert!(groups.split_whitespace().any(|g| g == "sudo"), "{groups}");
            let seeded = alice.check(&format!("cat {SEED_FILE}"));
            assert_eq!(
                seeded,
                format!("{SEED_TEXT}\n"),
                "the cloud-init seed's file"
            );
            alice.power_off(&mut vm);
            host_key
        });
        let b_thread = s.spawn(|| {
            let mut vm = boot(&b, "raw", root.port, false);
            root.wait_for_ssh(&mut vm);
            let host_key = root.check_common(b_blocks);
            assert_eq!(root.check("id -u").trim(), "0");
            root.power_off(&mut vm);
            host_key
        });
        (a_thread.join(), b_thread.join())
    });
    let (a_key, b_key) = (
        a_key.unwrap_or_else(|e| std::panic::resume_unwind(e)),
        b_key.unwrap_or_else(|e| std::panic::resume_unwind(e)),
    );
    assert!(a_key.starts_with("ssh-ed25519 "), "{a_key}");
    assert_ne!(a_key, b_key, "two machines from one image share a host key");

    qemu_img::assert_check(&a, "qcow2");
    let a_raw = dir.join("a-after.img");
    qemu_img::convert(&["-f", "qcow2", "-O", "raw"], &a, &a_raw);
    assert_fsck_clean(&a_raw, "A");
    assert_fsck_clean(&b, "B");
    eprintln!(
        "both machines checked in {:.0}s",
        started.elapsed().as_secs_f64()
    );
}
