//! `cargo xtask fixtures`: a real Debian bookworm image, built once and cached.
//!
//! The image has two gzip layers made by umoci: layer 1 is a `debootstrap --variant=minbase`
//! of bookworm with a kernel, systemd and an initramfs; layer 2 edits it so the image carries
//! real whiteouts (files, a symlink and a whole directory deleted), a replaced file and new
//! files and directories (see [`LAYER2`]).
//!
//! # Output
//!
//! ```text
//! FIX/debian-oci/                 OCI image layout, reference `bookworm`
//! FIX/debian-oci-archive.tar      the same image as an oci-archive, reference `bookworm`
//! FIX/debian-docker-archive.tar   the same image as a docker-archive, `d2l/debian:bookworm`
//!                                 (its layers are stored uncompressed)
//! FIX/arm64-oci/                  a small linux/arm64 image (crate::fixtures_arm64)
//! FIX/recipe.txt                  the recipe text; FIX's name is a hash of it
//! FIX/manifest.json               what was built, for tests (below)
//! ```
//!
//! `manifest.json` (schema 1) holds paths relative to FIX:
//!
//! ```text
//! { "schema": 1, "key": "<16 hex>",
//!   "forms": { "oci":            { "transport": "oci",            "path": "debian-oci",                "reference": "bookworm" },
//!              "oci_archive":    { "transport": "oci-archive",    "path": "debian-oci-archive.tar",    "reference": "bookworm" },
//!              "docker_archive": { "transport": "docker-archive", "path": "debian-docker-archive.tar", "reference": "d2l/debian:bookworm" } },
//!   "platform": { "os": "linux", "architecture": "amd64" },
//!   "config": { "cmd": ["/sbin/init"], "env": ["PATH=..."] },
//!   "manifest_digest": "sha256:...", "config_digest": "sha256:...",   // of the `oci` form
//!   "layer_count": 2,
//!   "layers": [ { "digest", "diff_id", "media_type", "size", "uncompressed_size" }, ... ],
//!   "layer2": { "removed": ["/etc/motd", ...], "removed_dirs": [...], "replaced": [...], "added": [...] } }
//! ```
//!
//! # Cache
//!
//! FIX is `$XDG_CACHE_HOME/d2l-fixtures/<key>` (default `~/.cache/d2l-fixtures/<key>`), where
//! the key is the first 16 hex digits of the sha256 of the recipe text. The recipe is
//! rendered from the same [`plan`] the build executes, so any change to a command, a
//! package, the mirror (`$D2L_DEBIAN_MIRROR`) or the layer-2 edits changes the key. A build
//! happens in a sibling `<key>.partial-<pid>` and is renamed into place only when complete,
//! so an interrupted build never looks finished. `<target>/fixtures` is a symlink to FIX.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure as check, Context, Result};
use serde_json::{json, Value};

use crate::util::{self, step};

/// Bump to rebuild every cache, e.g. when `manifest.json` changes shape.
const RECIPE_VERSION: u32 = 1;

/// The Debian release, and the image's reference in the OCI forms.
const SUITE: &str = "bookworm";
/// Overrides [`DEFAULT_MIRROR`].
pub(crate) const MIRROR_ENV: &str = "D2L_DEBIAN_MIRROR";
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// Packages on top of minbase: enough to boot the image in a later issue.
const INCLUDE: &[&str] = &[
    "linux-image-amd64",
    "systemd-sysv",
    "udev",
    "initramfs-tools",
];

/// The reference of the image in the OCI layout and the oci-archive.
pub const REFERENCE: &str = SUITE;
/// The name and tag of the image in the docker-archive.
const DOCKER_NAME: &str = "d2l/debian:bookworm";
/// The OCI layout, inside FIX.
pub const OCI_DIR: &str = "debian-oci";
const OCI_ARCHIVE: &str = "debian-oci-archive.tar";
const DOCKER_ARCHIVE: &str = "debian-docker-archive.tar";
const RECIPE_FILE: &str = "recipe.txt";
/// Written last: its presence marks a complete build.
pub(crate) const MANIFEST_FILE: &str = "manifest.json";

pub(crate) const OS: &str = "linux";
pub(crate) const ARCHITECTURE: &str = "amd64";
const CMD: &str = "/sbin/init";
const ENV_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The last steps of both Debian fixtures, as (name, argv): `umoci config` makes the image
/// linux/amd64 with the usual PATH and `cmd`, and `umoci gc` drops the blobs it replaced.
pub(crate) fn umoci_finish(
    layout: &str,
    image: &str,
    cmd: &str,
) -> [(&'static str, Vec<String>); 2] {
    let argv = |args: &[&str]| args.iter().map(|a| a.to_string()).collect();
    [
        (
            "umoci config",
            argv(&[
                "umoci",
                "config",
                "--image",
                image,
                "--config.cmd",
                cmd,
                "--config.env",
                ENV_PATH,
                "--os",
                OS,
                "--architecture",
                ARCHITECTURE,
            ]),
        ),
        ("umoci gc", argv(&["umoci", "gc", "--layout", layout])),
    ]
}

/// One change layer 2 makes to layer 1's tree. Paths are absolute in the image.
#[derive(Clone, Copy)]
enum Edit {
    /// Delete a file or symlink of layer 1 (a whiteout `.wh.NAME`).
    Remove(&'static str),
    /// Delete a directory of layer 1 with everything under it (one whiteout for the tree).
    RemoveDir(&'static str),
    /// Give a regular file of layer 1 new content.
    Replace(&'static str, &'static str),
    /// Create a directory layer 1 does not have.
    Mkdir(&'static str),
    /// Create a regular file layer 1 does not have.
    Add(&'static str, &'static str),
}

/// Layer 2: deletions (files, a symlink, a whole directory), a replaced file, additions.
const LAYER2: &[Edit] = &[
    Edit::Remove("/etc/motd"),
    Edit::Remove("/usr/share/doc/dpkg/copyright"),
    Edit::Remove("/usr/share/doc/bash/README.gz"),
    // A symlink (to ../../common-licenses/...).
    Edit::Remove("/usr/share/doc/base-files/FAQ"),
    Edit::RemoveDir("/usr/share/doc/apt"),
    Edit::Replace(
        "/etc/issue",
        "d2l test image (Debian GNU/Linux 12) \\n \\l\n\n",
    ),
    Edit::Add(
        "/etc/d2l-fixture",
        "built by `cargo xtask fixtures`, layer 2\n",
    ),
    Edit::Mkdir("/opt/d2l"),
    Edit::Add("/opt/d2l/hello.txt", "hello from layer 2\n"),
];

impl Edit {
    fn path(self) -> &'static str {
        match self {
            Edit::Remove(p) | Edit::RemoveDir(p) | Edit::Mkdir(p) => p,
            Edit::Replace(p, _) | Edit::Add(p, _) => p,
        }
    }

    /// The edit as a line of the recipe.
    fn render(self) -> String {
        match self {
            Edit::Remove(p) => format!("rm {p}"),
            Edit::RemoveDir(p) => format!("rm -r {p}"),
            Edit::Replace(p, text) => format!("replace {p} {text:?}"),
            Edit::Mkdir(p) => format!("mkdir {p}"),
            Edit::Add(p, text) => format!("add {p} {text:?}"),
        }
    }

    /// Applies the edit under `rootfs`, checking that layer 1 is as expected.
    fn apply(self, rootfs: &Path) -> Result<()> {
        let path = rootfs.join(self.path().trim_start_matches('/'));
        let meta = fs::symlink_metadata(&path);
        let what = || format!("layer 2: {}", self.render());
        match self {
            Edit::Remove(_) => {
                let meta = meta.with_context(what)?;
                check!(!meta.is_dir(), "{}: is a directory", what());
                fs::remove_file(&path).with_context(what)?;
            }
            Edit::RemoveDir(_) => {
                let meta = meta.with_context(what)?;
                check!(meta.is_dir(), "{}: not a directory", what());
                fs::remove_dir_all(&path).with_context(what)?;
            }
            Edit::Replace(_, text) => {
                let meta = meta.with_context(what)?;
                check!(meta.is_file(), "{}: not a regular file", what());
                fs::write(&path, text).with_context(what)?;
            }
            Edit::Mkdir(_) => {
                check!(meta.is_err(), "{}: already exists", what());
                fs::create_dir(&path).with_context(what)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).with_context(what)?;
            }
            Edit::Add(_, text) => {
                check!(meta.is_err(), "{}: already exists", what());
                fs::write(&path, text).with_context(what)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).with_context(what)?;
            }
        }
        Ok(())
    }
}

/// Where a plan puts things: placeholders when rendering the recipe, real paths when building.
struct Places {
    /// FIX, the output directory.
    out: String,
    /// The scratch umoci bundle.
    bundle: String,
    mirror: String,
}

/// One step of the build.
enum Step {
    /// Run a command.
    Run {
        name: &'static str,
        argv: Vec<String>,
    },
    /// Apply [`LAYER2`] to the bundle's rootfs.
    Edits { name: &'static str, rootfs: String },
}

/// The whole build, in order. Both the recipe text (hence the cache key) and the build come
/// from here.
fn plan(p: &Places) -> Vec<Step> {
    let layout = format!("{}/{OCI_DIR}", p.out);
    let image = format!("{layout}:{REFERENCE}");
    let bundle = &p.bundle;
    let rootfs = format!("{bundle}/rootfs");
    let debootstrap = vec![
        "debootstrap".to_string(),
        "--variant=minbase".into(),
        format!("--include={}", INCLUDE.join(",")),
        SUITE.into(),
        rootfs.clone(),
        p.mirror.clone(),
    ];
    let debootstrap_line = debootstrap.join(" ").replace(&rootfs, "/");
    let run = |name, argv: &[&str]| Step::Run {
        name,
        argv: argv.iter().map(|a| a.to_string()).collect(),
    };
    let mut steps = vec![
        run("umoci init", &["umoci", "init", "--layout", &layout]),
        run("umoci new", &["umoci", "new", "--image", &image]),
        run(
            "umoci unpack (empty image)",
            &["umoci", "unpack", "--image", &image, bundle],
        ),
        // Straight into the bundle's rootfs: the same as debootstrap elsewhere and `cp -a`,
        // without copying the tree.
        Step::Run {
            name: "debootstrap",
            argv: debootstrap,
        },
        run(
            "umoci repack (layer 1)",
            &[
                "umoci",
                "repack",
                "--refresh-bundle",
                &format!("--history.created_by={debootstrap_line}"),
                "--image",
                &image,
                bundle,
            ],
        ),
        Step::Edits {
            name: "layer 2 edits",
            rootfs,
        },
        run(
            "umoci repack (layer 2)",
            &[
                "umoci",
                "repack",
                "--history.created_by=cargo xtask fixtures: layer 2 edits",
                "--image",
                &image,
                bundle,
            ],
        ),
    ];
    steps.extend(
        umoci_finish(&layout, &image, CMD)
            .into_iter()
            .map(|(name, argv)| Step::Run { name, argv }),
    );
    steps.extend([
        run(
            "skopeo copy (oci-archive)",
            &[
                "skopeo",
                "--insecure-policy",
                "copy",
                &format!("oci:{image}"),
                &format!("oci-archive:{}/{OCI_ARCHIVE}:{REFERENCE}", p.out),
            ],
        ),
        run(
            "skopeo copy (docker-archive)",
            &[
                "skopeo",
                "--insecure-policy",
                "copy",
                &format!("oci:{image}"),
                &format!("docker-archive:{}/{DOCKER_ARCHIVE}:{DOCKER_NAME}", p.out),
            ],
        ),
    ]);
    steps
}

/// The recipe text: every step of [`plan`] with placeholder paths.
fn recipe(mirror: &str) -> String {
    let places = Places {
        out: "$FIX".into(),
        bundle: "$WORK/bundle".into(),
        mirror: mirror.into(),
    };
    let mut text = format!(
        "# d2l fixture recipe v{RECIPE_VERSION}, from xtask/src/fixtures.rs.\n\
         # The cache key is the first 16 hex digits of the sha256 of this text.\n"
    );
    for step in plan(&places) {
        match step {
            Step::Run { name, argv } => {
                let mut cmd = Command::new(&argv[0]);
                cmd.args(&argv[1..]);
                text += &format!("\n# {name}\n{}\n", util::display(&cmd));
            }
            Step::Edits { name, rootfs } => {
                text += &format!("\n# {name}, in {rootfs}\n");
                for edit in LAYER2 {
                    text += &edit.render();
                    text.push('\n');
                }
            }
        }
    }
    text
}

/// The first 16 hex digits of the sha256 of `recipe`.
pub(crate) fn key(recipe: &str) -> String {
    d2l_blob::Digest::sha256_of(recipe.as_bytes()).hex()[..16].to_owned()
}

pub(crate) fn mirror() -> String {
    std::env::var(MIRROR_ENV)
        .ok()
        .filter(|m| !m.is_empty())
        .unwrap_or(DEFAULT_MIRROR.into())
}

/// `$XDG_CACHE_HOME/d2l-fixtures`, or `~/.cache/d2l-fixtures`.
pub(crate) fn cache_base() -> Result<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let cache = match xdg {
        Some(dir) => dir,
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache"),
    };
    Ok(cache.join("d2l-fixtures"))
}

/// Makes sure the fixtures are built (the Debian image, then the small arm64 image of
/// [`crate::fixtures_arm64`] beside it), links `<target>/fixtures` to them and returns FIX.
pub fn ensure() -> Result<PathBuf> {
    let dir = ensure_debian()?;
    crate::fixtures_arm64::ensure(&dir)?;
    Ok(dir)
}

fn ensure_debian() -> Result<PathBuf> {
    let mirror = mirror();
    let recipe = recipe(&mirror);
    ensure_cached("fixtures", "fixtures", &recipe, &mirror, |out, key| {
        build(out, key, &recipe, &mirror)
    })
}

/// Makes sure the fixture whose recipe is `recipe` is in the cache, under the hash of the
/// recipe, and returns its directory; `<target>/LINK` points at it. A missing one is built
/// by `build(dir, key)` into `<key>.partial-<pid>` (needs root), renamed into place once
/// complete (its manifest, written last, marks it so); `label` names it in messages.
pub(crate) fn ensure_cached(
    label: &str,
    link: &str,
    recipe: &str,
    mirror: &str,
    build: impl FnOnce(&Path, &str) -> Result<()>,
) -> Result<PathBuf> {
    let start = Instant::now();
    let key = key(recipe);
    let base = cache_base()?;
    let dir = base.join(&key);
    if dir.join(MANIFEST_FILE).is_file() {
        link_as(&dir, link)?;
        println!(
            "{label}: cached at {} ({})",
            dir.display(),
            util::secs(start.elapsed())
        );
        return Ok(dir);
    }

    println!("{label}: building {} (mirror {mirror})", dir.display());
    if !util::is_root() {
        bail!(
            "building the {label} needs root (debootstrap, umoci unpack); run \
             `cargo xtask fixtures` as root once, the result is cached in {}",
            dir.display()
        );
    }
    step("packages", || util::ensure_tools(util::FIXTURE_TOOLS))?;
    fs::create_dir_all(&base).with_context(|| base.display().to_string())?;
    remove_stale_partials(&base, &key)?;
    let partial = base.join(format!("{key}.partial-{}", std::process::id()));
    build(&partial, &key).inspect_err(|_| {
        eprintln!("{label}: build failed; removing {}", partial.display());
        let _ = util::remove_tree(&partial);
    })?;
    if let Err(err) = fs::rename(&partial, &dir) {
        // Another build finished first: keep its result.
        if !dir.join(MANIFEST_FILE).is_file() {
            return Err(err)
                .with_context(|| format!("rename {} -> {}", partial.display(), dir.display()));
        }
        util::remove_tree(&partial)?;
    }
    link_as(&dir, link)?;
    println!(
        "{label}: built {} in {}",
        dir.display(),
        util::secs(start.elapsed())
    );
    Ok(dir)
}

/// Removes `<key>.partial-<pid>` directories whose build process is gone.
fn remove_stale_partials(base: &Path, key: &str) -> Result<()> {
    let prefix = format!("{key}.partial-");
    for entry in fs::read_dir(base)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            println!(
                "fixtures: removing interrupted build {}",
                entry.path().display()
            );
            util::remove_tree(&entry.path())?;
        }
    }
    Ok(())
}

/// Builds the fixtures into `out` (which must not exist).
fn build(out: &Path, key: &str, recipe: &str, mirror: &str) -> Result<()> {
    let work = out.join("work");
    fs::create_dir_all(&work).with_context(|| work.display().to_string())?;
    let places = Places {
        out: util::utf8_path(out)?,
        bundle: util::utf8_path(&work.join("bundle"))?,
        mirror: mirror.into(),
    };
    for s in plan(&places) {
        match s {
            Step::Run { name, argv } => step(name, || {
                let log = work.join(format!(
                    "{}.log",
                    name.replace(['(', ')'], "").replace(' ', "-")
                ));
                util::run_logged(Command::new(&argv[0]).args(&argv[1..]), &log)
            })?,
            Step::Edits { name, rootfs } => step(name, || {
                LAYER2.iter().try_for_each(|edit| {
                    println!("    {}", edit.render());
                    edit.apply(Path::new(&rootfs))
                })
            })?,
        }
    }
    step("remove the bundle", || util::remove_tree(&work))?;
    fs::write(out.join(RECIPE_FILE), recipe)?;
    let manifest = step("manifest.json", || manifest(out, key))?;
    fs::write(
        out.join(MANIFEST_FILE),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    Ok(())
}

/// A layer of the image in an OCI layout.
pub struct Layer {
    /// `sha256:...` of the compressed blob.
    pub digest: String,
    /// Size of the compressed blob.
    pub size: u64,
    /// The layer's media type.
    pub media_type: String,
    /// The blob's file.
    pub path: PathBuf,
}

/// Reads a blob of an OCI layout as JSON.
fn read_blob_json(layout: &Path, digest: &str) -> Result<Value> {
    let path = blob_path(layout, digest)?;
    let text = fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))
}

fn blob_path(layout: &Path, digest: &str) -> Result<PathBuf> {
    let (algorithm, hex) = digest
        .split_once(':')
        .with_context(|| format!("bad digest {digest}"))?;
    Ok(layout.join("blobs").join(algorithm).join(hex))
}

/// The digest and manifest of the image `reference` in the OCI layout `layout`.
pub fn manifest_of(layout: &Path, reference: &str) -> Result<(String, Value)> {
    let index_path = layout.join("index.json");
    let index: Value = serde_json::from_str(
        &fs::read_to_string(&index_path).with_context(|| index_path.display().to_string())?,
    )
    .with_context(|| format!("{}: not JSON", index_path.display()))?;
    let descriptor = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == reference)
        .with_context(|| format!("{}: no manifest for `{reference}`", index_path.display()))?;
    let digest = descriptor["digest"]
        .as_str()
        .context("descriptor without digest")?;
    Ok((digest.to_string(), read_blob_json(layout, digest)?))
}

/// The config of the image `reference` in the OCI layout `layout`.
pub fn config_of(layout: &Path, reference: &str) -> Result<Value> {
    let (_, manifest) = manifest_of(layout, reference)?;
    let digest = manifest["config"]["digest"]
        .as_str()
        .context("manifest without config digest")?;
    read_blob_json(layout, digest)
}

/// The layers of the image `reference` in the OCI layout `layout`, bottom first.
pub fn layers(layout: &Path, reference: &str) -> Result<Vec<Layer>> {
    let (_, manifest) = manifest_of(layout, reference)?;
    let layers = manifest["layers"]
        .as_array()
        .context("manifest without layers")?;
    layers
        .iter()
        .map(|l| {
            let digest = l["digest"]
                .as_str()
                .context("layer without digest")?
                .to_string();
            Ok(Layer {
                path: blob_path(layout, &digest)?,
                size: l["size"].as_u64().context("layer without size")?,
                media_type: l["mediaType"].as_str().unwrap_or_default().to_string(),
                digest,
            })
        })
        .collect()
}

/// Number of bytes `pigz -dc` makes of `blob`.
fn uncompressed_size(blob: &Path) -> Result<u64> {
    let mut child = Command::new("pigz")
        .arg("-dc")
        .arg(blob)
        .stdout(Stdio::piped())
        .spawn()?;
    let n = io::copy(&mut child.stdout.take().expect("piped"), &mut io::sink())?;
    check!(
        child.wait()?.success(),
        "pigz -dc {} failed",
        blob.display()
    );
    Ok(n)
}

/// The names in a gzip tar `blob`, as `tar -tzf` prints them.
fn tar_names(blob: &Path) -> Result<Vec<String>> {
    let out = util::output(Command::new("tar").arg("-tzf").arg(blob))?;
    Ok(out
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
        .collect())
}

/// Describes what was built in `out`, checking that layer 2 has a whiteout per deletion.
fn manifest(out: &Path, key: &str) -> Result<Value> {
    let layout = out.join(OCI_DIR);
    let (manifest_digest, manifest) = manifest_of(&layout, REFERENCE)?;
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .context("no config digest")?;
    let config = read_blob_json(&layout, config_digest)?;
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .context("config without diff_ids")?;
    let layers = layers(&layout, REFERENCE)?;
    check!(
        layers.len() == 2,
        "expected 2 layers, umoci made {}",
        layers.len()
    );
    check!(
        diff_ids.len() == layers.len(),
        "{} diff_ids for {} layers",
        diff_ids.len(),
        layers.len()
    );

    let names = tar_names(&layers[1].path)?;
    for edit in LAYER2 {
        if let Edit::Remove(p) | Edit::RemoveDir(p) = edit {
            let (parent, name) = p
                .trim_start_matches('/')
                .rsplit_once('/')
                .expect("absolute");
            let whiteout = format!("{parent}/.wh.{name}");
            check!(
                names.contains(&whiteout),
                "layer 2 has no whiteout {whiteout} for {p}"
            );
        }
    }

    let mut layer_values = Vec::new();
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        layer_values.push(json!({
            "digest": layer.digest,
            "diff_id": diff_id,
            "media_type": layer.media_type,
            "size": layer.size,
            "uncompressed_size": uncompressed_size(&layer.path)?,
        }));
    }
    let paths = |f: fn(&Edit) -> bool| -> Vec<&str> {
        LAYER2.iter().filter(|e| f(e)).map(|e| e.path()).collect()
    };
    Ok(json!({
        "schema": 1,
        "key": key,
        "forms": {
            "oci": { "transport": "oci", "path": OCI_DIR, "reference": REFERENCE },
            "oci_archive": { "transport": "oci-archive", "path": OCI_ARCHIVE, "reference": REFERENCE },
            "docker_archive": {
                "transport": "docker-archive", "path": DOCKER_ARCHIVE, "reference": DOCKER_NAME,
            },
        },
        "platform": { "os": OS, "architecture": ARCHITECTURE },
        "config": { "cmd": [CMD], "env": [ENV_PATH] },
        "manifest_digest": manifest_digest,
        "config_digest": config_digest,
        "layer_count": layers.len(),
        "layers": layer_values,
        "layer2": {
            "removed": paths(|e| matches!(e, Edit::Remove(_) | Edit::RemoveDir(_))),
            "removed_dirs": paths(|e| matches!(e, Edit::RemoveDir(_))),
            "replaced": paths(|e| matches!(e, Edit::Replace(..))),
            "added": paths(|e| matches!(e, Edit::Mkdir(_) | Edit::Add(..))),
        },
    }))
}

/// Points `<target>/NAME` at `dir`, replacing an older link atomically.
pub(crate) fn link_as(dir: &Path, name: &str) -> Result<()> {
    let target = util::target_dir()?;
    fs::create_dir_all(&target).with_context(|| target.display().to_string())?;
    let link = target.join(name);
    if fs::symlink_metadata(&link).is_ok_and(|m| m.is_dir()) {
        bail!(
            "{} is a directory, not a symlink; remove it",
            link.display()
        );
    }
    let tmp = target.join(format!("{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(dir, &tmp).with_context(|| tmp.display().to_string())?;
    fs::rename(&tmp, &link).with_context(|| link.display().to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_follows_the_recipe() {
        let a = recipe(DEFAULT_MIRROR);
        assert_eq!(key(&a), key(&recipe(DEFAULT_MIRROR)));
        assert_eq!(key(&a).len(), 16);
        assert_ne!(key(&a), key(&recipe("http://example.org/debian")));
    }

    #[test]
    fn recipe_names_every_command_and_edit() {
        let text = recipe(DEFAULT_MIRROR);
        assert!(text.contains(
            "debootstrap --variant=minbase \
             --include=linux-image-amd64,systemd-sysv,udev,initramfs-tools bookworm \
             $WORK/bundle/rootfs http://deb.debian.org/debian"
        ));
        assert!(text.contains("umoci gc --layout $FIX/debian-oci"));
        assert!(text.contains("rm -r /usr/share/doc/apt"));
        assert!(
            !text.contains(".cache"),
            "no real paths in the recipe:\n{text}"
        );
    }

    #[test]
    fn reads_layers_from_a_layout() {
        let dir = std::env::temp_dir().join(format!("xtask-layout-{}", std::process::id()));
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).unwrap();
        let index = json!({ "schemaVersion": 2, "manifests": [
            { "digest": "sha256:aa", "size": 1,
              "annotations": { "org.opencontainers.image.ref.name": "other" } },
            { "digest": "sha256:bb", "size": 1,
              "annotations": { "org.opencontainers.image.ref.name": "bookworm" } },
        ]});
        let manifest = json!({ "config": { "digest": "sha256:cc" }, "layers": [
            { "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
              "digest": "sha256:11", "size": 10 },
            { "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
              "digest": "sha256:22", "size": 20 },
        ]});
        fs::write(dir.join("index.json"), index.to_string()).unwrap();
        fs::write(blobs.join("bb"), manifest.to_string()).unwrap();
        let layers = layers(&dir, "bookworm").unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[1].digest, "sha256:22");
        assert_eq!(layers[1].size, 20);
        assert_eq!(layers[1].path, dir.join("blobs/sha256/22"));
    }
}
