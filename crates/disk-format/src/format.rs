//! Which format a disk image is in: from the name the user gives it, or from its bytes.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::str::FromStr;

/// A disk image format d2l writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// The disk's bytes as they are, sparse.
    Raw,
    /// QEMU's copy-on-write format, version 3.
    Qcow2,
    /// VirtualBox's disk image, dynamic.
    Vdi,
    /// VMware's virtual disk: monolithicSparse or streamOptimized.
    Vmdk,
    /// Microsoft's virtual hard disk (Hyper-V, Azure, Virtual PC): dynamic or fixed.
    Vhd,
    /// Hyper-V's virtual hard disk v2 (Windows Server 2012 and later): dynamic.
    Vhdx,
}

impl Format {
    /// Every format, in the order the CLI lists them.
    pub const ALL: [Format; 6] = [
        Format::Raw,
        Format::Qcow2,
        Format::Vdi,
        Format::Vmdk,
        Format::Vhd,
        Format::Vhdx,
    ];

    /// The name on the command line: `raw`, `qcow2`, `vdi`, `vmdk`, `vhd`, `vhdx`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Vdi => "vdi",
            Format::Vmdk => "vmdk",
            Format::Vhd => "vhd",
            Format::Vhdx => "vhdx",
        }
    }

    /// QEMU's name for the format (`-drive format=`, `qemu-img -f`): VHD is `vpc`.
    pub fn qemu_name(self) -> &'static str {
        match self {
            Format::Vhd => "vpc",
            other => other.name(),
        }
    }

    /// The format a file name asks for: `.img` and `.raw` are raw, `.qcow2`, `.vdi`,
    /// `.vmdk`, `.vhd` and `.vhdx` their formats (any case). `None` for any other name (`rootfs.ext4`),
    /// which callers write raw.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "img" | "raw" => Some(Format::Raw),
            "qcow2" => Some(Format::Qcow2),
            "vdi" => Some(Format::Vdi),
            "vmdk" => Some(Format::Vmdk),
            "vhd" => Some(Format::Vhd),
            "vhdx" => Some(Format::Vhdx),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!("unknown disk format {s:?}: expected raw, qcow2, vdi, vmdk, vhd or vhdx")
            })
    }
}

/// How a VMDK is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VmdkSubformat {
    /// `monolithicSparse`: one file, grains allocated as written (VMware Workstation,
    /// VirtualBox, QEMU).
    #[default]
    Sparse,
    /// `streamOptimized`: deflated grains in disk order, tables at the end (what OVA files
    /// and vSphere imports carry).
    Stream,
}

/// How a VHD is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VhdSubformat {
    /// Blocks allocated as written, behind a block allocation table.
    #[default]
    Dynamic,
    /// The disk's bytes followed by a footer; the size a multiple of 1 MiB (what Azure
    /// requires).
    Fixed,
}

/// qcow2's magic, `QFI\xfb` (qcow2.txt, "Header").
pub const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";
/// VDI's signature 0xbeda107f, little-endian at byte 0x40 (VirtualBox VDICore.h).
pub const VDI_SIGNATURE_OFFSET: usize = 0x40;
/// VDI's signature value.
pub const VDI_SIGNATURE: u32 = 0xbeda_107f;
/// A VMDK sparse extent's magic (VMDK spec 1.1, "Header": `KDMV`).
pub const VMDK_MAGIC: [u8; 4] = *b"KDMV";
/// A VHD footer's cookie (VHD spec, "Hard Disk Footer Format").
pub const VHD_COOKIE: [u8; 8] = *b"conectix";
/// VHDX's file type identifier (MS-VHDX 2.2.1).
pub const VHDX_SIGNATURE: [u8; 8] = *b"vhdxfile";

/// Detects the format of `file` by its magic numbers (and, for a VHD, its last 512 bytes);
/// anything unrecognised is raw.
pub fn detect(file: &File) -> std::io::Result<Format> {
    let len = file.metadata()?.len();
    let mut head = vec![0u8; len.min(512) as usize];
    file.read_exact_at(&mut head, 0)?;
    let mut tail = [0u8; 8];
    if len >= 1024 {
        file.read_exact_at(&mut tail, len - 512)?;
    }
    Ok(detect_bytes(&head, &tail))
}

/// [`detect`] on the first bytes of a file (up to 512) and the first 8 of its last 512.
pub fn detect_bytes(head: &[u8], tail: &[u8]) -> Format {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    if at(0, &QCOW2_MAGIC) {
        Format::Qcow2
    } else if at(VDI_SIGNATURE_OFFSET, &VDI_SIGNATURE.to_le_bytes()) {
        Format::Vdi
    } else if at(0, &VMDK_MAGIC) || at(0, b"# Disk DescriptorFile") {
        Format::Vmdk
    } else if at(0, &VHDX_SIGNATURE) {
        Format::Vhdx
    } else if at(0, &VHD_COOKIE) || tail.starts_with(&VHD_COOKIE) {
        Format::Vhd
    } else {
        Format::Raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_qemu_calls_vhd_vpc() {
        for format in Format::ALL {
            assert_eq!(format.name().parse::<Format>(), Ok(format));
        }
        assert_eq!(Format::Vhd.qemu_name(), "vpc");
        assert_eq!(Format::Qcow2.qemu_name(), "qcow2");
        assert_eq!(Format::Vhdx.qemu_name(), "vhdx");
        assert!("vpc".parse::<Format>().is_err());
    }

    #[test]
    fn extensions() {
        let of = |p: &str| Format::from_path(Path::new(p));
        assert_eq!(of("linux.img"), Some(Format::Raw));
        assert_eq!(of("a/b.RAW"), Some(Format::Raw));
        assert_eq!(of("linux.qcow2"), Some(Format::Qcow2));
        assert_eq!(of("linux.vdi"), Some(Format::Vdi));
        assert_eq!(of("linux.Vmdk"), Some(Format::Vmdk));
        assert_eq!(of("linux.vhd"), Some(Format::Vhd));
        assert_eq!(of("linux.VHDX"), Some(Format::Vhdx));
        assert_eq!(of("rootfs.ext4"), None);
        assert_eq!(of("disk"), None);
    }

    #[test]
    fn magic_numbers() {
        let mut head = vec![0u8; 512];
        assert_eq!(detect_bytes(&head, &[0; 8]), Format::Raw);
        assert_eq!(detect_bytes(&head, b"conectix"), Format::Vhd);
        head[..4].copy_from_slice(b"QFI\xfb");
        assert_eq!(detect_bytes(&head, &[0; 8]), Format::Qcow2);
        head[..4].copy_from_slice(b"KDMV");
        assert_eq!(detect_bytes(&head, &[0; 8]), Format::Vmdk);
        let mut vdi = vec![0u8; 512];
        vdi[0x40..0x44].copy_from_slice(&[0x7f, 0x10, 0xda, 0xbe]);
        assert_eq!(detect_bytes(&vdi, &[0; 8]), Format::Vdi);
        assert_eq!(detect_bytes(b"vhdxfile", &[0; 8]), Format::Vhdx);
        assert_eq!(detect_bytes(b"conectix", &[0; 8]), Format::Vhd);
        assert_eq!(detect_bytes(b"", &[0; 8]), Format::Raw);
    }
}
