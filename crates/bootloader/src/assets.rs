//! Loading the pieces of one syslinux build, from a directory or from the host's packages.

use crate::error::{io, Error, Result};
use crate::ldlinux::{self, PatchArea, SECTOR};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Size of the boot code of `mbr.bin` and `gptmbr.bin` (the MBR up to the disk signature).
pub(crate) const MBR_CODE: usize = 440;

/// File names of the pieces, in a `--syslinux-dir` and in the cache.
const BOOT_SECTOR_FILE: &str = "ldlinux.bss";
const LDLINUX_SYS_FILE: &str = "ldlinux.sys";
const LDLINUX_C32_FILE: &str = "ldlinux.c32";
const MBR_FILE: &str = "mbr.bin";
const GPTMBR_FILE: &str = "gptmbr.bin";

/// Where distributions put `mbr.bin` and `gptmbr.bin`.
const MBR_DIRS: &[&str] = &[
    "/usr/lib/syslinux/mbr",
    "/usr/share/syslinux",
    "/usr/lib/EXTLINUX",
    "/usr/lib/syslinux/bios",
];

/// Size of the scratch FAT image `syslinux --install` writes to.
const SCRATCH_FAT_BYTES: u64 = 2 << 20;

/// ELF magic, the start of `ldlinux.c32`.
const ELF_MAGIC: &[u8] = b"\x7fELF";

/// The pieces of one syslinux build: boot sector template (the FAT/ext boot sector extlinux
/// writes to the partition), `ldlinux.sys`, `ldlinux.c32`, `mbr.bin`, `gptmbr.bin`.
///
/// Validated on load: magics, sizes, the patch area of `ldlinux.sys`, and the build stamp
/// shared by the boot sector and `ldlinux.sys`.
#[derive(Debug, Clone)]
pub struct Syslinux {
    boot_sector: [u8; SECTOR],
    ldlinux_sys: Vec<u8>,
    ldlinux_c32: Vec<u8>,
    mbr: [u8; MBR_CODE],
    gptmbr: [u8; MBR_CODE],
    patch_area: PatchArea,
}

/// `$XDG_CACHE_HOME/d2l`, else `$HOME/.cache/d2l`; `None` without either variable.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("d2l"))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(io(path))
}

fn mbr_code(path: &Path) -> Result<[u8; MBR_CODE]> {
    let b = read(path)?;
    b.as_slice().try_into().map_err(|_| Error::Invalid {
        path: path.into(),
        reason: format!("size {:#x}, want {MBR_CODE:#x}", b.len()),
    })
}

impl Syslinux {
    /// Loads the pieces from `dir` (`--syslinux-dir`: files `ldlinux.bss`, `ldlinux.sys`,
    /// `ldlinux.c32`, `mbr.bin`, `gptmbr.bin`), or, without `dir`, from the host's packages
    /// (Debian: `syslinux`, `syslinux-common`, `extlinux`, `mtools`) by installing syslinux
    /// on a scratch FAT image, cached under `cache/syslinux/<key>` (`cache` is d2l's cache
    /// directory, see [`default_cache_dir`]).
    pub fn load(dir: Option<&Path>, cache: &Path) -> Result<Syslinux> {
        match dir {
            Some(dir) => Self::from_dir(dir),
            None => Self::from_host(cache),
        }
    }

    /// Loads and validates the pieces in `dir`.
    fn from_dir(dir: &Path) -> Result<Syslinux> {
        let ldlinux_sys = read(&dir.join(LDLINUX_SYS_FILE))?;
        let patch_area = PatchArea::parse(&ldlinux_sys).map_err(|e| at(e, dir))?;
        let bs = read(&dir.join(BOOT_SECTOR_FILE))?;
        let boot_sector = ldlinux::clean_boot_sector(&bs, &patch_area).map_err(|e| at(e, dir))?;
        let c32_path = dir.join(LDLINUX_C32_FILE);
        let ldlinux_c32 = read(&c32_path)?;
        if !ldlinux_c32.starts_with(ELF_MAGIC) {
            return Err(Error::Invalid {
                path: c32_path,
                reason: "not an ELF file".into(),
            });
        }
        Ok(Syslinux {
            boot_sector,
            ldlinux_sys,
            ldlinux_c32,
            mbr: mbr_code(&dir.join(MBR_FILE))?,
            gptmbr: mbr_code(&dir.join(GPTMBR_FILE))?,
            patch_area,
        })
    }

    /// Extracts the pieces from the host's syslinux installer, through the cache.
    fn from_host(cache: &Path) -> Result<Syslinux> {
        let installer = find_in_path("syslinux").ok_or_else(|| Error::Missing {
            what: "`syslinux` (the FAT installer)".into(),
        })?;
        let mbr_dir = MBR_DIRS
            .iter()
            .map(Path::new)
            .find(|d| d.join(MBR_FILE).is_file() && d.join(GPTMBR_FILE).is_file())
            .ok_or_else(|| Error::Missing {
                what: format!("mbr.bin and gptmbr.bin (looked in {})", MBR_DIRS.join(", ")),
            })?;
        for tool in ["mformat", "mcopy"] {
            if find_in_path(tool).is_none() {
                return Err(Error::Missing {
                    what: format!("`{tool}` (mtools)"),
                });
            }
        }
        // The cache key: the pieces' content, so an upgraded syslinux gets a new entry. It
        // names a directory that outlives this process, so it is a stable hash (not std's
        // randomly seeded one): the first 16 hex digits of their sha256.
        let mut hash = d2l_blob::Sha256::new();
        for f in [
            installer.clone(),
            mbr_dir.join(MBR_FILE),
            mbr_dir.join(GPTMBR_FILE),
        ] {
            hash.update(&read(&f)?);
        }
        let key = hash.finish().hex()[..16].to_owned();
        let root = cache.join("syslinux");
        let final_dir = root.join(&key);
        if final_dir.is_dir() {
            if let Ok(s) = Self::from_dir(&final_dir) {
                return Ok(s);
            }
            // A damaged cache entry: rebuild it.
            std::fs::remove_dir_all(&final_dir).map_err(io(&final_dir))?;
        }
        let scratch = root.join(format!(".tmp-{}-{key}", std::process::id()));
        let result = extract(&installer, mbr_dir, &scratch).and_then(|()| {
            let s = Self::from_dir(&scratch)?;
            match std::fs::rename(&scratch, &final_dir) {
                Ok(()) => Ok(s),
                // Another d2l filled the cache first; ours is equivalent.
                Err(_) if final_dir.is_dir() => Ok(s),
                Err(e) => Err(io(&final_dir)(e)),
            }
        });
        if scratch.exists() {
            let _ = std::fs::remove_dir_all(&scratch);
        }
        result
    }

    /// `ldlinux.sys` as shipped (unpatched for any placement).
    pub fn ldlinux_sys(&self) -> &[u8] {
        &self.ldlinux_sys
    }

    /// `ldlinux.c32`, copied verbatim next to `ldlinux.sys`.
    pub fn ldlinux_c32(&self) -> &[u8] {
        &self.ldlinux_c32
    }

    /// Boot code for bytes 0..440 of an MBR disk.
    pub fn mbr_bin(&self) -> &[u8; MBR_CODE] {
        &self.mbr
    }

    /// Boot code for bytes 0..440 of the protective MBR of a GPT disk.
    pub fn gptmbr_bin(&self) -> &[u8; MBR_CODE] {
        &self.gptmbr
    }

    /// `ldlinux.sys` patched for its placement: `sectors` = the 512-byte sector numbers
    /// (relative to the partition start) of every sector of the file in order (the file
    /// must be fully allocated, no holes); `install_dir` e.g. `"/boot/syslinux"`.
    pub fn patched_ldlinux(&self, sectors: &[u64], install_dir: &str) -> Result<Vec<u8>> {
        ldlinux::patch(&self.ldlinux_sys, &self.patch_area, sectors, install_dir)
    }

    /// The partition boot sector (512 bytes) for a partition starting at
    /// `partition_start_lba` of `partition_sectors` sectors whose `ldlinux.sys` starts at
    /// sector `ldlinux_first_sector` (relative to the partition start). Geometry as
    /// `extlinux` reports it for a device without one: 64 heads, 32 sectors per track.
    pub fn boot_sector(
        &self,
        ldlinux_first_sector: u64,
        partition_start_lba: u64,
        partition_sectors: u64,
    ) -> Result<[u8; SECTOR]> {
        ldlinux::boot_sector(
            &self.boot_sector,
            &self.patch_area,
            ldlinux_first_sector,
            partition_start_lba,
            partition_sectors,
        )
    }
}

/// Names the directory in a validation error that only named the file.
fn at(e: Error, dir: &Path) -> Error {
    match e {
        Error::Invalid { path, reason } => Error::Invalid {
            path: dir.join(path),
            reason,
        },
        e => e,
    }
}

/// Runs `syslinux --install` on a scratch FAT image in `scratch` and leaves the pieces there.
fn extract(installer: &Path, mbr_dir: &Path, scratch: &Path) -> Result<()> {
    if scratch.exists() {
        std::fs::remove_dir_all(scratch).map_err(io(scratch))?;
    }
    std::fs::create_dir_all(scratch).map_err(io(scratch))?;
    let img = scratch.join("scratch-fat.img");
    let f = std::fs::File::create(&img).map_err(io(&img))?;
    f.set_len(SCRATCH_FAT_BYTES).map_err(io(&img))?;
    drop(f);
    let img_arg = img.as_os_str();
    run(Command::new("mformat")
        .arg("-i")
        .arg(img_arg)
        .args(["-T", "4096", "-h", "2", "-s", "32", "::"]))?;
    run(Command::new(installer).arg("--install").arg(img_arg))?;
    for name in [LDLINUX_SYS_FILE, LDLINUX_C32_FILE] {
        run(Command::new("mcopy")
            .arg("-n")
            .arg("-i")
            .arg(img_arg)
            .arg(format!("::{name}"))
            .arg(scratch.join(name)))?;
    }
    let bytes = read(&img)?;
    let bs = scratch.join(BOOT_SECTOR_FILE);
    std::fs::write(&bs, &bytes[..SECTOR]).map_err(io(&bs))?;
    std::fs::remove_file(&img).map_err(io(&img))?;
    for name in [MBR_FILE, GPTMBR_FILE] {
        let (from, to) = (mbr_dir.join(name), scratch.join(name));
        std::fs::copy(&from, &to).map_err(io(&from))?;
    }
    Ok(())
}

/// Runs a command with mtools' drive check off; its failure becomes [`Error::Tool`].
fn run(cmd: &mut Command) -> Result<()> {
    cmd.env("MTOOLS_SKIP_CHECK", "1");
    let command = format!("{cmd:?}");
    let out = cmd.output().map_err(io(cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Tool {
            command,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

pub(crate) fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/bin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
