//! Reads container images from local sources and hands their layers on as verified byte
//! streams. Nothing is ever unpacked onto the host: archives are read in place.
//!
//! - [`SourceSpec`] names where the image is, like skopeo's transports: `oci:DIR[:REF]`,
//!   `oci-archive:FILE[:REF]`, `docker-archive:FILE[:NAME:TAG]`, or a registry [`Reference`]
//!   (`debian:bookworm`, normalised as Docker does).
//! - [`open_image`] / [`open_image_with`] (registry options: credentials, CAs, cache,
//!   progress) pick the image for a [`Platform`]. A registry image's blobs go through the
//!   content-addressed cache of [`remote::cache`]; [`pull_image`] fills it without applying.
//!   Either verifies the size and digest of every manifest, index and config blob before
//!   parsing it, and returns an [`Image`].
//! - [`limits`]: how large a manifest or config, how many layers, how many documents per
//!   search, how long a name d2l accepts, and why.
//! - [`Image::open_layer`] returns the raw (still compressed) layer bytes wrapped in a
//!   [`VerifiedReader`], which fails the read if the size or [`Digest`] is wrong.
//! - [`write_oci_archive`] writes an opened image back out as an OCI archive (what an image
//!   builder is handed as a `FROM`); the blob cache also keeps what builders made from
//!   images ([`remote::BuiltRecord`]).
//!
//! ```no_run
//! use d2l_registry::{open_image, Platform, SourceSpec};
//!
//! # fn main() -> d2l_registry::Result<()> {
//! let source: SourceSpec = "oci-archive:debian.tar:bookworm".parse()?;
//! let platform: Platform = "linux/arm64".parse()?;
//! let image = open_image(&source, &platform)?;
//! for (index, layer) in image.layers.iter().enumerate() {
//!     let mut blob = image.open_layer(index)?;
//!     let n = std::io::copy(&mut blob, &mut std::io::sink()).expect("layer verifies");
//!     println!("{} {} {n} bytes", layer.digest, layer.media_type);
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
// Input from registries and archives drives sizes and counts: no silent narrowing.
#![warn(clippy::cast_possible_truncation)]

mod docker_archive;
mod error;
mod image;
mod layout;
pub mod limits;
mod manifest;
mod oci_archive;
pub mod platform;
pub mod reference;
pub mod remote;
pub mod source;
mod store;

pub use d2l_blob::{compression, digest, media_type};
pub use d2l_blob::{Compression, Digest, Sha256, VerifiedReader};
pub use error::{Error, Result};
pub use image::{open_image, open_image_with, Image, LayerDescriptor};
pub use limits::{
    MAX_CONFIG_SIZE, MAX_DOCUMENTS, MAX_INDEX_DEPTH, MAX_LAYERS, MAX_MANIFEST_SIZE,
    MAX_NAME_LENGTH, MAX_TAG_LENGTH,
};
pub use oci_archive::{write_oci_archive, ARCHIVE_REFERENCE};
pub use platform::Platform;
pub use reference::Reference;
pub use remote::{pull_image, PullProgress, PullReport, RegistryOptions};
pub use source::SourceSpec;
pub use store::BlobRange;
