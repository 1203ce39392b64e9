//! The machine fixture (`cargo xtask fixtures`, xtask/src/machine_fixture.rs): Debian
//! bookworm with a kernel, systemd-resolved, openssh-server, sudo, cloud-init and
//! cloud-guest-utils, for the first-boot tests.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Overrides where the machine fixture is; `cargo xtask ci` sets it.
pub const MACHINE_ENV: &str = "D2L_MACHINE_FIXTURE";
/// The link `cargo xtask fixtures` makes in the target directory.
const LINK: &str = "fixtures-machine";
/// Written last by the build; describes what was built.
const MANIFEST: &str = "manifest.json";

/// The machine image, one layer, as an OCI layout.
#[derive(Debug, Clone)]
pub struct MachineFixture {
    /// The fixture's directory.
    pub dir: PathBuf,
    /// Source string of the layout, `oci:<dir>/machine-oci:bookworm`.
    pub oci: String,
    /// The packages installed on top of minbase.
    pub packages: Vec<String>,
}

/// The machine fixture: `$D2L_MACHINE_FIXTURE` if set, else `$CARGO_TARGET_DIR/fixtures-machine`
/// if that variable holds an absolute path, else `<workspace>/target/fixtures-machine`.
///
/// # Panics
///
/// When it is not there (telling to run `cargo xtask fixtures`) or its manifest is not what
/// this testkit reads: a test that needs it fails rather than silently passing.
pub fn machine() -> MachineFixture {
    let dir = find(
        std::env::var_os(MACHINE_ENV),
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
        Some(dir) if !dir.is_empty() => (PathBuf::from(dir), format!("${MACHINE_ENV}")),
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
            "no machine fixture at {} ({origin}): run `cargo xtask fixtures` (once, as root; \
             it caches a debootstrap in about five minutes), or set {MACHINE_ENV}",
            dir.display()
        );
    }
    dir
}

fn parse(dir: &Path, text: &str) -> Result<MachineFixture, String> {
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
    let packages =
        serde_json::from_value(root["packages"].clone()).map_err(|e| format!("`packages`: {e}"))?;
    Ok(MachineFixture {
        dir: dir.to_path_buf(),
        oci: format!(
            "oci:{}:{}",
            dir.join(field("path")?).display(),
            field("reference")?
        ),
        packages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_manifest() {
        let text = r#"{ "schema": 1, "key": "0123456789abcdef",
            "forms": { "oci": { "transport": "oci", "path": "machine-oci", "reference": "bookworm" } },
            "platform": { "os": "linux", "architecture": "amd64" },
            "packages": ["openssh-server", "sudo"] }"#;
        let fix = parse(Path::new("/m"), text).unwrap();
        assert_eq!(fix.oci, "oci:/m/machine-oci:bookworm");
        assert_eq!(fix.packages, ["openssh-server", "sudo"]);
        let other = text.replace(r#""schema": 1"#, r#""schema": 2"#);
        assert!(parse(Path::new("/m"), &other).is_err());
    }

    #[test]
    #[should_panic(expected = "run `cargo xtask fixtures`")]
    fn missing_fixture_panics() {
        find(Some("/nonexistent/machine".into()), None);
    }
}
