//! The initramfs stage: load the modules d2l put in the initramfs, find the root filesystem
//! by its UUID, mount it, make it `/`, and execute the next init on it.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use d2l_init::config::{BootConfig, NEW_ROOT};

use crate::{say, sys, Failure};

/// How long block devices may take to appear after their driver loads.
const ROOT_WAIT: Duration = Duration::from_secs(30);
/// Where an ext superblock starts, and its magic and UUID inside it.
const SUPERBLOCK: usize = 1024;
const MAGIC_AT: usize = SUPERBLOCK + 56;
const UUID_AT: usize = SUPERBLOCK + 104;
const EXT_MAGIC: u16 = 0xef53;

/// Runs the stage; returns only with what went wrong.
pub fn run(config: &BootConfig) -> Failure {
    // The initramfs has empty /proc, /sys and /dev; the kernel mounted nothing.
    for (source, target, fstype) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
    ] {
        let _ = std::fs::create_dir_all(target);
        if let Err(e) = sys::mount(source, Path::new(target), fstype, 0, "") {
            return Failure::new(format!("mounting {fstype} on {target}: {e}"));
        }
    }
    let started = Instant::now();
    let mut loaded = 0;
    for module in &config.modules {
        match std::fs::read(module) {
            Ok(image) => match sys::init_module(&image) {
                Ok(()) => loaded += 1,
                // Built in after all, or loaded as another's dependency; or for a CPU
                // feature or device this machine does not have (crc32c-intel under TCG).
                Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::ENODEV)) => {}
                Err(e) => say(&format!("module {module}: {e}")),
            },
            Err(e) => say(&format!("module {module}: {e}")),
        }
        // Free the initramfs's copy: it is in the kernel now.
        let _ = std::fs::remove_file(module);
    }
    say(&format!(
        "loaded {loaded} kernel modules in {:.2}s",
        started.elapsed().as_secs_f64()
    ));
    let device = match wait_for_root(&config.root_uuid) {
        Some(device) => device,
        None => {
            return Failure::new(format!(
                "no disk holds the root filesystem (UUID {}) after {}s; block devices: {}",
                config.root_uuid,
                ROOT_WAIT.as_secs(),
                block_devices().join(" ")
            ))
        }
    };
    let new_root = Path::new(NEW_ROOT);
    let _ = std::fs::create_dir_all(new_root);
    if let Err(e) = sys::mount(&device, new_root, "ext4", 0, "") {
        return Failure::new(format!("mounting {device} (ext4) on {NEW_ROOT}: {e}"));
    }
    say(&format!("root filesystem {device} mounted"));
    // The next init mounts its own; a stale /dev would hide the one the root gets.
    for target in ["/dev", "/sys", "/proc"] {
        let _ = sys::unmount_lazy(Path::new(target));
    }
    if let Err(e) = std::env::set_current_dir(new_root)
        .and_then(|()| sys::move_mount(Path::new("."), Path::new("/")))
        .and_then(|()| std::os::unix::fs::chroot("."))
        .and_then(|()| std::env::set_current_dir("/"))
    {
        return Failure::new(format!("switching to the root filesystem: {e}"));
    }
    let error = std::process::Command::new(&config.next)
        .arg0(&config.next)
        .exec();
    Failure::new(format!("executing {}: {error}", config.next))
}

/// The block device (`/dev/NAME`) whose ext superblock has `uuid`, waiting for it to appear.
fn wait_for_root(uuid: &str) -> Option<String> {
    let wanted = parse_uuid(uuid)?;
    let deadline = Instant::now() + ROOT_WAIT;
    loop {
        for name in block_devices() {
            let device = format!("/dev/{name}");
            if superblock_uuid(&device) == Some(wanted) {
                return Some(device);
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The names in /sys/class/block (disks and partitions).
fn block_devices() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/block")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The UUID of the ext filesystem on `device`, if it holds one.
fn superblock_uuid(device: &str) -> Option<[u8; 16]> {
    let mut head = [0u8; UUID_AT + 16];
    std::fs::File::open(device)
        .ok()?
        .read_exact(&mut head)
        .ok()?;
    if u16::from_le_bytes([head[MAGIC_AT], head[MAGIC_AT + 1]]) != EXT_MAGIC {
        return None;
    }
    head[UUID_AT..UUID_AT + 16].try_into().ok()
}

/// `8-4-4-4-12` hexadecimal to bytes.
fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = text.bytes().filter(|&b| b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_parse() {
        let uuid = parse_uuid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").unwrap();
        assert_eq!(uuid[0], 0x0f);
        assert_eq!(uuid[15], 0xf0);
        assert!(parse_uuid("0f1e").is_none());
        assert!(parse_uuid("zz1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").is_none());
    }

    #[test]
    fn a_filesystem_is_found_by_its_uuid() {
        let dir = std::env::temp_dir().join(format!("d2l-init-sb-{}", std::process::id()));
        let mut image = vec![0u8; 4096];
        image[MAGIC_AT..MAGIC_AT + 2].copy_from_slice(&EXT_MAGIC.to_le_bytes());
        image[UUID_AT..UUID_AT + 16].copy_from_slice(&[7; 16]);
        std::fs::write(&dir, &image).unwrap();
        assert_eq!(superblock_uuid(dir.to_str().unwrap()), Some([7; 16]));
        image[MAGIC_AT] = 0;
        std::fs::write(&dir, &image).unwrap();
        assert_eq!(superblock_uuid(dir.to_str().unwrap()), None);
        std::fs::remove_file(&dir).unwrap();
    }
}
