//! The third fixture: a Debian bookworm machine image for the "machine you can reach" tests
//! (issue 15): a `debootstrap --variant=minbase` with a kernel, systemd, systemd-resolved,
//! openssh-server, sudo, cloud-init and cloud-guest-utils (growpart), as an OCI layout with
//! one layer. A fixture of its own, so the main Debian fixture (and the digests recorded in
//! `xtask/golden/digests.txt`) stay as they are.
//!
//! # Output
//!
//! ```text
//! MACH/machine-oci/   OCI image layout, reference `bookworm`, one gzip layer
//! MACH/recipe.txt     the recipe text; MACH's name is a hash of it
//! MACH/manifest.json  { "schema": 1, "key", "forms": { "oci": { "transport", "path",
//!                     "reference" } }, "platform", "manifest_digest", "config_digest",
//!                     "layer_count", "packages" }; written last
//! ```
//!
//! Cached like the main fixture (see [`crate::fixtures`]): MACH is
//! `~/.cache/d2l-fixtures/<key>`, the key a hash of the recipe (which names the mirror,
//! `$D2L_DEBIAN_MIRROR`), built in `<key>.partial-<pid>` and renamed when complete;
//! `<target>/fixtures-machine` links to it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use serde_json::json;

use crate::fixtures::{self, mirror, ARCHITECTURE, MANIFEST_FILE, OS};
use crate::util::{self, step};

/// Bump to rebuild the cache, e.g. when `manifest.json` changes shape.
const RECIPE_VERSION: u32 = 1;
/// The Debian release, and the image's reference in the layout.
const SUITE: &str = "bookworm";
/// The OCI layout, inside MACH.
pub const OCI_DIR: &str = "machine-oci";
/// The reference of the image in the layout.
pub const REFERENCE: &str = SUITE;
/// `<target>/LINK` points at MACH.
pub const LINK: &str = "fixtures-machine";
const RECIPE_FILE: &str = "recipe.txt";
const CMD: &str = "/sbin/init";
/// Packages on top of minbase: a bootable systemd machine (as the main fixture), its network
/// (systemd-networkd is part of systemd; resolved is a package of its own in bookworm, and
/// iproute2 gives the tests `ip`), what d2l configures (sshd, sudo, cloud-init) and
/// cloud-guest-utils, whose growpart d2l's grow unit runs.
const INCLUDE: &[&str] = &[
    "linux-image-amd64",
    "systemd-sysv",
    "udev",
    "initramfs-tools",
    "systemd-resolved",
    "iproute2",
    "openssh-server",
    "sudo",
    "cloud-init",
    "cloud-guest-utils",
    // debootstrap resolves no virtual packages: python3-cryptography (cloud-init, through
    // oauthlib) depends on python3-cffi-backend-api-*, which this package provides, and
    // systemd-resolved on default-dbus-system-bus, which dbus provides.
    "python3-cffi-backend",
    "dbus",
];
/// Files the built layer must hold: the packages above really installed, and the SSH host
/// keys openssh-server's postinst makes (what d2l must remove).
const EXPECTED: &[&str] = &[
    "usr/sbin/sshd",
    "usr/bin/sudo",
    "usr/bin/cloud-init",
    "usr/bin/growpart",
    "usr/lib/systemd/systemd-resolved",
    "etc/ssh/ssh_host_ed25519_key",
];

/// The build as named commands; `out`, `bundle` and `mirror` are placeholders in the recipe
/// and real paths in the build.
fn plan(out: &str, bundle: &str, mirror: &str) -> Vec<(&'static str, Vec<String>)> {
    let layout = format!("{out}/{OCI_DIR}");
    let image = format!("{layout}:{REFERENCE}");
    let rootfs = format!("{bundle}/rootfs");
    let include = format!("--include={}", INCLUDE.join(","));
    let debootstrap = [
        "debootstrap",
        "--variant=minbase",
        &include,
        SUITE,
        &rootfs,
        mirror,
    ];
    let created_by = format!(
        "--history.created_by={}",
        debootstrap.join(" ").replace(&rootfs, "/")
    );
    let argv = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    vec![
        ("umoci init", argv(&["umoci", "init", "--layout", &layout])),
        ("umoci new", argv(&["umoci", "new", "--image", &image])),
        (
            "umoci unpack (empty image)",
            argv(&["umoci", "unpack", "--image", &image, bundle]),
        ),
        ("debootstrap", argv(&debootstrap)),
        (
            "umoci repack",
            argv(&[
                "umoci",
                "repack",
                "--refresh-bundle",
                &created_by,
                "--image",
                &image,
                bundle,
            ]),
        ),
    ]
    .into_iter()
    .chain(fixtures::umoci_finish(&layout, &image, CMD))
    .collect()
}

/// The recipe text: every command of [`plan`] with placeholder paths.
fn recipe(mirror: &str) -> String {
    let mut text = format!(
        "# d2l machine fixture recipe v{RECIPE_VERSION}, from xtask/src/machine_fixture.rs.\n\
         # The cache key is the first 16 hex digits of the sha256 of this text.\n"
    );
    for (name, argv) in plan("$MACH", "$WORK/bundle", mirror) {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        text += &format!("\n# {name}\n{}\n", util::display(&cmd));
    }
    text
}

/// Makes sure the machine fixture is built, links `<target>/fixtures-machine` to it and
/// returns MACH.
pub fn ensure() -> Result<PathBuf> {
    let mirror = mirror();
    let recipe = recipe(&mirror);
    fixtures::ensure_cached("machine fixture", LINK, &recipe, &mirror, |out, key| {
        build(out, key, &recipe, &mirror)
    })
}

/// Builds the fixture into `out` (which must not exist).
fn build(out: &Path, key: &str, recipe: &str, mirror: &str) -> Result<()> {
    let work = out.join("work");
    fs::create_dir_all(&work).with_context(|| work.display().to_string())?;
    let utf8 = |p: &Path| {
        p.to_str()
            .map(String::from)
            .context("cache path is not UTF-8")
    };
    for (name, argv) in plan(&utf8(out)?, &utf8(&work.join("bundle"))?, mirror) {
        step(name, || {
            let log = work.join(format!(
                "{}.log",
                name.replace(['(', ')'], "").replace(' ', "-")
            ));
            util::run_logged(Command::new(&argv[0]).args(&argv[1..]), &log)
        })?;
    }
    step("remove the bundle", || util::remove_tree(&work))?;
    let layout = out.join(OCI_DIR);
    let (manifest_digest, manifest) = fixtures::manifest_of(&layout, REFERENCE)?;
    let layers = fixtures::layers(&layout, REFERENCE)?;
    ensure!(
        layers.len() == 1,
        "expected 1 layer, umoci made {}",
        layers.len()
    );
    let names = util::output(Command::new("tar").arg("-tzf").arg(&layers[0].path))?;
    let names: Vec<&str> = names.lines().map(|n| n.trim_start_matches("./")).collect();
    for wanted in EXPECTED {
        ensure!(
            names.contains(wanted),
            "the machine fixture's layer lacks {wanted}"
        );
    }
    fs::write(out.join(RECIPE_FILE), recipe)?;
    let description = json!({
        "schema": 1,
        "key": key,
        "forms": { "oci": { "transport": "oci", "path": OCI_DIR, "reference": REFERENCE } },
        "platform": { "os": OS, "architecture": ARCHITECTURE },
        "manifest_digest": manifest_digest,
        "config_digest": manifest["config"]["digest"],
        "layer_count": layers.len(),
        "packages": INCLUDE,
    });
    fs::write(
        out.join(MANIFEST_FILE),
        serde_json::to_string_pretty(&description)? + "\n",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::key;

    #[test]
    fn recipe_installs_what_the_machine_tests_need_under_its_own_key() {
        let text = recipe("http://deb.debian.org/debian");
        assert!(text.contains(
            "debootstrap --variant=minbase --include=linux-image-amd64,systemd-sysv,udev,\
             initramfs-tools,systemd-resolved,iproute2,openssh-server,sudo,cloud-init,\
             cloud-guest-utils,python3-cffi-backend,dbus bookworm $WORK/bundle/rootfs http://deb.debian.org/debian"
        ));
        assert!(text.contains("umoci gc --layout $MACH/machine-oci"));
        assert_ne!(key(&text), key(&recipe("http://example.org/debian")));
    }
}
