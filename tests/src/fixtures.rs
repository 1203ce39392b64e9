//! The fixtures `cargo xtask fixtures` builds, and what they contain.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Overrides where the fixtures are; `cargo xtask ci` sets it.
pub const FIXTURES_ENV: &str = "D2L_FIXTURES";

/// The directory `cargo xtask fixtures` built: `$D2L_FIXTURES` if set, else
/// `$CARGO_TARGET_DIR/fixtures` if that variable holds an absolute path, else
/// `<workspace>/target/fixtures` (a symlink into `~/.cache/d2l-fixtures/`).
///
/// Its layout:
///
/// ```text
/// debian-oci/                 OCI image layout, reference `bookworm`
/// debian-oci-archive.tar      the same image as an oci-archive, reference `bookworm`
/// debian-docker-archive.tar   the same image as a docker-archive, `d2l/debian:bookworm`
/// recipe.txt                  how it was built
/// manifest.json               what was built; read it with [`debian`]
/// ```
///
/// # Panics
///
/// When the fixtures are not there, telling to run `cargo xtask fixtures`: a test that needs
/// them fails rather than silently passing.
pub fn fixtures_dir() -> PathBuf {
    find_fixtures(
        std::env::var_os(FIXTURES_ENV),
        std::env::var_os("CARGO_TARGET_DIR"),
    )
}

/// [`fixtures_dir`] given the values of `$D2L_FIXTURES` and `$CARGO_TARGET_DIR`.
fn find_fixtures(fixtures_env: Option<OsString>, target_env: Option<OsString>) -> PathBuf {
    let (dir, origin) = match fixtures_env {
        Some(dir) if !dir.is_empty() => (PathBuf::from(dir), format!("${FIXTURES_ENV}")),
        _ => match target_env.map(PathBuf::from) {
            Some(target) if target.is_absolute() => (
                target.join("fixtures"),
                "$CARGO_TARGET_DIR/fixtures".to_string(),
            ),
            _ => (
                workspace_root().join("target/fixtures"),
                "the default".to_string(),
            ),
        },
    };
    if !dir.join(MANIFEST).is_file() {
        panic!(
            "no fixtures at {} ({origin}): run `cargo xtask fixtures` (once, as root; it \
             builds a Debian image in a few minutes and caches it), or set {FIXTURES_ENV}",
            dir.display()
        );
    }
    dir
}

/// The workspace root, one level above this package.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The small linux/arm64 OCI layout `cargo xtask fixtures` writes beside the Debian image
/// (`FIX/arm64-oci`, reference `arm64`: one layer with `/etc/d2l-arch` = `arm64`). For
/// platform choice through a multi-platform index; it does not boot.
///
/// # Panics
///
/// When it is missing, telling to run `cargo xtask fixtures`.
pub fn arm64_layout() -> PathBuf {
    let dir = fixtures_dir().join("arm64-oci");
    if !dir.join("index.json").is_file() {
        panic!(
            "no arm64 fixture at {}: run `cargo xtask fixtures`",
            dir.display()
        );
    }
    dir
}

/// Written last by the build; lists what was built.
const MANIFEST: &str = "manifest.json";
/// The `manifest.json` schema this testkit reads.
const SCHEMA: u64 = 1;

/// The Debian bookworm fixture image: two gzip layers made by umoci, the second with real
/// whiteouts, in three forms. Digests are those of the `oci` form.
#[derive(Debug, Clone)]
pub struct DebianFixture {
    /// The fixtures directory ([`fixtures_dir`]).
    pub dir: PathBuf,
    /// Source string of the OCI layout, `oci:<dir>/debian-oci:bookworm`.
    pub oci: String,
    /// Source string of the oci-archive, `oci-archive:<dir>/debian-oci-archive.tar:bookworm`.
    pub oci_archive: String,
    /// Source string of the docker-archive,
    /// `docker-archive:<dir>/debian-docker-archive.tar:d2l/debian:bookworm`.
    pub docker_archive: String,
    /// The OCI layout directory.
    pub oci_dir: PathBuf,
    /// The oci-archive file.
    pub oci_archive_path: PathBuf,
    /// The docker-archive file (its layers are stored uncompressed).
    pub docker_archive_path: PathBuf,
    /// The image's OS, `linux`.
    pub os: String,
    /// The image's architecture, `amd64`.
    pub architecture: String,
    /// Digest of the image manifest in the OCI layout.
    pub manifest_digest: String,
    /// Digest of the image config.
    pub config_digest: String,
    /// The layers, bottom first.
    pub layers: Vec<FixtureLayer>,
    /// Paths (absolute in the image) layer 2 deletes: files, a symlink and whole directories.
    pub layer2_removed: Vec<String>,
    /// The directories among [`layer2_removed`](Self::layer2_removed).
    pub layer2_removed_dirs: Vec<String>,
    /// Regular files of layer 1 that layer 2 gives new content.
    pub layer2_replaced: Vec<String>,
    /// Files and directories layer 2 creates.
    pub layer2_added: Vec<String>,
}

/// One layer of the [`DebianFixture`].
#[derive(Debug, Clone)]
pub struct FixtureLayer {
    /// `sha256:...` of the compressed blob.
    pub digest: String,
    /// `sha256:...` of the uncompressed tar.
    pub diff_id: String,
    /// The media type, a gzip tar.
    pub media_type: String,
    /// Bytes of the compressed blob.
    pub size: u64,
    /// Bytes of the uncompressed tar.
    pub uncompressed_size: u64,
}

/// The Debian fixture, read from `manifest.json` in [`fixtures_dir`].
///
/// # Panics
///
/// When the fixtures are missing (see [`fixtures_dir`]) or the manifest is not what this
/// testkit expects (rebuild with `cargo xtask fixtures`).
pub fn debian() -> DebianFixture {
    let dir = fixtures_dir();
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse_debian(&dir, &text).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; rebuild with `cargo xtask fixtures`",
            path.display()
        )
    })
}

/// Reads a `manifest.json` of the fixtures in `dir`.
fn parse_debian(dir: &Path, text: &str) -> Result<DebianFixture, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let at = |path: &str| -> Result<&Value, String> {
        path.split('.')
            .try_fold(&root, |v, key| v.get(key))
            .ok_or_else(|| format!("no `{path}`"))
    };
    let string = |path: &str| -> Result<String, String> {
        at(path)?
            .as_str()
            .map(String::from)
            .ok_or_else(|| format!("`{path}` is not a string"))
    };
    let strings = |path: &str| -> Result<Vec<String>, String> {
        serde_json::from_value(at(path)?.clone()).map_err(|e| format!("`{path}`: {e}"))
    };
    let schema = at("schema")?.as_u64();
    if schema != Some(SCHEMA) {
        return Err(format!("schema {schema:?}, this testkit reads {SCHEMA}"));
    }
    let form = |name: &str| -> Result<(PathBuf, String), String> {
        let file = dir.join(string(&format!("forms.{name}.path"))?);
        let transport = string(&format!("forms.{name}.transport"))?;
        let reference = string(&format!("forms.{name}.reference"))?;
        let source = format!("{transport}:{}:{reference}", file.display());
        Ok((file, source))
    };
    let (oci_dir, oci) = form("oci")?;
    let (oci_archive_path, oci_archive) = form("oci_archive")?;
    let (docker_archive_path, docker_archive) = form("docker_archive")?;
    let layers = at("layers")?
        .as_array()
        .ok_or("`layers` is not an array")?
        .iter()
        .map(|l| {
            let s = |k: &str| l[k].as_str().map(String::from);
            Some(FixtureLayer {
                digest: s("digest")?,
                diff_id: s("diff_id")?,
                media_type: s("media_type")?,
                size: l["size"].as_u64()?,
                uncompressed_size: l["uncompressed_size"].as_u64()?,
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or("a layer lacks a field")?;
    Ok(DebianFixture {
        dir: dir.to_path_buf(),
        oci,
        oci_archive,
        docker_archive,
        oci_dir,
        oci_archive_path,
        docker_archive_path,
        os: string("platform.os")?,
        architecture: string("platform.architecture")?,
        manifest_digest: string("manifest_digest")?,
        config_digest: string("config_digest")?,
        layers,
        layer2_removed: strings("layer2.removed")?,
        layer2_removed_dirs: strings("layer2.removed_dirs")?,
        layer2_replaced: strings("layer2.replaced")?,
        layer2_added: strings("layer2.added")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest.json as `cargo xtask fixtures` writes it (digests shortened).
    const MANIFEST_JSON: &str = r#"{
  "schema": 1,
  "key": "0123456789abcdef",
  "forms": {
    "oci": { "transport": "oci", "path": "debian-oci", "reference": "bookworm" },
    "oci_archive": { "transport": "oci-archive", "path": "debian-oci-archive.tar", "reference": "bookworm" },
    "docker_archive": { "transport": "docker-archive", "path": "debian-docker-archive.tar", "reference": "d2l/debian:bookworm" }
  },
  "platform": { "os": "linux", "architecture": "amd64" },
  "config": { "cmd": ["/sbin/init"], "env": ["PATH=/usr/bin"] },
  "manifest_digest": "sha256:aa",
  "config_digest": "sha256:bb",
  "layer_count": 2,
  "layers": [
    { "digest": "sha256:11", "diff_id": "sha256:12", "media_type": "application/vnd.oci.image.layer.v1.tar+gzip", "size": 100, "uncompressed_size": 300 },
    { "digest": "sha256:21", "diff_id": "sha256:22", "media_type": "application/vnd.oci.image.layer.v1.tar+gzip", "size": 10, "uncompressed_size": 30 }
  ],
  "layer2": {
    "removed": ["/etc/motd", "/usr/share/doc/apt"],
    "removed_dirs": ["/usr/share/doc/apt"],
    "replaced": ["/etc/issue"],
    "added": ["/opt/d2l", "/opt/d2l/hello.txt"]
  }
}"#;

    #[test]
    fn reads_the_manifest() {
        let fix = parse_debian(Path::new("/fix"), MANIFEST_JSON).unwrap();
        assert_eq!(fix.oci, "oci:/fix/debian-oci:bookworm");
        assert_eq!(
            fix.oci_archive,
            "oci-archive:/fix/debian-oci-archive.tar:bookworm"
        );
        assert_eq!(
            fix.docker_archive,
            "docker-archive:/fix/debian-docker-archive.tar:d2l/debian:bookworm"
        );
        assert_eq!(fix.oci_dir, Path::new("/fix/debian-oci"));
        assert_eq!(fix.layers.len(), 2);
        assert_eq!(fix.layers[1].uncompressed_size, 30);
        assert_eq!(fix.layer2_removed, ["/etc/motd", "/usr/share/doc/apt"]);
        assert_eq!(fix.layer2_replaced, ["/etc/issue"]);
        assert_eq!(fix.layer2_added, ["/opt/d2l", "/opt/d2l/hello.txt"]);
    }

    #[test]
    fn rejects_another_schema() {
        let other = MANIFEST_JSON.replace(r#""schema": 1"#, r#""schema": 2"#);
        let err = parse_debian(Path::new("/fix"), &other).unwrap_err();
        assert_eq!(err, "schema Some(2), this testkit reads 1");
    }

    #[test]
    #[should_panic(expected = "run `cargo xtask fixtures`")]
    fn missing_fixtures_panic() {
        find_fixtures(Some("/nonexistent/d2l-fixtures".into()), None);
    }
}
