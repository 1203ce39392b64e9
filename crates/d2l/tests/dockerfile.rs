//! Issue 7's proof: `d2l build -f Dockerfile` drives a real image builder (buildah) and turns
//! its result into a disk. A Dockerfile `FROM` the kernel-less minbase fixture whose `RUN`
//! installs `linux-image-amd64` and `systemd-sysv` from Debian's mirror builds to a disk that
//! boots to the login prompt in QEMU; a failing `RUN` step and a missing builder are clear
//! errors that leave no output. podman, the second builder, is driven the same way.
//!
//! buildah (and podman, which builds with buildah's code) runs as the tests' root user with vfs storage in the test's own directory and
//! chroot isolation (`CONTAINERS_STORAGE_CONF`, `BUILDAH_ISOLATION`): no runtime, overlay
//! mounts or user namespaces needed, nothing written to the host's container storage. d2l
//! passes none of this; it is how this machine's builders are configured.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{assert_clean_failure, assert_clean_failure_code, list_dir, stderr};
use d2l_testkit::builder::BuilderStorage;
use d2l_testkit::qemu::{Drive, Qemu};

/// The budget for one boot to the login prompt.
const BOOT_BUDGET: Duration = Duration::from_secs(180);
/// Time for one shell command in the booted system.
const COMMAND_TIME: Duration = Duration::from_secs(60);
const PASSWORD: &str = "d2l-dockerfile-test";
/// Overrides Debian's mirror for the fixtures, and here for the `RUN` step too.
const MIRROR_ENV: &str = "D2L_DEBIAN_MIRROR";

/// A test's directory, removed at the end. Its path is a valid image name on purpose:
/// buildah 1.28 names an image it pulls from `oci:PATH` after PATH, which must then be
/// lowercase with no component starting with a dot (not true of `~/.cache/...` or of
/// tempfile's random names).
struct Scratch(PathBuf, BuilderStorage);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("d2l-dockerfile-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["ctx", "out"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let storage = BuilderStorage::in_dir(&dir);
        Scratch(dir, storage)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// `--build-arg BASE=oci:...` for `FROM ${BASE}`: the minbase fixture, linked here under
    /// a name buildah accepts.
    fn base_arg(&self) -> String {
        let fixture = d2l_testkit::minbase();
        let link = self.path("minbase-oci");
        if !link.exists() {
            std::os::unix::fs::symlink(&fixture.oci_dir, &link).unwrap();
        }
        format!("BASE=oci:{}:{}", link.display(), fixture.reference)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    /// The environment buildah runs in (d2l passes it on to the builder untouched).
    fn buildah_env(&self, cmd: &mut Command) {
        self.1.configure(cmd);
    }

    /// `d2l ARGS` with buildah configured for this directory, and `PATH` if given.
    fn d2l(&self, args: &[&str], path: Option<&Path>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_d2l"));
        cmd.args(args).env_remove("D2L_LOG");
        self.buildah_env(&mut cmd);
        if let Some(path) = path {
            cmd.env("PATH", path);
        }
        cmd.output().expect("run d2l")
    }

    /// `buildah ARGS` against this directory's storage.
    fn buildah(&self, args: &[&str]) -> String {
        self.builder("buildah", args)
    }

    /// `BUILDER ARGS` (buildah or podman) against this directory's storage.
    fn builder(&self, builder: &str, args: &[&str]) -> String {
        let mut cmd = Command::new(builder);
        cmd.args(args);
        self.buildah_env(&mut cmd);
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("run {builder} (package {builder}): {e}"));
        assert!(out.status.success(), "{builder} {args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Everything the run printed: the builder's output goes to d2l's stdout and stderr.
fn all_output(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out))
}

/// The real `program`'s path, from this process's `PATH`.
fn real(program: &str) -> PathBuf {
    d2l_testkit::which(program).unwrap_or_else(|| panic!("{program} on PATH (package {program})"))
}

/// A directory holding only a link to `builder`: a `PATH` with no other builder on it.
fn path_with_only(scratch: &Scratch, builder: &str) -> PathBuf {
    let bin = scratch.path(&format!("bin-{builder}"));
    if !bin.exists() {
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(real(builder), bin.join(builder)).unwrap();
    }
    bin
}

/// Runs `command` in the VM's shell; returns its output.
fn shell(vm: &mut Qemu, command: &str) -> String {
    vm.shell(command, COMMAND_TIME)
        .unwrap_or_else(|t| panic!("{command}: no answer: {t:?}"))
}

/// The seed workflow: a kernel installed by `RUN apt-get install` boots. The Dockerfile
/// has a later stage that fails, so the build passing proves `--target` reaches buildah;
/// a file copied from the context (the Dockerfile's directory, the default) proves the
/// context; `BASE` and `MIRROR` come in as `--build-arg`s.
#[test]
fn dockerfile_installing_a_kernel_builds_a_disk_that_boots_to_login() {
    let s = Scratch::new("boot");
    s.write(
        "ctx/Dockerfile",
        "ARG BASE\n\
         FROM ${BASE} AS kernel\n\
         ARG MIRROR=http://deb.debian.org/debian\n\
         RUN echo \"deb $MIRROR bookworm main\" > /etc/apt/sources.list \\\n \
             && apt-get update \\\n \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y linux-image-amd64 systemd-sysv \\\n \
             && apt-get clean && rm -rf /var/lib/apt/lists/*\n\
         COPY from-context.txt /etc/d2l-from-context\n\
         \n\
         FROM kernel AS broken\n\
         RUN echo this stage must not be built && false\n",
    );
    s.write("ctx/from-context.txt", "copied from the build context\n");
    let image = s.path("out/linux.img");
    let base = s.base_arg();
    let mirror = std::env::var(MIRROR_ENV)
        .ok()
        .filter(|m| !m.is_empty())
        .map(|m| format!("MIRROR={m}"));
    let dockerfile = s.path("ctx/Dockerfile");
    let mut args = vec![
        "build",
        "-f",
        dockerfile.to_str().unwrap(),
        "--target",
        "kernel",
        "--build-arg",
        &base,
        "-o",
        image.to_str().unwrap(),
        "--root-password",
        PASSWORD,
    ];
    if let Some(mirror) = &mirror {
        args.extend(["--build-arg", mirror]);
    }
    let started = Instant::now();
    let run = s.d2l(&args, None);
    let printed = all_output(&run);
    assert!(run.status.success(), "d2l build -f: {printed}");
    eprintln!("build: {:.1}s", started.elapsed().as_secs_f64());
    assert!(
        printed.contains("STEP 4/4: COPY") && printed.contains("Setting up linux-image-amd64"),
        "buildah's output reaches the user: {printed}"
    );
    assert!(!printed.contains("must not be built"), "--target ignored");
    assert_eq!(
        list_dir(&s.path("out")),
        ["linux.img"],
        "only the disk is left"
    );
    // buildah keeps the base it pulled, not the image it built for d2l.
    let images = s.buildah(&["images", "--format", "{{.Name}}"]);
    assert_eq!(
        images.lines().count(),
        1,
        "images left in storage: {images}"
    );
    assert!(images.contains("minbase-oci"), "{images}");

    let mut vm = Qemu::builder()
        .memory_mib(1024)
        .drive(Drive::raw(&image))
        .start()
        .expect("start qemu-system-x86_64 (package qemu-system-x86)");
    for step in ["SYSLINUX", "Linux version", "systemd", "login:"] {
        vm.wait_for(step, BOOT_BUDGET)
            .unwrap_or_else(|t| panic!("no {step:?} on the console: {t:?}"));
    }
    assert!(vm.elapsed() < BOOT_BUDGET, "boot took {:?}", vm.elapsed());
    eprintln!("login prompt after {:?}", vm.elapsed());
    vm.log_in("root", PASSWORD, "root@d2l", COMMAND_TIME)
        .unwrap_or_else(|t| panic!("login as root failed: {t:?}"));
    let kernel = shell(&mut vm, "dpkg-query -W -f '${Status}' linux-image-amd64");
    assert!(kernel.contains("install ok installed"), "{kernel}");
    let copied = shell(&mut vm, "cat /etc/d2l-from-context");
    assert!(copied.contains("copied from the build context"), "{copied}");
    let init = shell(&mut vm, "readlink /proc/1/exe");
    assert!(init.contains("systemd"), "PID 1: {init}");
    vm.send_line("systemctl poweroff").unwrap();
    assert!(
        vm.wait_exit(Duration::from_secs(120)).is_some(),
        "the machine did not power off: {}",
        vm.transcript_tail(2000)
    );
}

#[test]
fn failing_run_step_is_the_error_and_leaves_no_output() {
    let s = Scratch::new("fail");
    s.write(
        "ctx/Dockerfile",
        "ARG BASE\nFROM ${BASE}\nRUN echo about to fail && exit 3\n",
    );
    let dockerfile = s.path("ctx/Dockerfile");
    let out_dir = s.path("out");
    let image = out_dir.join("linux.img");
    let run = s.d2l(
        &[
            "build",
            "-f",
            dockerfile.to_str().unwrap(),
            "--build-arg",
            &s.base_arg(),
            "-o",
            image.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        all_output(&run).contains("about to fail"),
        "the step's output is shown: {}",
        all_output(&run)
    );
    // buildah exits with the step's code, and so does d2l.
    assert_clean_failure_code(
        &run,
        3,
        &out_dir,
        &[],
        &[
            dockerfile.to_str().unwrap(),
            "buildah bud",
            "exit status: 3",
        ],
    );
    let containers = s.buildah(&["containers", "--quiet"]);
    assert_eq!(containers.trim(), "", "working containers left behind");
}

#[test]
fn no_builder_on_path_says_what_to_install() {
    let s = Scratch::new("none");
    s.write("ctx/Dockerfile", "FROM scratch\n");
    let empty = s.path("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let out_dir = s.path("out");
    let image = out_dir.join("linux.img");
    let dockerfile = s.path("ctx/Dockerfile");
    let args = [
        "build",
        "-f",
        dockerfile.to_str().unwrap(),
        "-o",
        image.to_str().unwrap(),
    ];
    let run = s.d2l(&args, Some(&empty));
    assert_clean_failure(
        &run,
        &out_dir,
        &[],
        &[
            "no container image builder on PATH",
            "buildah",
            "podman",
            "docker",
            "apt-get install",
        ],
    );
    // A builder asked for by name and missing is named, even when another one is there.
    let only_buildah = path_with_only(&s, "buildah");
    let mut chosen = args.to_vec();
    chosen.extend(["--builder", "podman"]);
    let run = s.d2l(&chosen, Some(&only_buildah));
    assert_clean_failure(
        &run,
        &out_dir,
        &[],
        &["podman is not on PATH", "apt-get install podman"],
    );
}

/// `--builder buildah` with a `PATH` holding buildah and nothing else: the builder is found
/// there and works, and the image it made is the one on the disk.
#[test]
fn chosen_builder_found_on_path_builds_the_image() {
    chosen_builder_builds_the_image("buildah");
}

/// The same through podman (`podman build`, `podman save`); podman leaves no image or
/// container behind either, and a failing step's exit code is d2l's.
#[test]
fn podman_builds_the_image_and_its_failures_are_the_error() {
    let s = chosen_builder_builds_the_image("podman");
    let images = s.builder("podman", &["images", "--format", "{{.Repository}}"]);
    assert_eq!(images.lines().count(), 1, "images left: {images}");
    assert!(images.contains("minbase-oci"), "only the base: {images}");
    let containers = s.builder("podman", &["ps", "--all", "--quiet"]);
    assert_eq!(containers.trim(), "", "containers left behind");

    s.write(
        "ctx/Dockerfile.fail",
        "ARG BASE\nFROM ${BASE}\nRUN echo about to fail && exit 3\n",
    );
    let dockerfile = s.path("ctx/Dockerfile.fail");
    let out_dir = s.path("out");
    let run = s.d2l(
        &[
            "build",
            "--builder",
            "podman",
            "-f",
            dockerfile.to_str().unwrap(),
            "--build-arg",
            &s.base_arg(),
            "-o",
            out_dir.join("linux.img").to_str().unwrap(),
        ],
        Some(&path_with_only(&s, "podman")),
    );
    assert!(
        all_output(&run).contains("about to fail"),
        "{}",
        all_output(&run)
    );
    assert_clean_failure_code(
        &run,
        3,
        &out_dir,
        &["rootfs.ext4".to_string()],
        &[
            dockerfile.to_str().unwrap(),
            "podman build",
            "exit status: 3",
        ],
    );
}

/// Builds a Dockerfile whose `RUN` writes /greeting with `--builder BUILDER` and only that
/// builder on `PATH`, as a bare ext4, and checks the file and the filesystem.
fn chosen_builder_builds_the_image(builder: &str) -> Scratch {
    let s = Scratch::new(&format!("choice-{builder}"));
    s.write(
        "ctx/Dockerfile",
        "ARG BASE\nFROM ${BASE}\nARG GREETING\nRUN echo \"$GREETING\" > /greeting\n",
    );
    let only_builder = path_with_only(&s, builder);
    let fs = s.path("out/rootfs.ext4");
    let run = s.d2l(
        &[
            "build",
            "--builder",
            builder,
            "-f",
            s.path("ctx/Dockerfile").to_str().unwrap(),
            "--build-arg",
            &s.base_arg(),
            "--build-arg",
            "GREETING=hello from RUN",
            "--table",
            "none",
            "-o",
            fs.to_str().unwrap(),
        ],
        Some(&only_builder),
    );
    assert!(run.status.success(), "{builder}: {}", all_output(&run));
    let cat = Command::new("debugfs")
        .args(["-R", "cat /greeting"])
        .arg(&fs)
        .output()
        .expect("debugfs (package e2fsprogs)");
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "hello from RUN\n");
    let fsck = Command::new("e2fsck").arg("-fn").arg(&fs).output().unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    s
}

#[test]
fn bad_dockerfile_context_or_source_are_named() {
    let s = Scratch::new("bad");
    let out_dir = s.path("out");
    let image = out_dir.join("linux.img");
    let image = image.to_str().unwrap();
    let missing = s.path("ctx/Dockerfile.missing");
    let run = s.d2l(
        &["build", "-f", missing.to_str().unwrap(), "-o", image],
        None,
    );
    assert_clean_failure(&run, &out_dir, &[], &[missing.to_str().unwrap()]);

    s.write("ctx/Dockerfile", "FROM scratch\n");
    let dockerfile = s.path("ctx/Dockerfile");
    let not_dir = dockerfile.to_str().unwrap();
    let run = s.d2l(&["build", "-f", not_dir, not_dir, "-o", image], None);
    assert_clean_failure(
        &run,
        &out_dir,
        &[],
        &["build context", not_dir, "not a directory"],
    );

    // Without -f, SOURCE is an image as before: a malformed one is a usage error.
    let run = s.d2l(&["build", "oci:", "-o", image], None);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(stderr(&run).contains("'oci:'"), "{}", stderr(&run));
    let run = s.d2l(&["build", "-o", image], None);
    assert_eq!(run.status.code(), Some(2), "SOURCE or -f is required");
    assert_eq!(list_dir(&out_dir), Vec::<String>::new());
}
