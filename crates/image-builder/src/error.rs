//! The one error type of this crate.

use std::path::PathBuf;
use std::process::ExitStatus;

use crate::BuilderKind;

/// Everything that can go wrong while finding or running an image builder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No builder on `PATH` at all.
    #[error(
        "no container image builder on PATH (looked for buildah, podman and docker): install \
         one, e.g. `apt-get install buildah` (or podman, or docker.io)"
    )]
    NoBuilder,
    /// The builder asked for with `--builder` is not on `PATH`.
    #[error("{kind} is not on PATH: install it (`apt-get install {package}`) or choose another --builder")]
    NotFound {
        /// The builder asked for.
        kind: BuilderKind,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// The Dockerfile is missing or not a file.
    #[error("{}: {reason}", path.display())]
    Dockerfile {
        /// The Dockerfile given.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The build context is missing or not a directory.
    #[error("build context {}: {reason}", path.display())]
    Context {
        /// The context directory given.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The builder could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// A builder step exited unsuccessfully (its own output, above, says why).
    #[error("`{command}` failed ({status}); its output is above")]
    Failed {
        /// The step, as `program subcommand`.
        command: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// The builder finished but did not write what it was asked to.
    #[error("`{command}` succeeded but wrote no {}", path.display())]
    NoOutput {
        /// The step, as `program subcommand`.
        command: String,
        /// The file it should have written.
        path: PathBuf,
    },
}

/// This crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
