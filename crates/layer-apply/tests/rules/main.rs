//! Crafted-layer tests of layer application: one test per rule of
//! `shared/notes/layer-semantics.md` (sections Paths, Whiteouts, Entries, Hardlinks), each
//! applying small hand-made tar streams and asserting the exact resulting tree.
//!
//! Trees are compared as listings, one line per name in walk order (each directory's entries
//! in byte order, parents first), the root first as "." (without nlink: it has no name):
//! `path type mode uid:gid nlink [detail] [xattrs]`, where the detail is the content of a small
//! file (`"..."`, escaped) or `size=N`, ` -> target` for a symlink, `major:minor` for a device.
//! Every applied tree is also checked for consistency: each live inode is reachable, its link
//! count equals its number of names, and file extents are sorted, non-empty and inside the file.

mod deleted_data;
mod entries;
mod existing;
mod hard_links;
mod helpers;
mod paths;
mod sparse;
mod whiteouts;
mod xattrs;
