//! Any image as a machine: a kernel taken from elsewhere (`--kernel-from`), d2l's own
//! initramfs for a kernel that needs modules to reach its disk, and d2l's init to run the
//! image's command (`--init d2l`).
//!
//! - [`copy_kernel`]: the kernel image into `/boot`, and (for the image's own init, whose
//!   udev loads what the hardware needs) every module into `/lib/modules/VERSION`.
//! - [`build_initramfs`]: a cpio archive ([`cpio`]) holding d2l-init as `/init`, the
//!   modules the machine needs to reach its disk and network (decompressed: `.ko`, `.ko.xz`,
//!   `.ko.zst`), in the order `modules.dep` and `modules.softdep` give, and its
//!   [`BootConfig`]; nothing when the kernel has all of them built in.
//! - [`install_init`]: d2l-init and its [`RunConfig`] on the root filesystem.

mod cpio;
mod kernel_source;

use d2l_init::config::{BootConfig, RunConfig, BOOT_CONFIG, INIT_PATH, NEW_ROOT, RUN_CONFIG};
use d2l_init::modules::{machine_modules, module_name, ModuleIndex, DISK_MODULES};
use d2l_rootfs::{ContentStore, Rootfs};

pub use kernel_source::{
    find_kernel_layout, host_kernel_version, is_linuxkit, unpack_linuxkit, EntryKind, HostSource,
    KernelLayout, KernelSource, TreeSource,
};

use crate::error::{Error, Result};
use crate::files::Files;
use cpio::Cpio;
use kernel_source::{MAX_KERNEL_BYTES, MAX_MODULE_BYTES};

/// d2l-init, built statically for this target by the build script.
pub const INIT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/d2l-init"));
/// The architecture d2l-init is built for, as OCI platforms name it.
pub const INIT_ARCHITECTURE: &str = if cfg!(target_arch = "x86_64") {
    "amd64"
} else if cfg!(target_arch = "aarch64") {
    "arm64"
} else {
    std::env::consts::ARCH
};
/// The kernel's index files read to plan module loading.
const INDEX_FILES: [&str; 4] = [
    "modules.dep",
    "modules.builtin",
    "modules.alias",
    "modules.softdep",
];
/// Deepest directory walked when copying modules.
const MAX_DEPTH: usize = 16;

/// Where d2l writes its initramfs for kernel `version` (beside the image's own, if any).
pub fn initramfs_path(version: &str) -> String {
    format!("/boot/d2l-initrd.img-{version}")
}

/// An initramfs d2l made.
#[derive(Debug)]
pub struct Initramfs {
    /// The archive.
    pub bytes: Vec<u8>,
    /// Modules it loads, by name, in order.
    pub modules: Vec<String>,
    /// Modules the machine needs that the kernel has neither built in nor as a module.
    pub missing: Vec<String>,
}

/// The initramfs for the kernel `layout` describes in `source`, which loads what the
/// machine needs, finds the root filesystem `root_uuid` and executes `next` there; `None`
/// when the kernel has everything built in.
pub fn build_initramfs(
    source: &mut dyn KernelSource,
    layout: &KernelLayout,
    root_uuid: &str,
    next: &str,
) -> Result<Option<Initramfs>> {
    let mut texts = Vec::new();
    for name in INDEX_FILES {
        let path = format!("{}/{name}", layout.modules);
        let text = source
            .read(&path, MAX_MODULE_BYTES)?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        texts.push(text);
    }
    let index = ModuleIndex::parse(&texts[0], &texts[1], &texts[2], &texts[3]);
    let plan = index.load_plan(&machine_modules());
    if plan.paths.is_empty() {
        return Ok(None);
    }
    let mut cpio = Cpio::default();
    for dir in ["/dev", "/proc", "/sys", NEW_ROOT, "/lib", "/lib/modules"] {
        cpio.dir(dir, 0o755);
    }
    cpio.char_device("/dev/console", 0o600, 5, 1);
    cpio.file("/init", 0o755, INIT_BINARY);
    let base = format!("/lib/modules/{}", layout.version);
    cpio.dir(&base, 0o755);
    let mut made_dirs = std::collections::BTreeSet::new();
    let mut stored_paths = std::collections::BTreeMap::new();
    for relative in &plan.paths {
        if relative.contains(char::is_whitespace) {
            return Err(Error::Kernel {
                path: format!("{}/{relative} in {}", layout.modules, source.origin()),
                reason: "a module path with white space".into(),
            });
        }
        let path = format!("{}/{relative}", layout.modules);
        let packed = source
            .read(&path, MAX_MODULE_BYTES)?
            .ok_or_else(|| Error::Kernel {
                path: format!("{path} in {}", source.origin()),
                reason: "listed in modules.dep but missing".into(),
            })?;
        let module = decompress(&packed, relative).map_err(|reason| Error::Kernel {
            path: format!("{path} in {}", source.origin()),
            reason,
        })?;
        let stored = format!("{base}/{}", strip_compression(relative));
        // Parent directories, each once, before the file.
        let mut parent = String::new();
        for part in stored
            .rsplit_once('/')
            .map_or("", |(dir, _)| dir)
            .split('/')
        {
            if part.is_empty() {
                continue;
            }
            parent = format!("{parent}/{part}");
            if parent.len() > base.len() && made_dirs.insert(parent.clone()) {
                cpio.dir(&parent, 0o755);
            }
        }
        cpio.file(&stored, 0o644, &module);
        stored_paths.insert(relative.clone(), stored);
    }
    let config = BootConfig {
        root_uuid: root_uuid.to_owned(),
        modules: plan
            .groups
            .iter()
            .map(|(name, paths)| {
                (
                    name.clone(),
                    paths.iter().map(|p| stored_paths[p].clone()).collect(),
                )
            })
            .collect(),
        disk_modules: DISK_MODULES.iter().map(|m| m.to_string()).collect(),
        devices: plan
            .devices
            .iter()
            .flat_map(|(name, patterns)| patterns.iter().map(move |p| (name.clone(), p.clone())))
            .collect(),
        next: next.to_owned(),
    };
    cpio.file(BOOT_CONFIG, 0o644, config.encode().as_bytes());
    Ok(Some(Initramfs {
        bytes: gzip(&cpio.finish()),
        modules: plan.paths.iter().map(|p| module_name(p)).collect(),
        missing: plan.missing,
    }))
}

/// The archive gzip-compressed, as every kernel unpacks an initramfs: half the bytes for the
/// boot loader to read through the firmware, and no run of zeros that d2l would leave as a
/// hole in the filesystem (boot loaders cannot read files with holes).
fn gzip(archive: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder
        .write_all(archive)
        .and_then(|()| encoder.finish())
        .expect("compressing into memory cannot fail")
}

/// `name` without `.xz`, `.zst` or `.gz`.
fn strip_compression(name: &str) -> &str {
    [".xz", ".zst", ".gz"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
}

/// A module's bytes as the kernel's init_module takes them.
fn decompress(packed: &[u8], name: &str) -> std::result::Result<Vec<u8>, String> {
    let limit = MAX_MODULE_BYTES as usize;
    let out = if name.ends_with(".xz") {
        let mut out = Bounded {
            bytes: Vec::new(),
            limit,
        };
        lzma_rs::xz_decompress(&mut &packed[..], &mut out).map_err(|e| format!("xz: {e}"))?;
        out.bytes
    } else if name.ends_with(".zst") {
        zstd::bulk::decompress(packed, limit).map_err(|e| format!("zstd: {e}"))?
    } else if name.ends_with(".gz") {
        return Err("gzip-compressed modules are not supported (xz and zstd are)".into());
    } else {
        packed.to_vec()
    };
    if out.len() > limit || !out.starts_with(b"\x7fELF") {
        return Err("not a kernel module (an ELF object) once decompressed".into());
    }
    Ok(out)
}

/// A sink that refuses more than `limit` bytes: a hostile module cannot make d2l allocate
/// without bound.
struct Bounded {
    bytes: Vec<u8>,
    limit: usize,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            return Err(std::io::Error::other(format!(
                "more than {} bytes decompressed",
                self.limit
            )));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Copies the kernel image of `layout` from `source` to `/boot/vmlinuz-VERSION` in
/// `rootfs`, and with `all_modules` every file of its modules directory to
/// `/lib/modules/VERSION`. Returns the kernel's path and the summary's lines.
pub fn copy_kernel<S: ContentStore>(
    rootfs: &mut Rootfs<S>,
    source: &mut dyn KernelSource,
    layout: &KernelLayout,
    all_modules: bool,
) -> Result<(String, Vec<String>)> {
    let kernel = source
        .read(&layout.image, MAX_KERNEL_BYTES)?
        .ok_or_else(|| Error::NoKernel {
            origin: source.origin().to_owned(),
            looked: layout.image.clone(),
        })?;
    let mut files = Files::new(rootfs);
    let path = format!("/boot/vmlinuz-{}", layout.version);
    let meta = files.root(0o644);
    files.write(&path, meta, &kernel)?;
    let mut summary = vec![format!(
        "kernel {} from {} as {path}",
        layout.version,
        source.origin()
    )];
    if all_modules {
        let target = format!("/lib/modules/{}", layout.version);
        let count = copy_tree(&mut files, source, &layout.modules, &target, 0)?;
        summary.push(format!("{count} files of its modules in {target}"));
    }
    Ok((path, summary))
}

/// Copies directory `from` of `source` to `to` in the tree; returns the files copied.
fn copy_tree<S: ContentStore>(
    files: &mut Files<'_, S>,
    source: &mut dyn KernelSource,
    from: &str,
    to: &str,
    depth: usize,
) -> Result<usize> {
    if depth > MAX_DEPTH {
        return Err(Error::Kernel {
            path: format!("{from} in {}", source.origin()),
            reason: format!("deeper than {MAX_DEPTH} directories"),
        });
    }
    let meta = files.root(0o755);
    files.mkdir(to, meta, false)?;
    let mut count = 0;
    for (name, kind) in source.list(from) {
        let (from, to) = (format!("{from}/{name}"), format!("{to}/{name}"));
        match kind {
            EntryKind::Directory => count += copy_tree(files, source, &from, &to, depth + 1)?,
            EntryKind::File => {
                if let Some(bytes) = source.read(&from, MAX_MODULE_BYTES)? {
                    let meta = files.root(0o644);
                    files.write(&to, meta, &bytes)?;
                    count += 1;
                }
            }
            // `build` and `source` point at headers the machine does not have.
            EntryKind::Symlink(_) | EntryKind::Other => {}
        }
    }
    Ok(count)
}

/// Puts d2l-init at [`INIT_PATH`] and `config` at [`RUN_CONFIG`], with the mount points it
/// needs before it can make them (the kernel mounts /dev at boot when there is no
/// initramfs). Returns the summary's lines.
pub fn install_init<S: ContentStore>(
    rootfs: &mut Rootfs<S>,
    config: &RunConfig,
) -> Result<Vec<String>> {
    let mut files = Files::new(rootfs);
    let exec = files.root(0o755);
    files.write(INIT_PATH, exec, INIT_BINARY)?;
    let text = files.root(0o644);
    files.write(RUN_CONFIG, text, config.encode().as_bytes())?;
    for (dir, mode) in [
        ("/dev", 0o755),
        ("/proc", 0o555),
        ("/sys", 0o555),
        ("/run", 0o755),
        ("/tmp", 0o1777),
        ("/etc", 0o755),
    ] {
        if !files.exists(dir) {
            let meta = files.root(mode);
            files.mkdir(dir, meta, false)?;
        }
    }
    Ok(vec![format!(
        "d2l's init at {INIT_PATH} runs {:?} ({RUN_CONFIG})",
        config.argv
    )])
}

/// Writes `bytes` at `path` in the tree (an initramfs), root-owned, 0644.
pub fn write_boot_file<S: ContentStore>(
    rootfs: &mut Rootfs<S>,
    path: &str,
    bytes: &[u8],
) -> Result<()> {
    let mut files = Files::new(rootfs);
    let meta = files.root(0o644);
    files.write(path, meta, bytes)
}

/// Whether the image has an init of its own (`/sbin/init`, links followed).
pub fn has_own_init<S: ContentStore>(rootfs: &mut Rootfs<S>) -> bool {
    Files::new(rootfs).exists("/sbin/init")
}

#[cfg(test)]
mod tests {
    use super::*;
    use d2l_rootfs::{Metadata, SpillFile, Timestamp};

    fn elf(tag: u8) -> Vec<u8> {
        let mut bytes = b"\x7fELF".to_vec();
        bytes.extend(std::iter::repeat_n(tag, 1000));
        bytes
    }

    #[test]
    fn initramfs_holds_the_modules_in_order_decompressed() {
        let mut rootfs = Rootfs::new(SpillFile::new().unwrap(), Timestamp::default());
        let m = Metadata::default();
        let dir = "/lib/modules/6.1.0";
        rootfs
            .write_file(
                format!("{dir}/modules.dep").as_bytes(),
                m.clone(),
                b"kernel/fs/ext4/ext4.ko.zst: kernel/fs/jbd2/jbd2.ko.xz\nkernel/fs/jbd2/jbd2.ko.xz:\n",
            )
            .unwrap();
        rootfs
            .write_file(
                format!("{dir}/modules.builtin").as_bytes(),
                m.clone(),
                b"kernel/drivers/block/virtio_blk.ko\n",
            )
            .unwrap();
        let zst = zstd::bulk::compress(&elf(1), 3).unwrap();
        rootfs
            .write_file(
                format!("{dir}/kernel/fs/ext4/ext4.ko.zst").as_bytes(),
                m.clone(),
                &zst,
            )
            .unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &elf(2)[..], &mut xz).unwrap();
        rootfs
            .write_file(
                format!("{dir}/kernel/fs/jbd2/jbd2.ko.xz").as_bytes(),
                m.clone(),
                &xz,
            )
            .unwrap();
        let layout = KernelLayout {
            version: "6.1.0".into(),
            image: "/boot/vmlinuz-6.1.0".into(),
            modules: dir.into(),
        };
        let mut source = TreeSource::new(&mut rootfs, "test");
        let initramfs = build_initramfs(&mut source, &layout, "u-u-i-d", INIT_PATH)
            .unwrap()
            .unwrap();
        assert_eq!(initramfs.modules, ["jbd2", "ext4"]);
        assert!(initramfs.missing.contains(&"ata_piix".to_owned()));
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&initramfs.bytes[..]),
            &mut bytes,
        )
        .unwrap();
        let find = |needle: &[u8]| bytes.windows(needle.len()).position(|w| w == needle);
        assert!(
            find(&elf(1)).is_some() && find(&elf(2)).is_some(),
            "decompressed"
        );
        let config = find(b"root-uuid u-u-i-d").expect("the boot config");
        let text = String::from_utf8_lossy(&bytes[config..config + 200]);
        assert!(
            text.contains("load ext4 /lib/modules/6.1.0/kernel/fs/jbd2/jbd2.ko /lib/modules/6.1.0/kernel/fs/ext4/ext4.ko\n"),
            "{text}"
        );

        // A corrupt module is an error naming it.
        rootfs
            .write_file(
                format!("{dir}/kernel/fs/jbd2/jbd2.ko.xz").as_bytes(),
                m,
                b"not xz",
            )
            .unwrap();
        let mut source = TreeSource::new(&mut rootfs, "test");
        let error = build_initramfs(&mut source, &layout, "u", INIT_PATH)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("jbd2.ko.xz in test") && error.contains("xz"),
            "{error}"
        );
    }

    #[test]
    fn the_init_binary_is_static() {
        let elf = INIT_BINARY;
        assert!(
            elf.starts_with(b"\x7fELF\x02\x01"),
            "a 64-bit little-endian ELF"
        );
        let u16_at = |at: usize| usize::from(u16::from_le_bytes([elf[at], elf[at + 1]]));
        let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
        let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
        assert!(phnum > 0);
        // No program interpreter (PT_INTERP, 3): it runs without any libc in the image.
        const PT_INTERP: u32 = 3;
        for i in 0..phnum {
            let at = phoff + i * phentsize;
            let p_type = u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
            assert_ne!(p_type, PT_INTERP, "d2l-init must be statically linked");
        }
    }
}
