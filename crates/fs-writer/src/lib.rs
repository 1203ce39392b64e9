//! Writes a rootfs [`Tree`](d2l_layer_apply::Tree) as an ext4 filesystem, in userspace.
//!
//! Not built yet: this crate is the next stage of the pipeline (layers -> tree -> **ext4** ->
//! disk). It will consume the tree of `d2l-layer-apply` and may supply its own
//! [`ContentStore`](d2l_layer_apply::ContentStore) so that file data is written once, straight
//! into its final blocks. Until then it exports nothing, and no command claims to write ext4.
#![deny(missing_docs)]
