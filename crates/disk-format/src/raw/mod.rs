//! Raw images: the disk's bytes at their own offsets, unwritten ranges left as holes.
//!
//! - `writer.rs`: [`RawWriter`], which fixed VHDs write through too.
//! - `reader.rs`: [`RawReader`] and [`data_ranges`], which fixed VHDs read through too.

mod reader;
mod writer;

pub(crate) use reader::{data_ranges, RawReader};
pub(crate) use writer::RawWriter;
