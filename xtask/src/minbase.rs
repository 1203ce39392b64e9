//! The second fixture: a Debian bookworm `debootstrap --variant=minbase` WITHOUT a kernel, as
//! an OCI layout with one layer ([`crate::one_layer_fixture`]). It is the `FROM` of the
//! Dockerfile tests, whose `RUN` step installs the kernel (`d2l build -f Dockerfile`).
//! `<target>/fixtures-minbase` links to it.

use std::path::PathBuf;

use anyhow::{ensure, Result};

use crate::one_layer_fixture::OneLayerFixture;

/// The fixture.
pub const MINBASE: OneLayerFixture = OneLayerFixture {
    name: "minbase fixture",
    source: "xtask/src/minbase.rs",
    recipe_version: 1,
    placeholder: "$MIN",
    oci_dir: "minbase-oci",
    link: "fixtures-minbase",
    cmd: "/bin/bash",
    include: &[],
    check_layer,
};

/// The point of this fixture: no kernel, so a Dockerfile must install one.
fn check_layer(names: &[&str]) -> Result<()> {
    ensure!(
        !names.iter().any(|n| n.contains("boot/vmlinuz")),
        "it has a kernel"
    );
    Ok(())
}

/// Makes sure the minbase fixture is built, links `<target>/fixtures-minbase` to it and
/// returns its directory.
pub fn ensure() -> Result<PathBuf> {
    MINBASE.ensure()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::key;

    #[test]
    fn recipe_is_a_kernel_less_minbase_with_its_own_key() {
        let text = MINBASE.recipe("http://deb.debian.org/debian");
        assert!(text.starts_with("# d2l minbase fixture recipe v1, from xtask/src/minbase.rs.\n"));
        assert!(text.contains(
            "debootstrap --variant=minbase bookworm $WORK/bundle/rootfs \
             http://deb.debian.org/debian"
        ));
        assert!(!text.contains("linux-image"), "{text}");
        assert!(text.contains("umoci gc --layout $MIN/minbase-oci"));
        assert_ne!(
            key(&text),
            key(&MINBASE.recipe("http://example.org/debian"))
        );
    }
}
