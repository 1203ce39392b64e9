//! Small helpers shared by the tasks: workspace paths, running commands, timed steps and the
//! Debian packages the tasks need.

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A command the tasks run and the Debian package that provides it.
pub struct Tool {
    /// Looked up on `PATH`, like `command -v`.
    pub command: &'static str,
    /// Installed with `apt-get install -y` when `command` is missing.
    pub package: &'static str,
}

/// What building the fixtures needs (and the tests, for `mkfs.ext4`).
pub const FIXTURE_TOOLS: &[Tool] = &[
    Tool {
        command: "debootstrap",
        package: "debootstrap",
    },
    Tool {
        command: "umoci",
        package: "umoci",
    },
    Tool {
        command: "skopeo",
        package: "skopeo",
    },
    Tool {
        command: "pigz",
        package: "pigz",
    },
    Tool {
        command: "mkfs.ext4",
        package: "e2fsprogs",
    },
    // The fs-writer's xattr tests give files capabilities and ACLs for mke2fs to copy.
    Tool {
        command: "setfattr",
        package: "attr",
    },
    Tool {
        command: "setfacl",
        package: "acl",
    },
    // crates/d2l/tests read exported tars with Python's tarfile module, an independent
    // reader; the ext4 tests also run e2fsck, debugfs, dumpe2fs and resize2fs (e2fsprogs).
    Tool {
        command: "python3",
        package: "python3",
    },
    // The bootloader's tests compare with the real extlinux installer and take syslinux's
    // pieces from the host: syslinux (with mtools) for the scratch-FAT method, extlinux for
    // the comparison, syslinux-common for mbr.bin/gptmbr.bin.
    Tool {
        command: "syslinux",
        package: "syslinux",
    },
    Tool {
        command: "extlinux",
        package: "extlinux",
    },
    Tool {
        command: "mcopy",
        package: "mtools",
    },
    Tool {
        command: "/usr/lib/syslinux/mbr/gptmbr.bin",
        package: "syslinux-common",
    },
    // crates/fat/tests judge the FAT writer with fsck.fat and build reference volumes with
    // mkfs.fat (mtools reads them back).
    Tool {
        command: "fsck.fat",
        package: "dosfstools",
    },
    // The partition crate's tests read tables back with sfdisk and check GPT with sgdisk.
    Tool {
        command: "sfdisk",
        package: "fdisk",
    },
    Tool {
        command: "sgdisk",
        package: "gdisk",
    },
    // crates/d2l/tests/boot.rs boots images in QEMU (software emulation, no KVM needed).
    Tool {
        command: "qemu-system-x86_64",
        package: "qemu-system-x86",
    },
    // UEFI disks: GRUB's EFI application is made from the host's modules by grub-mkimage
    // (grub-common, a dependency), and booted with OVMF in the tests.
    Tool {
        command: "/usr/lib/grub/x86_64-efi/moddep.lst",
        package: "grub-efi-amd64-bin",
    },
    Tool {
        command: "/usr/share/OVMF/OVMF_CODE_4M.fd",
        package: "ovmf",
    },
    // crates/d2l/tests/dockerfile.rs: `d2l build -f Dockerfile` drives buildah (as root,
    // vfs storage, chroot isolation: no runtime or overlay needed).
    Tool {
        command: "buildah",
        package: "buildah",
    },
    // The same tests drive podman, d2l's second builder, configured the same way.
    Tool {
        command: "podman",
        package: "podman",
    },
    // crates/d2l/tests/registry.rs (and `bench pull`) pull from a real registry: Debian's
    // distribution v2, with htpasswd files from apache2-utils and certificates by openssl.
    Tool {
        command: "docker-registry",
        package: "docker-registry",
    },
    Tool {
        command: "htpasswd",
        package: "apache2-utils",
    },
    Tool {
        command: "openssl",
        package: "openssl",
    },
    // crates/d2l/tests/reach.rs logs in to booted machines with ssh, with a key made by
    // ssh-keygen.
    Tool {
        command: "ssh",
        package: "openssh-client",
    },
    Tool {
        command: "ssh-keygen",
        package: "openssh-client",
    },
    // The disk format tests and bench judge images with qemu-img (info, check, compare,
    // convert).
    Tool {
        command: "qemu-img",
        package: "qemu-utils",
    },
    // crates/d2l/tests/bundles.rs checks a Vagrant box's Vagrantfile with `ruby -c` (Vagrant
    // reads it as Ruby); the OVA's descriptor is read with python3's xml.etree (above).
    Tool {
        command: "ruby",
        package: "ruby",
    },
    // d2l's initramfs is read back with GNU cpio; the unprivileged init test runs d2l-init
    // as PID 1 of new namespaces with util-linux's unshare (always there).
    Tool {
        command: "cpio",
        package: "cpio",
    },
    // The shells whose completion scripts `d2l completions` prints, checked by their own
    // parsers, and groff, which checks the manual pages.
    Tool {
        command: "zsh",
        package: "zsh",
    },
    Tool {
        command: "fish",
        package: "fish",
    },
    Tool {
        command: "groff",
        package: "groff",
    },
];

/// The workspace root: xtask lives one level below it.
///
/// `cargo run` tells the binary where its package is; that wins over the path compiled in,
/// which is stale when a shared target directory holds an xtask built from another clone.
pub fn workspace_root() -> PathBuf {
    let xtask = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    xtask
        .parent()
        .expect("xtask has a parent directory")
        .to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the current directory, as cargo
/// reads it) or `<workspace>/target`.
pub fn target_dir() -> Result<PathBuf> {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => Ok(std::path::absolute(dir)?),
        _ => Ok(workspace_root().join("target")),
    }
}

/// `cargo` (the one running us, if known), started in the workspace root.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Runs `cmd`, echoing it first; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    println!("    $ {}", display(cmd));
    run_quiet(cmd)
}

/// Runs `cmd` without echoing it; fails unless it exits 0.
pub fn run_quiet(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{}`", display(cmd)))?;
    if !status.success() {
        bail!("`{}` failed: {status}", display(cmd));
    }
    Ok(())
}

/// Runs `cmd` and returns its standard output; fails unless it exits 0.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start `{}`", display(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}\n{}",
            display(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout)
        .with_context(|| format!("`{}`: output is not UTF-8", display(cmd)))
}

/// A command line as a shell user would type it (good enough for logs).
pub fn display(cmd: &Command) -> String {
    let mut parts = vec![quote(cmd.get_program())];
    parts.extend(cmd.get_args().map(quote));
    parts.join(" ")
}

fn quote(arg: &OsStr) -> String {
    let arg = arg.to_string_lossy();
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%$".contains(c));
    if plain {
        arg.into_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Runs `f` as a named step: prints `==> name` before and the duration after.
pub fn step<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    println!("==> {name}");
    let start = Instant::now();
    let value = f().with_context(|| format!("step `{name}` failed"))?;
    println!("<== {name}: {}", secs(start.elapsed()));
    Ok(value)
}

/// `12.3s`
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// `123.4 MiB`
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Whether we run as root (the owner of `/proc/self` is our effective uid).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Whether `command` is on `PATH` as an executable file, like `command -v`.
pub fn have_command(command: &str) -> bool {
    // An absolute path names a file a package installs (for packages without a command).
    if command.starts_with('/') {
        return Path::new(command).is_file();
    }
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(command)).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
    })
}

/// `path` as text, for the command lines and recipes the fixtures are built from.
pub fn utf8_path(path: &Path) -> Result<String> {
    path.to_str()
        .map(String::from)
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// Installs the packages of the `tools` that are missing: `apt-get update` (at most once per
/// run) and `apt-get install -y`. Needs root only when something is missing.
pub fn ensure_tools(tools: &[Tool]) -> Result<()> {
    static UPDATED: AtomicBool = AtomicBool::new(false);

    let missing: Vec<&Tool> = tools.iter().filter(|t| !have_command(t.command)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let commands: Vec<&str> = missing.iter().map(|t| t.command).collect();
    let mut packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
    packages.dedup();
    if !is_root() {
        bail!(
            "missing commands: {}; run as root so xtask can install them, or run \
             `apt-get install -y {}` yourself",
            commands.join(", "),
            packages.join(" ")
        );
    }
    println!(
        "    missing {}: installing {}",
        commands.join(", "),
        packages.join(" ")
    );
    if !UPDATED.swap(true, Ordering::SeqCst) {
        run(Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    run(Command::new("apt-get")
        .args(["install", "-y"])
        .args(&packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    let still: Vec<&str> = missing
        .iter()
        .filter(|t| !have_command(t.command))
        .map(|t| t.command)
        .collect();
    if !still.is_empty() {
        bail!("still missing after apt-get install: {}", still.join(", "));
    }
    Ok(())
}

/// Removes a directory tree that may have had filesystems mounted inside it (debootstrap
/// mounts `/proc` and `/sys` in its target and leaves them behind if it fails): unmounts
/// what is still there, deepest first, then `rm -rf --one-file-system`, so removal never
/// reaches into the host's `/proc`, `/sys` or `/dev`.
pub fn remove_tree(path: &Path) -> Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    let path = path
        .canonicalize()
        .with_context(|| format!("{}", path.display()))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = mountinfo
        .lines()
        // Field 5 is the mount point, with spaces and such escaped as octal (\040).
        .filter_map(|line| line.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(&path))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    for mount in mounts {
        run(Command::new("umount").arg("-l").arg(&mount))?;
    }
    run_quiet(
        Command::new("rm")
            .arg("-rf")
            .arg("--one-file-system")
            .arg(&path),
    )
}

/// Runs `cmd` with its output going to the file `log` rather than the terminal, echoing the
/// command first; fails unless it exits 0, with the end of the log in the error.
pub fn run_logged(cmd: &mut Command, log: &Path) -> Result<()> {
    /// Lines of the log a failure shows.
    const TAIL: usize = 40;
    println!("    $ {}  (log: {})", display(cmd), log.display());
    let file = std::fs::File::create(log).with_context(|| log.display().to_string())?;
    cmd.stdout(file.try_clone()?).stderr(file);
    if let Err(err) = run_quiet(cmd) {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(TAIL)..].join("\n");
        bail!("{err:#}; last lines of {}:\n{tail}", log.display());
    }
    Ok(())
}

/// Runs `cmd` with its standard output discarded and its standard error kept for the error
/// message; fails unless it exits 0.
pub fn run_silent(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .stdout(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{}`", display(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}\n{}",
            display(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(())
}

/// The sha256 and size of the file at `path`, read in 1 MiB pieces.
pub fn sha256_file(path: &Path) -> Result<(d2l_blob::Digest, u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    let mut hasher = d2l_blob::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| path.display().to_string())?;
        if n == 0 {
            return Ok((hasher.finish(), size));
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
}
