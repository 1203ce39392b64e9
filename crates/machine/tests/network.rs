//! `--network dhcp` through each network stack an image may have.

mod common;

use common::{exists, link, options, rootfs, run, systemd, text};
use d2l_machine::{prepare, Network};

/// DHCP, and a root password so that the only warnings are the network's.
fn dhcp() -> d2l_machine::MachineOptions {
    d2l_machine::MachineOptions {
        network: Network::Dhcp,
        root_password: Some("pw".into()),
        ..options()
    }
}

const UNITS: &str = "/usr/lib/systemd/system";

#[test]
fn networkd_with_resolved() {
    let mut fs = systemd(|l| {
        l.file_mode("usr/lib/systemd/systemd-networkd", b"", 0o755)
            .file_mode("usr/lib/systemd/systemd-resolved", b"", 0o755)
            .file("usr/lib/systemd/system/systemd-networkd.service", b"")
            .file("usr/lib/systemd/system/systemd-networkd.socket", b"")
            .file(
                "usr/lib/systemd/system/systemd-networkd-wait-online.service",
                b"",
            )
            .file("usr/lib/systemd/system/systemd-resolved.service", b"")
            .file("etc/resolv.conf", b"nameserver 8.8.8.8\n");
    });
    let (changes, warnings) = run(&mut fs, &dhcp());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        text(&mut fs, "/etc/systemd/network/80-d2l-dhcp.network"),
        "# Written by d2l: DHCP on wired NICs.\n[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n"
    );
    let wants = "etc/systemd/system";
    for (path, unit) in [
        (
            "multi-user.target.wants/systemd-networkd.service",
            "systemd-networkd.service",
        ),
        (
            "sockets.target.wants/systemd-networkd.socket",
            "systemd-networkd.socket",
        ),
        (
            "network-online.target.wants/systemd-networkd-wait-online.service",
            "systemd-networkd-wait-online.service",
        ),
        (
            "dbus-org.freedesktop.network1.service",
            "systemd-networkd.service",
        ),
        (
            "multi-user.target.wants/systemd-resolved.service",
            "systemd-resolved.service",
        ),
        (
            "dbus-org.freedesktop.resolve1.service",
            "systemd-resolved.service",
        ),
    ] {
        assert_eq!(
            link(&fs, &format!("{wants}/{path}")).as_deref(),
            Some(format!("{UNITS}/{unit}").as_str()),
            "{path}"
        );
    }
    assert_eq!(
        link(&fs, "etc/resolv.conf").as_deref(),
        Some("../run/systemd/resolve/stub-resolv.conf")
    );
    assert!(
        changes
            .iter()
            .any(|c| c.contains("enabled systemd-networkd")),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c.contains("enabled systemd-resolved")),
        "{changes:?}"
    );
}

#[test]
fn networkd_alone_warns_about_dns() {
    let mut fs = systemd(|l| {
        l.file_mode("usr/lib/systemd/systemd-networkd", b"", 0o755)
            .file("usr/lib/systemd/system/systemd-networkd.service", b"");
    });
    let (_, warnings) = run(&mut fs, &dhcp());
    assert!(exists(&fs, "etc/systemd/network/80-d2l-dhcp.network"));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("systemd-resolved"), "{warnings:?}");
}

#[test]
fn ifupdown_with_a_dhcp_client() {
    // systemd without resolved, but ifupdown and dhclient: ifupdown, whose DHCP client
    // writes resolv.conf.
    let mut fs = systemd(|l| {
        l.file_mode("usr/lib/systemd/systemd-networkd", b"", 0o755)
            .file_mode("usr/sbin/ifup", b"", 0o755)
            .file_mode("usr/sbin/dhclient", b"", 0o755)
            .file(
                "etc/network/interfaces",
                b"auto lo\niface lo inet loopback\n",
            );
    });
    let prepared = prepare(&mut fs, &dhcp()).unwrap();
    assert!(prepared.warnings.is_empty(), "{:?}", prepared.warnings);
    assert_eq!(prepared.kernel_args, ["net.ifnames=0"]);
    assert_eq!(
        text(&mut fs, "etc/network/interfaces.d/d2l-dhcp"),
        "# Written by d2l: DHCP on the first wired NIC (net.ifnames=0 keeps its name).\n\
         allow-hotplug eth0\niface eth0 inet dhcp\n"
    );
    assert_eq!(
        text(&mut fs, "etc/network/interfaces"),
        "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n"
    );
    assert!(!exists(&fs, "etc/systemd/network/80-d2l-dhcp.network"));
    // An interfaces file that already sources the directory is left alone.
    let debian = "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n";
    let mut fs = rootfs(|l| {
        l.file_mode("sbin/ifup", b"", 0o755)
            .file_mode("sbin/dhclient", b"", 0o755)
            .file("etc/network/interfaces", debian.as_bytes());
    });
    run(&mut fs, &dhcp());
    assert_eq!(text(&mut fs, "etc/network/interfaces"), debian);
}

#[test]
fn alpine_openrc_networking() {
    let mut fs = rootfs(|l| {
        l.file_mode("sbin/openrc-run", b"", 0o755)
            .file_mode("sbin/ifup", b"", 0o755)
            .file_mode("bin/busybox", b"", 0o755)
            .file_mode("etc/init.d/networking", b"", 0o755);
    });
    let (changes, warnings) = run(&mut fs, &dhcp());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        text(&mut fs, "etc/network/interfaces"),
        "# Written by d2l: loopback, and DHCP on the first wired NIC.\n\
         auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n"
    );
    assert_eq!(
        link(&fs, "etc/runlevels/boot/networking").as_deref(),
        Some("/etc/init.d/networking")
    );
    assert!(changes.iter().any(|c| c.contains("OpenRC")), "{changes:?}");
}

#[test]
fn network_manager_needs_nothing() {
    let mut fs = systemd(|l| {
        l.file_mode("usr/sbin/NetworkManager", b"", 0o755)
            .file_mode("usr/lib/systemd/systemd-networkd", b"", 0o755);
    });
    let (changes, warnings) = run(&mut fs, &dhcp());
    assert!(warnings.is_empty());
    assert!(changes.iter().any(|c| c.contains("NetworkManager")));
    assert!(!exists(&fs, "etc/systemd/network"));
}

#[test]
fn no_stack_warns_and_none_leaves_the_image_alone() {
    let mut fs = rootfs(|l| {
        l.dir("etc");
    });
    let (_, warnings) = run(&mut fs, &dhcp());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("no network"), "{warnings:?}");
    let mut fs = systemd(|l| {
        l.file_mode("usr/lib/systemd/systemd-networkd", b"", 0o755);
    });
    let (changes, _) = run(&mut fs, &options());
    assert!(
        !changes.iter().any(|c| c.starts_with("network")),
        "{changes:?}"
    );
    assert!(!exists(&fs, "etc/systemd/network"));
}
