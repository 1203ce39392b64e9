//! House rules that the compiler does not check, checked on the workspace itself.

use std::collections::BTreeSet;
use std::process::Command;

/// Crates that may build the network stack (async runtime, HTTP, TLS): the registry client and
/// the CLI that uses it (and the test kit, which runs a registry).
const NETWORK_CRATES: &[&str] = &["d2l-registry", "d2l", "d2l-testkit", "xtask"];

/// What only the network crates may pull in.
const NETWORK_DEPENDENCIES: &[&str] = &["tokio", "reqwest", "rustls", "aws-lc-rs", "aws-lc-sys"];

/// Every workspace member's normal dependency tree, by `cargo tree`.
fn normal_dependencies(package: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            package,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("cargo tree prints UTF-8")
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The workspace's members, by `cargo metadata`.
fn members() -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--offline",
            "--no-deps",
            "--format-version",
            "1",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata failed");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .collect()
}

#[test]
fn only_the_registry_and_the_cli_build_the_network_stack() {
    let members = members();
    assert!(members.len() > 8, "found the workspace: {members:?}");
    let mut offenders = Vec::new();
    for member in members
        .iter()
        .filter(|m| !NETWORK_CRATES.contains(&m.as_str()))
    {
        let deps = normal_dependencies(member);
        assert!(deps.contains(member), "cargo tree lists {member} itself");
        for bad in NETWORK_DEPENDENCIES {
            if deps.contains(*bad) {
                offenders.push(format!("{member} depends on {bad}"));
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
    // The rule has teeth: the registry does build them.
    assert!(normal_dependencies("d2l-registry").contains("tokio"));
}

#[test]
fn library_crates_know_only_the_crates_before_them() {
    // The data flow: blob -> registry / layer-apply -> rootfs -> fs-writer, partition,
    // disk-format (on disk) -> bootloader, machine (both on the tree) -> bootdisk -> d2l.
    let forbidden: &[(&str, &[&str])] = &[
        (
            "d2l-blob",
            &["d2l-registry", "d2l-layer-apply", "d2l-rootfs", "d2l-disk"],
        ),
        (
            "d2l-rootfs",
            &[
                "d2l-registry",
                "d2l-layer-apply",
                "d2l-blob",
                "d2l-fs-writer",
            ],
        ),
        (
            "d2l-disk",
            &["d2l-rootfs", "d2l-fs-writer", "d2l-blob", "d2l-registry"],
        ),
        (
            "d2l-layer-apply",
            &["d2l-registry", "d2l-fs-writer", "d2l-bootloader"],
        ),
        (
            "d2l-fs-writer",
            &["d2l-layer-apply", "d2l-registry", "d2l-partition"],
        ),
        (
            "d2l-partition",
            &["d2l-fs-writer", "d2l-rootfs", "d2l-layer-apply"],
        ),
        (
            "d2l-disk-format",
            &["d2l-fs-writer", "d2l-rootfs", "d2l-layer-apply"],
        ),
        (
            "d2l-fat",
            &[
                "d2l-rootfs",
                "d2l-fs-writer",
                "d2l-layer-apply",
                "d2l-registry",
                "d2l-partition",
            ],
        ),
        (
            "d2l-bootloader",
            &[
                "d2l-layer-apply",
                "d2l-fs-writer",
                "d2l-registry",
                "d2l-machine",
            ],
        ),
        // PID 1 of the machines, and the files d2l writes for it: it knows no other crate,
        // so the static binary links nothing of d2l's.
        (
            "d2l-init",
            &[
                "d2l-blob",
                "d2l-rootfs",
                "d2l-disk",
                "d2l-registry",
                "d2l-layer-apply",
                "d2l-fs-writer",
                "d2l-machine",
            ],
        ),
        // It edits the tree, and knows nothing of disks or boot loaders.
        (
            "d2l-machine",
            &[
                "d2l-blob",
                "d2l-disk",
                "d2l-registry",
                "d2l-layer-apply",
                "d2l-fs-writer",
                "d2l-partition",
                "d2l-disk-format",
                "d2l-bootloader",
            ],
        ),
    ];
    let mut offenders = Vec::new();
    for (krate, not) in forbidden {
        let deps = normal_dependencies(krate);
        for n in *not {
            if deps.contains(*n) {
                offenders.push(format!("{krate} depends on {n}"));
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}
