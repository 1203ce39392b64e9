//! qcow2 version 3 (QEMU's docs/interop/qcow2.txt), written with 64 KiB clusters.
//!
//! Layout: the header in cluster 0; data clusters from cluster 1 on, in the order they were
//! first written; then, at `finish`, the L2 tables of the 512 MiB ranges that hold data, the
//! L1 table, the refcount blocks and the refcount table. Every cluster has refcount 1 (so
//! the L1 and L2 entries carry the COPIED flag), except that several compressed clusters may
//! share a host cluster. Nothing needs the virtual size before the end.
//!
//! Reading ([`Qcow2Reader`], for `d2l convert`): versions 2 and 3, by their tables, every
//! offset checked against the file and against the metadata it must not overlap; see
//! `reader.rs`.
//!
//! - `header.rs`: the on-disk header and table entries, shared by both sides, and the
//!   limits a reader holds an image to.
//! - `writer.rs`: [`Qcow2Writer`], [`write_compressed`] and [`write_in_order`] (a qcow2
//!   written in disk order at an offset, inside an archive).
//! - `reader.rs`: [`Qcow2Reader`].

mod header;
mod reader;
mod writer;

pub use header::{
    QCOW2_MAX_CLUSTER_BITS, QCOW2_MAX_L1_BYTES, QCOW2_MAX_REFCOUNT_ORDER,
    QCOW2_MAX_REFCOUNT_TABLE_BYTES, QCOW2_MIN_CLUSTER_BITS,
};
pub(crate) use reader::Qcow2Reader;
pub(crate) use writer::{write_compressed, write_in_order, Qcow2Writer};
