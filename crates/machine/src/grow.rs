//! A root that grows: when the disk file is enlarged, the next boot grows the root
//! partition and its ext4 filesystem to fill the disk, through what the image has.
//!
//! - systemd with systemd-repart on a GPT disk: a repart.d definition matching the root
//!   partition (repart grows it into the free space after it) with `GrowFileSystem=`, and
//!   `x-systemd.growfs` in fstab, which grows the mounted filesystem after repart.
//! - Otherwise, with systemd or OpenRC: a boot service of d2l's own that runs growpart
//!   (cloud-guest-utils) or sfdisk on the root's disk, then resize2fs (online).
//! - A bare filesystem (no partition table) or no known init: nothing, with a warning.

use d2l_rootfs::ContentStore;

use crate::files::Files;
use crate::init::{self, Init};
use crate::{Outcome, Result, RootOn};

const REPART: &[&str] = &["/usr/bin/systemd-repart", "/bin/systemd-repart"];
/// The repart.d definition d2l writes.
pub(crate) const REPART_FILE: &str = "/etc/repart.d/50-d2l-root.conf";
/// Matches the root partition d2l's GPT writes (the root type of the machine's
/// architecture) and lets it take the free space after it.
pub(crate) const REPART_TEXT: &str =
    "# Written by d2l: the root partition grows to fill the disk.\n\
     [Partition]\n\
     Type=root\n\
     GrowFileSystem=yes\n";
/// The fstab option that makes systemd grow a mounted filesystem (systemd-growfs).
pub(crate) const GROWFS_OPTION: &str = "x-systemd.growfs";
/// Tools that grow a partition, which the script looks for at boot.
const GROWPART: &[&str] = &["/usr/bin/growpart", "/bin/growpart", "/usr/sbin/growpart"];
const SFDISK: &[&str] = &["/usr/sbin/sfdisk", "/sbin/sfdisk"];
const RESIZE2FS: &[&str] = &["/usr/sbin/resize2fs", "/sbin/resize2fs"];
/// d2l's grow script and its services.
pub(crate) const SCRIPT: &str = "/usr/lib/d2l/growroot";
pub(crate) const UNIT: &str = "d2l-growroot.service";
pub(crate) const SERVICE: &str = "d2l-growroot";

/// The grow script: POSIX sh, for bash, dash and busybox alike. It finds the root's
/// partition through its device number, so any root= form works.
pub(crate) const SCRIPT_TEXT: &str = r#"#!/bin/sh
# Written by d2l: grows the root partition to the end of its disk, then its ext4
# filesystem (online). Runs at every boot; does nothing when the disk has not grown.
majmin=$(awk '$5 == "/" { print $3; exit }' /proc/self/mountinfo)
sys=$(readlink -f "/sys/dev/block/$majmin") || exit 0
# Not on a partition (a bare filesystem): nothing to grow here.
[ -r "$sys/partition" ] || exit 0
part=$(cat "$sys/partition")
dev=/dev/${sys##*/}
disk=${sys%/*}
disk=/dev/${disk##*/}
if command -v growpart >/dev/null 2>&1; then
    growpart "$disk" "$part"
    status=$?
    # 1 is growpart's NOCHANGE: the partition already fills the disk.
    [ "$status" -eq 1 ] && exit 0
    [ "$status" -eq 0 ] || exit "$status"
elif command -v sfdisk >/dev/null 2>&1; then
    echo ", +" | sfdisk --no-reread --no-tell-kernel -N "$part" "$disk" || exit 1
    partx --update --nr "$part" "$disk" || exit 1
else
    echo "d2l-growroot: neither growpart nor sfdisk: $dev cannot grow" >&2
    exit 1
fi
exec resize2fs "$dev"
"#;

/// The systemd unit: after / is writable, before the system starts (and before
/// cloud-init, whose own growpart then finds nothing to do).
pub(crate) const UNIT_TEXT: &str = "# Written by d2l.\n\
     [Unit]\n\
     Description=Grow the root partition and filesystem to fill the disk (d2l)\n\
     DefaultDependencies=no\n\
     After=systemd-remount-fs.service local-fs.target\n\
     Before=sysinit.target cloud-init-local.service shutdown.target\n\
     Conflicts=shutdown.target\n\
     \n\
     [Service]\n\
     Type=oneshot\n\
     ExecStart=/usr/lib/d2l/growroot\n\
     \n\
     [Install]\n\
     WantedBy=sysinit.target\n";

/// The OpenRC service.
pub(crate) const SERVICE_TEXT: &str = "#!/sbin/openrc-run\n\
     # Written by d2l.\n\
     description=\"Grow the root partition and filesystem to fill the disk (d2l)\"\n\
     \n\
     depend() {\n\
     \tneed localmount\n\
     }\n\
     \n\
     start() {\n\
     \tebegin \"Growing the root filesystem\"\n\
     \t/usr/lib/d2l/growroot\n\
     \teend $?\n\
     }\n";

/// Makes the root grow; returns what changed and whether fstab should carry
/// [`GROWFS_OPTION`].
pub(crate) fn setup<S: ContentStore>(
    files: &mut Files<'_, S>,
    init: Init,
    root_on: RootOn,
) -> Result<(Outcome, bool)> {
    let mut out = Outcome::default();
    if root_on == RootOn::Filesystem {
        return Ok((out, false));
    }
    if init == Init::Systemd && root_on == RootOn::Gpt && files.first(REPART).is_some() {
        let meta = files.root(0o644);
        files.write(REPART_FILE, meta, REPART_TEXT.as_bytes())?;
        out.change(format!(
            "grow: wrote {REPART_FILE} (systemd-repart grows the root partition at boot), \
             {GROWFS_OPTION} in /etc/fstab (systemd-growfs grows the filesystem)"
        ));
        return Ok((out, true));
    }
    if init == Init::Unknown {
        out.warn("grow: no systemd or OpenRC in the image: the root will not grow with the disk");
        return Ok((out, false));
    }
    let tool = if files.first(GROWPART).is_some() {
        "growpart"
    } else if files.first(SFDISK).is_some() {
        "sfdisk"
    } else {
        out.warn(
            "grow: neither growpart nor sfdisk in the image: the root will not grow with the \
             disk (add cloud-guest-utils, or fdisk)",
        );
        return Ok((out, false));
    };
    if files.first(RESIZE2FS).is_none() {
        out.warn(
            "grow: no resize2fs in the image (e2fsprogs): the root will not grow with the disk",
        );
        return Ok((out, false));
    }
    let meta = files.root(0o755);
    files.write(SCRIPT, meta, SCRIPT_TEXT.as_bytes())?;
    let path = match init {
        Init::Systemd => init::add_unit(files, UNIT, UNIT_TEXT, "sysinit.target")?,
        _ => init::add_openrc_service(files, SERVICE, SERVICE_TEXT, "boot")?,
    };
    out.change(format!(
        "grow: added {path} and {SCRIPT} ({tool}, then resize2fs, at every boot)"
    ));
    Ok((out, false))
}
