//! The image's init system, and how a service is added and enabled through it: the symlinks
//! `systemctl enable` and `rc-update add` would make, made in the tree.

use d2l_rootfs::ContentStore;

use crate::error::Result;
use crate::files::Files;

/// Where systemd lives, merged-/usr or not.
const SYSTEMD: &[&str] = &["/usr/lib/systemd/systemd", "/lib/systemd/systemd"];
/// Where packaged units live.
const UNIT_DIRS: &[&str] = &["/usr/lib/systemd/system", "/lib/systemd/system"];
/// The administrator's units, where d2l puts its own.
const ETC_UNITS: &str = "/etc/systemd/system";
/// OpenRC's service runner and init.d.
const OPENRC: &[&str] = &["/sbin/openrc-run", "/usr/sbin/openrc-run", "/sbin/openrc"];
const INIT_D: &str = "/etc/init.d";
const RUNLEVELS: &str = "/etc/runlevels";

/// The init system an image boots with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Init {
    /// systemd.
    Systemd,
    /// OpenRC (Alpine, Gentoo).
    OpenRc,
    /// Neither: d2l cannot add services.
    Unknown,
}

impl Init {
    /// The image's init.
    pub(crate) fn detect<S: ContentStore>(files: &mut Files<'_, S>) -> Init {
        if files.first(SYSTEMD).is_some() {
            Init::Systemd
        } else if files.first(OPENRC).is_some() {
            Init::OpenRc
        } else {
            Init::Unknown
        }
    }
}

/// The path of the packaged unit `unit`, if the image has it.
pub(crate) fn packaged_unit<S: ContentStore>(
    files: &mut Files<'_, S>,
    unit: &str,
) -> Option<String> {
    UNIT_DIRS
        .iter()
        .map(|dir| format!("{dir}/{unit}"))
        .find(|path| files.exists(path))
}

/// Enables the packaged unit `unit` for `target` (`multi-user.target`, `sockets.target`,
/// ...), as `systemctl enable` does: a symlink in `/etc/systemd/system/TARGET.wants/`.
/// Returns whether the image has the unit.
pub(crate) fn enable_packaged<S: ContentStore>(
    files: &mut Files<'_, S>,
    unit: &str,
    target: &str,
) -> Result<bool> {
    let Some(path) = packaged_unit(files, unit) else {
        return Ok(false);
    };
    files.symlink(&format!("{ETC_UNITS}/{target}.wants/{unit}"), &path)?;
    Ok(true)
}

/// Adds `alias` for the packaged unit `unit` (a unit's `Alias=`, which `systemctl enable`
/// links too, e.g. `dbus-org.freedesktop.network1.service`).
pub(crate) fn alias_packaged<S: ContentStore>(
    files: &mut Files<'_, S>,
    unit: &str,
    alias: &str,
) -> Result<()> {
    if let Some(path) = packaged_unit(files, unit) {
        files.symlink(&format!("{ETC_UNITS}/{alias}"), &path)?;
    }
    Ok(())
}

/// Writes d2l's own systemd unit `name` and enables it for `target`; returns its path.
pub(crate) fn add_unit<S: ContentStore>(
    files: &mut Files<'_, S>,
    name: &str,
    text: &str,
    target: &str,
) -> Result<String> {
    let path = format!("{ETC_UNITS}/{name}");
    let meta = files.root(0o644);
    files.write(&path, meta, text.as_bytes())?;
    files.symlink(&format!("{ETC_UNITS}/{target}.wants/{name}"), &path)?;
    Ok(path)
}

/// Writes d2l's own OpenRC service `name` and adds it to `runlevel`; returns its path.
pub(crate) fn add_openrc_service<S: ContentStore>(
    files: &mut Files<'_, S>,
    name: &str,
    text: &str,
    runlevel: &str,
) -> Result<String> {
    let path = format!("{INIT_D}/{name}");
    let meta = files.root(0o755);
    files.write(&path, meta, text.as_bytes())?;
    enable_openrc(files, name, runlevel)?;
    Ok(path)
}

/// Adds the OpenRC service `name` to `runlevel`, as `rc-update add` does.
pub(crate) fn enable_openrc<S: ContentStore>(
    files: &mut Files<'_, S>,
    name: &str,
    runlevel: &str,
) -> Result<()> {
    files.symlink(
        &format!("{RUNLEVELS}/{runlevel}/{name}"),
        &format!("{INIT_D}/{name}"),
    )
}
