//! Shared test support for d2l's crates: where the built fixtures are, and builders for small
//! crafted images. Used as a dev-dependency; never part of the product.
//!
//! The big fixture is a real Debian bookworm image that `cargo xtask fixtures` builds once
//! (as root, a few minutes) and caches: [`fixtures_dir`] finds it and [`debian`] describes it
//! as a [`DebianFixture`] (source strings for its three forms, its layers, the paths its
//! second layer deletes, replaces and adds). Both panic when the fixtures are missing, so a
//! test that needs them fails instead of silently passing.
//!
//! ```no_run
//! let debian = d2l_testkit::debian();
//! assert_eq!(debian.layers.len(), 2);
//! println!("export {} and check {:?} are gone", debian.oci, debian.layer2_removed);
//! ```

#![deny(missing_docs)]

pub mod apply;
pub mod builder;
pub mod debugfs;
mod fixtures;
pub mod layer;

pub mod oci;
mod one_layer;
pub mod qemu;
pub mod qemu_img;
pub mod registry;

/// Runs `program ARGS` in `dir`, panicking unless it succeeds (with both its outputs);
/// returns its standard output: the one "run a checker" of the tests.
pub fn run_ok_in(dir: &std::path::Path, program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The first executable file `command` in `PATH`'s directories, then in the sbin directories
/// (tests may run with a `PATH` that lacks them, and e2fsprogs lives there): the one
/// "find a program" of the tests. A `command` with a `/` is that file, if executable.
pub fn which(command: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |file: &std::path::Path| {
        std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if command.contains('/') {
        let file = std::path::PathBuf::from(command);
        return executable(&file).then_some(file);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(std::path::PathBuf::from))
        .map(|dir| dir.join(command))
        .find(|file| executable(file))
}

pub use fixtures::{arm64_layout, debian, fixtures_dir, DebianFixture, FixtureLayer, FIXTURES_ENV};
pub use one_layer::{
    machine, minbase, minbase_of, MachineFixture, MinbaseFixture, OneLayerFixture, MACHINE_ENV,
    MINBASE_BULLSEYE_ENV, MINBASE_ENV, MINBASE_TRIXIE_ENV,
};

/// Compiles the one-file Rust program `source` into a static executable at `output` (for
/// images with no libc), with the `rustc` on PATH; panics when it does not compile.
pub fn compile_static(source: &std::path::Path, output: &std::path::Path) {
    let status = std::process::Command::new("rustc")
        .args([
            "-O",
            "-C",
            "target-feature=+crt-static",
            "-C",
            "strip=symbols",
        ])
        .arg(source)
        .arg("-o")
        .arg(output)
        .status()
        .expect("rustc (the toolchain that builds d2l) compiles test programs");
    assert!(status.success(), "rustc {}", source.display());
}
