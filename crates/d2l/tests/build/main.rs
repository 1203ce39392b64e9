//! `d2l build --table none`: the bare ext4 filesystem d2l writes in userspace, proved by
//! readers that share no code with it. `e2fsck -fn` checks every image; debugfs (batch mode)
//! walks a crafted image with every entry type and the Debian fixture and must agree with
//! `d2l export` of the same source; the kernel mounts and modifies a build of the fixture and
//! `resize2fs` grows one. The regression tests at the end are named after what broke.
//!
//! debugfs prints some values in surprising ways (signed uids, packed times, ACLs with id 0,
//! fast symlinks that `dump` cannot read, placeholder entries in `ls -p`); the parsers in
//! `d2l_testkit::debugfs` handle them, and its module documentation lists them.
//!
//! Needs e2fsprogs, GNU tar and python3 on `PATH`, and root with loop devices for the tests
//! that mount (CI has them all); a missing tool fails the test that needs it, never skips it.
//!
//! One module per topic; `helpers`, `crafted` and `trees` hold what the others share, all
//! reached through `prelude`.

#[path = "../common.rs"]
mod common;

mod agree;
mod bootable;
mod crafted;
mod deleted;
mod determinism;
mod fsck;
mod helpers;
mod kernel;
mod refused;
mod regressions;
mod size;
mod trees;

/// What every module uses: std, the test kit, and the shared helpers.
mod prelude {
    pub(crate) use crate::common::{assert_clean_failure, d2l, list_dir, stderr};
    pub(crate) use d2l_testkit::debugfs::{self, Stat};
    pub(crate) use d2l_testkit::layer::{gnu_sparse_tar, pattern, LayerTar};
    pub(crate) use d2l_testkit::oci::{simple_image, Compress};
    pub(crate) use std::collections::{BTreeMap, BTreeSet};
    pub(crate) use std::fs::File;
    pub(crate) use std::io::{Read, Write};
    pub(crate) use std::os::unix::fs::{FileExt, MetadataExt};
    pub(crate) use std::path::{Path, PathBuf};
    pub(crate) use std::process::{Command, Output};

    pub(crate) use crate::{crafted::*, helpers::*, size::*, trees::*};
}
