//! The third fixture: a Debian bookworm machine image for the "machine you can reach" tests
//! (issue 15): a `debootstrap --variant=minbase` with a kernel, systemd, systemd-resolved,
//! openssh-server, sudo, cloud-init and cloud-guest-utils (growpart), as an OCI layout with
//! one layer ([`crate::one_layer_fixture`]). A fixture of its own, so the main Debian fixture
//! (and the digests recorded in `xtask/golden/digests.txt`) stay as they are.
//! `<target>/fixtures-machine` links to it; its `manifest.json` lists the packages.

use std::path::PathBuf;

use anyhow::{ensure, Result};

use crate::one_layer_fixture::OneLayerFixture;

/// The fixture.
pub const MACHINE: OneLayerFixture = OneLayerFixture {
    suite: "bookworm",
    name: "machine fixture",
    source: "xtask/src/machine_fixture.rs",
    recipe_version: 1,
    placeholder: "$MACH",
    oci_dir: "machine-oci",
    link: "fixtures-machine",
    cmd: "/sbin/init",
    include: INCLUDE,
    check_layer,
};

/// Packages on top of minbase: a bootable systemd machine (as the main fixture), its network
/// (systemd-networkd is part of systemd; resolved is a package of its own in bookworm, and
/// iproute2 gives the tests `ip`), what d2l configures (sshd, sudo, cloud-init) and
/// cloud-guest-utils, whose growpart d2l's grow unit runs.
const INCLUDE: &[&str] = &[
    "linux-image-amd64",
    "systemd-sysv",
    "udev",
    "initramfs-tools",
    "systemd-resolved",
    "iproute2",
    "openssh-server",
    "sudo",
    "cloud-init",
    "cloud-guest-utils",
    // debootstrap resolves no virtual packages: python3-cryptography (cloud-init, through
    // oauthlib) depends on python3-cffi-backend-api-*, which this package provides, and
    // systemd-resolved on default-dbus-system-bus, which dbus provides.
    "python3-cffi-backend",
    "dbus",
];

/// Files the built layer must hold: the packages above really installed, and the SSH host
/// keys openssh-server's postinst makes (what d2l must remove).
const EXPECTED: &[&str] = &[
    "usr/sbin/sshd",
    "usr/bin/sudo",
    "usr/bin/cloud-init",
    "usr/bin/growpart",
    "usr/lib/systemd/systemd-resolved",
    "etc/ssh/ssh_host_ed25519_key",
];

fn check_layer(names: &[&str]) -> Result<()> {
    for wanted in EXPECTED {
        ensure!(names.contains(wanted), "it lacks {wanted}");
    }
    Ok(())
}

/// Makes sure the machine fixture is built, links `<target>/fixtures-machine` to it and
/// returns its directory.
pub fn ensure() -> Result<PathBuf> {
    MACHINE.ensure()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::key;

    #[test]
    fn recipe_installs_what_the_machine_tests_need_under_its_own_key() {
        let text = MACHINE.recipe("http://deb.debian.org/debian");
        assert!(text.contains(
            "debootstrap --variant=minbase --include=linux-image-amd64,systemd-sysv,udev,\
             initramfs-tools,systemd-resolved,iproute2,openssh-server,sudo,cloud-init,\
             cloud-guest-utils,python3-cffi-backend,dbus bookworm $WORK/bundle/rootfs http://deb.debian.org/debian"
        ));
        assert!(text.contains("umoci gc --layout $MACH/machine-oci"));
        assert_ne!(
            key(&text),
            key(&MACHINE.recipe("http://example.org/debian"))
        );
    }
}
