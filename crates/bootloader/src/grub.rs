//! GRUB as the UEFI boot loader: a standalone EFI image made at build time by the host's
//! `grub-mkimage` from the modules its package ships, and the `grub.cfg` beside it on the
//! ESP.
//!
//! GRUB rather than systemd-boot or syslinux.efi because it reads ext4 and follows its
//! symbolic links: the kernel and initrd stay in the root filesystem, where the guest's
//! package manager replaces them, and the configuration names the links the distribution
//! moves on upgrade (`/vmlinuz`, `/initrd.img`), so the disk keeps booting the newest
//! kernel. The other two read only FAT, so kernels would have to be copied to the ESP by a
//! hook inside the guest.

use std::path::Path;
use std::process::Command;

use crate::assets::find_in_path;
use crate::conf::{kernel_cmdline, SERIAL_ARM64, SERIAL_X86};
use crate::error::{io, Error, Result};

/// Where GRUB looks for its configuration on the device it was loaded from (the ESP).
const PREFIX: &str = "/EFI/BOOT";
/// The configuration file on the ESP, relative to its root.
pub const GRUB_CFG_PATH: &str = "EFI/BOOT/grub.cfg";
/// Where Debian installs GRUB's module directories (`x86_64-efi`, `arm64-efi`).
const MODULE_ROOT: &str = "/usr/lib/grub";
/// Seconds GRUB shows its menu (as extlinux's one-second timeout).
const TIMEOUT_SECONDS: u32 = 1;

/// The modules built into the image: partition tables, the ESP's FAT and the root's ext4,
/// the commands `grub.cfg` uses, the serial console, and video for the kernel's EFI
/// framebuffer.
const MODULES: &[&str] = &[
    "part_gpt",
    "part_msdos",
    "fat",
    "ext2",
    "normal",
    "configfile",
    "search",
    "search_fs_uuid",
    "linux",
    "boot",
    "echo",
    "test",
    "serial",
    "terminal",
    "all_video",
    "gzio",
];

/// PE/COFF executables, EFI applications included, start with the DOS header's "MZ".
const PE_MAGIC: &[u8] = b"MZ";

/// A UEFI machine architecture d2l writes disks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EfiArch {
    /// x86-64 (`BOOTX64.EFI`).
    X86_64,
    /// 64-bit ARM (`BOOTAA64.EFI`).
    Aarch64,
}

impl EfiArch {
    /// GRUB's platform name, also its module directory.
    fn grub_target(self) -> &'static str {
        match self {
            EfiArch::X86_64 => "x86_64-efi",
            EfiArch::Aarch64 => "arm64-efi",
        }
    }

    /// The Debian package with GRUB's modules for this architecture.
    pub fn grub_package(self) -> &'static str {
        match self {
            EfiArch::X86_64 => "grub-efi-amd64-bin",
            EfiArch::Aarch64 => "grub-efi-arm64-bin",
        }
    }

    /// The removable-media boot path on the ESP (UEFI spec 2.10 §3.5.1.1): firmware boots
    /// it without any boot entry in NVRAM.
    pub fn removable_path(self) -> &'static str {
        match self {
            EfiArch::X86_64 => "EFI/BOOT/BOOTX64.EFI",
            EfiArch::Aarch64 => "EFI/BOOT/BOOTAA64.EFI",
        }
    }
}

/// GRUB's EFI application for one architecture, made from the host's packages.
#[derive(Debug, Clone)]
pub struct GrubEfi {
    arch: EfiArch,
    image: Vec<u8>,
}

impl GrubEfi {
    /// Runs `grub-mkimage` (Debian package `grub-common`) on the modules of `arch` (package
    /// [`EfiArch::grub_package`]) into a temporary directory; a few milliseconds, and the
    /// same modules give the same bytes.
    pub fn from_host(arch: EfiArch) -> Result<GrubEfi> {
        let modules = Path::new(MODULE_ROOT).join(arch.grub_target());
        if !modules.join("moddep.lst").is_file() {
            // Another architecture's package installs beside the host's only as a foreign
            // one.
            let foreign = match arch {
                EfiArch::Aarch64 if std::env::consts::ARCH != "aarch64" => {
                    "; on this host: dpkg --add-architecture arm64, apt-get update, then \
                     apt-get install grub-efi-arm64-bin:arm64"
                }
                _ => "",
            };
            return Err(Error::MissingPackage {
                what: format!(
                    "GRUB's {} modules ({}{foreign})",
                    arch.grub_target(),
                    modules.display()
                ),
                package: arch.grub_package(),
            });
        }
        let mkimage = find_in_path("grub-mkimage").ok_or_else(|| Error::MissingPackage {
            what: "`grub-mkimage`".into(),
            package: "grub-common",
        })?;
        let scratch = tempfile::tempdir().map_err(io(std::env::temp_dir()))?;
        let output = scratch.path().join("grub.efi");
        let mut command = Command::new(&mkimage);
        command
            .arg("--directory")
            .arg(&modules)
            .args([
                "--format",
                arch.grub_target(),
                "--prefix",
                PREFIX,
                "--output",
            ])
            .arg(&output)
            .args(MODULES);
        let run = command.output().map_err(io(&mkimage))?;
        if !run.status.success() {
            return Err(Error::Tool {
                command: format!("{command:?}"),
                status: run.status,
                stderr: String::from_utf8_lossy(&run.stderr).trim().to_owned(),
            });
        }
        let image = std::fs::read(&output).map_err(io(&output))?;
        if !image.starts_with(PE_MAGIC) {
            return Err(Error::Invalid {
                path: output,
                reason: "grub-mkimage wrote no EFI application (no PE header)".into(),
            });
        }
        Ok(GrubEfi { arch, image })
    }

    /// The architecture it boots.
    pub fn arch(&self) -> EfiArch {
        self.arch
    }

    /// The EFI application, for [`EfiArch::removable_path`] on the ESP.
    pub fn image(&self) -> &[u8] {
        &self.image
    }
}

/// The `grub.cfg` for one kernel on `arch`: a one-second menu, the root filesystem found by
/// its UUID, one entry booting `kernel` with `initrd` and the same command line as
/// [`extlinux_conf`](crate::extlinux_conf), the serial console being arm64's ttyAMA0 there.
/// On x86-64 GRUB drives the first serial port itself (menu on the screen and ttyS0); arm64
/// GRUB has no serial driver for it, and the firmware already mirrors its console there.
pub fn grub_cfg(
    arch: EfiArch,
    kernel: &str,
    initrd: Option<&str>,
    root_uuid: &str,
    extra_cmdline: &str,
) -> String {
    let mut s =
        String::from("# Written by d2l: boots the root filesystem's kernel, as extlinux does.\n");
    let serial = match arch {
        EfiArch::X86_64 => {
            s.push_str("serial --unit=0 --speed=115200\n");
            s.push_str("terminal_input console serial\n");
            s.push_str("terminal_output console serial\n");
            SERIAL_X86
        }
        EfiArch::Aarch64 => SERIAL_ARM64,
    };
    s.push_str("set default=0\n");
    s.push_str(&format!("set timeout={TIMEOUT_SECONDS}\n"));
    s.push_str(&format!(
        "search --no-floppy --fs-uuid --set=root {root_uuid}\n"
    ));
    s.push_str("menuentry \"Linux\" {\n");
    s.push_str(&format!(
        "    linux {} {}\n",
        quote(kernel),
        kernel_cmdline(root_uuid, serial, extra_cmdline)
    ));
    if let Some(initrd) = initrd {
        s.push_str(&format!("    initrd {}\n", quote(initrd)));
    }
    s.push_str("}\n");
    s
}

/// A path as one GRUB word: single-quoted when it holds anything but plain characters.
fn quote(path: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@".contains(c);
    if path.chars().all(plain) {
        path.to_owned()
    } else {
        format!("'{}'", path.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_the_kernel_initrd_and_root_like_extlinux() {
        let c = grub_cfg(
            EfiArch::X86_64,
            "/vmlinuz",
            Some("/initrd.img"),
            "1234-uuid",
            " quiet ",
        );
        assert!(
            c.contains("search --no-floppy --fs-uuid --set=root 1234-uuid\n"),
            "{c}"
        );
        assert!(
            c.contains(
                "    linux /vmlinuz root=UUID=1234-uuid rw rootfstype=ext4 console=tty0 \
                 console=ttyS0,115200n8 quiet\n"
            ),
            "{c}"
        );
        assert!(c.contains("    initrd /initrd.img\n"), "{c}");
        assert!(c.contains("set timeout=1\n"), "{c}");
        assert!(c.contains("serial --unit=0"), "{c}");
        let c = grub_cfg(EfiArch::X86_64, "/boot/odd name's", None, "u", "");
        assert!(
            c.contains(r"linux '/boot/odd name'\''s' root=UUID=u"),
            "{c}"
        );
        assert!(!c.contains("initrd"), "{c}");
    }

    #[test]
    fn arm64_config_has_no_grub_serial_and_a_pl011_console() {
        // GRUB 2.06 for arm64-efi has no com0 (`serial` fails, three error lines at boot);
        // the firmware mirrors the console on the serial port, where the kernel's is
        // ttyAMA0 (booted in qemu-system-aarch64 with AAVMF).
        let c = grub_cfg(EfiArch::Aarch64, "/vmlinuz", None, "u", "");
        assert!(!c.contains("serial"), "{c}");
        assert!(!c.contains("terminal_"), "{c}");
        assert!(c.contains("console=tty0 console=ttyAMA0,115200n8"), "{c}");
        assert!(!c.contains("ttyS0"), "{c}");
    }
}
