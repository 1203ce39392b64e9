//! What a blob is, before anything reads its content: its [`Digest`], its media type, how it
//! is [`Compression`]-ed, and a [`VerifiedReader`] that fails at the end of a blob whose size
//! or digest is wrong.
//!
//! Every crate that names or checks blobs (the registry that fetches them, layer-apply that
//! decompresses them) shares these types, so SHA-256 is computed by one implementation.
//!
//! ```
//! use d2l_blob::{Digest, VerifiedReader};
//! use std::io::Read;
//! let digest = Digest::sha256_of(b"abc");
//! let mut blob = VerifiedReader::new(&b"abc"[..], digest, 3);
//! let mut out = Vec::new();
//! blob.read_to_end(&mut out).unwrap();
//! ```
#![deny(missing_docs)]
// Blob sizes, offsets and digests come from documents anyone can write: no silent
// truncation, wrapping or panicking arithmetic on them (issue 13). Tests are exempt.
#![cfg_attr(
    not(test),
    warn(
        clippy::cast_possible_truncation,
        clippy::cast_possible_wrap,
        clippy::cast_sign_loss,
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::string_slice,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

pub mod compression;
pub mod digest;
mod error;
pub mod media_type;

pub use compression::Compression;
pub use digest::{Digest, Sha256, VerifiedReader};
pub use error::{Error, Result};
