//! Kernel and initrd discovery in a rootfs tree, and an offline extlinux install.
//!
//! Not built yet: see `shared/notes/extlinux-offline.md` for the plan. It exports nothing
//! until it works.
#![deny(missing_docs)]
