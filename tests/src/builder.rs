//! Image builders (buildah, podman) as the tests run them: as root, with vfs storage in the
//! test's own directory (copies, no overlay mounts) and chroot isolation (no runtime or user
//! namespaces), nothing written to the host's container storage. d2l passes none of this:
//! it is the builder's own configuration, read from the environment d2l hands on.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A builder configuration whose storage lives in one directory.
#[derive(Debug, Clone)]
pub struct BuilderStorage {
    conf: PathBuf,
}

impl BuilderStorage {
    /// Writes `dir/storage.conf`, pointing the storage at `dir/storage`.
    pub fn in_dir(dir: &Path) -> BuilderStorage {
        let conf = dir.join("storage.conf");
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        std::fs::write(
            &conf,
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/storage/graph\"\n\
                 runroot = \"{0}/storage/run\"\n",
                dir.display()
            ),
        )
        .unwrap();
        BuilderStorage { conf }
    }

    /// Sets the environment the builder reads: `CONTAINERS_STORAGE_CONF` and
    /// `BUILDAH_ISOLATION=chroot`.
    pub fn configure<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("CONTAINERS_STORAGE_CONF", &self.conf)
            .env("BUILDAH_ISOLATION", "chroot")
    }
}
