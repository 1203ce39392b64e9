//! Helpers shared by the test files.
pub mod e2fs;
pub mod mke2fs;
