//! The files other tools import: archives that wrap a disk image with what the importer
//! needs around it. Not disk formats ([`Format`] is what the disk inside is in), but written
//! the same way: [`create_bundle`] gives an [`ImageWriter`] whose writes go to a sparse
//! scratch file (as for streamOptimized VMDK), and `finish` writes the archive straight into
//! the output, front to back, with the disk in disk order inside it.
//!
//! - [`Bundle::Ova`] (`.ova`): an OVF 1.0 descriptor with the virtual hardware
//!   ([`Hardware`]), a manifest of SHA-256 digests, a streamOptimized VMDK (`ova.rs`).
//! - [`Bundle::GceTarGz`] (`.tar.gz`, `.tgz`): a Google Compute Engine image, `disk.raw` as a
//!   sparse GNU tar member, gzip-compressed, the size whole GiB (`gce.rs`).
//! - [`Bundle::VagrantBox`] (`.box`): a box for vagrant-libvirt, `metadata.json`, a
//!   Vagrantfile ([`VagrantSsh`]) and `box.img` in qcow2 (`vagrant.rs`).
//!
//! Members are deterministic (`tar.rs`): owner 0:0, mode 0644, mtime from
//! [`WriteOptions::timestamp`], names from the output's name (OVA) or fixed.

mod gce;
mod gzip;
mod ova;
mod tar;
mod vagrant;

use std::fmt;
use std::fs::File;
use std::path::Path;

pub use gce::{GCE_DISK_NAME, GCE_SIZE_UNIT};
pub use ova::{MAX_CPUS, MIN_MEMORY_MIB};
pub use vagrant::VAGRANT_DISK_NAME;

use crate::staged::{Staged, Target};
use crate::{Error, Format, ImageWriter, Result, WriteOptions, MIB};

/// An archive that carries a disk for another tool to import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bundle {
    /// An OVA for VirtualBox and VMware: OVF descriptor, manifest, streamOptimized VMDK.
    Ova,
    /// A Google Compute Engine image: `disk.raw` in a sparse GNU tar, gzip-compressed.
    GceTarGz,
    /// A Vagrant box for the libvirt provider: metadata, Vagrantfile, qcow2.
    VagrantBox,
}

impl Bundle {
    /// Every bundle.
    pub const ALL: [Bundle; 3] = [Bundle::Ova, Bundle::GceTarGz, Bundle::VagrantBox];

    /// The bundle a file name asks for: `.ova`, `.tar.gz` or `.tgz`, `.box` (any case).
    pub fn from_path(path: &Path) -> Option<Bundle> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let (stem, ext) = name.rsplit_once('.')?;
        match ext {
            _ if stem.is_empty() => None,
            "ova" => Some(Bundle::Ova),
            "tgz" => Some(Bundle::GceTarGz),
            "gz" if stem.ends_with(".tar") && stem.len() > ".tar".len() => Some(Bundle::GceTarGz),
            "box" => Some(Bundle::VagrantBox),
            _ => None,
        }
    }

    /// Its short name: `ova`, `gce`, `vagrant`.
    pub fn name(self) -> &'static str {
        match self {
            Bundle::Ova => "ova",
            Bundle::GceTarGz => "gce",
            Bundle::VagrantBox => "vagrant",
        }
    }

    /// The format of the disk inside.
    pub fn disk_format(self) -> Format {
        match self {
            Bundle::Ova => Format::Vmdk,
            Bundle::GceTarGz => Format::Raw,
            Bundle::VagrantBox => Format::Qcow2,
        }
    }

    /// The archive member holding the disk, for an output named `file_name`.
    pub fn disk_member(self, file_name: &str) -> String {
        match self {
            Bundle::Ova => ova::Names::new(file_name).disk,
            Bundle::GceTarGz => GCE_DISK_NAME.to_owned(),
            Bundle::VagrantBox => VAGRANT_DISK_NAME.to_owned(),
        }
    }

    /// The size of the disk inside for a disk of `size` bytes: whole GiB for Compute Engine,
    /// whole MiB for the others (as every format but raw).
    pub fn disk_size(self, size: u64) -> u64 {
        match self {
            Bundle::GceTarGz => size.next_multiple_of(GCE_SIZE_UNIT),
            Bundle::Ova | Bundle::VagrantBox => size.next_multiple_of(MIB),
        }
    }
}

impl fmt::Display for Bundle {
    /// How summaries name it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bundle::Ova => "OVA (OVF 1.0, streamOptimized VMDK)",
            Bundle::GceTarGz => "Compute Engine image (sparse disk.raw in a gzip tar)",
            Bundle::VagrantBox => "Vagrant box (libvirt, qcow2)",
        })
    }
}

/// The virtual machine an OVA describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hardware {
    /// Virtual CPUs: 1 to [`MAX_CPUS`].
    pub cpus: u16,
    /// Memory in MiB: at least [`MIN_MEMORY_MIB`].
    pub memory_mib: u64,
}

impl Default for Hardware {
    /// 2 CPUs, 1 GiB (what `d2l run` gives a machine).
    fn default() -> Self {
        Hardware {
            cpus: 2,
            memory_mib: 1024,
        }
    }
}

/// Who Vagrant logs in as, which the box's Vagrantfile says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VagrantSsh {
    /// The user (`vagrant` by Vagrant's convention).
    pub user: String,
    /// The machine authorizes the user's own keys (`--ssh-key`), not Vagrant's insecure
    /// ones: the Vagrantfile tells how to point Vagrant at the private key.
    pub own_key: bool,
}

impl Default for VagrantSsh {
    /// Vagrant's convention: user `vagrant`, the insecure keys.
    fn default() -> Self {
        VagrantSsh {
            user: "vagrant".to_owned(),
            own_key: false,
        }
    }
}

/// How to write a bundle.
#[derive(Debug, Clone)]
pub struct BundleOptions {
    /// The bundle.
    pub bundle: Bundle,
    /// The disk inside: identity, timestamp (also every member's mtime), the output's file
    /// name (the OVA's members are named after it), scratch directory; `compress` deflates a
    /// Vagrant box's qcow2. Its format is the bundle's ([`Bundle::disk_format`]).
    pub disk: WriteOptions,
    /// The disk boots only through UEFI (OVA: EFI firmware; box: a note in the
    /// Vagrantfile).
    pub uefi_only: bool,
    /// OVA only: the machine.
    pub hardware: Hardware,
    /// Vagrant box only: its SSH user.
    pub vagrant: VagrantSsh,
}

impl BundleOptions {
    /// Defaults for `bundle` written to an output named `file_name`.
    pub fn new(bundle: Bundle, file_name: &str) -> Self {
        BundleOptions {
            bundle,
            disk: WriteOptions::new(bundle.disk_format(), file_name),
            uefi_only: false,
            hardware: Hardware::default(),
            vagrant: VagrantSsh::default(),
        }
    }
}

/// Creates a writer of `options.bundle` over `file` (empty, open for reading and writing).
///
/// Errors if the options do not fit: `compress` is for a Vagrant box (an OVA's VMDK and a
/// Compute Engine image are always compressed), CPUs and memory within bounds.
pub fn create_bundle(file: File, options: &BundleOptions) -> Result<Box<dyn ImageWriter>> {
    if options.disk.compress && options.bundle != Bundle::VagrantBox {
        return Err(Error::Options(format!(
            "--compress is for qcow2 images and Vagrant boxes, not {} (already compressed)",
            options.bundle
        )));
    }
    let hw = &options.hardware;
    if !(1..=MAX_CPUS).contains(&hw.cpus) {
        return Err(Error::Options(format!(
            "{} CPUs: an OVA's machine has 1 to {MAX_CPUS}",
            hw.cpus
        )));
    }
    if hw.memory_mib < MIN_MEMORY_MIB {
        return Err(Error::Options(format!(
            "{} MiB of memory: an OVA's machine has at least {MIN_MEMORY_MIB}",
            hw.memory_mib
        )));
    }
    let mut options = options.clone();
    options.disk.format = options.bundle.disk_format();
    let disk = options.disk.clone();
    Ok(Box::new(Staged::new(
        file,
        Target::Bundle(Box::new(options)),
        &disk,
    )?))
}

/// Writes the bundle into `out` from the scratch file's first `len` bytes (the disk).
pub(crate) fn write(out: &File, scratch: &File, len: u64, options: &BundleOptions) -> Result<()> {
    let size = options.bundle.disk_size(len);
    let end = match options.bundle {
        Bundle::Ova => ova::write(out, scratch, size, options)?,
        Bundle::GceTarGz => gce::write(out, scratch, size, options)?,
        Bundle::VagrantBox => vagrant::write(out, scratch, size, options)?,
    };
    out.set_len(end)
        .map_err(Error::output("sizing the archive", end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions() {
        let of = |p: &str| Bundle::from_path(Path::new(p));
        assert_eq!(of("vm.ova"), Some(Bundle::Ova));
        assert_eq!(of("a/VM.OVA"), Some(Bundle::Ova));
        assert_eq!(of("image.tar.gz"), Some(Bundle::GceTarGz));
        assert_eq!(of("image.TGZ"), Some(Bundle::GceTarGz));
        assert_eq!(of("debian.box"), Some(Bundle::VagrantBox));
        for other in [
            "x.gz", ".tar.gz", ".box", "x.img", "box", "tar.gz", "x.vmdk",
        ] {
            assert_eq!(of(other), None, "{other}");
        }
    }

    #[test]
    fn disk_inside() {
        assert_eq!(Bundle::Ova.disk_member("linux.ova"), "linux-disk1.vmdk");
        assert_eq!(Bundle::GceTarGz.disk_member("x.tar.gz"), "disk.raw");
        assert_eq!(Bundle::VagrantBox.disk_member("x.box"), "box.img");
        assert_eq!(Bundle::GceTarGz.disk_size(1), 1 << 30);
        assert_eq!(Bundle::GceTarGz.disk_size(1 << 30), 1 << 30);
        assert_eq!(Bundle::Ova.disk_size((3 << 20) + 1), 4 << 20);
    }

    #[test]
    fn options_are_checked() {
        let refused = |options: &BundleOptions| {
            create_bundle(tempfile::tempfile().unwrap(), options)
                .err()
                .expect("refused")
                .to_string()
        };
        let mut ova = BundleOptions::new(Bundle::Ova, "vm.ova");
        ova.disk.compress = true;
        assert!(refused(&ova).contains("--compress"));
        ova.disk.compress = false;
        ova.hardware.cpus = 0;
        assert!(refused(&ova).contains("1 to 64"));
        ova.hardware.cpus = 65;
        assert!(refused(&ova).contains("1 to 64"));
        ova.hardware.cpus = 1;
        ova.hardware.memory_mib = 8;
        assert!(refused(&ova).contains("at least 16"));
        let mut vagrant = BundleOptions::new(Bundle::VagrantBox, "x.box");
        vagrant.disk.compress = true;
        assert!(create_bundle(tempfile::tempfile().unwrap(), &vagrant).is_ok());
    }
}
