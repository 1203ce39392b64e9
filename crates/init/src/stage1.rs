//! The initramfs stage: load the modules d2l put in the initramfs, find the root filesystem
//! by its UUID, mount it, make it `/`, and execute the next init on it.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use d2l_init::config::{BootConfig, NEW_ROOT};
use d2l_init::modules::{modalias_matches, DEVICE_BUSES};

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
    say(&format!(
        "started in the initramfs at {:.3}s",
        sys::uptime()
    ));
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
    let (mut loaded, mut skipped) = (0, 0);
    let mut up = std::collections::BTreeSet::new();
    // Time spent in the modules' own initialisation (probing devices), inside the kernel.
    let mut in_kernel = Duration::ZERO;
    let mut done = std::collections::BTreeSet::new();
    for (name, paths) in &config.modules {
        let for_disk = config.disk_modules.contains(name);
        if !drives_a_device(config, name) || (for_disk && find_root(&config.root_uuid).is_some()) {
            skipped += 1;
            continue;
        }
        for module in paths {
            if !done.insert(module.clone()) {
                continue;
            }
            let image = match std::fs::read(module) {
                Ok(image) => image,
                Err(e) => {
                    say(&format!("module {module}: {e}"));
                    continue;
                }
            };
            let calling = Instant::now();
            let result = sys::init_module(&image);
            in_kernel += calling.elapsed();
            match result {
                Ok(()) => {
                    loaded += 1;
                    // A card up at once: its link settles while the rest loads.
                    for card in crate::net::cards() {
                        if up.insert(card.clone()) {
                            let _ = sys::interface_up(&card);
                        }
                    }
                }
                // Built in after all, or loaded as another's dependency; or for a CPU
                // feature or device this machine does not have (crc32c-intel under TCG).
                Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::ENODEV)) => {}
                Err(e) => say(&format!("module {module}: {e}")),
            }
            // Free the initramfs's copy: it is in the kernel now.
            let _ = std::fs::remove_file(module);
        }
    }
    say(&format!(
        "loaded {loaded} kernel modules in {:.3}s, {:.3}s of it in their own initialisation \
         ({skipped} drivers not needed: no such device, or the root disk was there)",
        started.elapsed().as_secs_f64(),
        in_kernel.as_secs_f64()
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

/// Whether module `name` is to be loaded: a driver with device patterns only when a device of
/// this machine matches one (its bus's devices are read now: a bus driver loaded just
/// before, virtio_pci, adds the devices the next one drives).
fn drives_a_device(config: &BootConfig, name: &str) -> bool {
    let mut patterns = config
        .devices
        .iter()
        .filter(|(driver, _)| *driver == name)
        .map(|(_, pattern)| pattern)
        .peekable();
    if patterns.peek().is_none() {
        return true;
    }
    let present = device_modaliases();
    patterns.any(|pattern| present.iter().any(|alias| modalias_matches(pattern, alias)))
}

/// The modalias of every device on [`DEVICE_BUSES`].
fn device_modaliases() -> Vec<String> {
    let mut aliases = Vec::new();
    for bus in DEVICE_BUSES {
        let Ok(devices) = std::fs::read_dir(format!("/sys/bus/{bus}/devices")) else {
            continue;
        };
        for device in devices.flatten() {
            if let Ok(alias) = std::fs::read_to_string(device.path().join("modalias")) {
                aliases.push(alias.trim().to_owned());
            }
        }
    }
    aliases
}

/// The block device (`/dev/NAME`) whose ext superblock has `uuid`, if there is one now.
fn find_root(uuid: &str) -> Option<String> {
    let wanted = parse_uuid(uuid)?;
    block_devices()
        .into_iter()
        .map(|name| format!("/dev/{name}"))
        .find(|device| superblock_uuid(device) == Some(wanted))
}

/// [`find_root`], waiting for the device to appear.
fn wait_for_root(uuid: &str) -> Option<String> {
    let deadline = Instant::now() + ROOT_WAIT;
    loop {
        if let Some(device) = find_root(uuid) {
            return Some(device);
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
