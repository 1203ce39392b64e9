//! The kernel-less minbase fixture (`cargo xtask fixtures`, xtask/src/minbase.rs): the base
//! image of the Dockerfile tests.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Overrides where the minbase fixture is; `cargo xtask ci` sets it.
pub const MINBASE_ENV: &str = "D2L_MINBASE_FIXTURE";
/// The link `cargo xtask fixtures` makes in the target directory.
const LINK: &str = "fixtures-minbase";
/// Written last by the build; describes what was built.
const MANIFEST: &str = "manifest.json";

/// A `debootstrap --variant=minbase` of Debian bookworm, no kernel, one layer, as an OCI
/// layout.
#[derive(Debug, Clone)]
pub struct MinbaseFixture {
    /// The fixture's directory.
    pub dir: PathBuf,
    /// The OCI layout directory.
    pub oci_dir: PathBuf,
    /// The image's reference in the layout, `bookworm`.
    pub reference: String,
    /// Source string of the layout, `oci:<dir>/minbase-oci:bookworm`.
    pub oci: String,
}

/// The minbase fixture: `$D2L_MINBASE_FIXTURE` if set, else `$CARGO_TARGET_DIR/fixtures-minbase`
/// if that variable holds an absolute path, else `<workspace>/target/fixtures-minbase`.
///
/// # Panics
///
/// When it is not there (telling to run `cargo xtask fixtures`) or its manifest is not
/// what this testkit reads: a test that needs it fails rather than silently passing.
pub fn minbase() -> MinbaseFixture {
    let dir = find(
        std::env::var_os(MINBASE_ENV),
        std::env::var_os("CARGO_TARGET_DIR"),
    );
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse(&dir, &text).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; rebuild with `cargo xtask fixtures`",
            path.display()
        )
    })
}

fn find(env: Option<OsString>, target_env: Option<OsString>) -> PathBuf {
    let (dir, origin) = match env {
        Some(dir) if !dir.is_empty() => (PathBuf::from(dir), format!("${MINBASE_ENV}")),
        _ => match target_env.map(PathBuf::from) {
            Some(target) if target.is_absolute() => {
                (target.join(LINK), format!("$CARGO_TARGET_DIR/{LINK}"))
            }
            _ => (
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .parent()
                    .expect("tests/ has a parent")
                    .join("target")
                    .join(LINK),
                "the default".to_string(),
            ),
        },
    };
    if !dir.join(MANIFEST).is_file() {
        panic!(
            "no minbase fixture at {} ({origin}): run `cargo xtask fixtures` (once, as root; \
             it caches a debootstrap in a minute or two), or set {MINBASE_ENV}",
            dir.display()
        );
    }
    dir
}

fn parse(dir: &Path, text: &str) -> Result<MinbaseFixture, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if root["schema"].as_u64() != Some(1) {
        return Err(format!("schema {}, this testkit reads 1", root["schema"]));
    }
    let oci = &root["forms"]["oci"];
    let field = |key: &str| {
        oci[key]
            .as_str()
            .map(String::from)
            .ok_or_else(|| format!("no `forms.oci.{key}`"))
    };
    if field("transport")? != "oci" {
        return Err("`forms.oci.transport` is not `oci`".into());
    }
    let oci_dir = dir.join(field("path")?);
    let reference = field("reference")?;
    Ok(MinbaseFixture {
        dir: dir.to_path_buf(),
        oci: format!("oci:{}:{reference}", oci_dir.display()),
        oci_dir,
        reference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_manifest() {
        let text = r#"{ "schema": 1, "key": "0123456789abcdef",
            "forms": { "oci": { "transport": "oci", "path": "minbase-oci", "reference": "bookworm" } },
            "platform": { "os": "linux", "architecture": "amd64" } }"#;
        let fix = parse(Path::new("/min"), text).unwrap();
        assert_eq!(fix.oci, "oci:/min/minbase-oci:bookworm");
        assert_eq!(fix.oci_dir, Path::new("/min/minbase-oci"));
        assert_eq!(fix.reference, "bookworm");
        let other = text.replace(r#""schema": 1"#, r#""schema": 2"#);
        assert!(parse(Path::new("/min"), &other).is_err());
    }

    #[test]
    #[should_panic(expected = "run `cargo xtask fixtures`")]
    fn missing_fixture_panics() {
        find(Some("/nonexistent/minbase".into()), None);
    }
}
