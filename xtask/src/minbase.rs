//! The second fixture: a Debian bookworm `debootstrap --variant=minbase` WITHOUT a kernel, as
//! an OCI layout with one layer. It is the `FROM` of the Dockerfile tests, whose `RUN` step
//! installs the kernel (`d2l build -f Dockerfile`).
//!
//! # Output
//!
//! ```text
//! MIN/minbase-oci/    OCI image layout, reference `bookworm`, one gzip layer
//! MIN/recipe.txt      the recipe text; MIN's name is a hash of it
//! MIN/manifest.json   { "schema": 1, "key", "forms": { "oci": { "transport", "path",
//!                     "reference" } }, "platform", "manifest_digest", "config_digest",
//!                     "layer_count" }; written last
//! ```
//!
//! Cached like the main fixture (see [`crate::fixtures`]): MIN is
//! `~/.cache/d2l-fixtures/<key>`, the key a hash of the recipe (which names the mirror,
//! `$D2L_DEBIAN_MIRROR`), built in `<key>.partial-<pid>` and renamed when complete;
//! `<target>/fixtures-minbase` links to it.

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
/// The OCI layout, inside MIN.
pub const OCI_DIR: &str = "minbase-oci";
/// The reference of the image in the layout.
pub const REFERENCE: &str = SUITE;
/// `<target>/LINK` points at MIN.
pub const LINK: &str = "fixtures-minbase";
const RECIPE_FILE: &str = "recipe.txt";

const CMD: &str = "/bin/bash";

/// The build as named commands; `out`, `bundle` and `mirror` are placeholders in the recipe
/// and real paths in the build.
fn plan(out: &str, bundle: &str, mirror: &str) -> Vec<(&'static str, Vec<String>)> {
    let layout = format!("{out}/{OCI_DIR}");
    let image = format!("{layout}:{REFERENCE}");
    let rootfs = format!("{bundle}/rootfs");
    let debootstrap = ["debootstrap", "--variant=minbase", SUITE, &rootfs, mirror];
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
        "# d2l minbase fixture recipe v{RECIPE_VERSION}, from xtask/src/minbase.rs.\n\
         # The cache key is the first 16 hex digits of the sha256 of this text.\n"
    );
    for (name, argv) in plan("$MIN", "$WORK/bundle", mirror) {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        text += &format!("\n# {name}\n{}\n", util::display(&cmd));
    }
    text
}

/// Makes sure the minbase fixture is built, links `<target>/fixtures-minbase` to it and
/// returns MIN.
pub fn ensure() -> Result<PathBuf> {
    let mirror = mirror();
    let recipe = recipe(&mirror);
    fixtures::ensure_cached("minbase fixture", LINK, &recipe, &mirror, |out, key| {
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
    // The point of this fixture: no kernel, so a Dockerfile must install one.
    let (manifest_digest, manifest) = fixtures::manifest_of(&layout, REFERENCE)?;
    let layers = fixtures::layers(&layout, REFERENCE)?;
    ensure!(
        layers.len() == 1,
        "expected 1 layer, umoci made {}",
        layers.len()
    );
    let names = util::output(Command::new("tar").arg("-tzf").arg(&layers[0].path))?;
    ensure!(
        !names.lines().any(|n| n.contains("boot/vmlinuz")),
        "the minbase layer has a kernel"
    );
    fs::write(out.join(RECIPE_FILE), recipe)?;
    let description = json!({
        "schema": 1,
        "key": key,
        "forms": { "oci": { "transport": "oci", "path": OCI_DIR, "reference": REFERENCE } },
        "platform": { "os": OS, "architecture": ARCHITECTURE },
        "manifest_digest": manifest_digest,
        "config_digest": manifest["config"]["digest"],
        "layer_count": layers.len(),
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
    fn recipe_is_a_kernel_less_minbase_with_its_own_key() {
        let text = recipe("http://deb.debian.org/debian");
        assert!(text.contains(
            "debootstrap --variant=minbase bookworm $WORK/bundle/rootfs \
             http://deb.debian.org/debian"
        ));
        assert!(!text.contains("linux-image"), "{text}");
        assert!(text.contains("umoci gc --layout $MIN/minbase-oci"));
        assert_ne!(key(&text), key(&recipe("http://example.org/debian")));
    }
}
