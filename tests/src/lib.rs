//! Shared test support for d2l's crates: where the built fixtures are, and builders for small
//! crafted images. Used as a dev-dependency; never part of the product.
//!
//! The big fixture is a real Debian bookworm image that `cargo xtask fixtures` builds once
//! (as root, a few minutes) and caches: [`fixtures_dir`] finds it and [`debian`] describes it
//! as a [`DebianFixture`] (source strings for its three forms, its layers, the paths its
//! second layer deletes, replaces and adds). Both panic when the fixtures are missing, so a
//! test that needs them fails instead of silently passing.
//!
//! ```no_run
//! let debian = d2l_testkit::debian();
//! assert_eq!(debian.layers.len(), 2);
//! println!("export {} and check {:?} are gone", debian.oci, debian.layer2_removed);
//! ```

#![deny(missing_docs)]

pub mod apply;
pub mod debugfs;
mod fixtures;
pub mod layer;
mod minbase;
pub mod oci;
pub mod qemu;
pub mod qemu_img;
pub mod registry;

pub use fixtures::{arm64_layout, debian, fixtures_dir, DebianFixture, FixtureLayer, FIXTURES_ENV};
pub use minbase::{minbase, MinbaseFixture, MINBASE_ENV};
