//! Every bound d2l puts on what an image source may make it read, with where each value comes
//! from. Past any of them the source is refused with one error naming the document, digest or
//! input and the limit; none of them is reached by an image that container runtimes run.

/// Most indexes nested in one another on the way from the source's top (a layout's
/// `index.json` entries, a registry's manifest) to an image manifest.
///
/// Real images nest at most two (an index of manifest lists); 8 leaves room and stops a
/// loop early.
pub const MAX_INDEX_DEPTH: usize = 8;

/// Most manifests, indexes and configs read while looking for the image of a platform. Each
/// is read once however many times indexes refer to it, so this bounds the whole search.
///
/// 256: an index lists one manifest per platform (a few dozen at most, with as many
/// attestations, which are not read); only a manifest whose descriptor gives no platform
/// costs a second read, its config.
pub const MAX_DOCUMENTS: usize = 256;
