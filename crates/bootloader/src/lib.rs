//! Offline extlinux install: everything needed to make an ext4 partition boot with SYSLINUX
//! without mounting it or running `extlinux`.
//!
//! - [`Syslinux`]: the pieces of one syslinux build (boot sector template, `ldlinux.sys`,
//!   `ldlinux.c32`, `mbr.bin`, `gptmbr.bin`), loaded from a directory or extracted from the
//!   host's packages, and the pure functions that patch them for a placement:
//!   [`Syslinux::patched_ldlinux`] and [`Syslinux::boot_sector`].
//! - [`extlinux_conf`]: the configuration file text.
//! - [`GrubEfi`] and [`grub_cfg`]: the UEFI boot loader (GRUB's EFI application made by the
//!   host's `grub-mkimage`) and its configuration, for the ESP.
//! - [`find_kernel`]: the kernel and initrd to boot ([`BootFiles`]), found in the image tree
//!   (Debian, Ubuntu, Fedora, RHEL, Alpine layouts) or given with `--kernel`/`--initrd`.
//!
//! The facts behind the byte layout are in `shared/notes/extlinux-offline.md`.
//!
//! ```no_run
//! # fn main() -> d2l_bootloader::Result<()> {
//! use d2l_bootloader::Syslinux;
//! let cache = d2l_bootloader::default_cache_dir().expect("a home directory");
//! let sl = Syslinux::load(None, &cache)?;
//! // ldlinux.sys placed contiguously from sector 8200 of the partition:
//! let n = sl.ldlinux_sys().len() as u64 / 512;
//! let sectors: Vec<u64> = (8200..8200 + n).collect();
//! let file = sl.patched_ldlinux(&sectors, "/boot/syslinux")?;
//! let boot = sl.boot_sector(sectors[0], 2048, 1 << 20)?;
//! # let _ = (file, boot); Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod assets;
mod conf;
mod error;
mod grub;
mod kernel;
mod ldlinux;

pub use assets::{default_cache_dir, Syslinux};
pub use conf::extlinux_conf;
pub use error::{Error, Result};
pub use grub::{grub_cfg, EfiArch, GrubEfi, GRUB_CFG_PATH};
pub use kernel::{find_kernel, BootFiles};
