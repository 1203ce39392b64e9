//! d2l's init, and what d2l and the init share.
//!
//! The binary (`src/main.rs`) is PID 1 of a machine d2l makes from an image that has no init
//! of its own: in d2l's initramfs it loads the kernel modules the machine needs and mounts
//! the root filesystem; on the root filesystem it mounts the API filesystems, brings up the
//! network with its own DHCP client, runs the image's ENTRYPOINT and CMD, reaps orphans,
//! forwards signals, and powers the machine off when the command ends.
//!
//! This library holds what d2l writes and the init reads, each defined once:
//! [`config`] (the two configuration files), [`modules`] (which modules, in which order),
//! [`passwd`] (the image's user, as the init will resolve it), and [`dhcp`] (the packets).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod config;
pub mod dhcp;
pub mod modules;
pub mod passwd;
