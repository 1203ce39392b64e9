//! `bench disk`: `d2l build` of the fixture into a bootable MBR disk against the
//! docker-to-linux way of making one by hand as root (<https://github.com/iximiuz/docker-to-linux>):
//! `truncate`, `sfdisk`, `losetup`, `mkfs.ext4`, `mount`, `tar -x`, `extlinux --install`,
//! `dd mbr.bin`. Both images are then booted once in QEMU (software emulation) up to the
//! `login:` prompt, to prove both work; the boots are not timed against each other.
//!
//! Untimed setup: `d2l export` of the fixture stands in for `docker export`, and one
//! `d2l build` gives what the by-hand disk copies from it: its size, its partition (start
//! and length), its filesystem UUID (passed to `mkfs.ext4 -U`, so the kernel command line
//! matches) and the `extlinux.conf` it wrote (read back with `debugfs`).
//!
//! The by-hand sequence differs from the script in one place: `losetup -P` creates no
//! partition device (`/dev/loopNp1`) in a container without udev, so the loop device is
//! set up on the partition itself (`losetup -o START --sizelimit LEN`), which is what the
//! partition device would be. The root password is set with `chroot MNT chpasswd`, as d2l
//! sets it (a SHA-512 crypt hash in `/etc/shadow`). The by-hand way verifies no digest;
//! `d2l build` verifies every one.
//!
//! Target: `d2l build` at most 0.5 times the by-hand sequence. d2l's disk here is a BIOS
//! one (`--firmware bios`), as the script's; the same build with `--firmware hybrid` (the
//! default: an ESP with GRUB besides extlinux) is timed against it, target at most 1.1x.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::{check, heading, measure, ratio, remove_and_sync, remove_file, row, Ctx, Fixture};
use crate::util;

/// Target: `d2l build` at most this many times the by-hand sequence.
const D2L_OVER_HAND_MAX: f64 = 0.5;
/// Target: the hybrid BIOS+UEFI build at most this many times the BIOS-only one.
const HYBRID_OVER_BIOS_MAX: f64 = 1.1;
/// The root password both images get.
const PASSWORD: &str = "bench";
/// Where d2l writes the extlinux configuration, inside the filesystem.
const EXTLINUX_DIR: &str = "boot/syslinux";
/// syslinux's MBR boot code, as the script writes it.
const MBR_BIN: &str = "/usr/lib/syslinux/mbr/mbr.bin";
/// `tar -x` options that keep everything `d2l export` wrote.
const TAR_OPTIONS: &[&str] = &["--xattrs", "--xattrs-include=*", "--numeric-owner"];
/// How long a boot may take to reach `login:`.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
/// What the serial console prints when the boot is done.
const LOGIN_PROMPT: &[u8] = b"login:";

/// What the by-hand sequence copies from d2l's disk.
struct Layout {
    /// Disk size in bytes.
    size: u64,
    /// The partition's first sector and its length in sectors.
    start: u64,
    sectors: u64,
    sector_size: u64,
    /// The filesystem UUID.
    uuid: String,
    /// The text of `/boot/syslinux/extlinux.conf`.
    extlinux_conf: String,
}

impl Layout {
    fn offset(&self) -> u64 {
        self.start * self.sector_size
    }

    fn length(&self) -> u64 {
        self.sectors * self.sector_size
    }
}

/// Measures both ways, boots both images and prints the table.
pub(super) fn run(ctx: &Ctx, fixture: &Fixture) -> Result<()> {
    if !util::is_root() {
        bail!("bench disk needs root: the by-hand way uses losetup, mount and chroot");
    }
    for file in [MBR_BIN] {
        if !Path::new(file).is_file() {
            bail!("{file} is missing (package syslinux-common)");
        }
    }
    let tmp = &ctx.tmp;
    let source = format!("oci:{}", fixture.image);
    let rootfs_tar = tmp.join("rootfs.tar");
    let d2l_img = tmp.join("d2l.img");
    let hand_img = tmp.join("hand.img");
    let mnt = tmp.join("mnt");

    println!("setup (untimed): d2l export (for docker export), d2l build once (for the layout)");
    util::run(
        Command::new(&ctx.d2l)
            .args(["export", "--quiet", &source, "-o"])
            .arg(&rootfs_tar),
    )?;
    util::run(&mut d2l_build(&ctx.d2l, &source, &d2l_img, "bios"))?;
    let layout = read_layout(&d2l_img)?;
    remove_file(&d2l_img)?;
    println!(
        "d2l's disk: {} ({} bytes), partition at sector {} of {} sectors, UUID {}",
        util::mib(layout.size),
        layout.size,
        layout.start,
        layout.sectors,
        layout.uuid
    );
    println!("extlinux.conf:");
    for line in layout.extlinux_conf.lines() {
        println!("    | {line}");
    }

    let hybrid = measure(
        "d2l build --firmware hybrid",
        || util::run_silent(&mut d2l_build(&ctx.d2l, &source, &d2l_img, "hybrid")),
        || remove_and_sync(&d2l_img),
    )?;
    let d2l = measure(
        "d2l build --firmware bios",
        || util::run_silent(&mut d2l_build(&ctx.d2l, &source, &d2l_img, "bios")),
        || remove_and_sync(&d2l_img),
    )?;

    std::fs::create_dir_all(&mnt).with_context(|| mnt.display().to_string())?;
    let hand = measure(
        "by hand (truncate .. dd mbr.bin)",
        || by_hand(&layout, &rootfs_tar, &hand_img, &mnt),
        || remove_and_sync(&hand_img),
    )?;
    remove_file(&rootfs_tar)?;

    // The images of the last timed runs are the ones booted.
    println!();
    let boots = [("d2l build", &d2l_img), ("by hand", &hand_img)].map(|(name, img)| {
        print!(
            "booting {name} ({}) in QEMU (TCG) up to `login:` ...",
            img.display()
        );
        super::flush();
        let result = boot(img);
        match &result {
            Ok(d) => println!(" {}", super::secs3(*d)),
            Err(err) => println!(" FAILED: {err:#}"),
        }
        (name, result)
    });
    remove_file(&d2l_img)?;
    remove_file(&hand_img)?;

    println!();
    heading();
    row("d2l build --firmware bios (verifies all)", d2l);
    row("d2l build --firmware hybrid", hybrid);
    row("by hand (verifies none)", hand);
    println!();
    let over = ratio(d2l, hand);
    check(
        "d2l build / by hand",
        &format!("{over:.2}"),
        &format!("target <= {D2L_OVER_HAND_MAX:.1}"),
        over <= D2L_OVER_HAND_MAX,
    );
    let hybrid_over = ratio(hybrid, d2l);
    check(
        "d2l build hybrid / bios",
        &format!("{hybrid_over:.2}"),
        &format!("target <= {HYBRID_OVER_BIOS_MAX:.1}"),
        hybrid_over <= HYBRID_OVER_BIOS_MAX,
    );
    let mut failed = Vec::new();
    for (name, result) in &boots {
        let label = format!("boot {name}");
        match result {
            Ok(d) => println!("{label:<30} {:>10}   reached `login:`", super::secs3(*d)),
            Err(_) => {
                println!("{label:<30} {:>10}   no `login:` (see above)", "FAILED");
                failed.push(*name);
            }
        }
    }
    if !failed.is_empty() {
        bail!("boot failed: {}", failed.join(", "));
    }
    Ok(())
}

/// `d2l build --quiet SOURCE -o OUT --root-password bench --firmware FIRMWARE` (an MBR
/// disk with extlinux, and with `hybrid` an ESP with GRUB too).
fn d2l_build(d2l: &Path, source: &str, out: &Path, firmware: &str) -> Command {
    let mut cmd = Command::new(d2l);
    cmd.args(["build", "--quiet", source, "-o"]).arg(out).args([
        "--root-password",
        PASSWORD,
        "--firmware",
        firmware,
    ]);
    cmd
}

/// Reads d2l's disk: size, partition, filesystem UUID and extlinux.conf.
fn read_layout(img: &Path) -> Result<Layout> {
    let size = std::fs::metadata(img)
        .with_context(|| img.display().to_string())?
        .len();
    let json = util::output(Command::new("sfdisk").arg("-J").arg(img))?;
    let table: Value = serde_json::from_str(&json).context("sfdisk -J")?;
    let table = &table["partitiontable"];
    let parts = table["partitions"]
        .as_array()
        .context("sfdisk -J: no partitions")?;
    let [part] = parts.as_slice() else {
        bail!("d2l's disk has {} partitions, not 1", parts.len());
    };
    let number = |v: &Value, what: &str| v.as_u64().with_context(|| format!("sfdisk -J: {what}"));
    let start = number(&part["start"], "start")?;
    let sectors = number(&part["size"], "size")?;
    let sector_size = table["sectorsize"].as_u64().unwrap_or(512);

    let lo = Loop::attach(img, start * sector_size, sectors * sector_size)?;
    let uuid = util::output(
        Command::new("blkid")
            .args(["-o", "value", "-s", "UUID"])
            .arg(&lo.dev),
    )?
    .trim()
    .to_string();
    let conf_path = format!("/{EXTLINUX_DIR}/extlinux.conf");
    let extlinux_conf = util::output(
        Command::new("debugfs")
            .args(["-R", &format!("cat {conf_path}")])
            .arg(&lo.dev)
            .stderr(Stdio::null()),
    )?;
    lo.detach()?;
    if uuid.is_empty() {
        bail!("blkid found no filesystem UUID on d2l's partition");
    }
    if !extlinux_conf.contains("LABEL") {
        bail!("d2l's image has no usable {conf_path}: {extlinux_conf:?}");
    }
    Ok(Layout {
        size,
        start,
        sectors,
        sector_size,
        uuid,
        extlinux_conf,
    })
}

/// The docker-to-linux sequence, as root: a disk image with one bootable partition, an
/// ext4 filesystem on it holding `rootfs_tar`, extlinux and its MBR code.
fn by_hand(layout: &Layout, rootfs_tar: &Path, img: &Path, mnt: &Path) -> Result<()> {
    util::run_silent(
        Command::new("truncate")
            .args(["-s", &layout.size.to_string()])
            .arg(img),
    )?;
    let script = format!(
        "start={}, size={}, type=83, bootable\n",
        layout.start, layout.sectors
    );
    run_with_input(Command::new("sfdisk").arg("-q").arg(img), script.as_bytes())?;
    let lo = Loop::attach(img, layout.offset(), layout.length())?;
    util::run_silent(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-U", &layout.uuid])
            .arg(&lo.dev),
    )?;
    let mount = Mount::new(&lo.dev, mnt)?;
    util::run_silent(
        Command::new("tar")
            .arg("-xf")
            .arg(rootfs_tar)
            .args(TAR_OPTIONS)
            .arg("-C")
            .arg(mnt),
    )?;
    let dir = mnt.join(EXTLINUX_DIR);
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let conf = dir.join("extlinux.conf");
    std::fs::write(&conf, &layout.extlinux_conf).with_context(|| conf.display().to_string())?;
    util::run_silent(Command::new("extlinux").arg("--install").arg(&dir))?;
    run_with_input(
        Command::new("chroot").arg(mnt).arg("chpasswd"),
        format!("root:{PASSWORD}\n").as_bytes(),
    )?;
    mount.unmount()?;
    lo.detach()?;
    util::run_silent(
        Command::new("dd")
            .arg(format!("if={MBR_BIN}"))
            .arg(format!("of={}", img.display()))
            .args(["bs=440", "count=1", "conv=notrunc", "status=none"]),
    )
}

/// Runs `cmd` with `input` on its standard input; fails unless it exits 0.
fn run_with_input(cmd: &mut Command, input: &[u8]) -> Result<()> {
    let shown = util::display(cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{shown}`"))?;
    let written = child.stdin.take().expect("piped").write_all(input);
    let out = child.wait_with_output()?;
    written.with_context(|| format!("`{shown}`: writing its input"))?;
    if !out.status.success() {
        bail!(
            "`{shown}` failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(())
}

/// A loop device on a byte range of a file, detached on drop unless [`Loop::detach`]ed.
struct Loop {
    dev: String,
    attached: bool,
}

impl Loop {
    fn attach(file: &Path, offset: u64, length: u64) -> Result<Loop> {
        let dev = util::output(
            Command::new("losetup")
                .args(["-f", "--show", "-o", &offset.to_string()])
                .args(["--sizelimit", &length.to_string()])
                .arg(file),
        )?
        .trim()
        .to_string();
        Ok(Loop {
            dev,
            attached: true,
        })
    }

    fn detach(mut self) -> Result<()> {
        self.attached = false;
        util::run_silent(Command::new("losetup").arg("-d").arg(&self.dev))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        if self.attached {
            let _ = util::run_silent(Command::new("losetup").arg("-d").arg(&self.dev));
        }
    }
}

/// A mounted filesystem, unmounted (lazily) on drop unless [`Mount::unmount`]ed.
struct Mount {
    dir: PathBuf,
    mounted: bool,
}

impl Mount {
    fn new(dev: &str, dir: &Path) -> Result<Mount> {
        util::run_silent(Command::new("mount").arg(dev).arg(dir))?;
        Ok(Mount {
            dir: dir.to_path_buf(),
            mounted: true,
        })
    }

    fn unmount(mut self) -> Result<()> {
        self.mounted = false;
        util::run_silent(Command::new("umount").arg(&self.dir))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.mounted {
            let _ = util::run_silent(Command::new("umount").arg("-l").arg(&self.dir));
        }
    }
}

/// QEMU, killed and reaped on drop.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Boots `img` in QEMU (TCG) and reads its serial console until `login:`; returns how long
/// that took. Fails on a timeout or if QEMU exits first, with the console's last lines.
fn boot(img: &Path) -> Result<Duration> {
    let start = Instant::now();
    let mut qemu = Qemu(
        Command::new("qemu-system-x86_64")
            .args([
                "-m",
                "1024",
                "-nographic",
                "-serial",
                "stdio",
                "-monitor",
                "none",
            ])
            .arg("-drive")
            .arg(format!("file={},format=raw,if=virtio", img.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start qemu-system-x86_64")?,
    );
    let mut stdout = qemu.0.stdout.take().expect("piped");
    let (send, receive) = mpsc::channel::<Vec<u8>>();
    // Ends when QEMU's stdout closes (it exited or was killed) or nobody listens any more.
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || send.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut console = Vec::new();
    let outcome = loop {
        let left = BOOT_TIMEOUT.saturating_sub(start.elapsed());
        match receive.recv_timeout(left) {
            Ok(chunk) => {
                // Search only where the prompt could newly appear.
                let from = console.len().saturating_sub(LOGIN_PROMPT.len());
                console.extend_from_slice(&chunk);
                if console[from..]
                    .windows(LOGIN_PROMPT.len())
                    .any(|w| w == LOGIN_PROMPT)
                {
                    break Ok(start.elapsed());
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                break Err(format!("no `login:` within {}s", BOOT_TIMEOUT.as_secs()))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = qemu.0.wait().map(|s| s.to_string()).unwrap_or_default();
                break Err(format!("QEMU exited ({status}) before `login:`"));
            }
        }
    };
    drop(qemu);
    outcome.or_else(|why| {
        let text = String::from_utf8_lossy(&console);
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        bail!("{why}; the console's last lines:\n{tail}")
    })
}
