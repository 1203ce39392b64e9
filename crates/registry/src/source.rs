//! Where an image comes from, named like skopeo's transports.
//!
//! | form | meaning |
//! | --- | --- |
//! | `oci:DIR[:REF]` | OCI image layout directory; REF is an `org.opencontainers.image.ref.name` |
//! | `oci-archive:FILE[:REF]` | the same layout inside a tar file |
//! | `docker-archive:FILE[:NAME:TAG]` | `docker save` output |
//! | `docker://REF`, or a bare `REF` | an image in a registry |
//!
//! Splitting follows skopeo: for `oci:` and `oci-archive:` the REF starts after the *last* `:`
//! if what follows has no `/` (so `oci:/a:b/c` is the directory `/a:b/c`); an empty REF
//! (`oci:/a:b:`) means none, which lets a path containing `:` be written. For
//! `docker-archive:` the path ends at the *first* `:`. Both accept `@N` for the N-th image.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::reference::Reference;

/// Transport prefix of an OCI image layout directory.
pub const OCI_PREFIX: &str = "oci:";
/// Transport prefix of an OCI image layout in a tar file.
pub const OCI_ARCHIVE_PREFIX: &str = "oci-archive:";
/// Transport prefix of `docker save` output.
pub const DOCKER_ARCHIVE_PREFIX: &str = "docker-archive:";
/// Transport prefix of a registry reference.
pub const DOCKER_PREFIX: &str = "docker://";

/// skopeo transports that d2l does not read, named so the error can say so.
const UNSUPPORTED_TRANSPORTS: &[&str] = &[
    "dir",
    "containers-storage",
    "docker-daemon",
    "ostree",
    "sif",
    "tarball",
];

/// An image source as the user names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// `oci:DIR[:REF]`: an OCI image layout directory.
    Oci {
        /// The layout's directory.
        dir: PathBuf,
        /// The `org.opencontainers.image.ref.name` to pick, or `@N` for the N-th entry.
        reference: Option<String>,
    },
    /// `oci-archive:FILE[:REF]`: an OCI image layout in a tar file, read in place.
    OciArchive {
        /// The tar file.
        file: PathBuf,
        /// The `org.opencontainers.image.ref.name` to pick, or `@N` for the N-th entry.
        reference: Option<String>,
    },
    /// `docker-archive:FILE[:NAME:TAG]`: `docker save` output, read in place.
    DockerArchive {
        /// The tar file.
        file: PathBuf,
        /// The `NAME:TAG` to pick from the archive's RepoTags, or `@N` for the N-th image.
        name_tag: Option<String>,
    },
    /// `docker://REF` or a bare reference: an image in a registry.
    Registry(Reference),
}

impl FromStr for SourceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let err = |reason: String| Error::InvalidSource {
            input: s.to_owned(),
            reason,
        };
        if let Some(rest) = s.strip_prefix(OCI_ARCHIVE_PREFIX) {
            let (path, reference) = split_oci(rest);
            let file = non_empty_path(path).ok_or_else(|| err("no file given".to_owned()))?;
            return Ok(SourceSpec::OciArchive { file, reference });
        }
        if let Some(rest) = s.strip_prefix(OCI_PREFIX) {
            let (path, reference) = split_oci(rest);
            let dir = non_empty_path(path).ok_or_else(|| err("no directory given".to_owned()))?;
            return Ok(SourceSpec::Oci { dir, reference });
        }
        if let Some(rest) = s.strip_prefix(DOCKER_ARCHIVE_PREFIX) {
            let (path, name_tag) = match rest.split_once(':') {
                Some((path, name_tag)) => (path, Some(name_tag)),
                None => (rest, None),
            };
            let file = non_empty_path(path).ok_or_else(|| err("no file given".to_owned()))?;
            let name_tag = name_tag.filter(|n| !n.is_empty()).map(str::to_owned);
            if let Some(name_tag) = &name_tag {
                if !is_index(name_tag) {
                    name_tag
                        .parse::<Reference>()
                        .map_err(|e| err(format!("NAME:TAG: {}", why(e))))?;
                }
            }
            return Ok(SourceSpec::DockerArchive { file, name_tag });
        }
        if let Some(rest) = s.strip_prefix(DOCKER_PREFIX) {
            return rest
                .parse()
                .map(SourceSpec::Registry)
                .map_err(|e| err(why(e)));
        }
        if let Some((transport, _)) = s.split_once(':') {
            if UNSUPPORTED_TRANSPORTS.contains(&transport) {
                return Err(err(format!(
                    "the {transport}: transport is not supported; use oci:, oci-archive:, \
                     docker-archive: or docker://"
                )));
            }
        }
        s.parse().map(SourceSpec::Registry).map_err(|e| {
            err(format!(
                "not oci:DIR, oci-archive:FILE, docker-archive:FILE or docker://REF, \
                 and not an image reference either ({})",
                why(e)
            ))
        })
    }
}

/// Why a reference inside a source spec is invalid, without quoting the input again.
fn why(e: Error) -> String {
    match e {
        Error::InvalidReference { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// skopeo's split for `oci:` and `oci-archive:`: the REF follows the last ':' unless what
/// follows contains a '/'. An empty REF is none.
fn split_oci(rest: &str) -> (&str, Option<String>) {
    match rest.rfind(':') {
        Some(i) if !rest[i + 1..].contains('/') => {
            let reference = &rest[i + 1..];
            (
                &rest[..i],
                (!reference.is_empty()).then(|| reference.to_owned()),
            )
        }
        _ => (rest, None),
    }
}

fn non_empty_path(path: &str) -> Option<PathBuf> {
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// Whether a REF or NAME:TAG is `@N`, an index into the source's list of images.
pub(crate) fn is_index(reference: &str) -> bool {
    parse_index(reference).is_some()
}

/// The N of `@N`.
pub(crate) fn parse_index(reference: &str) -> Option<usize> {
    let digits = reference.strip_prefix('@')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Writes an `oci:` path so that it parses back to itself.
fn write_oci_path(f: &mut fmt::Formatter<'_>, path: &Path, reference: Option<&str>) -> fmt::Result {
    let path = path.display().to_string();
    match reference {
        Some(reference) => write!(f, "{path}:{reference}"),
        // A path whose last ':' is followed by no '/' would lose its tail to REF: end it with
        // an empty REF.
        None if split_oci(&path).0 != path => write!(f, "{path}:"),
        None => write!(f, "{path}"),
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Oci { dir, reference } => {
                f.write_str(OCI_PREFIX)?;
                write_oci_path(f, dir, reference.as_deref())
            }
            SourceSpec::OciArchive { file, reference } => {
                f.write_str(OCI_ARCHIVE_PREFIX)?;
                write_oci_path(f, file, reference.as_deref())
            }
            SourceSpec::DockerArchive { file, name_tag } => {
                write!(f, "{DOCKER_ARCHIVE_PREFIX}{}", file.display())?;
                if let Some(name_tag) = name_tag {
                    write!(f, ":{name_tag}")?;
                }
                Ok(())
            }
            SourceSpec::Registry(reference) => write!(f, "{DOCKER_PREFIX}{reference}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oci(dir: &str, reference: Option<&str>) -> SourceSpec {
        SourceSpec::Oci {
            dir: dir.into(),
            reference: reference.map(Into::into),
        }
    }

    fn oci_archive(file: &str, reference: Option<&str>) -> SourceSpec {
        SourceSpec::OciArchive {
            file: file.into(),
            reference: reference.map(Into::into),
        }
    }

    fn docker_archive(file: &str, name_tag: Option<&str>) -> SourceSpec {
        SourceSpec::DockerArchive {
            file: file.into(),
            name_tag: name_tag.map(Into::into),
        }
    }

    fn registry(r: &str) -> SourceSpec {
        SourceSpec::Registry(r.parse().unwrap())
    }

    #[test]
    fn parse_table() {
        for (input, want, display) in [
            ("oci:/tmp/img", oci("/tmp/img", None), "oci:/tmp/img"),
            (
                "oci:img:latest",
                oci("img", Some("latest")),
                "oci:img:latest",
            ),
            (
                "oci:./a/b:v1.0",
                oci("./a/b", Some("v1.0")),
                "oci:./a/b:v1.0",
            ),
            // The text after the last ':' has a '/': all of it is the path.
            (
                "oci:/mnt/c:d/img",
                oci("/mnt/c:d/img", None),
                "oci:/mnt/c:d/img",
            ),
            (
                "oci:/mnt/c:d/img:v2",
                oci("/mnt/c:d/img", Some("v2")),
                "oci:/mnt/c:d/img:v2",
            ),
            // A path ending in ':x' has to be written with an empty REF.
            ("oci:/mnt/a:b:", oci("/mnt/a:b", None), "oci:/mnt/a:b:"),
            ("oci:/mnt/a:b", oci("/mnt/a", Some("b")), "oci:/mnt/a:b"),
            ("oci:dir:", oci("dir", None), "oci:dir"),
            ("oci:dir:@1", oci("dir", Some("@1")), "oci:dir:@1"),
            (
                "oci-archive:x.tar",
                oci_archive("x.tar", None),
                "oci-archive:x.tar",
            ),
            (
                "oci-archive:/a:b/x.tar:app",
                oci_archive("/a:b/x.tar", Some("app")),
                "oci-archive:/a:b/x.tar:app",
            ),
            (
                "docker-archive:d.tar",
                docker_archive("d.tar", None),
                "docker-archive:d.tar",
            ),
            (
                "docker-archive:/t/d.tar:debian:bookworm",
                docker_archive("/t/d.tar", Some("debian:bookworm")),
                "docker-archive:/t/d.tar:debian:bookworm",
            ),
            (
                "docker-archive:d.tar:localhost:5000/app:v1",
                docker_archive("d.tar", Some("localhost:5000/app:v1")),
                "docker-archive:d.tar:localhost:5000/app:v1",
            ),
            (
                "docker-archive:d.tar:@0",
                docker_archive("d.tar", Some("@0")),
                "docker-archive:d.tar:@0",
            ),
            (
                "docker://debian:bookworm",
                registry("debian:bookworm"),
                "docker://docker.io/library/debian:bookworm",
            ),
            (
                "debian",
                registry("debian"),
                "docker://docker.io/library/debian:latest",
            ),
            (
                "localhost:5000/app",
                registry("localhost:5000/app"),
                "docker://localhost:5000/app:latest",
            ),
        ] {
            let got: SourceSpec = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got, want, "{input}");
            assert_eq!(got.to_string(), display, "{input}");
            assert_eq!(display.parse::<SourceSpec>().unwrap(), want, "{display}");
        }
    }

    #[test]
    fn parse_errors() {
        for (input, needle) in [
            ("oci:", "no directory"),
            ("oci::latest", "no directory"),
            ("oci-archive:", "no file"),
            ("docker-archive:", "no file"),
            ("docker-archive::debian", "no file"),
            ("docker-archive:x.tar:Debian", "NAME:TAG"),
            ("docker://", "empty"),
            ("docker://UPPER", "lowercase"),
            ("dir:/tmp/x", "transport is not supported"),
            ("containers-storage:x", "transport is not supported"),
            ("./image.tar", "not oci:DIR"),
            ("", "not oci:DIR"),
        ] {
            match input.parse::<SourceSpec>() {
                Err(e @ Error::InvalidSource { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(needle), "{input:?}: {msg}");
                }
                other => panic!("{input:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn index_refs() {
        assert_eq!(parse_index("@0"), Some(0));
        assert_eq!(parse_index("@12"), Some(12));
        assert_eq!(parse_index("@"), None);
        assert_eq!(parse_index("@x"), None);
        assert_eq!(parse_index("12"), None);
    }
}
