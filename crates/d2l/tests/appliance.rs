//! Any image boots (`--kernel-from`, `--init`): a kernel from another image, d2l's
//! initramfs, and d2l's init running the image's ENTRYPOINT and CMD.
//!
//! The kernel images are the Debian fixture's kernel and modules as OCI images of their
//! own, in both layouts d2l reads: a distribution's (`/boot/vmlinuz-VERSION`,
//! `/lib/modules/VERSION`) and LinuxKit's (`/kernel`, `/kernel.tar`). The workloads:
//!
//! - `app`, `FROM scratch` with one static program compiled here (`appliance/probe.rs`)
//!   that prints its argv, environment, working directory, IDs and address, makes an HTTP
//!   request to a server this test runs, and exits 7; booted by plain QEMU from an IDE
//!   disk (QEMU's defaults: SeaBIOS, e1000 on the user network), then by `d2l run`, which
//!   must exit 7;
//! - `sh`, the minbase fixture plus a shell-script ENTRYPOINT, booted by `d2l run`, whose
//!   exit status must be the script's;
//! - the Debian fixture with its kernel deleted, booting its own systemd (`--init image`).
//!
//! Needs the fixtures (`cargo xtask fixtures`), rustc, qemu-system-x86_64 and cpio.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{d2l, stderr};
use d2l_testkit::oci::{extend_oci_layout, write_oci_layout, Compress, CraftedLayer};
use d2l_testkit::qemu::{without_escapes, Qemu};

/// The longest an appliance may take from power-on to power-off.
const RUN_BUDGET: Duration = Duration::from_secs(240);

/// The kernel images, made once per test run.
struct Kernels {
    /// `oci:DIR:kernel`, the distribution layout.
    distro: String,
    /// `oci:DIR:kernel`, LinuxKit's layout.
    linuxkit: String,
    /// The kernel's version.
    version: String,
}

fn work_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The Debian fixture's kernel and modules, as two kernel images.
fn kernels() -> &'static Kernels {
    static KERNELS: OnceLock<Kernels> = OnceLock::new();
    KERNELS.get_or_init(|| {
        let fixture = d2l_testkit::debian();
        let dir = work_dir("appliance-kernels");
        // The kernel's files, from the fixture's layers as they are stored.
        let mut distro = tar::Builder::new(Vec::new());
        let mut modules = tar::Builder::new(Vec::new());
        let (mut kernel, mut version) = (Vec::new(), String::new());
        for layer in &fixture.layers {
            let blob = fixture
                .oci_dir
                .join("blobs/sha256")
                .join(layer.digest.trim_start_matches("sha256:"));
            let gzip = flate2::read::GzDecoder::new(std::fs::File::open(blob).unwrap());
            let mut archive = tar::Archive::new(gzip);
            for entry in archive.entries().unwrap() {
                let mut entry = entry.unwrap();
                let path = entry.path().unwrap().to_string_lossy().into_owned();
                let path = path.trim_start_matches("./").to_owned();
                let mut header = entry.header().clone();
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                if let Some(v) = path.strip_prefix("boot/vmlinuz-") {
                    version = v.to_owned();
                    kernel = data.clone();
                    distro.append_data(&mut header, &path, &data[..]).unwrap();
                } else if let Some(rest) = path.strip_prefix("usr/lib/modules/") {
                    distro.append_data(&mut header, &path, &data[..]).unwrap();
                    modules
                        .append_data(&mut header, format!("lib/modules/{rest}"), &data[..])
                        .unwrap();
                }
            }
        }
        assert!(!kernel.is_empty(), "the fixture has a kernel");
        // Merged /usr, as the fixture has it.
        let mut link = header(tar::EntryType::Symlink, 0o777, 0);
        distro.append_link(&mut link, "lib", "usr/lib").unwrap();
        let distro = write_oci_layout(
            &dir.join("distro"),
            "kernel",
            &[CraftedLayer {
                tar: distro.into_inner().unwrap(),
                compress: Compress::None,
            }],
            |config| config["config"] = serde_json::json!({}),
        );
        let modules = modules.into_inner().unwrap();
        let mut linuxkit = tar::Builder::new(Vec::new());
        for (name, data) in [("kernel", &kernel), ("kernel.tar", &modules)] {
            let mut header = header(tar::EntryType::Regular, 0o644, data.len() as u64);
            linuxkit.append_data(&mut header, name, &data[..]).unwrap();
        }
        let linuxkit = write_oci_layout(
            &dir.join("linuxkit"),
            "kernel",
            &[CraftedLayer {
                tar: linuxkit.into_inner().unwrap(),
                compress: Compress::None,
            }],
            |config| config["config"] = serde_json::json!({}),
        );
        Kernels {
            distro: distro.source,
            linuxkit: linuxkit.source,
            version,
        }
    })
}

/// A tar header with every field set.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_700_000_000);
    header
}

/// Compiles the probe, statically, into `dir`.
fn probe(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/appliance/probe.rs");
    let out = dir.join("probe");
    d2l_testkit::compile_static(&source, &out);
    out
}

/// An HTTP server on the host's loopback, which the guest reaches at 10.0.2.2; records the
/// request lines it gets.
fn http_server() -> (u16, &'static Mutex<Vec<String>>) {
    let requests: &'static Mutex<Vec<String>> = Box::leak(Box::default());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 1024];
            let n = stream.read(&mut buffer).unwrap_or(0);
            let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
            requests
                .lock()
                .unwrap()
                .push(text.lines().next().unwrap_or("").to_owned());
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi");
        }
    });
    (port, requests)
}

/// Builds with d2l, asserting success; returns standard error (the summary).
fn build(args: &[&str]) -> String {
    let out = d2l(args);
    let err = stderr(&out);
    assert!(out.status.success(), "d2l {args:?}: {err}");
    err
}

/// `d2l run IMAGE` to its end: its exit status and what the console showed.
fn d2l_run(image: &Path) -> (std::process::ExitStatus, String) {
    // Under `timeout`: should the test fail first, the machine does not outlive it.
    let mut child = Command::new("timeout")
        .args(["--kill-after=10", &RUN_BUDGET.as_secs().to_string()])
        .arg(env!("CARGO_BIN_EXE_d2l"))
        .args(["run", image.to_str().unwrap(), "--memory", "512M"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stdout.read_to_end(&mut text);
        String::from_utf8_lossy(&text).replace('\r', "")
    });
    let deadline = Instant::now() + RUN_BUDGET;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("d2l run did not end in {RUN_BUDGET:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    (status, reader.join().unwrap())
}

/// The line of `transcript` that starts with `prefix`, without it.
fn line<'t>(transcript: &'t str, prefix: &str) -> &'t str {
    transcript
        .lines()
        .find_map(|l| l.trim_end().strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{transcript}"))
}

#[test]
fn an_image_from_scratch_runs_its_entrypoint_and_powers_off_and_d2l_run_returns_the_status() {
    let kernels = kernels();
    let dir = tempfile::tempdir().unwrap();
    let (port, requests) = http_server();

    // FROM scratch: the probe, an account database, nothing else.
    let probe = std::fs::read(probe(dir.path())).unwrap();
    let mut layer = d2l_testkit::layer::LayerTar::new();
    layer
        .file_mode("app/probe", &probe, 0o755)
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/nologin\napp:x:1000:1000::/home/app:/nologin\n",
        )
        .file("etc/group", b"root:x:0:\napp:x:1000:\nstaff:x:50:app\n");
    let app = write_oci_layout(
        &dir.path().join("app"),
        "app",
        &[CraftedLayer {
            tar: layer.finish(),
            compress: Compress::Gzip,
        }],
        |config| {
            config["config"] = serde_json::json!({
                "Entrypoint": ["/app/probe", "--from-entrypoint"],
                "Cmd": ["cmd arg", "two"],
                "Env": ["PATH=/app:/bin", "GREETING=hello world", format!("PROBE_PORT={port}")],
                "WorkingDir": "/data",
                "User": "app",
            })
        },
    );
    let app_img = dir.path().join("app.img");
    let summary = build(&[
        "build",
        &app.source,
        "--kernel-from",
        &kernels.distro,
        "--hostname",
        "probe-box",
        "-o",
        app_img.to_str().unwrap(),
    ]);
    assert!(
        summary.contains("d2l's init at /sbin/d2l-init runs"),
        "{summary}"
    );
    assert!(
        summary.contains("d2l's initramfs /boot/d2l-initrd.img-"),
        "{summary}"
    );

    // minbase plus a shell script as ENTRYPOINT, its kernel from the LinuxKit layout.
    let minbase = d2l_testkit::minbase();
    let mut script = d2l_testkit::layer::LayerTar::new();
    script.file_mode(
        "usr/local/bin/entry.sh",
        b"#!/bin/sh\necho \"script: $0 [$1] as $(id -u) in $(pwd)\"\n. /etc/os-release\necho \"script os: $ID $VERSION_ID\"\nexit 3\n",
        0o755,
    );
    let sh = extend_oci_layout(
        &minbase.oci_dir,
        &minbase.reference,
        &dir.path().join("sh"),
        "sh",
        &[CraftedLayer {
            tar: script.finish(),
            compress: Compress::Gzip,
        }],
        |config| {
            config["config"]["Entrypoint"] = serde_json::json!(["/usr/local/bin/entry.sh"]);
            config["config"]["Cmd"] = serde_json::json!(["first arg"]);
            config["config"]["WorkingDir"] = serde_json::json!("/srv");
        },
    );
    let sh_img = dir.path().join("sh.img");
    let summary = build(&[
        "build",
        &sh.source,
        "--kernel-from",
        &kernels.linuxkit,
        "-o",
        sh_img.to_str().unwrap(),
    ]);
    assert!(
        summary.contains(&format!(
            "kernel {} from {}",
            kernels.version, kernels.linuxkit
        )),
        "{summary}"
    );

    // Both machines at once: the app through plain QEMU, the script through `d2l run`;
    // then the app again through `d2l run`.
    let sh_run = std::thread::spawn(move || d2l_run(&sh_img));

    let mut qemu = Qemu::builder()
        .memory_mib(512)
        .args([
            "-drive".to_owned(),
            format!("file={},format=raw", app_img.display()),
        ])
        .start()
        .unwrap();
    let started = Instant::now();
    let outcome = qemu.wait_for("exited with status", RUN_BUDGET);
    let exit = qemu.wait_exit(Duration::from_secs(60));
    let transcript = qemu.transcript();
    outcome.unwrap_or_else(|e| panic!("{e}"));
    assert!(exit.is_some(), "QEMU powers off by itself:\n{transcript}");
    eprintln!("the app ran in {:.1}s", started.elapsed().as_secs_f64());

    assert_eq!(
        line(&transcript, "probe argv: "),
        r#"["/app/probe", "--from-entrypoint", "cmd arg", "two"]"#
    );
    let env = line(&transcript, "probe env: ");
    for var in [
        "\"GREETING=hello world\"",
        "\"PATH=/app:/bin\"",
        "\"HOME=/home/app\"",
        "\"HOSTNAME=probe-box\"",
        &format!("\"PROBE_PORT={port}\""),
    ] {
        assert!(env.contains(var), "{var} in {env}");
    }
    assert_eq!(line(&transcript, "probe cwd: "), "/data");
    assert_eq!(line(&transcript, "probe uid "), "1000 1000 1000 1000");
    assert_eq!(line(&transcript, "probe gid "), "1000 1000 1000 1000");
    assert_eq!(line(&transcript, "probe groups "), "50 1000");
    assert_eq!(line(&transcript, "probe ipv4: "), "10.0.2.15");
    assert_eq!(line(&transcript, "probe hostname: "), "probe-box");
    assert_eq!(
        line(&transcript, "probe resolv: "),
        "\"nameserver 10.0.2.3\""
    );
    assert_eq!(line(&transcript, "probe http: "), "HTTP/1.0 200 OK");
    assert_eq!(
        requests.lock().unwrap().as_slice(),
        ["GET /from-the-probe HTTP/1.0"]
    );
    let network = line(&transcript, "d2l-init: network: ");
    assert!(
        network.contains(" 10.0.2.15/24, router 10.0.2.2, DNS 10.0.2.3"),
        "{network}"
    );
    assert!(
        transcript.contains("d2l-init: /app/probe exited with status 7\n"),
        "{transcript}"
    );

    // `d2l run` of the app: its status is the command's.
    let (status, output) = d2l_run(&app_img);
    assert_eq!(status.code(), Some(7), "d2l run app.img:\n{output}");
    assert_eq!(line(&output, "probe ipv4: "), "10.0.2.15");
    assert!(
        output.contains("d2l-init: /app/probe exited with status 7\n"),
        "{output}"
    );

    let (status, output) = sh_run.join().unwrap();
    assert_eq!(
        status.code(),
        Some(3),
        "d2l run's status is the script's:\n{output}"
    );
    assert!(
        output.contains("script: /usr/local/bin/entry.sh [first arg] as 0 in /srv\n"),
        "{output}"
    );
    assert!(output.contains("script os: debian 12\n"), "{output}");
    assert!(
        output.contains("d2l-init: /usr/local/bin/entry.sh exited with status 3"),
        "{output}"
    );
}

#[test]
fn a_kernelless_distro_image_boots_its_own_systemd_with_a_kernel_from_another_image() {
    let kernels = kernels();
    let fixture = d2l_testkit::debian();
    let dir = tempfile::tempdir().unwrap();
    // The Debian fixture with its kernel, initrd and modules deleted by a layer on top.
    let v = &kernels.version;
    let mut delete = d2l_testkit::layer::LayerTar::new();
    for path in [
        format!("boot/vmlinuz-{v}"),
        format!("boot/initrd.img-{v}"),
        format!("boot/System.map-{v}"),
        format!("boot/config-{v}"),
        format!("usr/lib/modules/{v}"),
        "vmlinuz".into(),
        "vmlinuz.old".into(),
        "initrd.img".into(),
        "initrd.img.old".into(),
    ] {
        delete.whiteout(&path);
    }
    let image = extend_oci_layout(
        &fixture.oci_dir,
        "bookworm",
        &dir.path().join("nokernel"),
        "nokernel",
        &[CraftedLayer {
            tar: delete.finish(),
            compress: Compress::Gzip,
        }],
        |_| {},
    );
    let disk = dir.path().join("systemd.img");
    let summary = build(&[
        "build",
        &image.source,
        "--kernel-from",
        &kernels.distro,
        "--root-password",
        "appliance",
        "-o",
        disk.to_str().unwrap(),
    ]);
    assert!(
        summary.contains(&format!("files of its modules in /lib/modules/{v}")),
        "{summary}"
    );
    assert!(
        !summary.contains("d2l's init at"),
        "the image's own init: {summary}"
    );

    let mut qemu = Qemu::builder()
        .memory_mib(1024)
        .args([
            "-drive".to_owned(),
            format!("file={},format=raw,if=virtio", disk.display()),
            "-nic".to_owned(),
            "user,model=virtio-net-pci".to_owned(),
        ])
        .start()
        .unwrap();
    let console = qemu.wait_for("login:", RUN_BUDGET);
    console.unwrap_or_else(|e| panic!("{e}"));
    let transcript = qemu.transcript();
    assert!(
        transcript.contains("d2l-init: root filesystem /dev/vda"),
        "d2l's initramfs found the root:\n{transcript}"
    );
    qemu.log_in("root", "appliance", "# ", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    let shell = |qemu: &mut Qemu, command: &str| {
        let out = qemu
            .shell(command, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}"));
        without_escapes(out.trim().lines().last().unwrap_or(""))
    };
    assert_eq!(shell(&mut qemu, "uname -r"), *v);
    assert_eq!(shell(&mut qemu, "cat /proc/1/comm"), "systemd");
    assert_eq!(shell(&mut qemu, "ls /lib/modules"), *v);
    // udev loads what it finds from the copied modules: the sound of the machine's own
    // hardware, not d2l's list.
    assert_eq!(
        shell(&mut qemu, "test -e /sys/module/virtio_net && echo loaded"),
        "loaded"
    );
    // The image's own network stack (systemd-networkd, set up by d2l) has the card up.
    assert_eq!(shell(&mut qemu, "cat /sys/class/net/eth0/operstate"), "up");
    qemu.shutdown();
}

#[test]
fn what_cannot_boot_is_refused_with_one_line_before_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut layer = d2l_testkit::layer::LayerTar::new();
    layer.file_mode("app/run", b"not really a program", 0o755);
    let tar = layer.finish();
    let image = |name: &str, config: serde_json::Value| {
        write_oci_layout(
            &dir.path().join(name),
            name,
            &[CraftedLayer {
                tar: tar.clone(),
                compress: Compress::Gzip,
            }],
            |c| c["config"] = config,
        )
        .source
    };
    let no_command = image("nocommand", serde_json::json!({}));
    let ghost = image(
        "ghost",
        serde_json::json!({"Entrypoint": ["/app/run"], "User": "ghost"}),
    );
    let missing = image("missing", serde_json::json!({"Cmd": ["/app/nothing"]}));
    let fine = image("fine", serde_json::json!({"Cmd": ["/app/run"]}));
    let key = dir.path().join("key.pub");
    std::fs::write(
        &key,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl t@d2l\n",
    )
    .unwrap();
    let key = key.to_str().unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let output = out_dir.join("x.img");
    let output = output.to_str().unwrap();
    let kernel = &kernels().distro;
    let host_version = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap()
        .trim()
        .to_owned();
    let host_has_kernel = Path::new(&format!("/boot/vmlinuz-{host_version}")).exists();

    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (
            vec![&no_command, "--kernel-from", kernel],
            vec!["has no ENTRYPOINT or CMD".into(), "--cmd".into()],
        ),
        (
            vec![&ghost, "--kernel-from", kernel],
            vec![
                "User \"ghost\"".into(),
                "not in the image's /etc/passwd".into(),
            ],
        ),
        (
            vec![&missing, "--kernel-from", kernel],
            vec!["\"/app/nothing\" is not in the image".into()],
        ),
        (
            vec![&fine, "--kernel-from", &fine],
            vec!["no kernel in".into(), "/boot/vmlinuz-VERSION".into()],
        ),
        (
            vec![&fine, "--init", "d2l"],
            vec!["no kernel for d2l's init".into(), "--kernel-from".into()],
        ),
        (
            // `auto` leaves a kernel-less image to the recipes, which say what to do.
            vec![&fine],
            vec!["no /etc/os-release".into(), "--kernel-from IMAGE".into()],
        ),
        (
            vec![&fine, "--kernel-from", kernel, "--ssh-key", key],
            vec!["--ssh-key".into(), "--init image".into()],
        ),
    ];
    for (args, needles) in cases {
        let mut all = vec!["build"];
        all.extend(args.iter().copied());
        all.extend(["-o", output]);
        let out = d2l(&all);
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        common::assert_clean_failure(&out, &out_dir, &[], &needles);
    }
    if host_has_kernel {
        // A machine with its kernel from a package: the kernel and initramfs go in.
        let summary = build(&["build", &fine, "--kernel-from", "host", "-o", output]);
        assert!(
            summary.contains(&format!("kernel {host_version} from the host")),
            "{summary}"
        );
        std::fs::remove_file(output).unwrap();
    } else {
        // This machine's kernel is not from a package (a VM's own): said in one line.
        let out = d2l(&["build", &fine, "--kernel-from", "host", "-o", output]);
        common::assert_clean_failure(
            &out,
            &out_dir,
            &[],
            &[&format!(
                "no kernel in the host (looked for /boot/vmlinuz-{host_version}"
            )],
        );
    }
    // A bare filesystem gets them too, for a VMM to boot from outside.
    let bare = dir.path().join("bare.ext4");
    build(&[
        "build",
        &fine,
        "--kernel-from",
        kernel,
        "--table",
        "none",
        "-o",
        bare.to_str().unwrap(),
    ]);
    d2l_testkit::debugfs::assert_fsck_clean(&bare);
    let v = &kernels().version;
    let out = d2l_testkit::debugfs::batch(
        &bare,
        &[
            format!("stat /boot/vmlinuz-{v}"),
            format!("stat /boot/d2l-initrd.img-{v}"),
            "stat /sbin/d2l-init".into(),
            "cat /etc/d2l-init.conf".into(),
        ],
    );
    for (i, what) in ["kernel", "initramfs", "init"].iter().enumerate() {
        assert!(out[i].contains("Type: regular"), "{what}: {}", out[i]);
    }
    assert!(out[3].contains("\narg /app/run\n"), "{}", out[3]);
    // Usage errors, before any work.
    for args in [
        vec![
            "build", &fine, "--init", "image", "--cmd", "x", "-o", output,
        ],
        vec![
            "build",
            &fine,
            "--entrypoint",
            "[\"unterminated",
            "-o",
            output,
        ],
        vec![
            "build",
            &fine,
            "--kernel-from",
            kernel,
            "--kernel",
            "/boot/k",
            "-o",
            output,
        ],
    ] {
        let out = d2l(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    // An arm64 image cannot run d2l's init, which is built for this machine.
    let arm64 = format!("oci:{}", d2l_testkit::arm64_layout().display());
    let out = d2l(&[
        "build",
        &arm64,
        "--platform",
        "linux/arm64",
        "--init",
        "d2l",
        "--kernel-from",
        kernel,
        "--cmd",
        "/bin/true",
        "-o",
        output,
    ]);
    common::assert_clean_failure(&out, &out_dir, &[], &["d2l's init is built for amd64"]);
}
