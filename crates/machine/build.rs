//! Builds d2l-init (crates/init) as a static executable for `src/appliance` to write into
//! disks: statically linked, it runs in any image, with glibc, musl or no libc at all.
//!
//! A nested `cargo build` of that one package, for this target with `+crt-static`, in a
//! target directory of its own beside ours (one build shared by check, clippy and test),
//! so the outer build's locks and flags never meet it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let init = manifest_dir.join("../init");
    for watched in ["src", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", init.join(watched).display());
    }
    let out_dir = PathBuf::from(env("OUT_DIR"));
    let target = env("TARGET");
    // OUT_DIR is TARGET_DIR/PROFILE/build/PACKAGE-HASH/out (or TARGET_DIR/TRIPLE/PROFILE/...).
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .unwrap_or(&out_dir)
        .join("d2l-init-static");
    let mut cargo = Command::new(env("CARGO"));
    cargo
        .args(["build", "--release", "--offline", "--bin", "d2l-init"])
        .arg("--manifest-path")
        .arg(init.join("Cargo.toml"))
        .args(["--target", &target])
        .arg("--target-dir")
        .arg(&target_dir)
        // The outer build's flags and wrappers (clippy's among them) are not this build's.
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            ["-Ctarget-feature=+crt-static", "-Cstrip=symbols"].join("\x1f"),
        );
    let status = cargo
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build d2l-init: {e}"));
    assert!(status.success(), "building d2l-init failed: {status}");
    let built = target_dir.join(&target).join("release/d2l-init");
    copy(&built, &out_dir.join("d2l-init"));
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name} for build scripts"))
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()));
}
