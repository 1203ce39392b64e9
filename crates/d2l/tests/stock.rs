//! Issue 14's proof: stock distribution images, which have no kernel, boot. Kernel-less
//! Debian images (debootstrap minbase of bookworm, trixie and bullseye, nothing added) are
//! pushed to a real `docker-registry`; `d2l build HOST/d2l/debian:SUITE` finds no kernel,
//! reads the image's os-release, runs buildah on the generated recipe (apt-get from Debian's
//! mirror) and boots in QEMU to a login, where the test checks the root filesystem and that
//! the running kernel is the one the recipe installed. A second build of the same image comes
//! from d2l's cache with no builder on PATH at all.
//!
//! buildah runs as in the Dockerfile tests ([`BuilderStorage`]: vfs storage in the test's
//! directory, chroot isolation), configured through d2l's environment, which d2l hands to the
//! builder untouched.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{assert_clean_failure, assert_clean_failure_code, list_dir, stderr};
use d2l_testkit::builder::BuilderStorage;
use d2l_testkit::qemu::{Drive, Qemu};
use d2l_testkit::registry::{Registry, Setup};

const BOOT_BUDGET: Duration = Duration::from_secs(240);
const COMMAND_TIME: Duration = Duration::from_secs(60);
const PASSWORD: &str = "d2l-stock-test";
/// Where the kernel-less images are pushed.
const REPOSITORY: &str = "d2l/debian";

/// One registry for the whole test binary, holding the three stock images.
fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let registry = Registry::start(Setup::Http);
        for suite in ["bookworm", "trixie", "bullseye"] {
            let fixture = d2l_testkit::minbase_of(suite);
            registry.push(&fixture.oci, &format!("{REPOSITORY}:{suite}"), false);
        }
        registry
    })
}

fn reference(suite: &str) -> String {
    format!("{}/{REPOSITORY}:{suite}", registry().host())
}

/// A test's directory (removed at the end): output, d2l's cache, buildah's storage.
struct Scratch(PathBuf, BuilderStorage);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("d2l-stock-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["out", "cache"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let storage = BuilderStorage::in_dir(&dir);
        Scratch(dir, storage)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn cache(&self) -> String {
        self.path("cache").display().to_string()
    }

    /// `d2l ARGS --cache-dir <scratch>/cache`, with buildah configured for this directory,
    /// and `PATH` if given.
    fn d2l(&self, args: &[&str], path: Option<&Path>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_d2l"));
        cmd.args(args)
            .args(["--cache-dir", &self.cache()])
            .env_remove("D2L_LOG");
        self.1.configure(&mut cmd);
        if let Some(path) = path {
            cmd.env("PATH", path);
        }
        cmd.output().expect("run d2l")
    }

    /// A directory holding links to `programs` only, for a `PATH` without any image builder.
    fn bin_with(&self, programs: &[&str]) -> PathBuf {
        let bin = self.path("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for program in programs {
            let real = d2l_testkit::which(program).unwrap_or_else(|| panic!("{program} on PATH"));
            std::os::unix::fs::symlink(real, bin.join(program)).unwrap();
        }
        bin
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn all_output(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out))
}

/// Builds `suite` from the registry into `<scratch>/out/<name>` with `extra` options;
/// returns the output and the time it took.
fn build(
    s: &Scratch,
    suite: &str,
    name: &str,
    extra: &[&str],
    path: Option<&Path>,
) -> (Output, Duration) {
    let image = s.path("out").join(name);
    let source = reference(suite);
    let mut args = vec![
        "build",
        &source,
        "-o",
        image.to_str().unwrap(),
        "--root-password",
        PASSWORD,
    ];
    args.extend(extra);
    let started = Instant::now();
    let out = s.d2l(&args, path);
    (out, started.elapsed())
}

/// Boots `drive` to a login and checks what the issue names: `/` is ext4 and read-write, the
/// running kernel is the one the recipe installed (the only one in /lib/modules, from
/// Debian's package), systemd is PID 1. `more` runs further checks in the same boot.
fn boot_and_check(drive: Drive, more: impl FnOnce(&mut Qemu)) {
    let mut vm = Qemu::builder()
        .memory_mib(1024)
        .drive(drive)
        .start()
        .expect("start qemu-system-x86_64 (package qemu-system-x86)");
    for step in ["Linux version", "login:"] {
        vm.wait_for(step, BOOT_BUDGET)
            .unwrap_or_else(|t| panic!("no {step:?} on the console: {t:?}"));
    }
    eprintln!("login prompt after {:?}", vm.elapsed());
    vm.log_in("root", PASSWORD, "root@d2l", COMMAND_TIME)
        .unwrap_or_else(|t| panic!("login as root failed: {t:?}"));
    let root = last_line(&shell(&mut vm, "findmnt -n -o FSTYPE,OPTIONS /"));
    assert!(
        root.starts_with("ext4 ") && root.split([' ', ',']).any(|o| o == "rw"),
        "/: {root}"
    );
    let running = last_line(&shell(&mut vm, "uname -r"));
    let installed = last_line(&shell(&mut vm, "ls /lib/modules"));
    assert!(!running.is_empty(), "uname -r printed nothing");
    assert_eq!(
        installed, running,
        "the running kernel is the installed one"
    );
    let owner = last_line(&shell(&mut vm, &format!("dpkg -S /boot/vmlinuz-{running}")));
    assert!(owner.starts_with("linux-image-"), "{owner}");
    let init = last_line(&shell(&mut vm, "readlink /proc/1/exe"));
    assert!(init.ends_with("/systemd"), "PID 1: {init}");
    more(&mut vm);
    vm.send_line("systemctl poweroff").unwrap();
    assert!(
        vm.wait_exit(Duration::from_secs(120)).is_some(),
        "the machine did not power off: {}",
        vm.transcript_tail(2000)
    );
}

/// The last line a command printed, without the terminal's escape sequences.
/// The command's last output line. Kernel messages (`[   41.99] ...`) printed on the serial
/// console meanwhile are not the command's: one landed after `uname -r`'s line in CI.
fn last_line(output: &str) -> String {
    let is_kernel_message = |line: &str| {
        line.trim_start()
            .strip_prefix('[')
            .and_then(|rest| rest.split_once(']'))
            .is_some_and(|(stamp, _)| stamp.trim().parse::<f64>().is_ok())
    };
    let line = output
        .trim_end()
        .lines()
        .map(d2l_testkit::qemu::without_escapes)
        .rfind(|line| !is_kernel_message(line));
    line.unwrap_or_default()
}

fn shell(vm: &mut Qemu, command: &str) -> String {
    vm.shell(command, COMMAND_TIME)
        .unwrap_or_else(|t| panic!("{command}: no answer: {t:?}"))
}

/// The command users type first, on bookworm, with `--install openssh-server` and `-v`: the
/// recipe runs through buildah, the disk boots with sshd enabled; the second build of the
/// same image runs no builder (none is on its PATH), is at least 10x faster, and
/// `d2l cache ls` lists the built image.
#[test]
fn stock_bookworm_boots_and_builds_again_from_the_cache() {
    let s = Scratch::new("bookworm");
    let (first, first_time) = build(
        &s,
        "bookworm",
        "linux.img",
        &["-v", "--install", "openssh-server"],
        None,
    );
    let printed = all_output(&first);
    assert!(first.status.success(), "d2l build: {printed}");
    eprintln!("first build: {:.1}s", first_time.as_secs_f64());
    for needle in [
        "has no kernel",
        "Debian GNU/Linux 12 (bookworm)",
        "linux-image-amd64",
        "with buildah",
        "the generated Containerfile:",
        "FROM oci-archive:",
        "Setting up linux-image-amd64",
        "kept the result in",
    ] {
        assert!(printed.contains(needle), "{needle:?} not in: {printed}");
    }
    assert_eq!(
        list_dir(&s.path("out")),
        ["linux.img"],
        "only the disk is left"
    );
    let containers =
        s.1.configure(Command::new("buildah").args(["containers", "--quiet"]))
            .output()
            .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&containers.stdout).trim(),
        "",
        "working containers left"
    );

    // Again, with no image builder to be found: the cache has the result.
    let bin = s.bin_with(&["grub-mkimage"]);
    let (second, second_time) = build(
        &s,
        "bookworm",
        "again.img",
        &["--install", "openssh-server"],
        Some(&bin),
    );
    let printed = all_output(&second);
    assert!(second.status.success(), "cached d2l build: {printed}");
    assert!(printed.contains("(cached"), "{printed}");
    eprintln!("cached build: {:.1}s", second_time.as_secs_f64());
    assert!(
        first_time >= second_time * 10,
        "first {first_time:?}, cached {second_time:?}: not 10x faster"
    );
    let listing = String::from_utf8_lossy(&s.d2l(&["cache", "ls"], None).stdout).into_owned();
    assert!(
        listing.contains("BUILT FROM") && listing.contains(&reference("bookworm")),
        "{listing}"
    );
    assert!(listing.contains("1 built images"), "{listing}");

    boot_and_check(Drive::raw(s.path("out/again.img")), |vm| {
        let sshd = last_line(&shell(vm, "systemctl is-enabled ssh"));
        assert_eq!(sshd, "enabled", "sshd");
    });
}

/// trixie (Debian 13) on a GPT disk.
#[test]
fn stock_trixie_on_gpt_boots() {
    let s = Scratch::new("trixie");
    let (out, time) = build(&s, "trixie", "linux.img", &["--table", "gpt"], None);
    assert!(out.status.success(), "d2l build: {}", all_output(&out));
    eprintln!("trixie build: {:.1}s", time.as_secs_f64());
    assert!(all_output(&out).contains("Debian GNU/Linux 13 (trixie)"));
    boot_and_check(Drive::raw(s.path("out/linux.img")), |vm| {
        let table = last_line(&shell(vm, "lsblk -n -d -o PTTYPE /dev/vda"));
        assert_eq!(table, "gpt");
    });
}

/// bullseye (Debian 11, an old release) to a VDI file.
#[test]
fn stock_bullseye_to_vdi_boots() {
    let s = Scratch::new("bullseye");
    let (out, time) = build(&s, "bullseye", "linux.vdi", &[], None);
    assert!(out.status.success(), "d2l build: {}", all_output(&out));
    eprintln!("bullseye build: {:.1}s", time.as_secs_f64());
    assert!(all_output(&out).contains("Debian GNU/Linux 11 (bullseye)"));
    let check = Command::new("qemu-img")
        .args(["check", "-f", "vdi"])
        .arg(s.path("out/linux.vdi"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "qemu-img check: {}",
        all_output(&check)
    );
    boot_and_check(Drive::new(s.path("out/linux.vdi"), "vdi", "virtio"), |_| {});
}

/// A package that does not exist: apt-get's exit code (100) is d2l's, nothing is left at
/// -o or in the cache.
#[test]
fn failing_install_exits_with_the_builders_code_and_leaves_nothing() {
    let s = Scratch::new("fail");
    let (out, _) = build(
        &s,
        "bookworm",
        "linux.img",
        &["--install", "d2l-no-such-package"],
        None,
    );
    assert!(
        all_output(&out).contains("Unable to locate package d2l-no-such-package"),
        "apt-get's output is shown: {}",
        all_output(&out)
    );
    assert_clean_failure_code(
        &out,
        100,
        &s.path("out"),
        &[],
        &[&reference("bookworm"), "buildah bud", "exit status: 100"],
    );
    assert!(
        !s.path("cache/built").exists() || list_dir(&s.path("cache/built")).is_empty(),
        "{:?}",
        list_dir(&s.path("cache/built"))
    );
}

/// What no recipe serves is one error line saying what was found and what to do, before
/// any builder is looked for; `--install-kernel never` keeps the plain error; an invalid
/// `--install` value is refused before anything runs; no builder on PATH names all three.
#[test]
fn images_without_a_recipe_are_clear_errors() {
    let s = Scratch::new("errors");
    let out_dir = s.path("out");
    let image = out_dir.join("linux.img");
    let image = image.to_str().unwrap();
    let craft = |name: &str, os_release: Option<&str>| {
        let mut layer = d2l_testkit::layer::LayerTar::new();
        layer.dir("etc").file("etc/hostname", b"app\n");
        if let Some(text) = os_release {
            layer.file("etc/os-release", text.as_bytes());
        }
        let dir = s.path(name);
        d2l_testkit::oci::simple_image(&dir, &[layer.finish()], d2l_testkit::oci::Compress::Gzip);
        format!("oci:{}:latest", dir.display())
    };
    let distroless = craft("distroless", None);
    let run = s.d2l(&["build", &distroless, "-o", image], None);
    assert_clean_failure(&run, &out_dir, &[], &["no /etc/os-release", "-f"]);

    let nixos = craft("nixos", Some("ID=nixos\nPRETTY_NAME=\"NixOS 24.05\"\n"));
    let run = s.d2l(&["build", &nixos, "-o", image], None);
    assert_clean_failure(&run, &out_dir, &[], &["nixos", "-f"]);

    let debian = craft(
        "debian",
        Some("ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n"),
    );
    let run = s.d2l(
        &["build", &debian, "-o", image, "--install-kernel", "never"],
        None,
    );
    assert_clean_failure(&run, &out_dir, &[], &["no kernel"]);

    let run = s.d2l(
        &["build", &debian, "-o", image, "--install", "sshd; rm -rf /"],
        None,
    );
    assert_clean_failure(&run, &out_dir, &[], &["sshd; rm -rf /"]);

    // grub-mkimage for the disk's UEFI boot, and no builder.
    let bin = s.bin_with(&["grub-mkimage"]);
    let run = s.d2l(&["build", &debian, "-o", image], Some(&bin));
    assert_clean_failure(
        &run,
        &out_dir,
        &[],
        &[
            "no container image builder on PATH",
            "buildah",
            "podman",
            "docker",
        ],
    );
}
