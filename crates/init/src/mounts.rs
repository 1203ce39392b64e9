//! The API filesystems a program expects to find, mounted where it expects them.

use std::io;
use std::path::Path;

use crate::sys;

/// One mount: source, target, type, flags, options.
pub struct Mount {
    pub source: &'static str,
    pub target: &'static str,
    pub fstype: &'static str,
    pub flags: libc::c_ulong,
    pub data: &'static str,
}

const HARDENED: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// What PID 1 mounts, parents before children.
pub const API_MOUNTS: &[Mount] = &[
    Mount {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: HARDENED,
        data: "",
    },
    Mount {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: HARDENED,
        data: "",
    },
    Mount {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: libc::MS_NOSUID,
        data: "mode=0755",
    },
    Mount {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: libc::MS_NOSUID | libc::MS_NOEXEC,
        data: "gid=5,mode=0620,ptmxmode=0666",
    },
    Mount {
        source: "shm",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        data: "mode=1777",
    },
    Mount {
        source: "run",
        target: "/run",
        fstype: "tmpfs",
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        data: "mode=0755",
    },
    Mount {
        source: "tmp",
        target: "/tmp",
        fstype: "tmpfs",
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        data: "mode=1777",
    },
];

/// The links in /dev that devtmpfs does not make and programs use.
const DEV_LINKS: &[(&str, &str)] = &[
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
    ("/dev/ptmx", "pts/ptmx"),
];

/// Whether `target` is a mount point, from /proc/self/mountinfo (the fifth field).
pub fn is_mounted(mountinfo: &str, target: &str) -> bool {
    mountinfo
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(target))
}

/// Mounts `mounts` where nothing is mounted yet (the kernel may have mounted /dev), making
/// missing mount points. Returns what it could not mount, for the console.
pub fn mount_all(mounts: &[Mount]) -> Vec<String> {
    let mut problems = Vec::new();
    for m in mounts {
        // /proc is mounted first, so later checks can read it.
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if is_mounted(&mountinfo, m.target) {
            continue;
        }
        let target = Path::new(m.target);
        if let Err(e) = std::fs::create_dir_all(target) {
            problems.push(format!("{}: {e}", m.target));
            continue;
        }
        if let Err(e) = sys::mount(m.source, target, m.fstype, m.flags, m.data) {
            problems.push(format!("mounting {} on {}: {e}", m.fstype, m.target));
        }
    }
    for (link, target) in DEV_LINKS {
        match std::os::unix::fs::symlink(target, link) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                problems.push(format!("{link}: {e}"))
            }
            _ => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_every_target_is_absolute() {
        for (i, m) in API_MOUNTS.iter().enumerate() {
            assert!(m.target.starts_with('/'));
            let parent = Path::new(m.target).parent().unwrap();
            if parent != Path::new("/") {
                let at = API_MOUNTS
                    .iter()
                    .position(|p| Path::new(p.target) == parent);
                assert!(
                    at.is_some_and(|at| at < i),
                    "{} before its parent",
                    m.target
                );
            }
        }
        let targets: Vec<_> = API_MOUNTS.iter().map(|m| m.target).collect();
        assert_eq!(
            targets,
            ["/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/run", "/tmp"]
        );
    }

    #[test]
    fn mount_points_are_read_from_mountinfo() {
        let mountinfo = "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n\
                         23 22 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw\n";
        assert!(is_mounted(mountinfo, "/dev"));
        assert!(is_mounted(mountinfo, "/"));
        assert!(!is_mounted(mountinfo, "/proc"));
        assert!(!is_mounted(mountinfo, "/de"));
    }
}
