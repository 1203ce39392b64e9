//! Helpers shared by the test files.
pub mod mke2fs;
