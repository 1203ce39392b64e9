//! Partition tables (MBR, GPT) and disk-image container formats.
//!
//! Not built yet: the stage after the filesystem writer (tree -> ext4 -> **disk** -> format).
//! It exports nothing until it works.
#![deny(missing_docs)]
