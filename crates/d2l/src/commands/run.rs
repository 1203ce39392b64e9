//! `d2l run`: boots a disk image in QEMU with software emulation (TCG), its serial console on
//! this terminal (`-nographic -serial mon:stdio`: Ctrl-A X quits, Ctrl-A C switches to the
//! monitor), on QEMU's user network with a host port forwarded to the guest's SSH port. d2l
//! exits with QEMU's status, or, for a machine run by d2l's init, with its command's: the
//! init reports it on the second serial port, which d2l gives a file.
//!
//! The firmware is SeaBIOS for a disk with BIOS boot code in its MBR (d2l's `bios` and
//! `hybrid` disks) and OVMF, with a fresh copy of its variable store, for one without (a
//! `uefi` disk); `--firmware` chooses for a hybrid disk.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cli::{RunArgs, RunFirmware};

/// The emulator `d2l run` starts.
const QEMU: &str = "qemu-system-x86_64";
/// The Debian package that provides it.
const QEMU_PACKAGE: &str = "qemu-system-x86";
/// OVMF's code, run read-only, and the template of its variable store, copied for each run.
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// The Debian package that provides OVMF.
const OVMF_PACKAGE: &str = "ovmf";
/// Bytes of an MBR that hold boot code (before the disk signature).
const MBR_BOOT_CODE: usize = 440;

pub fn run(args: RunArgs) -> Result<()> {
    let memory = crate::cli::memory_mib(args.memory).map_err(anyhow::Error::msg)?;
    let image = &args.image;
    let detected = detect(image).with_context(|| format!("{}", image.display()))?;
    let format = match args.format {
        Some(format) => format,
        None => match detected {
            Detected::BareExt4 => bail!(
                "{}: a bare ext4 filesystem (no partition table, no boot loader) cannot boot \
                 through the BIOS; boot it with a kernel (qemu-system-x86_64 -kernel VMLINUZ \
                 -initrd INITRD -append \"root=/dev/vda console=ttyS0\" -drive \
                 file=IMAGE,format=raw,if=virtio), or build a disk: d2l build without \
                 --table none",
                image.display()
            ),
            Detected::Format(format) => format.to_string(),
        },
    };
    let firmware = match args.firmware {
        Some(firmware) => firmware,
        None if has_bios_boot_code(image)? => RunFirmware::Bios,
        None => RunFirmware::Uefi,
    };
    let ssh_port = match args.ssh_port {
        Some(port) => port,
        None => free_port()?,
    };
    let mut cmd = qemu_command(image, &format, memory, ssh_port);
    // d2l's init writes the command's exit status here (its second serial port).
    let status_dir = tempfile::tempdir().context("a temporary directory for the exit status")?;
    let status_file = status_dir.path().join("status");
    cmd.arg("-serial").arg(format!(
        "file:{}",
        status_file.to_string_lossy().replace(',', ",,")
    ));
    // Lives until QEMU exits: the machine's UEFI variables.
    let _uefi_vars = match firmware {
        RunFirmware::Bios => None,
        RunFirmware::Uefi => Some(add_ovmf(&mut cmd)?),
    };
    // Printed before QEMU takes the terminal: how to reach the machine.
    eprintln!("d2l run: SSH to the machine with `ssh -p {ssh_port} root@127.0.0.1`");
    tracing::info!("running {cmd:?}");
    let status = match cmd.status() {
        Ok(status) => status,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{QEMU} not found: install it (Debian: apt-get install {QEMU_PACKAGE})")
        }
        Err(e) => return Err(e).with_context(|| format!("cannot start {QEMU}")),
    };
    let reported = std::fs::read_to_string(&status_file)
        .ok()
        .and_then(|text| d2l_init::config::parse_status(&text));
    if let (Some(code), Some(0)) = (reported, status.code()) {
        // The machine powered off after its command: its status is the run's.
        if code != 0 {
            std::process::exit(code.clamp(0, 255));
        }
        return Ok(());
    }
    match status.code() {
        Some(0) => Ok(()),
        // QEMU already said what went wrong on the terminal: pass its status on.
        Some(code) => std::process::exit(code),
        None => {
            use std::os::unix::process::ExitStatusExt;
            let signal = status.signal().unwrap_or(0);
            std::process::exit(128 + signal)
        }
    }
}

/// The QEMU command line for `image`, with 127.0.0.1:`ssh_port` forwarded to the guest's
/// port 22 on a virtio NIC (QEMU's user networking: DHCP gives the guest 10.0.2.15).
fn qemu_command(image: &Path, format: &str, memory_mib: u64, ssh_port: u16) -> Command {
    // QEMU's option syntax doubles commas inside a value.
    let file = image.to_string_lossy().replace(',', ",,");
    let mut cmd = Command::new(QEMU);
    cmd.args(["-machine", "accel=tcg", "-m"])
        .arg(memory_mib.to_string())
        .args(["-nographic", "-serial", "mon:stdio", "-drive"])
        .arg(format!("file={file},format={format},if=virtio"))
        .arg("-netdev")
        .arg(format!("user,id=n0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22"))
        .args(["-device", "virtio-net-pci,netdev=n0"]);
    cmd
}

/// Adds OVMF to `cmd`: its code read-only, and a copy of its variable store in a temporary
/// directory, which the caller keeps until QEMU exits.
fn add_ovmf(cmd: &mut Command) -> Result<tempfile::TempDir> {
    if !Path::new(OVMF_CODE).is_file() || !Path::new(OVMF_VARS).is_file() {
        bail!(
            "UEFI firmware not found ({OVMF_CODE}): install it (Debian: apt-get install \
             {OVMF_PACKAGE}), or boot through the BIOS with --firmware bios"
        );
    }
    let dir = tempfile::tempdir().context("a temporary directory for OVMF's variables")?;
    let vars = dir.path().join("OVMF_VARS.fd");
    std::fs::copy(OVMF_VARS, &vars).with_context(|| format!("copying {OVMF_VARS}"))?;
    let vars = vars.to_string_lossy().replace(',', ",,");
    cmd.arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"
        ))
        .arg("-drive")
        .arg(format!("if=pflash,format=raw,unit=1,file={vars}"));
    Ok(dir)
}

/// Whether the disk's first sector holds BIOS boot code: d2l's `bios` and `hybrid` disks do,
/// `uefi` ones do not. Read through the image's format; an image d2l cannot read (a
/// differencing disk, a VHDX with a log to replay) is taken to boot through the BIOS,
/// QEMU's default.
fn has_bios_boot_code(image: &Path) -> Result<bool> {
    let file = File::open(image).with_context(|| format!("{}", image.display()))?;
    let Ok(disk) = d2l_disk_format::open(file) else {
        return Ok(true);
    };
    let mut sector = [0u8; 512];
    disk.read_at(&mut sector, 0)
        .with_context(|| format!("{}: reading the first sector", image.display()))?;
    Ok(sector[..MBR_BOOT_CODE].iter().any(|&b| b != 0))
}

/// A TCP port of 127.0.0.1 free now (the kernel's pick), for QEMU to listen on.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .context("cannot find a free port on 127.0.0.1 for --ssh-port")?;
    Ok(listener
        .local_addr()
        .context("cannot find a free port")?
        .port())
}

/// What an image file holds, from its magic bytes.
#[derive(Debug, PartialEq, Eq)]
enum Detected {
    /// A disk in this QEMU format.
    Format(&'static str),
    /// An ext4 (or ext2/3) filesystem starting at byte 0: nothing a BIOS boots.
    BareExt4,
}

/// Detects the format of `image`: qcow2, vdi, vmdk, vhdx, vpc (VHD), a bare ext filesystem,
/// else raw.
fn detect(image: &Path) -> Result<Detected> {
    let mut file = File::open(image).context("cannot open the image")?;
    let meta = file.metadata().context("cannot stat the image")?;
    if meta.is_dir() {
        bail!("is a directory, not a disk image");
    }
    let mut head = Vec::with_capacity(2048);
    file.by_ref()
        .take(2048)
        .read_to_end(&mut head)
        .context("cannot read the image")?;
    // A VHD's footer is its last 512 bytes (fixed disks keep one only there).
    let mut footer = [0u8; 8];
    let len = meta.len();
    if len >= 512 + 8 {
        file.read_exact_at(&mut footer, len - 512)
            .context("cannot read the image")?;
    }
    Ok(detect_bytes(&head, &footer))
}

fn detect_bytes(head: &[u8], footer: &[u8]) -> Detected {
    use d2l_disk_format::Format;
    match d2l_disk_format::detect_bytes(head, footer) {
        Format::Raw if head.get(1080..1082) == Some(&0xef53_u16.to_le_bytes()) => {
            Detected::BareExt4
        }
        format => Detected::Format(format.qemu_name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory() {
        let mib = |s: &str| crate::cli::memory_mib(s.parse().unwrap());
        assert_eq!(mib("1G").unwrap(), 1024);
        assert_eq!(mib("512M").unwrap(), 512);
        assert_eq!(mib("1536MiB").unwrap(), 1536);
        assert_eq!(mib("2097152k").unwrap(), 2048);
        assert!(mib("1K").is_err(), "not whole MiB");
        assert!(mib("1000000")
            .unwrap_err()
            .to_string()
            .contains("whole number of MiB"));
        assert!(mib("8M").unwrap_err().to_string().contains("too little"));
    }

    #[test]
    fn magic() {
        let mut head = vec![0u8; 2048];
        assert_eq!(detect_bytes(&head, &[0; 8]), Detected::Format("raw"));
        head[1080..1082].copy_from_slice(&[0x53, 0xef]);
        assert_eq!(detect_bytes(&head, &[0; 8]), Detected::BareExt4);
        assert_eq!(detect_bytes(&head, b"conectix"), Detected::Format("vpc"));
        head[..4].copy_from_slice(b"QFI\xfb");
        assert_eq!(detect_bytes(&head, &[0; 8]), Detected::Format("qcow2"));
        head[..4].copy_from_slice(b"KDMV");
        assert_eq!(detect_bytes(&head, &[0; 8]), Detected::Format("vmdk"));
        let mut vdi = vec![0u8; 512];
        vdi[0x40..0x44].copy_from_slice(&[0x7f, 0x10, 0xda, 0xbe]);
        assert_eq!(detect_bytes(&vdi, &[0; 8]), Detected::Format("vdi"));
        assert_eq!(detect_bytes(b"vhdxfile", &[0; 8]), Detected::Format("vhdx"));
        assert_eq!(detect_bytes(b"", &[0; 8]), Detected::Format("raw"));
    }

    #[test]
    fn command_is_tcg_on_virtio() {
        let cmd = qemu_command(Path::new("/x/a,b.img"), "raw", 1024, 2222);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            "-machine accel=tcg -m 1024 -nographic -serial mon:stdio \
             -drive file=/x/a,,b.img,format=raw,if=virtio \
             -netdev user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22 -device virtio-net-pci,netdev=n0"
        );
        let port = free_port().unwrap();
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
    }
}
