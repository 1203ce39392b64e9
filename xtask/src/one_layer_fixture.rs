//! The fixtures made of one `debootstrap --variant=minbase` layer ([`crate::minbase`], no
//! kernel; [`crate::machine_fixture`], a machine with sshd and cloud-init): the recipe, the
//! build and the description, shared. Each fixture is a [`OneLayerFixture`] value.
//!
//! # Output
//!
//! ```text
//! DIR/<oci_dir>/      OCI image layout, reference `bookworm`, one gzip layer
//! DIR/recipe.txt      the recipe text; DIR's name is a hash of it
//! DIR/manifest.json   { "schema": 1, "key", "forms": { "oci": { "transport", "path",
//!                     "reference" } }, "platform", "manifest_digest", "config_digest",
//!                     "layer_count"[, "packages"] }; written last
//! ```
//!
//! Cached like the main fixture (see [`crate::fixtures`]): DIR is
//! `~/.cache/d2l-fixtures/<key>`, the key a hash of the recipe (which names the mirror,
//! `$D2L_DEBIAN_MIRROR`), built in `<key>.partial-<pid>` and renamed when complete;
//! `<target>/<link>` links to it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::json;

use crate::fixtures::{self, mirror, ARCHITECTURE, MANIFEST_FILE, OS};
use crate::util::{self, step};

const RECIPE_FILE: &str = "recipe.txt";

/// One fixture of one debootstrap layer.
pub struct OneLayerFixture {
    /// For messages and the recipe's first line, e.g. `minbase fixture`.
    pub name: &'static str,
    /// The Debian release debootstrap installs; also the image's reference in the layout.
    pub suite: &'static str,
    /// The file that defines it, named in the recipe's first line.
    pub source: &'static str,
    /// Bump to rebuild the cache, e.g. when `manifest.json` changes shape.
    pub recipe_version: u32,
    /// What stands for the fixture's directory in the recipe, e.g. `$MIN`.
    pub placeholder: &'static str,
    /// The OCI layout, inside the fixture's directory.
    pub oci_dir: &'static str,
    /// `<target>/<link>` points at the fixture's directory.
    pub link: &'static str,
    /// The image config's command.
    pub cmd: &'static str,
    /// Packages on top of minbase (`debootstrap --include`); listed in `manifest.json`
    /// when there are any.
    pub include: &'static [&'static str],
    /// Checks the names in the built layer (`tar -tz`, without `./`): the point of the
    /// fixture.
    pub check_layer: fn(&[&str]) -> Result<()>,
}

impl OneLayerFixture {
    /// The build as named commands; `out`, `bundle` and `mirror` are placeholders in the
    /// recipe and real paths in the build.
    fn plan(&self, out: &str, bundle: &str, mirror: &str) -> Vec<(&'static str, Vec<String>)> {
        let layout = format!("{out}/{}", self.oci_dir);
        let image = format!("{layout}:{}", self.suite);
        let rootfs = format!("{bundle}/rootfs");
        let include = format!("--include={}", self.include.join(","));
        let mut debootstrap = vec!["debootstrap", "--variant=minbase"];
        if !self.include.is_empty() {
            debootstrap.push(&include);
        }
        debootstrap.extend([self.suite, &rootfs, mirror]);
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
        .chain(fixtures::umoci_finish(&layout, &image, self.cmd))
        .collect()
    }

    /// The recipe text: every command of the plan with placeholder paths.
    pub fn recipe(&self, mirror: &str) -> String {
        let mut text = format!(
            "# d2l {} recipe v{}, from {}.\n\
             # The cache key is the first 16 hex digits of the sha256 of this text.\n",
            self.name, self.recipe_version, self.source
        );
        for (name, argv) in self.plan(self.placeholder, "$WORK/bundle", mirror) {
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..]);
            text += &format!("\n# {name}\n{}\n", util::display(&cmd));
        }
        text
    }

    /// Makes sure the fixture is built, links `<target>/<link>` to it and returns its
    /// directory.
    pub fn ensure(&self) -> Result<PathBuf> {
        let mirror = mirror();
        let recipe = self.recipe(&mirror);
        fixtures::ensure_cached(self.name, self.link, &recipe, &mirror, |out, key| {
            self.build(out, key, &recipe, &mirror)
        })
    }

    /// Builds the fixture into `out` (which must not exist).
    fn build(&self, out: &Path, key: &str, recipe: &str, mirror: &str) -> Result<()> {
        let work = out.join("work");
        fs::create_dir_all(&work).with_context(|| work.display().to_string())?;
        for (name, argv) in self.plan(
            &util::utf8_path(out)?,
            &util::utf8_path(&work.join("bundle"))?,
            mirror,
        ) {
            step(name, || {
                let log = work.join(format!(
                    "{}.log",
                    name.replace(['(', ')'], "").replace(' ', "-")
                ));
                util::run_logged(Command::new(&argv[0]).args(&argv[1..]), &log)
            })?;
        }
        step("remove the bundle", || util::remove_tree(&work))?;
        let layout = out.join(self.oci_dir);
        let (manifest_digest, manifest) = fixtures::manifest_of(&layout, self.suite)?;
        let layers = fixtures::layers(&layout, self.suite)?;
        anyhow::ensure!(
            layers.len() == 1,
            "expected 1 layer, umoci made {}",
            layers.len()
        );
        let names = util::output(Command::new("tar").arg("-tzf").arg(&layers[0].path))?;
        let names: Vec<&str> = names.lines().map(|n| n.trim_start_matches("./")).collect();
        (self.check_layer)(&names).with_context(|| format!("the {}'s layer", self.name))?;
        fs::write(out.join(RECIPE_FILE), recipe)?;
        let mut description = json!({
            "schema": 1,
            "key": key,
            "forms": { "oci": { "transport": "oci", "path": self.oci_dir, "reference": self.suite } },
            "platform": { "os": OS, "architecture": ARCHITECTURE },
            "manifest_digest": manifest_digest,
            "config_digest": manifest["config"]["digest"],
            "layer_count": layers.len(),
        });
        if !self.include.is_empty() {
            description["packages"] = json!(self.include);
        }
        fs::write(
            out.join(MANIFEST_FILE),
            serde_json::to_string_pretty(&description)? + "\n",
        )?;
        Ok(())
    }
}
