//! Building a Dockerfile with the image builder the user already has, for
//! `d2l build -f Dockerfile`: the step before the sources (**Dockerfile** -> image archive ->
//! layers -> tree -> disk).
//!
//! d2l runs no containers itself. [`Builder::find`] looks for buildah, podman or docker on
//! `PATH` (first found wins, or the one asked for); [`Builder::build`] runs it on a
//! [`BuildRequest`] (Dockerfile, context, build args, target stage, platform), its output
//! going straight to the user, and exports the image as an archive into a temporary
//! directory the caller chose: a [`BuiltImage`], which the ordinary `oci-archive:` or
//! `docker-archive:` source opens. The builder's own copy of the image is removed; the archive goes with the
//! `BuiltImage`.
//!
//! | builder | build | export |
//! |---|---|---|
//! | buildah | `buildah bud` | `buildah push` to `oci-archive:` |
//! | podman | `podman build` | `podman save --format oci-archive` |
//! | docker | `docker buildx build --output type=oci,dest=...` | (the same step) |
//! | docker without buildx, or its `docker` driver | `docker build` | `docker save` |
//!
//! ```no_run
//! use d2l_image_builder::{BuildRequest, Builder};
//! # fn main() -> d2l_image_builder::Result<()> {
//! let builder = Builder::find(None)?;
//! let request = BuildRequest::new("Dockerfile".as_ref(), None, "linux/amd64")?;
//! let image = builder.build(&request, tempfile::tempdir().unwrap())?;
//! println!("oci-archive:{}", image.archive().display());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod base;
mod build;
mod builder;
mod error;
mod os_release;
mod recipe;

pub use base::BaseImage;
pub use build::{ArchiveFormat, BuildRequest, BuiltImage};
pub use builder::{Builder, BuilderKind};
pub use error::{Error, Result};
pub use os_release::OsRelease;
pub use recipe::{check_package, recipe_for, Family, NoRecipe, Recipe};
