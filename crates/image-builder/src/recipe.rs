//! Recipes: the Containerfile step that gives a stock distribution image (debian, ubuntu,
//! alpine, fedora...) a kernel, an initramfs and an init, picked from its `/etc/os-release`.
//!
//! [`recipe_for`] is pure: it writes the text, the caller builds it `FROM` the image with the
//! user's image builder. The text depends only on its inputs (it is hashed for a cache key),
//! and is one `RUN` step that installs, builds the initramfs where the package does not, and
//! cleans the package caches, so the image gains one layer.
//!
//! | family | tool | kernel and init |
//! |---|---|---|
//! | Debian | apt-get | `linux-image-amd64`/`-arm64`, `systemd-sysv`, `initramfs-tools` |
//! | Ubuntu | apt-get | `linux-image-virtual` (`-generic` on arm64), `systemd-sysv` |
//! | Alpine | apk | `linux-virt`, `openrc`, `mkinitfs` |
//! | Fedora (dnf) | dnf | `kernel`, `systemd`, `dracut` |
//! | Yum | yum | `kernel`, `systemd`, `dracut` |
//! | openSUSE | zypper | `kernel-default`, `systemd-sysvinit`, `dracut` |
//! | Arch | pacman | `linux` (`linux-aarch64` on arm64), `mkinitcpio`, `systemd` |

use std::borrow::Cow;
use std::fmt;

use crate::os_release::{printable, OsRelease};

/// A distribution family d2l knows how to give a kernel and init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Debian and its derivatives (Raspbian, Kali, Devuan...): apt-get.
    Debian,
    /// Ubuntu and its derivatives (Linux Mint, Pop!_OS...): apt-get.
    Ubuntu,
    /// Alpine Linux: apk, OpenRC.
    Alpine,
    /// dnf: Fedora, CentOS Stream, the RHEL likes from 8 on (Rocky, AlmaLinux, Oracle
    /// Linux), Amazon Linux 2023.
    Fedora,
    /// yum, the EL7 era: CentOS 7, RHEL 7, Oracle Linux 7, Amazon Linux 2.
    Yum,
    /// openSUSE Leap and Tumbleweed, SLES: zypper.
    OpenSuse,
    /// Arch Linux and its derivatives (Manjaro, Arch Linux ARM): pacman.
    Arch,
}

impl Family {
    /// The package manager the recipe runs.
    fn tool(self) -> &'static str {
        match self {
            Family::Debian | Family::Ubuntu => "apt-get",
            Family::Alpine => "apk",
            Family::Fedora => "dnf",
            Family::Yum => "yum",
            Family::OpenSuse => "zypper",
            Family::Arch => "pacman",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Debian => "Debian",
            Family::Ubuntu => "Ubuntu",
            Family::Alpine => "Alpine",
            Family::Fedora => "Fedora",
            Family::Yum => "Yum",
            Family::OpenSuse => "openSUSE",
            Family::Arch => "Arch",
        })
    }
}

/// The generated build step for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The family the image belongs to.
    pub family: Family,
    /// Every package installed, kernel and init first, then the user's `--install` ones
    /// (without repeats). On Alpine the recipe also adds `busybox-openrc`,
    /// `busybox-mdev-openrc` and `ifupdown-ng` when the release has them.
    pub packages: Vec<String>,
    /// One line for the user, e.g. `Debian GNU/Linux 12 (bookworm): apt-get installs
    /// linux-image-amd64 systemd-sysv udev initramfs-tools iproute2`.
    pub summary: String,
    /// The Containerfile text after the `FROM` line.
    body: String,
}

impl Recipe {
    /// The Containerfile: `FROM {from}` then the recipe's steps.
    pub fn containerfile(&self, from: &str) -> String {
        format!("FROM {from}\n{}", self.body)
    }

    /// The text after the FROM line: what a cache key hashes (the FROM names a temporary
    /// file).
    pub fn body(&self) -> &str {
        &self.body
    }
}

/// What the errors tell the user to do instead, when a kernel was wanted.
const KERNEL_ADVICE: &str =
    "take a kernel from another image (--kernel-from IMAGE, and d2l's init \
     runs the image's command), build it from a Dockerfile that installs a kernel (-f \
     Dockerfile), give --kernel/--initrd, or build a disk without a boot loader (--boot none)";
/// The same when only `--install` packages were wanted.
const INSTALL_ADVICE: &str = "build it from a Dockerfile that installs them (-f Dockerfile)";
/// The distributions the errors say d2l knows.
const KNOWN: &str = "Debian, Ubuntu, Alpine, Fedora, CentOS, RHEL, Rocky, AlmaLinux, Oracle \
     Linux, Amazon Linux, openSUSE, SLES, Arch and their derivatives";

/// Why no recipe: its Display is one line saying what was found and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoRecipe {
    /// The image has no `/etc/os-release` (distroless, scratch, a single binary).
    #[error(
        "the image has no /etc/os-release (a distroless or scratch image?), so d2l cannot tell \
         which distribution it is {}: {}",
        purpose(.kernel),
        advice(.kernel)
    )]
    NoOsRelease {
        /// A kernel was wanted (else only `--install` packages).
        kernel: bool,
    },
    /// The os-release names a distribution no recipe fits.
    #[error(
        "the image is {description} (ID={id}{}), a distribution d2l has no recipe for (it \
         knows {known}): {}",
        like(.id_like),
        advice(.kernel),
        known = KNOWN
    )]
    UnknownDistribution {
        /// Its `ID`, printable.
        id: String,
        /// Its `ID_LIKE`, printable.
        id_like: Vec<String>,
        /// [`OsRelease::describe`].
        description: String,
        /// A kernel was wanted (else only `--install` packages).
        kernel: bool,
    },
    /// An `--install` value that is no package name.
    #[error("--install {value:?} is not a package name: {reason}")]
    InvalidPackage {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A kernel was wanted for an architecture the recipes do not know.
    #[error(
        "d2l has no kernel recipe for architecture {architecture:?} (it knows amd64 and \
         arm64): {KERNEL_ADVICE}"
    )]
    Architecture {
        /// The OCI architecture name given.
        architecture: String,
    },
    /// No kernel was wanted and no `--install` package given.
    #[error("nothing to install: the image has a kernel and no --install package was given")]
    NothingToDo,
}

fn purpose(kernel: &bool) -> &'static str {
    if *kernel {
        "to install a kernel"
    } else {
        "to install the --install packages"
    }
}

fn advice(kernel: &bool) -> &'static str {
    if *kernel {
        KERNEL_ADVICE
    } else {
        INSTALL_ADVICE
    }
}

fn like(id_like: &[String]) -> String {
    if id_like.is_empty() {
        String::new()
    } else {
        format!(", ID_LIKE={}", id_like.join(" "))
    }
}

/// The recipe for an image with this os-release (None: the image has no /etc/os-release),
/// for `architecture` (OCI names: "amd64", "arm64"; others are an error when a kernel is
/// wanted), installing the kernel when `kernel` is true (false: only `extra` packages, for
/// an image that has a kernel but where the user asked for `--install` packages), plus
/// `extra` (the user's `--install PKG` values).
pub fn recipe_for(
    os: Option<&OsRelease>,
    architecture: &str,
    kernel: bool,
    extra: &[String],
) -> Result<Recipe, NoRecipe> {
    for value in extra {
        check_package(value)?;
    }
    if !kernel && extra.is_empty() {
        return Err(NoRecipe::NothingToDo);
    }
    let arch = if kernel {
        Some(Arch::from_oci(architecture)?)
    } else {
        None
    };
    let os = os.ok_or(NoRecipe::NoOsRelease { kernel })?;
    let distro = Distro::of(os).ok_or_else(|| NoRecipe::UnknownDistribution {
        id: printable(&os.id),
        id_like: os.id_like.iter().map(|l| printable(l)).collect(),
        description: os.describe(),
        kernel,
    })?;

    let mut packages: Vec<String> = Vec::new();
    let base = arch.map(|a| distro.kernel_packages(a)).unwrap_or_default();
    for package in base
        .into_iter()
        .map(str::to_owned)
        .chain(extra.iter().cloned())
    {
        if !packages.contains(&package) {
            packages.push(package);
        }
    }

    let run = match distro.family {
        Family::Debian | Family::Ubuntu => apt(&distro, &packages),
        Family::Alpine => apk(arch, &packages),
        Family::Fedora | Family::Yum => rpm(&distro, arch.is_some(), &packages),
        Family::OpenSuse => zypper(arch.is_some(), &packages),
        Family::Arch => pacman(arch.is_some(), &packages),
    };
    let what = if kernel {
        "gives the image a kernel, an initramfs and an init"
    } else {
        "installs the --install packages"
    };
    let body = format!("# Written by d2l: {what}.\n{}", run.finish());

    let mut summary = format!(
        "{}: {} installs {}",
        os.describe(),
        distro.family.tool(),
        packages.join(" ")
    );
    if let Some(release) = distro.debian_archived() {
        summary.push_str(&format!(
            " from archive.debian.org ({release} is end-of-life)"
        ));
    }
    if distro.centos_vault() {
        summary.push_str(" from vault.centos.org (its mirrors are gone)");
    }

    Ok(Recipe {
        family: distro.family,
        packages,
        summary,
        body,
    })
}

/// The longest `--install` value taken.
const MAX_PACKAGE_LEN: usize = 128;

/// Checks an `--install` value: a package name, maybe with the version or architecture
/// qualifiers the package managers take (`pkg=1.2`, `pkg:arm64`, `pkg~1.2`), nothing a shell
/// or the package manager could read as more than one name or an option.
pub fn check_package(value: &str) -> Result<(), NoRecipe> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+._:=~-".contains(c);
    let reason = if value.is_empty() {
        "it is empty".to_owned()
    } else if value.len() > MAX_PACKAGE_LEN {
        format!(
            "it is {} bytes long, more than {MAX_PACKAGE_LEN}",
            value.len()
        )
    } else if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        "it must start with a letter or a digit".to_owned()
    } else if let Some(c) = value.chars().find(|&c| !allowed(c)) {
        format!("{c:?} is not allowed (only letters, digits and + . _ : = ~ -)")
    } else {
        return Ok(());
    };
    Err(NoRecipe::InvalidPackage {
        value: value.to_owned(),
        reason,
    })
}

/// A package name as a shell word: as is, or single-quoted when it holds `=` or `~` (which
/// some shells read as a tilde expansion after `=`). Names are checked by [`check_package`],
/// so they hold no quote.
fn shell_word(package: &str) -> Cow<'_, str> {
    if package.contains(['=', '~']) {
        Cow::Owned(format!("'{package}'"))
    } else {
        Cow::Borrowed(package)
    }
}

/// The packages as shell words, space-separated.
fn words(packages: &[String]) -> String {
    packages
        .iter()
        .map(|p| shell_word(p))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The architectures the recipes know kernel packages for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    fn from_oci(name: &str) -> Result<Arch, NoRecipe> {
        match name {
            "amd64" => Ok(Arch::Amd64),
            "arm64" => Ok(Arch::Arm64),
            _ => Err(NoRecipe::Architecture {
                architecture: name.to_owned(),
            }),
        }
    }

    /// The serial console d2l's kernel command line names (`console=`).
    fn serial(self) -> &'static str {
        match self {
            Arch::Amd64 => "ttyS0",
            Arch::Arm64 => "ttyAMA0",
        }
    }
}

/// The first Amazon Linux release with dnf (`VERSION_ID` 2023; Amazon Linux 2 is `2`,
/// Amazon Linux 1 `2018.03`).
const AMAZON_DNF: u32 = 2023;
/// The first Enterprise Linux release with dnf.
const EL_DNF: u32 = 8;
/// The last CentOS Linux (and Stream) release whose repositories moved to vault.centos.org.
const CENTOS_LAST_VAULTED: u32 = 8;
/// The last Debian release (buster, 10) already moved to archive.debian.org when this was
/// written; later ones are handled by the retry in [`apt`].
const DEBIAN_LAST_ARCHIVED: u32 = 10;
/// Debian's code names up to [`DEBIAN_LAST_ARCHIVED`] that images carry.
const DEBIAN_ARCHIVED_NAMES: &[&str] = &["wheezy", "jessie", "stretch", "buster"];

/// An image's distribution, as far as the recipes care.
struct Distro<'a> {
    os: &'a OsRelease,
    family: Family,
    /// The name that picked the family: the `ID`, or one of `ID_LIKE`.
    base: &'a str,
}

impl<'a> Distro<'a> {
    /// The family of `os`: its `ID` first, then each `ID_LIKE` in order.
    fn of(os: &'a OsRelease) -> Option<Distro<'a>> {
        std::iter::once(&os.id).chain(&os.id_like).find_map(|name| {
            Some(Distro {
                os,
                family: family_of(name, os.major_version())?,
                base: name,
            })
        })
    }

    /// The release name when the image is a Debian release already moved to
    /// archive.debian.org. Only Debian itself: derivatives number their releases their own
    /// way (Devuan 5 is Debian 12) and keep their own mirrors.
    fn debian_archived(&self) -> Option<String> {
        if self.family != Family::Debian || self.os.id != "debian" {
            return None;
        }
        if let Some(name) = self.os.version_codename.as_deref() {
            if DEBIAN_ARCHIVED_NAMES.contains(&name) {
                return Some(name.to_owned());
            }
        }
        match self.os.major_version() {
            Some(major) if major <= DEBIAN_LAST_ARCHIVED => Some(format!("Debian {major}")),
            _ => None,
        }
    }

    /// CentOS Linux 7 and 8 and CentOS Stream 8, whose mirror.centos.org is gone: their
    /// repositories are pointed at vault.centos.org.
    fn centos_vault(&self) -> bool {
        self.os.id == "centos"
            && self
                .os
                .major_version()
                .is_some_and(|m| m <= CENTOS_LAST_VAULTED)
    }

    /// The packages that give the image a kernel, an initramfs, an init and a network stack
    /// d2l configures.
    fn kernel_packages(&self, arch: Arch) -> Vec<&'static str> {
        match self.family {
            Family::Debian => vec![
                match arch {
                    Arch::Amd64 => "linux-image-amd64",
                    Arch::Arm64 => "linux-image-arm64",
                },
                "systemd-sysv",
                "udev",
                "initramfs-tools",
                "iproute2",
            ],
            Family::Ubuntu => vec![
                match arch {
                    // The virtual flavour: the generic kernel without the modules a virtual
                    // machine never needs.
                    Arch::Amd64 => "linux-image-virtual",
                    // linux-image-virtual is not built for every release on arm64 (where it
                    // is, it is the generic kernel anyway): generic is always there.
                    Arch::Arm64 => "linux-image-generic",
                },
                "systemd-sysv",
                "udev",
                "initramfs-tools",
                "iproute2",
            ],
            // virt: the kernel flavour for virtual machines, with virtio, on both.
            Family::Alpine => vec!["linux-virt", "openrc", "mkinitfs", "e2fsprogs"],
            Family::Fedora => {
                let mut packages = vec!["kernel", "systemd", "systemd-udev", "dracut", "iproute"];
                // Fedora and Amazon Linux 2023 ship systemd-networkd; RHEL and its rebuilds
                // do not (it is in EPEL), NetworkManager is theirs.
                packages.push(match self.base {
                    "fedora" | "amzn" => "systemd-networkd",
                    _ => "NetworkManager",
                });
                packages
            }
            Family::Yum => {
                // EL7's udev is part of systemd.
                let mut packages = vec!["kernel", "systemd", "dracut", "iproute"];
                // Amazon Linux 2 configures its network with its own scripts, none of which
                // d2l knows; whether it ships NetworkManager is not sure enough to fail a
                // build on: it is left to --install.
                if self.base != "amzn" {
                    packages.push("NetworkManager");
                }
                packages
            }
            Family::OpenSuse => vec![
                "kernel-default",
                "systemd",
                // /sbin/init.
                "systemd-sysvinit",
                "udev",
                "dracut",
                "iproute2",
                "NetworkManager",
            ],
            Family::Arch => vec![
                match arch {
                    Arch::Amd64 => "linux",
                    // Arch Linux itself is amd64 only; on arm64 it is Arch Linux ARM.
                    Arch::Arm64 => "linux-aarch64",
                },
                "mkinitcpio",
                "systemd",
                "iproute2",
            ],
        }
    }
}

/// The family a distribution name (an `ID` or an `ID_LIKE` entry) belongs to, given the
/// image's major version.
fn family_of(name: &str, major: Option<u32>) -> Option<Family> {
    let before = |first: u32| major.is_some_and(|m| m < first);
    Some(match name {
        "debian" => Family::Debian,
        "ubuntu" => Family::Ubuntu,
        "alpine" => Family::Alpine,
        "fedora" => Family::Fedora,
        "amzn" if before(AMAZON_DNF) => Family::Yum,
        "amzn" => Family::Fedora,
        "rhel" | "centos" | "rocky" | "almalinux" | "ol" if before(EL_DNF) => Family::Yum,
        "rhel" | "centos" | "rocky" | "almalinux" | "ol" => Family::Fedora,
        "suse" | "opensuse" | "sles" | "sled" => Family::OpenSuse,
        name if name.starts_with("opensuse-") => Family::OpenSuse,
        "arch" | "archarm" => Family::Arch,
        _ => return None,
    })
}

/// One `RUN` step being written: shell lines joined by Dockerfile line continuations into
/// one command line, so each line ends where a shell allows a line to be joined (`;`, `do`,
/// `then`, `{`) and none starts with `#`.
struct Run {
    lines: Vec<String>,
}

impl Run {
    fn new() -> Run {
        Run {
            lines: vec!["set -eux;".to_owned()],
        }
    }

    fn line(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    /// The `RUN` instruction, newline-terminated.
    fn finish(self) -> String {
        format!("RUN {}\n", self.lines.join(" \\\n    "))
    }
}

/// Passed to `apt-get update` for a release on archive.debian.org, whose Release files are
/// no longer renewed (they carry a Valid-Until date long past).
const NO_VALID_UNTIL: &str = "-o Acquire::Check-Valid-Until=false";

/// `sed` expressions that point apt sources (classic `sources.list` lines and deb822
/// `URIs:`) at archive.debian.org and drop the `-updates` suites, which the archive does not
/// keep. Security first, so that the main mirror's pattern no longer sees it.
const DEBIAN_ARCHIVE_SED: &[&str] = &[
    // deb.debian.org/debian-security, security.debian.org/debian-security.
    r"s#https*://[a-z0-9.-]*\.debian\.org/debian-security#http://archive.debian.org/debian-security#g",
    // The bare security.debian.org of jessie-era images.
    r"s#https*://security\.debian\.org/*\([[:space:]]\)#http://archive.debian.org/debian-security\1#g",
    r"s#https*://security\.debian\.org/*$#http://archive.debian.org/debian-security#",
    // deb.debian.org/debian, httpredir.debian.org/debian, ftp.XX.debian.org/debian.
    r"s#https*://[a-z0-9.-]*\.debian\.org/debian/*\([[:space:]]\)#http://archive.debian.org/debian\1#g",
    r"s#https*://[a-z0-9.-]*\.debian\.org/debian/*$#http://archive.debian.org/debian#",
    // Classic: a line for a -updates suite.
    r"/^[[:space:]]*deb.*[[:space:]][a-z]*-updates[[:space:]]/d",
    // deb822: a -updates suite among others on the Suites: line.
    r"/^Suites:/s#[[:space:]][a-z]*-updates\([[:space:]]\)#\1#g",
    r"/^Suites:/s#[[:space:]][a-z]*-updates$##",
];

/// The step for Debian and Ubuntu.
fn apt(distro: &Distro, packages: &[String]) -> Run {
    let mut run = Run::new();
    run.line("export DEBIAN_FRONTEND=noninteractive;");
    if distro.family == Family::Debian {
        run.line("d2l_archive() {");
        run.line("    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do");
        run.line("        if [ -f \"$f\" ]; then sed -i");
        for expression in DEBIAN_ARCHIVE_SED {
            run.line(format!("            -e '{expression}'"));
        }
        run.line("            \"$f\"; fi;");
        run.line("    done;");
        run.line("};");
        if distro.debian_archived().is_some() {
            run.line("d2l_archive;");
            run.line(format!("apt-get {NO_VALID_UNTIL} update;"));
        } else {
            // A release that moved to the archive after this was written (bullseye in
            // 2026...): its mirrors answer 404, so move it there too and retry once.
            run.line("if ! apt-get update; then");
            run.line("    d2l_archive;");
            run.line(format!("    apt-get {NO_VALID_UNTIL} update;"));
            run.line("fi;");
        }
    } else {
        // End-of-life Ubuntu releases move to old-releases.ubuntu.com; pointing their
        // sources there, as for Debian, is left for later.
        run.line("apt-get update;");
    }
    run.line(format!(
        "apt-get install -y --no-install-recommends {};",
        words(packages)
    ));
    run.line("apt-get clean;");
    run.line("rm -rf /var/lib/apt/lists/*");
    run
}

/// Packages Alpine images need for a virtual machine's boot but whose names changed over
/// the releases (OpenRC scripts split out of busybox in 3.17 and later, ifupdown-ng since
/// 3.13): installed when the release has them.
const ALPINE_OPTIONAL: &str = "busybox-openrc busybox-mdev-openrc ifupdown-ng";

/// OpenRC services a booting Alpine machine runs, by runlevel, as Alpine's own installer
/// enables them.
const OPENRC_SERVICES: &[(&str, &str)] = &[
    ("sysinit", "devfs dmesg mdev hwdrivers"),
    ("boot", "modules sysctl hostname bootmisc syslog"),
    ("shutdown", "mount-ro killprocs savecache"),
];

/// mkinitfs's configuration, whose `features` pick the initramfs's modules.
const MKINITFS_CONF: &str = "/etc/mkinitfs/mkinitfs.conf";
/// The features a d2l machine's boot needs: its disk and its root filesystem.
const MKINITFS_FEATURES: &str = "virtio ext4";

/// Adds [`MKINITFS_FEATURES`] to the `features` line of the mkinitfs configuration named by
/// `$conf` (created if missing, in a directory that exists), unless there.
fn mkinitfs_features(run: &mut Run) {
    run.line("touch \"$conf\";");
    run.line(
        "if ! grep -q '^features=' \"$conf\"; then echo 'features=\"base\"' >> \"$conf\"; fi;",
    );
    run.line(format!("for feature in {MKINITFS_FEATURES}; do"));
    run.line("    if ! grep -Eq \"^features=\\\"(.* )?$feature( .*)?\\\"\" \"$conf\"; then");
    run.line("        sed -i \"s/^features=\\\"/features=\\\"$feature /\" \"$conf\";");
    run.line("    fi;");
    run.line("done;");
}

/// The step for Alpine.
fn apk(arch: Option<Arch>, packages: &[String]) -> Run {
    let mut run = Run::new();
    let Some(arch) = arch else {
        run.line(format!("apk add --no-cache {}", words(packages)));
        return run;
    };
    run.line("apk update;");
    run.line("opt=;");
    run.line(format!("for p in {ALPINE_OPTIONAL}; do"));
    run.line("    if [ -n \"$(apk search -x \"$p\")\" ]; then opt=\"$opt $p\"; fi;");
    run.line("done;");
    run.line(format!("apk add {} $opt;", words(packages)));
    run.line("rm -rf /var/cache/apk/*;");
    run.line(format!("conf={MKINITFS_CONF};"));
    run.line("mkdir -p /etc/mkinitfs;");
    mkinitfs_features(&mut run);
    run.line("for kdir in /lib/modules/*; do");
    run.line("    if [ -d \"$kdir\" ]; then mkinitfs \"${kdir##*/}\"; fi;");
    run.line("done;");
    run.line("d2l_enable() {");
    run.line("    level=$1;");
    run.line("    shift;");
    run.line("    for s in \"$@\"; do");
    run.line("        if [ -e \"/etc/init.d/$s\" ] && [ ! -e \"/etc/runlevels/$level/$s\" ]; then");
    run.line("            rc-update add \"$s\" \"$level\";");
    run.line("        fi;");
    run.line("    done;");
    run.line("};");
    for (level, services) in OPENRC_SERVICES {
        run.line(format!("d2l_enable {level} {services};"));
    }
    let tty = arch.serial();
    run.line(format!(
        "if [ -f /etc/inittab ] && ! grep -q '^{tty}:' /etc/inittab; then"
    ));
    run.line(format!(
        "    echo '{tty}::respawn:/sbin/getty -L 115200 {tty} vt100' >> /etc/inittab;"
    ));
    run.line("fi");
    run
}

/// Points CentOS's repositories, whose mirrorlist.centos.org and mirror.centos.org are
/// gone, at the same trees on vault.centos.org.
const CENTOS_VAULT_SED: &[&str] = &[
    r"s/^mirrorlist=/#mirrorlist=/",
    r"s|^#* *baseurl=http://mirror\.centos\.org/|baseurl=http://vault.centos.org/|",
];

/// Makes `/boot/vmlinuz-VERSION` and the initramfs `initrd` (a path with `$kver` in it) for
/// every kernel in `/lib/modules`, with dracut. In a container the kernel package may leave
/// /boot empty (Fedora's vmlinuz lives in /lib/modules and kernel-install copies it; openSUSE
/// on arm64 names it `Image-VERSION`), and a host-only initramfs would fit the build host.
fn dracut(run: &mut Run, initrd: &str) {
    run.line("mkdir -p /boot;");
    run.line("for kdir in /lib/modules/*; do");
    run.line("    kver=${kdir##*/};");
    run.line("    if [ ! -e \"/boot/vmlinuz-$kver\" ]; then");
    run.line(
        "        if [ -f \"$kdir/vmlinuz\" ]; then cp \"$kdir/vmlinuz\" \"/boot/vmlinuz-$kver\";",
    );
    run.line(
        "        elif [ -f \"/boot/Image-$kver\" ]; then cp \"/boot/Image-$kver\" \"/boot/vmlinuz-$kver\";",
    );
    run.line("        else continue; fi;");
    run.line("    fi;");
    run.line(format!(
        "    dracut --no-hostonly --force \"{initrd}\" \"$kver\";"
    ));
    run.line("done;");
}

/// The step for the dnf and yum families.
fn rpm(distro: &Distro, kernel: bool, packages: &[String]) -> Run {
    let mut run = Run::new();
    if distro.centos_vault() {
        run.line("for f in /etc/yum.repos.d/CentOS-*.repo; do");
        run.line("    if [ -f \"$f\" ]; then sed -i");
        for expression in CENTOS_VAULT_SED {
            run.line(format!("        -e '{expression}'"));
        }
        run.line("        \"$f\"; fi;");
        run.line("done;");
    }
    if distro.family == Family::Yum {
        // EL7's yum skips names it cannot find and succeeds: make that an error.
        run.line(format!(
            "yum install -y --setopt=skip_missing_names_on_install=False {};",
            words(packages)
        ));
    } else {
        // Minimal images (ubi-minimal, rocky and alma -minimal) have microdnf only.
        run.line("pm=dnf;");
        run.line("if ! command -v dnf >/dev/null 2>&1; then pm=microdnf; fi;");
        run.line(format!(
            "\"$pm\" install -y --setopt=install_weak_deps=False {};",
            words(packages)
        ));
    }
    if kernel {
        dracut(&mut run, "/boot/initramfs-$kver.img");
    }
    if distro.family == Family::Yum {
        run.line("yum clean all;");
    } else {
        run.line("\"$pm\" clean all;");
    }
    run.line("rm -rf /var/cache/dnf /var/cache/yum");
    run
}

/// The step for openSUSE.
fn zypper(kernel: bool, packages: &[String]) -> Run {
    let mut run = Run::new();
    run.line(format!(
        "zypper --non-interactive install --no-recommends {};",
        words(packages)
    ));
    if kernel {
        // openSUSE's own initrd name.
        dracut(&mut run, "/boot/initrd-$kver");
    }
    run.line("zypper --non-interactive clean --all");
    run
}

/// The step for Arch.
fn pacman(kernel: bool, packages: &[String]) -> Run {
    let mut run = Run::new();
    // Arch supports no partial upgrades: -Syu, installing on an up-to-date system.
    run.line(format!(
        "pacman -Syu --noconfirm --needed {};",
        words(packages)
    ));
    if kernel {
        // The kernel package's hook copies vmlinuz to /boot and runs mkinitcpio, whose
        // autodetect hook, in a container, fits the initramfs to the build host: build it
        // again without, and drop the fallback image the machine never boots. Each kernel
        // is named by its package (pkgbase); Arch Linux ARM's is /boot/Image.
        run.line("mkdir -p /boot;");
        run.line("for kdir in /usr/lib/modules/*; do");
        run.line("    if [ ! -d \"$kdir/kernel\" ]; then continue; fi;");
        run.line("    kver=${kdir##*/};");
        run.line("    name=linux;");
        run.line("    if [ -f \"$kdir/pkgbase\" ]; then name=$(cat \"$kdir/pkgbase\"); fi;");
        run.line("    if [ ! -e \"/boot/vmlinuz-$name\" ]; then");
        run.line(
            "        if [ -f \"$kdir/vmlinuz\" ]; then cp \"$kdir/vmlinuz\" \"/boot/vmlinuz-$name\";",
        );
        run.line("        elif [ -f /boot/Image ]; then cp /boot/Image \"/boot/vmlinuz-$name\";");
        run.line("        else continue; fi;");
        run.line("    fi;");
        run.line("    mkinitcpio -S autodetect -k \"$kver\" -g \"/boot/initramfs-$name.img\";");
        run.line("    rm -f \"/boot/initramfs-$name-fallback.img\";");
        run.line("done;");
    }
    // Not `pacman -Scc --noconfirm`: --noconfirm answers its questions with their default,
    // which is to keep the cache.
    run.line("rm -rf /var/cache/pacman/pkg/*");
    run
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::process::{Command, Stdio};

    use super::*;

    const DEBIAN_12: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"#;

    const DEBIAN_9: &str = r#"PRETTY_NAME="Debian GNU/Linux 9 (stretch)"
NAME="Debian GNU/Linux"
VERSION_ID="9"
VERSION="9 (stretch)"
VERSION_CODENAME=stretch
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"#;

    /// jessie's os-release has no VERSION_CODENAME yet.
    const DEBIAN_8: &str = r#"PRETTY_NAME="Debian GNU/Linux 8 (jessie)"
NAME="Debian GNU/Linux"
VERSION_ID="8"
VERSION="8 (jessie)"
ID=debian
HOME_URL="http://www.debian.org/"
SUPPORT_URL="http://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"#;

    const RASPBIAN_10: &str = r#"PRETTY_NAME="Raspbian GNU/Linux 10 (buster)"
NAME="Raspbian GNU/Linux"
VERSION_ID="10"
VERSION="10 (buster)"
VERSION_CODENAME=buster
ID=raspbian
ID_LIKE=debian
HOME_URL="http://www.raspbian.org/"
SUPPORT_URL="http://www.raspbian.org/RaspbianForums"
BUG_REPORT_URL="http://www.raspbian.org/RaspbianBugs"
"#;

    const KALI: &str = r#"PRETTY_NAME="Kali GNU/Linux Rolling"
NAME="Kali GNU/Linux"
VERSION_ID="2024.2"
VERSION="2024.2"
VERSION_CODENAME=kali-rolling
ID=kali
ID_LIKE=debian
HOME_URL="https://www.kali.org/"
SUPPORT_URL="https://forums.kali.org/"
BUG_REPORT_URL="https://bugs.kali.org/"
ANSI_COLOR="1;31"
"#;

    const UBUNTU_24_04: &str = r#"PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=noble
LOGO=ubuntu-logo
"#;

    const LINUXMINT_21: &str = r#"NAME="Linux Mint"
VERSION="21.3 (Virginia)"
ID=linuxmint
ID_LIKE="ubuntu debian"
PRETTY_NAME="Linux Mint 21.3"
VERSION_ID="21.3"
HOME_URL="https://www.linuxmint.com/"
SUPPORT_URL="https://forums.linuxmint.com/"
BUG_REPORT_URL="http://linuxmint-troubleshooting-guide.readthedocs.io/en/latest/"
PRIVACY_POLICY_URL="https://www.linuxmint.com/"
VERSION_CODENAME=virginia
UBUNTU_CODENAME=jammy
"#;

    const ALPINE_3_20: &str = r#"NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.20.3
PRETTY_NAME="Alpine Linux v3.20"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
"#;

    const FEDORA_40: &str = r#"NAME="Fedora Linux"
VERSION="40 (Container Image)"
ID=fedora
VERSION_ID=40
VERSION_CODENAME=""
PLATFORM_ID="platform:f40"
PRETTY_NAME="Fedora Linux 40 (Container Image)"
ANSI_COLOR="0;38;2;60;110;180"
LOGO=fedora-logo-icon
CPE_NAME="cpe:/o:fedoraproject:fedora:40"
DEFAULT_HOSTNAME="fedora"
HOME_URL="https://fedoraproject.org/"
DOCUMENTATION_URL="https://docs.fedoraproject.org/en-US/fedora/f40/system-administrators-guide/"
SUPPORT_URL="https://ask.fedoraproject.org/"
BUG_REPORT_URL="https://bugzilla.redhat.com/"
REDHAT_BUGZILLA_PRODUCT="Fedora"
REDHAT_BUGZILLA_PRODUCT_VERSION=40
REDHAT_SUPPORT_PRODUCT="Fedora"
REDHAT_SUPPORT_PRODUCT_VERSION=40
SUPPORT_END=2025-05-13
VARIANT="Container Image"
VARIANT_ID=container
"#;

    const CENTOS_STREAM_9: &str = r#"NAME="CentOS Stream"
VERSION="9"
ID="centos"
ID_LIKE="rhel fedora"
VERSION_ID="9"
PLATFORM_ID="platform:el9"
PRETTY_NAME="CentOS Stream 9"
ANSI_COLOR="0;31"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:centos:centos:9"
HOME_URL="https://centos.org/"
BUG_REPORT_URL="https://issues.redhat.com/"
REDHAT_SUPPORT_PRODUCT="Red Hat Enterprise Linux 9"
REDHAT_SUPPORT_PRODUCT_VERSION="CentOS Stream"
"#;

    const ROCKY_9: &str = r#"NAME="Rocky Linux"
VERSION="9.3 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"
ANSI_COLOR="0;32"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:rocky:rocky:9::baseos"
HOME_URL="https://rockylinux.org/"
BUG_REPORT_URL="https://bugs.rockylinux.org/"
SUPPORT_END="2032-05-31"
ROCKY_SUPPORT_PRODUCT="Rocky-Linux-9"
ROCKY_SUPPORT_PRODUCT_VERSION="9.3"
REDHAT_SUPPORT_PRODUCT="Rocky Linux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.3"
"#;

    const CENTOS_7: &str = r#"NAME="CentOS Linux"
VERSION="7 (Core)"
ID="centos"
ID_LIKE="rhel fedora"
VERSION_ID="7"
PRETTY_NAME="CentOS Linux 7 (Core)"
ANSI_COLOR="0;31"
CPE_NAME="cpe:/o:centos:centos:7"
HOME_URL="https://www.centos.org/"
BUG_REPORT_URL="https://bugs.centos.org/"

CENTOS_MANTISBT_PROJECT="CentOS-7"
CENTOS_MANTISBT_PROJECT_VERSION="7"
REDHAT_SUPPORT_PRODUCT="centos"
REDHAT_SUPPORT_PRODUCT_VERSION="7"

"#;

    const AMAZON_2: &str = r#"NAME="Amazon Linux"
VERSION="2"
ID="amzn"
ID_LIKE="centos rhel fedora"
VERSION_ID="2"
PRETTY_NAME="Amazon Linux 2"
ANSI_COLOR="0;33"
CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2"
HOME_URL="https://amazonlinux.com/"
SUPPORT_END="2026-06-30"
"#;

    const AMAZON_2023: &str = r#"NAME="Amazon Linux"
VERSION="2023"
ID="amzn"
ID_LIKE="fedora"
VERSION_ID="2023"
PLATFORM_ID="platform:al2023"
PRETTY_NAME="Amazon Linux 2023.5.20240722"
ANSI_COLOR="0;33"
CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2023"
HOME_URL="https://aws.amazon.com/linux/amazon-linux-2023/"
DOCUMENTATION_URL="https://docs.aws.amazon.com/linux/"
SUPPORT_URL="https://aws.amazon.com/premiumsupport/"
BUG_REPORT_URL="https://github.com/amazonlinux/amazon-linux-2023"
VENDOR_NAME="AWS"
VENDOR_URL="https://aws.amazon.com/"
SUPPORT_END="2028-03-15"
"#;

    const OPENSUSE_LEAP_15_6: &str = r#"NAME="openSUSE Leap"
VERSION="15.6"
ID="opensuse-leap"
ID_LIKE="suse opensuse"
VERSION_ID="15.6"
PRETTY_NAME="openSUSE Leap 15.6"
ANSI_COLOR="0;32"
CPE_NAME="cpe:/o:opensuse:leap:15.6"
BUG_REPORT_URL="https://bugs.opensuse.org"
HOME_URL="https://www.opensuse.org/"
DOCUMENTATION_URL="https://en.opensuse.org/Portal:Leap"
LOGO="distributor-logo-Leap"
"#;

    const TUMBLEWEED: &str = r#"NAME="openSUSE Tumbleweed"
# VERSION="20240829"
ID="opensuse-tumbleweed"
ID_LIKE="opensuse suse"
VERSION_ID="20240829"
PRETTY_NAME="openSUSE Tumbleweed"
ANSI_COLOR="0;32"
CPE_NAME="cpe:/o:opensuse:tumbleweed:20240829"
BUG_REPORT_URL="https://bugzilla.opensuse.org"
SUPPORT_URL="https://bugs.opensuse.org"
HOME_URL="https://www.opensuse.org"
DOCUMENTATION_URL="https://en.opensuse.org/Portal:Tumbleweed"
LOGO="distributor-logo-Tumbleweed"
"#;

    const ARCH: &str = r#"NAME="Arch Linux"
PRETTY_NAME="Arch Linux"
ID=arch
BUILD_ID=rolling
ANSI_COLOR="38;2;23;147;209"
HOME_URL="https://archlinux.org/"
DOCUMENTATION_URL="https://wiki.archlinux.org/"
SUPPORT_URL="https://bbs.archlinux.org/"
BUG_REPORT_URL="https://gitlab.archlinux.org/groups/archlinux/-/issues"
PRIVACY_POLICY_URL="https://terms.archlinux.org/docs/privacy-policy/"
LOGO=archlinux-logo
IMAGE_ID=archlinux
IMAGE_VERSION=20240825.0.257728
"#;

    const MANJARO: &str = r#"NAME="Manjaro Linux"
PRETTY_NAME="Manjaro Linux"
ID=manjaro
ID_LIKE=arch
BUILD_ID=rolling
ANSI_COLOR="32;1;24;144;200"
HOME_URL="https://manjaro.org/"
DOCUMENTATION_URL="https://wiki.manjaro.org/"
SUPPORT_URL="https://forum.manjaro.org/"
BUG_REPORT_URL="https://docs.manjaro.org/reporting-bugs/"
PRIVACY_POLICY_URL="https://manjaro.org/privacy-policy/"
LOGO=manjarolinux
"#;

    const NIXOS: &str = r#"ANSI_COLOR="1;34"
BUG_REPORT_URL="https://github.com/NixOS/nixpkgs/issues"
BUILD_ID="24.05.20240801.52ec9ac"
DOCUMENTATION_URL="https://nixos.org/learn.html"
HOME_URL="https://nixos.org/"
ID=nixos
LOGO="nix-snowflake"
NAME=NixOS
PRETTY_NAME="NixOS 24.05 (Uakari)"
SUPPORT_END="2024-12-31"
SUPPORT_URL="https://nixos.org/community.html"
VERSION="24.05 (Uakari)"
VERSION_CODENAME=uakari
VERSION_ID="24.05"
"#;

    /// Every fixture a recipe exists for, with its family.
    const KNOWN_IMAGES: &[(&str, &str, Family)] = &[
        ("debian 12", DEBIAN_12, Family::Debian),
        ("debian 9", DEBIAN_9, Family::Debian),
        ("debian 8", DEBIAN_8, Family::Debian),
        ("raspbian 10", RASPBIAN_10, Family::Debian),
        ("kali", KALI, Family::Debian),
        ("ubuntu 24.04", UBUNTU_24_04, Family::Ubuntu),
        ("linuxmint 21", LINUXMINT_21, Family::Ubuntu),
        ("alpine 3.20", ALPINE_3_20, Family::Alpine),
        ("fedora 40", FEDORA_40, Family::Fedora),
        ("centos stream 9", CENTOS_STREAM_9, Family::Fedora),
        ("rocky 9", ROCKY_9, Family::Fedora),
        ("centos 7", CENTOS_7, Family::Yum),
        ("amazon linux 2", AMAZON_2, Family::Yum),
        ("amazon linux 2023", AMAZON_2023, Family::Fedora),
        ("opensuse leap 15.6", OPENSUSE_LEAP_15_6, Family::OpenSuse),
        ("tumbleweed", TUMBLEWEED, Family::OpenSuse),
        ("arch", ARCH, Family::Arch),
        ("manjaro", MANJARO, Family::Arch),
    ];

    fn recipe(text: &str, arch: &str, extra: &[&str]) -> Recipe {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        recipe_for(Some(&OsRelease::parse(text)), arch, true, &extra).unwrap()
    }

    fn error(os: Option<&str>, arch: &str, kernel: bool, extra: &[&str]) -> NoRecipe {
        let os = os.map(OsRelease::parse);
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        recipe_for(os.as_ref(), arch, kernel, &extra).unwrap_err()
    }

    /// The shell command line of each `RUN` instruction, as a builder hands it to `sh -c`:
    /// continuations joined.
    fn run_commands(body: &str) -> Vec<String> {
        body.replace("\\\n", "")
            .lines()
            .filter_map(|l| l.strip_prefix("RUN "))
            .map(str::to_owned)
            .collect()
    }

    /// The one `RUN` command of a recipe, with runs of spaces (the continuation lines'
    /// indentation) made one, for matching.
    fn command(recipe: &Recipe) -> String {
        let commands = run_commands(recipe.body());
        assert_eq!(commands.len(), 1, "one RUN step:\n{}", recipe.body());
        commands[0]
            .split(' ')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn families() {
        for (name, text, family) in KNOWN_IMAGES {
            let r = recipe(text, "amd64", &[]);
            assert_eq!(r.family, *family, "{name}");
            assert!(
                r.summary.starts_with(&OsRelease::parse(text).describe()),
                "{name}"
            );
        }
    }

    #[test]
    fn debian_12() {
        let r = recipe(DEBIAN_12, "amd64", &[]);
        assert_eq!(
            r.packages,
            [
                "linux-image-amd64",
                "systemd-sysv",
                "udev",
                "initramfs-tools",
                "iproute2"
            ]
        );
        assert_eq!(
            r.summary,
            "Debian GNU/Linux 12 (bookworm): apt-get installs linux-image-amd64 systemd-sysv \
             udev initramfs-tools iproute2"
        );
        let cmd = command(&r);
        assert!(cmd.starts_with("set -eux;"), "{cmd}");
        assert!(
            cmd.contains("export DEBIAN_FRONTEND=noninteractive;"),
            "{cmd}"
        );
        // Self-healing: the archive only when the mirrors fail.
        assert!(
            cmd.contains(
                "if ! apt-get update; then d2l_archive; \
                 apt-get -o Acquire::Check-Valid-Until=false update; fi;"
            ),
            "{cmd}"
        );
        assert!(cmd.contains(
            "apt-get install -y --no-install-recommends linux-image-amd64 systemd-sysv udev \
             initramfs-tools iproute2;"
        ));
        // The caches go in the same step.
        assert!(
            cmd.ends_with("apt-get clean; rm -rf /var/lib/apt/lists/*"),
            "{cmd}"
        );
    }

    #[test]
    fn debian_9_is_on_the_archive() {
        let r = recipe(DEBIAN_9, "amd64", &[]);
        assert!(
            r.summary
                .ends_with("from archive.debian.org (stretch is end-of-life)"),
            "{}",
            r.summary
        );
        let cmd = command(&r);
        assert!(cmd.contains("/etc/apt/sources.list /etc/apt/sources.list.d/*"));
        assert!(cmd.contains("http://archive.debian.org/debian-security"));
        assert!(cmd.contains("-updates"));
        assert!(
            cmd.contains("}; d2l_archive; apt-get -o Acquire::Check-Valid-Until=false update;"),
            "{cmd}"
        );
        assert!(!cmd.contains("if ! apt-get update"), "{cmd}");
        assert!(cmd.contains("apt-get install -y --no-install-recommends linux-image-amd64"));
    }

    #[test]
    fn debian_8_by_version_id() {
        let r = recipe(DEBIAN_8, "amd64", &[]);
        assert!(
            r.summary.ends_with("(Debian 8 is end-of-life)"),
            "{}",
            r.summary
        );
        assert!(command(&r).contains("}; d2l_archive; apt-get -o Acquire::Check-Valid-Until"));
    }

    #[test]
    fn debian_derivatives_keep_their_mirrors() {
        // Raspbian 10 is buster, but on its own mirrors: only the retry may move it.
        for text in [RASPBIAN_10, KALI] {
            let r = recipe(text, "arm64", &[]);
            assert!(!r.summary.contains("archive"), "{}", r.summary);
            assert!(command(&r).contains("if ! apt-get update; then"));
            assert_eq!(r.packages[0], "linux-image-arm64");
        }
    }

    #[test]
    fn ubuntu() {
        let r = recipe(UBUNTU_24_04, "amd64", &[]);
        assert_eq!(
            r.packages,
            [
                "linux-image-virtual",
                "systemd-sysv",
                "udev",
                "initramfs-tools",
                "iproute2"
            ]
        );
        let cmd = command(&r);
        assert!(cmd.contains("apt-get update; apt-get install -y --no-install-recommends"));
        assert!(!cmd.contains("archive"), "{cmd}");
        assert!(cmd.ends_with("apt-get clean; rm -rf /var/lib/apt/lists/*"));
        assert_eq!(
            recipe(UBUNTU_24_04, "arm64", &[]).packages[0],
            "linux-image-generic"
        );
        let mint = recipe(LINUXMINT_21, "amd64", &[]);
        assert_eq!(mint.family, Family::Ubuntu);
        assert!(mint
            .summary
            .starts_with("Linux Mint 21.3: apt-get installs linux-image-virtual"));
    }

    #[test]
    fn alpine() {
        let r = recipe(ALPINE_3_20, "amd64", &[]);
        assert_eq!(
            r.packages,
            ["linux-virt", "openrc", "mkinitfs", "e2fsprogs"]
        );
        assert_eq!(
            r.summary,
            "Alpine Linux v3.20: apk installs linux-virt openrc mkinitfs e2fsprogs"
        );
        let cmd = command(&r);
        assert!(cmd.contains("apk add linux-virt openrc mkinitfs e2fsprogs $opt;"));
        assert!(cmd.contains("rm -rf /var/cache/apk/*;"));
        assert!(cmd.contains("for feature in virtio ext4; do"));
        assert!(cmd.contains("mkinitfs \"${kdir##*/}\""));
        assert!(cmd.contains("d2l_enable sysinit devfs dmesg mdev hwdrivers;"));
        assert!(cmd.contains("d2l_enable boot modules sysctl hostname bootmisc syslog;"));
        assert!(cmd.contains("d2l_enable shutdown mount-ro killprocs savecache;"));
        assert!(cmd.contains("[ -e \"/etc/init.d/$s\" ]"));
        assert!(cmd.contains("echo 'ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100'"));
        let arm = command(&recipe(ALPINE_3_20, "arm64", &[]));
        assert!(arm.contains("'ttyAMA0::respawn:/sbin/getty -L 115200 ttyAMA0 vt100'"));
        assert!(!arm.contains("ttyS0"));
    }

    #[test]
    fn fedora_and_el8_on() {
        let r = recipe(FEDORA_40, "amd64", &[]);
        assert_eq!(
            r.packages,
            [
                "kernel",
                "systemd",
                "systemd-udev",
                "dracut",
                "iproute",
                "systemd-networkd"
            ]
        );
        assert!(r
            .summary
            .starts_with("Fedora Linux 40 (Container Image): dnf installs kernel"));
        let cmd = command(&r);
        assert!(cmd.contains(
            "\"$pm\" install -y --setopt=install_weak_deps=False kernel systemd systemd-udev \
             dracut iproute systemd-networkd;"
        ));
        assert!(cmd.contains("cp \"$kdir/vmlinuz\" \"/boot/vmlinuz-$kver\""));
        assert!(
            cmd.contains("dracut --no-hostonly --force \"/boot/initramfs-$kver.img\" \"$kver\";")
        );
        assert!(cmd.ends_with("\"$pm\" clean all; rm -rf /var/cache/dnf /var/cache/yum"));
        assert!(!cmd.contains("vault"), "{cmd}");

        for text in [CENTOS_STREAM_9, ROCKY_9] {
            let r = recipe(text, "amd64", &[]);
            assert_eq!(r.family, Family::Fedora);
            assert_eq!(r.packages.last().unwrap(), "NetworkManager");
            assert!(!command(&r).contains("vault"));
        }
        let amazon = recipe(AMAZON_2023, "arm64", &[]);
        assert_eq!(amazon.family, Family::Fedora);
        assert_eq!(amazon.packages.last().unwrap(), "systemd-networkd");
    }

    #[test]
    fn yum() {
        let r = recipe(CENTOS_7, "amd64", &[]);
        assert_eq!(
            r.packages,
            ["kernel", "systemd", "dracut", "iproute", "NetworkManager"]
        );
        assert!(r
            .summary
            .ends_with("from vault.centos.org (its mirrors are gone)"));
        let cmd = command(&r);
        assert!(cmd.contains("for f in /etc/yum.repos.d/CentOS-*.repo; do"));
        assert!(cmd.contains(
            "yum install -y --setopt=skip_missing_names_on_install=False kernel systemd \
             dracut iproute NetworkManager;"
        ));
        assert!(cmd.contains("dracut --no-hostonly --force"));
        assert!(cmd.ends_with("yum clean all; rm -rf /var/cache/dnf /var/cache/yum"));

        let amazon = recipe(AMAZON_2, "amd64", &[]);
        assert_eq!(amazon.family, Family::Yum);
        assert_eq!(amazon.packages, ["kernel", "systemd", "dracut", "iproute"]);
        assert!(!command(&amazon).contains("vault"));
    }

    #[test]
    fn opensuse() {
        for text in [OPENSUSE_LEAP_15_6, TUMBLEWEED] {
            let r = recipe(text, "amd64", &[]);
            assert_eq!(
                r.packages[..3],
                ["kernel-default", "systemd", "systemd-sysvinit"]
            );
            let cmd = command(&r);
            assert!(cmd.contains(
                "zypper --non-interactive install --no-recommends kernel-default systemd \
                 systemd-sysvinit udev dracut iproute2 NetworkManager;"
            ));
            assert!(cmd.contains("dracut --no-hostonly --force \"/boot/initrd-$kver\" \"$kver\";"));
            assert!(cmd.ends_with("zypper --non-interactive clean --all"));
        }
    }

    #[test]
    fn arch() {
        for text in [ARCH, MANJARO] {
            let r = recipe(text, "amd64", &[]);
            assert_eq!(r.packages, ["linux", "mkinitcpio", "systemd", "iproute2"]);
            let cmd = command(&r);
            assert!(
                cmd.contains("pacman -Syu --noconfirm --needed linux mkinitcpio systemd iproute2;")
            );
            assert!(cmd.contains(
                "mkinitcpio -S autodetect -k \"$kver\" -g \"/boot/initramfs-$name.img\";"
            ));
            assert!(cmd.contains("cp \"$kdir/vmlinuz\" \"/boot/vmlinuz-$name\""));
            assert!(cmd.ends_with("rm -rf /var/cache/pacman/pkg/*"));
        }
        assert_eq!(recipe(ARCH, "arm64", &[]).packages[0], "linux-aarch64");
    }

    #[test]
    fn install_values_are_appended_once() {
        let r = recipe(
            DEBIAN_12,
            "amd64",
            &[
                "openssh-server",
                "udev",
                "curl=7.88.1-10+deb12u8",
                "libc6:arm64",
            ],
        );
        assert_eq!(
            r.packages,
            [
                "linux-image-amd64",
                "systemd-sysv",
                "udev",
                "initramfs-tools",
                "iproute2",
                "openssh-server",
                "curl=7.88.1-10+deb12u8",
                "libc6:arm64"
            ]
        );
        assert!(command(&r).contains(
            "apt-get install -y --no-install-recommends linux-image-amd64 systemd-sysv udev \
             initramfs-tools iproute2 openssh-server 'curl=7.88.1-10+deb12u8' libc6:arm64;"
        ));
        assert!(r
            .summary
            .ends_with("iproute2 openssh-server curl=7.88.1-10+deb12u8 libc6:arm64"));
        let alpine = recipe(ALPINE_3_20, "amd64", &["openssh", "py3-pip~24"]);
        assert!(command(&alpine)
            .contains("apk add linux-virt openrc mkinitfs e2fsprogs openssh 'py3-pip~24' $opt;"));
    }

    #[test]
    fn invalid_install_values_are_refused() {
        let long = "a".repeat(MAX_PACKAGE_LEN + 1);
        assert!(recipe_for(
            Some(&OsRelease::parse(DEBIAN_12)),
            "amd64",
            true,
            &["a".repeat(MAX_PACKAGE_LEN)]
        )
        .is_ok());
        for (value, why) in [
            ("foo;rm -rf /", "';' is not allowed"),
            ("a b", "' ' is not allowed"),
            ("$(reboot)", "must start with a letter or a digit"),
            ("-y", "must start with a letter or a digit"),
            (
                "--allow-unauthenticated",
                "must start with a letter or a digit",
            ),
            ("pkg/x", "'/' is not allowed"),
            ("it's", "'\\'' is not allowed"),
            ("a\nb", "'\\n' is not allowed"),
            ("é", "must start with a letter or a digit"),
            ("", "it is empty"),
            (long.as_str(), "129 bytes long, more than 128"),
        ] {
            let e = error(Some(DEBIAN_12), "amd64", true, &["curl", value]);
            assert_eq!(
                e,
                NoRecipe::InvalidPackage {
                    value: value.to_owned(),
                    reason: match &e {
                        NoRecipe::InvalidPackage { reason, .. } => reason.clone(),
                        _ => unreachable!(),
                    }
                }
            );
            let message = e.to_string();
            assert!(message.starts_with(&format!("--install {value:?} is not a package name: ")));
            assert!(message.contains(why), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
        // Checked before anything else: even with no os-release.
        assert!(matches!(
            error(None, "riscv64", true, &["a;b"]),
            NoRecipe::InvalidPackage { .. }
        ));
    }

    #[test]
    fn distroless() {
        let e = error(None, "amd64", true, &[]);
        assert_eq!(e, NoRecipe::NoOsRelease { kernel: true });
        assert_eq!(
            e.to_string(),
            "the image has no /etc/os-release (a distroless or scratch image?), so d2l cannot \
             tell which distribution it is to install a kernel: take a kernel from another image \
             (--kernel-from IMAGE, and d2l's init runs the image's command), build it from a \
             Dockerfile that installs a kernel (-f Dockerfile), give --kernel/--initrd, or build \
             a disk without a boot loader (--boot none)"
        );
        let e = error(None, "amd64", false, &["curl"]);
        assert_eq!(
            e.to_string(),
            "the image has no /etc/os-release (a distroless or scratch image?), so d2l cannot \
             tell which distribution it is to install the --install packages: build it from a \
             Dockerfile that installs them (-f Dockerfile)"
        );
    }

    #[test]
    fn unknown_distribution() {
        let e = error(Some(NIXOS), "amd64", true, &[]);
        let message = e.to_string();
        assert!(
            message.starts_with(
                "the image is NixOS 24.05 (Uakari) (ID=nixos), a distribution d2l has no recipe \
                 for (it knows Debian, "
            ),
            "{message}"
        );
        assert!(message.ends_with(KERNEL_ADVICE), "{message}");
        assert!(!message.contains('\n'));
        let e = error(
            Some("ID=\"weird\\x\"\nID_LIKE=\"gentoo\tfunny\"\nPRETTY_NAME=\"Bad\u{1b}[2J\"\n"),
            "amd64",
            true,
            &[],
        );
        let message = e.to_string();
        assert!(
            message.starts_with(
                "the image is Bad\\u{1b}[2J (ID=weird\\x, ID_LIKE=gentoo funny), a distribution"
            ),
            "{message}"
        );
        assert!(!message.chars().any(char::is_control), "{message}");
        // No ID at all: os-release(5)'s default.
        let message = error(Some("NAME=Mystery\n"), "amd64", true, &[]).to_string();
        assert!(
            message.starts_with("the image is linux (ID=linux), "),
            "{message}"
        );
    }

    #[test]
    fn architectures() {
        let e = error(Some(DEBIAN_12), "riscv64", true, &[]);
        assert_eq!(
            e.to_string(),
            format!(
                "d2l has no kernel recipe for architecture \"riscv64\" (it knows amd64 and \
                 arm64): {KERNEL_ADVICE}"
            )
        );
        // Packages alone have no architecture in their names.
        let r = recipe_for(
            Some(&OsRelease::parse(DEBIAN_12)),
            "riscv64",
            false,
            &["curl".into()],
        )
        .unwrap();
        assert_eq!(r.packages, ["curl"]);
    }

    #[test]
    fn packages_only() {
        assert_eq!(
            error(Some(DEBIAN_12), "amd64", false, &[]),
            NoRecipe::NothingToDo
        );
        assert!(!NoRecipe::NothingToDo.to_string().contains('\n'));
        for (name, text, family) in KNOWN_IMAGES {
            let r = recipe_for(
                Some(&OsRelease::parse(text)),
                "amd64",
                false,
                &["curl".into(), "jq".into()],
            )
            .unwrap();
            assert_eq!(r.family, *family);
            assert_eq!(r.packages, ["curl", "jq"], "{name}");
            assert!(
                r.summary.ends_with(&format!(
                    "installs curl jq{}",
                    match family {
                        Family::Debian if text == &DEBIAN_9 =>
                            " from archive.debian.org (stretch is end-of-life)",
                        Family::Debian if text == &DEBIAN_8 =>
                            " from archive.debian.org (Debian 8 is end-of-life)",
                        Family::Yum if text == &CENTOS_7 =>
                            " from vault.centos.org (its mirrors are gone)",
                        _ => "",
                    }
                )),
                "{name}: {}",
                r.summary
            );
            let cmd = command(&r);
            assert!(cmd.contains("curl jq"), "{name}: {cmd}");
            for kernel_step in [
                "dracut",
                "mkinitfs",
                "mkinitcpio",
                "linux-",
                "kernel",
                "rc-update",
            ] {
                assert!(!cmd.contains(kernel_step), "{name}: {cmd}");
            }
            assert!(r
                .body()
                .starts_with("# Written by d2l: installs the --install packages.\n"));
        }
    }

    #[test]
    fn deterministic() {
        for (name, text, _) in KNOWN_IMAGES {
            for arch in ["amd64", "arm64"] {
                let a = recipe(text, arch, &["curl"]);
                let b = recipe(text, arch, &["curl"]);
                assert_eq!(a, b, "{name}");
                assert_eq!(
                    a.containerfile("oci-archive:/tmp/x"),
                    b.containerfile("oci-archive:/tmp/x")
                );
            }
        }
        // The body names neither the base image nor anything but what is installed.
        let a = recipe(DEBIAN_12, "amd64", &[]);
        let b = recipe(
            &DEBIAN_12.replace("bookworm)\"", "bookworm, again)\""),
            "amd64",
            &[],
        );
        assert_ne!(a.summary, b.summary);
        assert_eq!(a.body(), b.body());
        assert_ne!(a.body(), recipe(DEBIAN_12, "amd64", &["curl"]).body());
        assert_ne!(a.body(), recipe(DEBIAN_12, "arm64", &[]).body());
    }

    #[test]
    fn containerfile_shape() {
        let r = recipe(FEDORA_40, "amd64", &[]);
        let file = r.containerfile("oci-archive:/tmp/d2l/base.tar");
        assert_eq!(
            file,
            format!("FROM oci-archive:/tmp/d2l/base.tar\n{}", r.body())
        );
        for (name, text, _) in KNOWN_IMAGES {
            for arch in ["amd64", "arm64"] {
                let body = recipe(text, arch, &["curl"]).body;
                let lines: Vec<&str> = body.lines().collect();
                assert!(lines[0].starts_with("# Written by d2l: "), "{name}");
                assert!(lines[1].starts_with("RUN set -eux; \\"), "{name}");
                let (last, continued) = lines[1..].split_last().unwrap();
                for line in continued {
                    assert!(line.ends_with(" \\"), "{name}: {line:?}");
                }
                for line in &lines[2..] {
                    // A builder drops comment lines inside a continued instruction.
                    assert!(!line.trim_start().starts_with('#'), "{name}: {line:?}");
                    assert!(line.starts_with("    "), "{name}: {line:?}");
                }
                assert!(!last.ends_with('\\'), "{name}");
                assert!(body.ends_with('\n'));
            }
        }
    }

    /// A shell found on this machine, or none (the shell tests then say so and pass).
    fn shell(name: &str) -> Option<&str> {
        let found = Command::new(name)
            .args(["-c", "true"])
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            eprintln!("no {name} here: skipped");
        }
        found.then_some(name)
    }

    /// Runs `script` with `shell`, its output captured.
    fn run_shell(shell: &str, args: &[&str], script: &str) -> std::process::Output {
        let mut child = Command::new(shell)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    #[test]
    fn every_step_is_valid_shell() {
        let shells: Vec<&str> = ["sh", "dash", "bash"]
            .into_iter()
            .filter_map(shell)
            .collect();
        for (name, text, _) in KNOWN_IMAGES {
            for arch in ["amd64", "arm64"] {
                for kernel in [true, false] {
                    let os = OsRelease::parse(text);
                    let extra = ["curl".to_owned(), "pkg=1.0~rc1".to_owned()];
                    let r = recipe_for(Some(&os), arch, kernel, &extra).unwrap();
                    for cmd in run_commands(r.body()) {
                        for sh in &shells {
                            let out = run_shell(sh, &["-n"], &cmd);
                            assert!(
                                out.status.success(),
                                "{name} {arch} kernel={kernel}, {sh} -n: {}\n{cmd}",
                                String::from_utf8_lossy(&out.stderr)
                            );
                        }
                    }
                }
            }
        }
    }

    /// Applies [`DEBIAN_ARCHIVE_SED`] to `sources` with this machine's GNU sed (Debian's).
    fn archive_sources(sources: &str) -> Option<String> {
        let sh = shell("sh")?;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sources");
        std::fs::write(&path, sources).unwrap();
        let expressions: Vec<String> = DEBIAN_ARCHIVE_SED
            .iter()
            .map(|e| format!("-e '{e}'"))
            .collect();
        let script = format!("sed -i {} \"$1\"", expressions.join(" "));
        let out = Command::new(sh)
            .args(["-c", &script, "sh"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(std::fs::read_to_string(&path).unwrap())
    }

    #[test]
    fn archive_rewrites_classic_sources() {
        let Some(stretch) = archive_sources(
            "# deb http://snapshot.debian.org/archive/debian/20220801T000000Z stretch main\n\
             deb http://deb.debian.org/debian stretch main\n\
             deb http://security.debian.org/debian-security stretch/updates main\n\
             deb http://deb.debian.org/debian stretch-updates main\n",
        ) else {
            return;
        };
        assert_eq!(
            stretch,
            "# deb http://snapshot.debian.org/archive/debian/20220801T000000Z stretch main\n\
             deb http://archive.debian.org/debian stretch main\n\
             deb http://archive.debian.org/debian-security stretch/updates main\n"
        );
        let jessie = archive_sources(
            "deb http://httpredir.debian.org/debian/ jessie main contrib\n\
             deb [arch=amd64] https://ftp.us.debian.org/debian jessie main\n\
             deb http://security.debian.org jessie/updates main\n\
             deb http://security.debian.org/ jessie/updates main\n\
             deb http://deb.debian.org/debian jessie-updates main\n\
             deb http://example.com/debian jessie main\n",
        )
        .unwrap();
        assert_eq!(
            jessie,
            "deb http://archive.debian.org/debian jessie main contrib\n\
             deb [arch=amd64] http://archive.debian.org/debian jessie main\n\
             deb http://archive.debian.org/debian-security jessie/updates main\n\
             deb http://archive.debian.org/debian-security jessie/updates main\n\
             deb http://example.com/debian jessie main\n"
        );
    }

    #[test]
    fn archive_rewrites_deb822_sources() {
        let Some(bookworm) = archive_sources(
            "Types: deb\n\
             # http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
             URIs: http://deb.debian.org/debian\n\
             Suites: bookworm bookworm-updates\n\
             Components: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\
             \n\
             Types: deb\n\
             # http://snapshot.debian.org/archive/debian-security/20250520T000000Z\n\
             URIs: http://deb.debian.org/debian-security\n\
             Suites: bookworm-security\n\
             Components: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
        ) else {
            return;
        };
        assert_eq!(
            bookworm,
            "Types: deb\n\
             # http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
             URIs: http://archive.debian.org/debian\n\
             Suites: bookworm\n\
             Components: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\
             \n\
             Types: deb\n\
             # http://snapshot.debian.org/archive/debian-security/20250520T000000Z\n\
             URIs: http://archive.debian.org/debian-security\n\
             Suites: bookworm-security\n\
             Components: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        );
        let odd = archive_sources(
            "URIs: https://deb.debian.org/debian/ http://security.debian.org\n\
             Suites: trixie-updates trixie trixie-updates\n",
        )
        .unwrap();
        assert_eq!(
            odd,
            "URIs: http://archive.debian.org/debian http://archive.debian.org/debian-security\n\
             Suites: trixie\n"
        );
    }

    #[test]
    fn vault_rewrites_centos_repositories() {
        let Some(sh) = shell("sh") else { return };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("CentOS-Base.repo");
        std::fs::write(
            &path,
            "[base]\n\
             name=CentOS-$releasever - Base\n\
             mirrorlist=http://mirrorlist.centos.org/?release=$releasever&arch=$basearch&repo=os&infra=$infra\n\
             #baseurl=http://mirror.centos.org/centos/$releasever/os/$basearch/\n\
             gpgcheck=1\n",
        )
        .unwrap();
        let expressions: Vec<String> = CENTOS_VAULT_SED
            .iter()
            .map(|e| format!("-e '{e}'"))
            .collect();
        let script = format!("sed -i {} \"$1\"", expressions.join(" "));
        let out = Command::new(sh)
            .args(["-c", &script, "sh"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[base]\n\
             name=CentOS-$releasever - Base\n\
             #mirrorlist=http://mirrorlist.centos.org/?release=$releasever&arch=$basearch&repo=os&infra=$infra\n\
             baseurl=http://vault.centos.org/centos/$releasever/os/$basearch/\n\
             gpgcheck=1\n"
        );
    }

    #[test]
    fn mkinitfs_gains_virtio_and_ext4() {
        let Some(sh) = shell("sh") else { return };
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("mkinitfs.conf");
        let mut run = Run::new();
        run.line("conf=$1;");
        mkinitfs_features(&mut run);
        let cmd = run_commands(&run.finish()).remove(0);
        let edit = |before: Option<&str>| {
            match before {
                Some(text) => std::fs::write(&conf, text).unwrap(),
                None => {
                    let _ = std::fs::remove_file(&conf);
                }
            }
            let out = Command::new(sh)
                .args(["-c", &cmd, "sh"])
                .arg(&conf)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::read_to_string(&conf).unwrap()
        };
        // Alpine's own default: nothing to do.
        let stock = "features=\"ata base ide scsi usb virtio ext4\"\n";
        assert_eq!(edit(Some(stock)), stock);
        assert_eq!(
            edit(Some("disable_trigger=yes\nfeatures=\"base nvme\"\n")),
            "disable_trigger=yes\nfeatures=\"ext4 virtio base nvme\"\n"
        );
        // virtio-something is not virtio.
        assert_eq!(
            edit(Some("features=\"virtio-gpu ext4\"\n")),
            "features=\"virtio virtio-gpu ext4\"\n"
        );
        assert_eq!(edit(None), "features=\"ext4 virtio base\"\n");
    }
}
