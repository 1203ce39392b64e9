//! d2l-init as PID 1 for real, without a virtual machine: the static binary d2l writes into
//! disks, run by `unshare` as PID 1 of new PID, mount, UTS, IPC and network namespaces,
//! rooted in a directory holding only it, its configuration and a static test program.
//! What it mounts, the host name, loopback, reaping orphans, forwarding SIGTERM, the
//! environment, and the exit status it reports are all checked from the program's and the
//! init's own output. Needs root (CI runs as root) and util-linux's unshare.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use d2l_init::config::{RunConfig, INIT_PATH, RUN_CONFIG};
use d2l_machine::appliance::INIT_BINARY;

/// The longest the whole run may take.
const BUDGET: Duration = Duration::from_secs(60);

fn write(root: &Path, path: &str, bytes: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let file = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, bytes).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn as_pid1_it_mounts_reaps_forwards_sigterm_and_reports_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let workload = dir.path().join("workload");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pid1/workload.rs");
    d2l_testkit::compile_static(&source, &workload);
    write(&root, INIT_PATH, INIT_BINARY, 0o755);
    write(
        &root,
        "/workload",
        &std::fs::read(&workload).unwrap(),
        0o755,
    );
    let config = RunConfig {
        hostname: "pid1-test".into(),
        argv: vec!["/workload".into()],
        env: vec!["WORKLOAD_ENV=from the config".into()],
        workdir: "/".into(),
        user: String::new(),
        network: true,
    };
    write(&root, RUN_CONFIG, config.encode().as_bytes(), 0o644);

    let mut unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--mount", "--uts", "--ipc", "--net"])
        .arg(format!("--root={}", root.display()))
        .arg(INIT_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux's unshare");
    let unshare_pid = unshare.id();
    // Both streams, line by line, as they come.
    let (lines, received) = mpsc::channel::<String>();
    for stream in [
        Box::new(unshare.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(unshare.stderr.take().unwrap()),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
    }
    drop(lines);
    let mut transcript = Vec::new();
    let mut signalled = false;
    while let Ok(line) = received.recv_timeout(BUDGET) {
        if line == "workload ready" && !signalled {
            // PID 1 of the namespace is unshare's child.
            let children =
                std::fs::read_to_string(format!("/proc/{unshare_pid}/task/{unshare_pid}/children"))
                    .unwrap();
            let init: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
            let killed = Command::new("kill")
                .args(["-TERM", &init.to_string()])
                .status()
                .unwrap();
            assert!(killed.success());
            signalled = true;
        }
        transcript.push(line);
    }
    let _ = unshare.wait();
    let transcript = transcript.join("\n");
    let has = |line: &str| transcript.lines().any(|l| l == line);
    let mounts = transcript
        .lines()
        .find_map(|l| l.strip_prefix("workload mounts: "))
        .unwrap_or_else(|| panic!("no mounts line in:\n{transcript}"));
    for target in [
        "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/run", "/tmp",
    ] {
        assert!(
            mounts.split(' ').any(|m| m == target),
            "{target} mounted: {mounts}"
        );
    }
    for line in [
        "workload hostname: pid1-test",
        "workload loopback up: 1",
        "workload dev links: true",
        "workload env: from the config",
        "workload zombies: 0",
        "workload got SIGTERM: true",
        "d2l-init: network: no network card: loopback only",
        "d2l-init: /workload exited with status 42",
    ] {
        assert!(has(line), "{line:?} in:\n{transcript}");
    }
    assert!(signalled, "the workload got ready:\n{transcript}");
}

#[test]
fn what_stops_the_init_is_said_and_it_powers_off_rather_than_hang() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    write(&root, INIT_PATH, INIT_BINARY, 0o755);
    // A configuration with no command: the init says so and ends the machine.
    write(&root, RUN_CONFIG, b"hostname x\nnetwork none\n", 0o644);
    let out = Command::new("timeout")
        .args([
            "30", "unshare", "--pid", "--fork", "--mount", "--uts", "--ipc", "--net",
        ])
        .arg(format!("--root={}", root.display()))
        .arg(INIT_PATH)
        .stdin(Stdio::null())
        .output()
        .expect("util-linux's unshare");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(124),
        "it powered off, not hung: {err}"
    );
    assert!(
        err.contains("d2l-init: /etc/d2l-init.conf: arg: no command to run"),
        "{err}"
    );
}

#[test]
fn outside_pid1_it_refuses_to_run() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "/d2l-init", INIT_BINARY, 0o755);
    let out = Command::new(dir.path().join("d2l-init")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not PID 1"));
}
