//! The second fixture: a Debian bookworm `debootstrap --variant=minbase` WITHOUT a kernel, as
//! an OCI layout with one layer ([`crate::one_layer_fixture`]). It is the `FROM` of the
//! Dockerfile tests, whose `RUN` step installs the kernel (`d2l build -f Dockerfile`), and,
//! with the same made of trixie and bullseye, the stock images of the kernel-recipe tests
//! (`d2l build` installs the distribution's kernel itself). `<target>/fixtures-minbase`,
//! `fixtures-minbase-trixie` and `fixtures-minbase-bullseye` link to them.

use std::path::PathBuf;

use anyhow::{ensure, Result};

use crate::one_layer_fixture::OneLayerFixture;

/// The fixture.
pub const MINBASE: OneLayerFixture = OneLayerFixture {
    suite: "bookworm",
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

/// Debian 13, the stable release a user pulls as `debian:latest`.
pub const MINBASE_TRIXIE: OneLayerFixture = OneLayerFixture {
    suite: "trixie",
    name: "trixie minbase fixture",
    placeholder: "$MIN_TRIXIE",
    link: "fixtures-minbase-trixie",
    ..MINBASE
};

/// Debian 11, an old release (its apt sources may point at the archive by now).
pub const MINBASE_BULLSEYE: OneLayerFixture = OneLayerFixture {
    suite: "bullseye",
    name: "bullseye minbase fixture",
    placeholder: "$MIN_BULLSEYE",
    link: "fixtures-minbase-bullseye",
    ..MINBASE
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

/// Makes sure the trixie and bullseye minbase fixtures are built and linked; their
/// directories.
pub fn ensure_stock() -> Result<(PathBuf, PathBuf)> {
    Ok((MINBASE_TRIXIE.ensure()?, MINBASE_BULLSEYE.ensure()?))
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
        let mirror = "http://deb.debian.org/debian";
        for (fixture, suite) in [(MINBASE_TRIXIE, "trixie"), (MINBASE_BULLSEYE, "bullseye")] {
            let text = fixture.recipe(mirror);
            assert!(
                text.contains(&format!("debootstrap --variant=minbase {suite} ")),
                "{text}"
            );
            assert!(!text.contains("bookworm"), "{text}");
            assert_ne!(key(&text), key(&MINBASE.recipe(mirror)));
        }
    }
}
