//! Shared test support for d2l's crates: where the built fixtures are, and builders for small
//! crafted images. Used as a dev-dependency; never part of the product.
