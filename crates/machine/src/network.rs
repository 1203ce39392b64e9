//! DHCP on the first wired NIC, through the network stack the image has: NetworkManager
//! (configures wired NICs by itself), systemd-networkd (a `.network` file, enabled, with
//! systemd-resolved when present), ifupdown (`/etc/network/interfaces.d/`), Alpine's
//! `/etc/network/interfaces` with OpenRC's networking service. One stack, never two: two
//! DHCP clients on one NIC fight over it.

use d2l_rootfs::ContentStore;

use crate::error::Result;
use crate::files::Files;
use crate::init::{self, Init};
use crate::Outcome;

const NETWORK_MANAGER: &[&str] = &["/usr/sbin/NetworkManager", "/usr/bin/NetworkManager"];
const NETWORKD: &[&str] = &[
    "/usr/lib/systemd/systemd-networkd",
    "/lib/systemd/systemd-networkd",
];
const RESOLVED: &[&str] = &[
    "/usr/lib/systemd/systemd-resolved",
    "/lib/systemd/systemd-resolved",
];
const IFUP: &[&str] = &["/sbin/ifup", "/usr/sbin/ifup"];
/// DHCP clients ifupdown can run (isc-dhcp-client, dhcpcd, busybox's udhcpc).
const DHCP_CLIENTS: &[&str] = &[
    "/sbin/dhclient",
    "/usr/sbin/dhclient",
    "/sbin/dhcpcd",
    "/usr/sbin/dhcpcd",
    "/sbin/udhcpc",
    "/usr/bin/udhcpc",
    "/bin/busybox",
];
/// The `.network` file d2l writes; 80- sorts after a distribution's own (whose first match
/// wins), so an image's specific configuration keeps precedence.
pub(crate) const NETWORK_FILE: &str = "/etc/systemd/network/80-d2l-dhcp.network";
/// networkd's configuration: every wired NIC, by either naming scheme.
pub(crate) const NETWORK_FILE_TEXT: &str = "# Written by d2l: DHCP on wired NICs.\n\
     [Match]\n\
     Name=en* eth*\n\
     \n\
     [Network]\n\
     DHCP=yes\n";
/// systemd-resolved's stub resolver file, which /etc/resolv.conf points at.
const RESOLVED_STUB: &str = "../run/systemd/resolve/stub-resolv.conf";
const RESOLV_CONF: &str = "/etc/resolv.conf";
const INTERFACES: &str = "/etc/network/interfaces";
/// ifupdown's drop-in d2l writes.
pub(crate) const INTERFACES_D_FILE: &str = "/etc/network/interfaces.d/d2l-dhcp";
/// The first NIC's name once `net.ifnames=0` keeps kernel names.
const FIRST_NIC: &str = "eth0";
/// Keeps the kernel's `ethN` names, which ifupdown's stanzas must name (systemd's
/// predictable names depend on the PCI slot).
const KERNEL_NAMES: &str = "net.ifnames=0";

/// ifupdown's files: loopback and the drop-in directory when there is no interfaces file;
/// the NIC by DHCP, brought up at boot and when it appears.
pub(crate) fn ifupdown_stanza() -> String {
    format!(
        "# Written by d2l: DHCP on the first wired NIC ({KERNEL_NAMES} keeps its name).\n\
         allow-hotplug {FIRST_NIC}\n\
         iface {FIRST_NIC} inet dhcp\n"
    )
}

/// Alpine's whole /etc/network/interfaces.
pub(crate) fn alpine_interfaces() -> String {
    format!(
        "# Written by d2l: loopback, and DHCP on the first wired NIC.\n\
         auto lo\n\
         iface lo inet loopback\n\
         \n\
         auto {FIRST_NIC}\n\
         iface {FIRST_NIC} inet dhcp\n"
    )
}

/// Configures DHCP through the image's stack; a warning when it has none.
pub(crate) fn dhcp<S: ContentStore>(files: &mut Files<'_, S>, init: Init) -> Result<Outcome> {
    let mut out = Outcome::default();
    if files.first(NETWORK_MANAGER).is_some() {
        out.change("network: NetworkManager configures wired NICs by DHCP itself (nothing added)");
        return Ok(out);
    }
    let networkd = init == Init::Systemd && files.first(NETWORKD).is_some();
    let resolved = init == Init::Systemd && files.first(RESOLVED).is_some();
    let ifupdown = files.first(IFUP).is_some() && files.first(DHCP_CLIENTS).is_some();
    if networkd && (resolved || !ifupdown) {
        networkd_dhcp(files, resolved, &mut out)?;
    } else if ifupdown && init == Init::OpenRc {
        let meta = files.root(0o644);
        files.write(INTERFACES, meta, alpine_interfaces().as_bytes())?;
        init::enable_openrc(files, "networking", "boot")?;
        out.change(format!(
            "network: wrote {INTERFACES} (DHCP on {FIRST_NIC}), added networking to OpenRC's \
             boot runlevel"
        ));
    } else if ifupdown {
        ifupdown_dhcp(files, &mut out)?;
    } else {
        out.warn(
            "network: the image has no network stack d2l knows (systemd-networkd, ifupdown \
             with a DHCP client, NetworkManager, OpenRC networking): the machine will have no \
             network; add one to the image (Debian, Ubuntu: systemd-resolved, or ifupdown \
             isc-dhcp-client; Fedora: NetworkManager; Alpine: ifupdown-ng or busybox's \
             networking)",
        );
    }
    Ok(out)
}

fn networkd_dhcp<S: ContentStore>(
    files: &mut Files<'_, S>,
    resolved: bool,
    out: &mut Outcome,
) -> Result<()> {
    let meta = files.root(0o644);
    files.write(NETWORK_FILE, meta, NETWORK_FILE_TEXT.as_bytes())?;
    // What `systemctl enable systemd-networkd` links: the service, its socket, the
    // wait-online service (Also=) and the D-Bus alias.
    init::enable_packaged(files, "systemd-networkd.service", "multi-user.target")?;
    init::enable_packaged(files, "systemd-networkd.socket", "sockets.target")?;
    init::enable_packaged(
        files,
        "systemd-networkd-wait-online.service",
        "network-online.target",
    )?;
    init::alias_packaged(
        files,
        "systemd-networkd.service",
        "dbus-org.freedesktop.network1.service",
    )?;
    out.change(format!(
        "network: wrote {NETWORK_FILE} (DHCP on en*, eth*), enabled systemd-networkd"
    ));
    if resolved {
        init::enable_packaged(files, "systemd-resolved.service", "multi-user.target")?;
        init::alias_packaged(
            files,
            "systemd-resolved.service",
            "dbus-org.freedesktop.resolve1.service",
        )?;
        files.symlink(RESOLV_CONF, RESOLVED_STUB)?;
        out.change(format!(
            "network: enabled systemd-resolved, {RESOLV_CONF} -> {RESOLVED_STUB}"
        ));
    } else {
        out.warn(
            "network: systemd-networkd without systemd-resolved writes DHCP's DNS servers \
             nowhere: names will not resolve (add systemd-resolved to the image)",
        );
    }
    Ok(())
}

fn ifupdown_dhcp<S: ContentStore>(files: &mut Files<'_, S>, out: &mut Outcome) -> Result<()> {
    let meta = files.root(0o644);
    files.write(INTERFACES_D_FILE, meta, ifupdown_stanza().as_bytes())?;
    let interfaces = files.read_text(INTERFACES)?;
    let sources = interfaces.as_deref().is_some_and(|text| {
        text.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("source /etc/network/interfaces.d/")
                || l.starts_with("source-directory /etc/network/interfaces.d")
                || l.starts_with("source interfaces.d/")
                || l.starts_with("source-directory interfaces.d")
        })
    });
    if !sources {
        let mut text = interfaces
            .unwrap_or_else(|| "# Written by d2l.\nauto lo\niface lo inet loopback\n".to_owned());
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("\nsource /etc/network/interfaces.d/*\n");
        let meta = files
            .file_meta(INTERFACES)
            .unwrap_or_else(|| files.root(0o644));
        files.write(INTERFACES, meta, text.as_bytes())?;
        out.change(format!("network: {INTERFACES} sources interfaces.d"));
    }
    out.kernel_args.push(KERNEL_NAMES.to_owned());
    out.change(format!(
        "network: wrote {INTERFACES_D_FILE} (ifupdown, DHCP on {FIRST_NIC}), kernel \
         argument {KERNEL_NAMES}"
    ));
    Ok(())
}
