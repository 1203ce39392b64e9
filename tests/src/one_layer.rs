//! The fixtures of one debootstrap layer (`cargo xtask fixtures`,
//! xtask/src/one_layer_fixture.rs): [`minbase`], the kernel-less base image of the
//! Dockerfile tests (and [`minbase_of`] trixie and bullseye, the stock images of the
//! kernel-recipe tests), and [`machine`], Debian bookworm with a kernel, systemd-resolved,
//! openssh-server, sudo, cloud-init and cloud-guest-utils, for the first-boot tests.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Overrides where the minbase fixture is; `cargo xtask ci` sets it.
pub const MINBASE_ENV: &str = "D2L_MINBASE_FIXTURE";
/// Overrides where the trixie minbase fixture is; `cargo xtask ci` sets it.
pub const MINBASE_TRIXIE_ENV: &str = "D2L_MINBASE_TRIXIE_FIXTURE";
/// Overrides where the bullseye minbase fixture is; `cargo xtask ci` sets it.
pub const MINBASE_BULLSEYE_ENV: &str = "D2L_MINBASE_BULLSEYE_FIXTURE";
/// Overrides where the machine fixture is; `cargo xtask ci` sets it.
pub const MACHINE_ENV: &str = "D2L_MACHINE_FIXTURE";
/// Written last by the build; describes what was built.
const MANIFEST: &str = "manifest.json";

/// A fixture of one layer, as an OCI layout.
#[derive(Debug, Clone)]
pub struct OneLayerFixture {
    /// The fixture's directory.
    pub dir: PathBuf,
    /// The OCI layout directory.
    pub oci_dir: PathBuf,
    /// The image's reference in the layout, `bookworm`.
    pub reference: String,
    /// Source string of the layout, `oci:<dir>/<layout>:bookworm`.
    pub oci: String,
    /// The packages installed on top of minbase (none for the minbase fixture).
    pub packages: Vec<String>,
}

/// The minbase fixture (`debootstrap --variant=minbase`, no kernel).
pub type MinbaseFixture = OneLayerFixture;
/// The machine fixture.
pub type MachineFixture = OneLayerFixture;

/// Where to look for one fixture, and what to say when it is missing.
struct Lookup {
    what: &'static str,
    env: &'static str,
    link: &'static str,
    build_time: &'static str,
}

const MINBASE: Lookup = Lookup {
    what: "minbase",
    env: MINBASE_ENV,
    link: "fixtures-minbase",
    build_time: "a minute or two",
};

const MINBASE_TRIXIE: Lookup = Lookup {
    what: "trixie minbase",
    env: MINBASE_TRIXIE_ENV,
    link: "fixtures-minbase-trixie",
    build_time: "a minute or two",
};

const MINBASE_BULLSEYE: Lookup = Lookup {
    what: "bullseye minbase",
    env: MINBASE_BULLSEYE_ENV,
    link: "fixtures-minbase-bullseye",
    build_time: "a minute or two",
};

const MACHINE: Lookup = Lookup {
    what: "machine",
    env: MACHINE_ENV,
    link: "fixtures-machine",
    build_time: "about five minutes",
};

/// The minbase fixture: `$D2L_MINBASE_FIXTURE` if set, else
/// `$CARGO_TARGET_DIR/fixtures-minbase` if that variable holds an absolute path, else
/// `<workspace>/target/fixtures-minbase`.
///
/// # Panics
///
/// When it is not there (telling to run `cargo xtask fixtures`) or its manifest is not
/// what this testkit reads: a test that needs it fails rather than silently passing.
pub fn minbase() -> MinbaseFixture {
    load(&MINBASE)
}

/// The minbase fixture of Debian `suite` (`bookworm`, `trixie` or `bullseye`), found as
/// [`minbase`] is, through `$D2L_MINBASE_TRIXIE_FIXTURE` and `fixtures-minbase-trixie` (and
/// so on).
///
/// # Panics
///
/// As [`minbase`], and for another suite.
pub fn minbase_of(suite: &str) -> MinbaseFixture {
    match suite {
        "bookworm" => load(&MINBASE),
        "trixie" => load(&MINBASE_TRIXIE),
        "bullseye" => load(&MINBASE_BULLSEYE),
        other => panic!("no minbase fixture of {other}"),
    }
}

/// The machine fixture, found as [`minbase`] is, through `$D2L_MACHINE_FIXTURE` and
/// `fixtures-machine`.
///
/// # Panics
///
/// As [`minbase`].
pub fn machine() -> MachineFixture {
    load(&MACHINE)
}

fn load(lookup: &Lookup) -> OneLayerFixture {
    let dir = find(
        lookup,
        std::env::var_os(lookup.env),
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

fn find(lookup: &Lookup, env: Option<OsString>, target_env: Option<OsString>) -> PathBuf {
    let link = lookup.link;
    let (dir, origin) = match env {
        Some(dir) if !dir.is_empty() => (PathBuf::from(dir), format!("${}", lookup.env)),
        _ => match target_env.map(PathBuf::from) {
            Some(target) if target.is_absolute() => {
                (target.join(link), format!("$CARGO_TARGET_DIR/{link}"))
            }
            _ => (
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .parent()
                    .expect("tests/ has a parent")
                    .join("target")
                    .join(link),
                "the default".to_string(),
            ),
        },
    };
    if !dir.join(MANIFEST).is_file() {
        panic!(
            "no {} fixture at {} ({origin}): run `cargo xtask fixtures` (once, as root; it \
             caches a debootstrap in {}), or set {}",
            lookup.what,
            dir.display(),
            lookup.build_time,
            lookup.env
        );
    }
    dir
}

fn parse(dir: &Path, text: &str) -> Result<OneLayerFixture, String> {
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
    let packages = match &root["packages"] {
        Value::Null => Vec::new(),
        list => serde_json::from_value(list.clone()).map_err(|e| format!("`packages`: {e}"))?,
    };
    let oci_dir = dir.join(field("path")?);
    let reference = field("reference")?;
    Ok(OneLayerFixture {
        dir: dir.to_path_buf(),
        oci: format!("oci:{}:{reference}", oci_dir.display()),
        oci_dir,
        reference,
        packages,
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
        assert!(fix.packages.is_empty());
        let other = text.replace(r#""schema": 1"#, r#""schema": 2"#);
        assert!(parse(Path::new("/min"), &other).is_err());
        let machine = text.replace(
            r#""platform""#,
            r#""packages": ["openssh-server", "sudo"], "platform""#,
        );
        let fix = parse(Path::new("/m"), &machine).unwrap();
        assert_eq!(fix.packages, ["openssh-server", "sudo"]);
        let bad = text.replace(r#""platform""#, r#""packages": "sudo", "platform""#);
        assert!(parse(Path::new("/m"), &bad).is_err());
    }

    #[test]
    #[should_panic(expected = "run `cargo xtask fixtures`")]
    fn missing_minbase_panics() {
        find(&MINBASE, Some("/nonexistent/minbase".into()), None);
    }

    #[test]
    #[should_panic(expected = "no machine fixture")]
    fn missing_machine_panics() {
        find(&MACHINE, Some("/nonexistent/machine".into()), None);
    }
}
