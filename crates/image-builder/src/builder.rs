//! Which builders there are and finding one on `PATH`.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::{Error, Result};

/// A container image builder d2l knows how to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuilderKind {
    /// `buildah bud`, then `buildah push` to an oci-archive.
    Buildah,
    /// `podman build`, then `podman save --format oci-archive`.
    Podman,
    /// `docker buildx build --output type=oci`, or `docker build` then `docker save`.
    Docker,
}

impl BuilderKind {
    /// Every builder, in the order [`Builder::find`] tries them.
    pub const ALL: [BuilderKind; 3] = [
        BuilderKind::Buildah,
        BuilderKind::Podman,
        BuilderKind::Docker,
    ];

    /// The command looked up on `PATH`, and the name `--builder` takes.
    pub fn command(self) -> &'static str {
        match self {
            BuilderKind::Buildah => "buildah",
            BuilderKind::Podman => "podman",
            BuilderKind::Docker => "docker",
        }
    }

    /// The Debian package that provides [`command`](Self::command).
    pub fn package(self) -> &'static str {
        match self {
            BuilderKind::Buildah => "buildah",
            BuilderKind::Podman => "podman",
            BuilderKind::Docker => "docker.io",
        }
    }
}

impl fmt::Display for BuilderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.command())
    }
}

impl FromStr for BuilderKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        BuilderKind::ALL
            .into_iter()
            .find(|k| k.command() == s)
            .ok_or_else(|| format!("unknown builder {s:?}: expected buildah, podman or docker"))
    }
}

/// A builder found on `PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Builder {
    /// Which one.
    pub kind: BuilderKind,
    /// Its executable.
    pub program: PathBuf,
}

impl Builder {
    /// The builder `choice`, or the first of [`BuilderKind::ALL`] found, on `$PATH`.
    pub fn find(choice: Option<BuilderKind>) -> Result<Builder> {
        Builder::find_in(choice, std::env::var_os("PATH").as_deref())
    }

    /// [`find`](Self::find) with the given value of `PATH`.
    pub fn find_in(choice: Option<BuilderKind>, path: Option<&OsStr>) -> Result<Builder> {
        let found = |kind: BuilderKind| {
            lookup(kind.command(), path).map(|program| Builder { kind, program })
        };
        match choice {
            Some(kind) => found(kind).ok_or(Error::NotFound {
                kind,
                package: kind.package(),
            }),
            None => BuilderKind::ALL
                .into_iter()
                .find_map(found)
                .ok_or(Error::NoBuilder),
        }
    }
}

/// The first executable file `command` in the directories of `path`, like `command -v`.
fn lookup(command: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        // An empty entry means the current directory to a shell; a builder found there by
        // accident is not what the user meant.
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(command))
        .find(|file| is_executable(file))
}

fn is_executable(file: &Path) -> bool {
    std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn executable(dir: &Path, name: &str) {
        let file = dir.join(name);
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn path_of(dirs: &[&Path]) -> OsString {
        std::env::join_paths(dirs).unwrap()
    }

    #[test]
    fn first_found_wins_in_builder_order_not_path_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        executable(a.path(), "docker");
        executable(b.path(), "podman");
        let path = path_of(&[a.path(), b.path()]);
        let found = Builder::find_in(None, Some(&path)).unwrap();
        assert_eq!(found.kind, BuilderKind::Podman);
        assert_eq!(found.program, b.path().join("podman"));
        executable(b.path(), "buildah");
        let found = Builder::find_in(None, Some(&path)).unwrap();
        assert_eq!(found.kind, BuilderKind::Buildah);
    }

    #[test]
    fn a_choice_is_looked_up_alone() {
        let a = tempfile::tempdir().unwrap();
        executable(a.path(), "buildah");
        executable(a.path(), "docker");
        let path = path_of(&[a.path()]);
        let found = Builder::find_in(Some(BuilderKind::Docker), Some(&path)).unwrap();
        assert_eq!(found.program, a.path().join("docker"));
        let err = Builder::find_in(Some(BuilderKind::Podman), Some(&path)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "podman is not on PATH: install it (`apt-get install podman`) or choose another \
             --builder"
        );
    }

    #[test]
    fn none_found_names_what_to_install() {
        let a = tempfile::tempdir().unwrap();
        // Not executable, a directory, and a relative PATH entry: none counts.
        std::fs::write(a.path().join("buildah"), "").unwrap();
        std::fs::create_dir(a.path().join("podman")).unwrap();
        let path = std::env::join_paths([a.path(), Path::new("")]).unwrap();
        let err = Builder::find_in(None, Some(&path)).unwrap_err();
        assert!(matches!(err, Error::NoBuilder));
        let text = err.to_string();
        for needle in ["buildah", "podman", "docker", "apt-get install"] {
            assert!(text.contains(needle), "{needle} not in {text}");
        }
        assert!(matches!(
            Builder::find_in(None, None).unwrap_err(),
            Error::NoBuilder
        ));
    }

    #[test]
    fn names_round_trip() {
        for kind in BuilderKind::ALL {
            assert_eq!(kind.to_string().parse::<BuilderKind>(), Ok(kind));
        }
        assert!("kaniko".parse::<BuilderKind>().is_err());
    }
}
