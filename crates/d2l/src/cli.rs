//! Command-line definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use d2l_registry::{Platform, SourceSpec};

/// Turn a container image into a disk that boots.
#[derive(Debug, Parser)]
#[command(name = "d2l", version, about)]
pub struct Cli {
    /// Print nothing but errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print what each step does (-v: info messages; -vv: debug messages too; D2L_LOG
    /// overrides both).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a disk image from a container image.
    Build(Box<BuildArgs>),
    /// Flatten an image's layers and write the root filesystem as a tar archive.
    Export(ExportArgs),
    /// Show an image's manifest, config and layers.
    Inspect(InspectArgs),
    /// Boot a disk image in QEMU, its serial console on this terminal.
    Run(RunArgs),
    /// Pull an image from a registry into the cache, without applying it.
    Pull(PullArgs),
    /// List or prune the cache of pulled blobs.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Convert a disk image (raw, qcow2, VDI, VMDK, VHD or VHDX) to another format.
    Convert(ConvertArgs),
    /// Print a shell completion script: `source <(d2l completions bash)`.
    Completions(CompletionsArgs),
    /// Write the manual pages (d2l.1 and one per command) into a directory; what `cargo
    /// xtask man` runs.
    #[command(hide = true)]
    Man(ManArgs),
}

/// `d2l completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh or fish (elvish and powershell too).
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `d2l man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory the pages are written into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

/// Where an image comes from and which one to take.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// The image: oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:NAME:TAG],
    /// or a registry reference (NAME[:TAG|@DIGEST], docker://...).
    #[arg(value_name = "SOURCE")]
    pub source: SourceSpec,
    /// Platform to pick from a multi-platform image: os/arch[/variant].
    #[arg(long, default_value = "linux/amd64", value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Platform,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// How registries are reached, and where pulled blobs are kept.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Registry options")]
pub struct RegistryArgs {
    /// Credentials for the registry (else auth files: $REGISTRY_AUTH_FILE, podman's
    /// auth.json, ~/.docker/config.json).
    #[arg(long, value_name = "USER:PASS")]
    pub creds: Option<d2l_registry::remote::Credentials>,
    /// Certificates for the registry (as in /etc/containers/certs.d/HOST/): CAs or the
    /// server's own (*.crt), a client certificate (NAME.cert with NAME.key).
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Vec<PathBuf>,
    /// Allow plain HTTP or unverified TLS for this registry (host[:port]); repeatable.
    #[arg(long, value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// Where pulled blobs are cached (default $XDG_CACHE_HOME/d2l).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Layers downloaded at once.
    #[arg(long, value_name = "N", default_value_t = d2l_registry::remote::DEFAULT_CONCURRENT_DOWNLOADS)]
    pub max_concurrent_downloads: usize,
}

/// How layers are applied.
#[derive(Debug, Args)]
#[command(next_help_heading = "Layers")]
pub struct ApplyArgs {
    /// Treat overlayfs whiteout markers (char device 0:0, trusted.overlay.opaque) as
    /// whiteouts instead of keeping them as devices.
    #[arg(long)]
    pub overlay_whiteouts: bool,
    /// Keep security.selinux labels (dropped by default).
    #[arg(long)]
    pub keep_selinux: bool,
}

/// `d2l export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Output tar file; "-" writes to standard output.
    #[arg(short, long, value_name = "FILE", help_heading = "Output")]
    pub output: PathBuf,
    #[command(flatten)]
    pub apply: ApplyArgs,
}

/// Partition table of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Table {
    /// A bootable disk with an MBR partition table.
    Mbr,
    /// A bootable disk with a GPT partition table (BIOS boot through gptmbr.bin).
    Gpt,
    /// The bare ext4 filesystem, no partition table, no boot loader (a VMM root drive).
    None,
}

/// What `d2l build` starts from: an image, or a Dockerfile an image builder builds first.
#[derive(Debug, Args)]
pub struct BuildSourceArgs {
    /// The image (as for export); with -f, the build context directory (default: the
    /// Dockerfile's directory).
    #[arg(value_name = "SOURCE|CONTEXT", required_unless_present = "dockerfile")]
    pub source: Option<String>,
    /// Platform to pick from a multi-platform image (and to build for, with -f):
    /// os/arch[/variant].
    #[arg(long, default_value = "linux/amd64", value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Platform,
    /// Build this Dockerfile first, with buildah, podman or docker (the first found).
    #[arg(short = 'f', long = "file", value_name = "DOCKERFILE")]
    pub dockerfile: Option<PathBuf>,
    /// A build argument for the Dockerfile (repeatable).
    #[arg(long = "build-arg", value_name = "KEY=VALUE", requires = "dockerfile")]
    pub build_args: Vec<String>,
    /// The Dockerfile stage to build (default: the last).
    #[arg(long, value_name = "STAGE", requires = "dockerfile")]
    pub target: Option<String>,
    /// The image builder to run, for -f or to install a kernel into an image without one
    /// (default: the first of these found on PATH).
    #[arg(long, value_name = "buildah|podman|docker")]
    pub builder: Option<d2l_image_builder::BuilderKind>,
    /// How a registry SOURCE is reached (a Dockerfile's base images come through the
    /// builder's own configuration).
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl BuildSourceArgs {
    /// SOURCE as an image (without -f), or a usage error naming it.
    pub fn image_source(&self) -> Result<SourceSpec, clap::Error> {
        use clap::CommandFactory;
        let text = self.source.as_deref().unwrap_or_default();
        text.parse().map_err(|e| {
            let mut cli = Cli::command();
            cli.build();
            let build = cli.find_subcommand_mut("build").expect("a build command");
            build.error(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value '{text}' for '[SOURCE|CONTEXT]': {e}"),
            )
        })
    }
}

impl Cli {
    /// Parses the command line, then checks what clap's derive cannot express
    /// ([`Cli::check`]); a usage error either way.
    pub fn try_parse_checked<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args)?;
        cli.check()?;
        Ok(cli)
    }

    /// Checks across options and inside values: a `--boot extlinux` with `--table none`, and
    /// the values that end up as lines of boot configs, /etc/fstab, /etc/hosts or
    /// /etc/hostname (a newline there would add lines of the user's making).
    pub fn check(&self) -> Result<(), clap::Error> {
        if let Command::Convert(args) = &self.command {
            return check_convert_output(args);
        }
        let Command::Build(args) = &self.command else {
            return Ok(());
        };
        check_bundle(args)?;
        if args.table == Table::None && args.boot == Some(Boot::Extlinux) {
            return Err(build_error(
                clap::error::ErrorKind::ArgumentConflict,
                "--boot extlinux needs a partition table: --table none writes a bare \
                 filesystem, with nowhere for boot code (leave --boot out, or use --table \
                 mbr or gpt)"
                    .into(),
            ));
        }
        if let Some(firmware) = args.firmware {
            if args.table == Table::None {
                return Err(build_error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!(
                        "--firmware {firmware} needs a partition table: --table none writes a \
                         bare filesystem, which no firmware boots (use --table mbr or gpt)"
                    ),
                ));
            }
            if args.boot == Some(Boot::None) {
                return Err(build_error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!(
                        "--firmware {firmware} with --boot none: a disk without a boot loader \
                         boots with no firmware (leave one of them out)"
                    ),
                ));
            }
            if firmware == Firmware::Uefi && args.boot == Some(Boot::Extlinux) {
                return Err(build_error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--boot extlinux boots through the BIOS, and --firmware uefi has no BIOS \
                     boot code (use --firmware hybrid for both, or leave --boot out)"
                        .into(),
                ));
            }
        }
        check_init(&args.init)?;
        let single_words = [
            ("--hostname", Some(&args.hostname)),
            ("--user", args.reach.user.as_ref()),
            ("--kernel", args.kernel.as_ref()),
            ("--initrd", args.initrd.as_ref()),
        ];
        for (option, value) in single_words {
            if let Some(value) = value {
                check_text(option, value, true)?;
            }
        }
        check_text("--cmdline", &args.cmdline, false)
    }
}

/// `--entrypoint` and `--cmd` only for d2l's init, each a command that parses.
fn check_init(args: &InitArgs) -> Result<(), clap::Error> {
    for (option, value) in [("--entrypoint", &args.entrypoint), ("--cmd", &args.cmd)] {
        let Some(value) = value else { continue };
        if args.init == InitChoice::Image {
            return Err(build_error(
                clap::error::ErrorKind::ArgumentConflict,
                format!(
                    "{option} is for d2l's init, which runs the image's command; with --init \
                     image the image's own init decides what runs"
                ),
            ));
        }
        command_words(option, value)
            .map_err(|e| build_error(clap::error::ErrorKind::ValueValidation, e))?;
    }
    Ok(())
}

/// An archive output (`.ova`, `.tar.gz`, `.box`) with the options that fit it: no
/// `--format` or subformat (the archive's disk format is its own), `--compress` only for a
/// box, a partition table for the machines (OVA, box), and `--cpus`, `--memory` only for an
/// OVA, the one output that describes hardware.
fn check_bundle(args: &BuildArgs) -> Result<(), clap::Error> {
    use clap::error::ErrorKind::{ArgumentConflict, ValueValidation};
    use d2l_disk_format::Bundle;
    let bundle = Bundle::from_path(&args.output);
    let out = args.output.display();
    if let Some(memory) = args.hardware.memory {
        memory_mib(memory).map_err(|e| build_error(ValueValidation, e))?;
    }
    if bundle != Some(Bundle::Ova) {
        let given = [
            ("--cpus", args.hardware.cpus.is_some()),
            ("--memory", args.hardware.memory.is_some()),
        ];
        if let Some((option, _)) = given.into_iter().find(|(_, given)| *given) {
            return Err(build_error(
                ArgumentConflict,
                format!(
                    "{option} is for .ova outputs, the one kind that describes a machine's                      hardware; {out} carries none (name it NAME.ova, or leave {option} out)"
                ),
            ));
        }
    }
    let Some(bundle) = bundle else {
        return Ok(());
    };
    let kind = match bundle {
        Bundle::Ova => "an OVA",
        Bundle::GceTarGz => "a Compute Engine image",
        Bundle::VagrantBox => "a Vagrant box",
    };
    let own = bundle.disk_format();
    let format = &args.format;
    let conflicting = [
        ("--format", format.format.is_some()),
        ("--vmdk-subformat", format.vmdk_subformat.is_some()),
        ("--vhd-subformat", format.vhd_subformat.is_some()),
        (
            "--compress",
            format.compress && bundle != Bundle::VagrantBox,
        ),
    ];
    if let Some((option, _)) = conflicting.into_iter().find(|(_, given)| *given) {
        return Err(build_error(
            ArgumentConflict,
            format!(
                "{option}: {out} is {kind} (from its extension), whose disk format is its own                  ({own}{}); leave {option} out, or give the output another extension",
                if own == d2l_disk_format::Format::Raw {
                    ", gzip-compressed"
                } else if own == d2l_disk_format::Format::Vmdk {
                    " streamOptimized, compressed"
                } else {
                    ""
                }
            ),
        ));
    }
    if args.table == Table::None && bundle != Bundle::GceTarGz {
        return Err(build_error(
            ArgumentConflict,
            format!(
                "--table none writes a bare filesystem, which no machine boots; {out} is {kind},                  a machine to boot (use --table mbr or gpt)"
            ),
        ));
    }
    Ok(())
}

/// `d2l convert` writes disk images; the archives are made by `d2l build`, which prepares
/// the machine they describe.
fn check_convert_output(args: &ConvertArgs) -> Result<(), clap::Error> {
    use clap::CommandFactory;
    let Some(bundle) = d2l_disk_format::Bundle::from_path(&args.output) else {
        return Ok(());
    };
    let mut cli = Cli::command();
    cli.build();
    let convert = cli
        .find_subcommand_mut("convert")
        .expect("a convert command");
    Err(convert.error(
        clap::error::ErrorKind::ValueValidation,
        format!(
            "{}: d2l convert writes disk images, not {} archives; build the image with              `d2l build SOURCE -o {}` (or give OUT a disk image's extension)",
            args.output.display(),
            bundle.name(),
            args.output.display()
        ),
    ))
}

/// A usage error of `d2l build`.
fn build_error(kind: clap::error::ErrorKind, message: String) -> clap::Error {
    use clap::CommandFactory;
    let mut cli = Cli::command();
    cli.build();
    let build = cli.find_subcommand_mut("build").expect("a build command");
    build.error(kind, message)
}

/// Refuses control characters in `value` (and white space if it must be one word): the error
/// names `option` and quotes the value with its control characters escaped, on one line.
fn check_text(option: &str, value: &str, one_word: bool) -> Result<(), clap::Error> {
    let bad = value
        .char_indices()
        .find(|(_, c)| c.is_control() || (one_word && c.is_whitespace()));
    match bad {
        None => Ok(()),
        Some((at, c)) => Err(build_error(
            clap::error::ErrorKind::ValueValidation,
            format!(
                "invalid value {value:?} for '{option}': {c:?} at byte {at}: {}",
                if c.is_control() {
                    "control characters are not allowed"
                } else {
                    "white space is not allowed"
                }
            ),
        )),
    }
}

/// `d2l build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub source: BuildSourceArgs,
    /// Output file.
    #[arg(short, long, value_name = "FILE", help_heading = "Output")]
    pub output: PathBuf,
    /// Partition table; `none` writes the bare filesystem, with no boot loader.
    #[arg(long, value_enum, default_value = "mbr", help_heading = "Disk")]
    pub table: Table,
    /// Size: `auto` (content + 25% or at least 512 MiB free), `4G` (exactly: the whole disk,
    /// or the filesystem with --table none), or `+2G` (content + 2 GiB free). SIZE is digits
    /// with an optional unit K, M, G or T (1024-based, optionally followed by iB or B); a
    /// number without a unit is bytes.
    #[arg(
        long,
        default_value = "auto",
        value_name = "auto|SIZE|+SIZE",
        help_heading = "Disk"
    )]
    pub size: d2l_fs_writer::SizeSpec,
    /// Filesystem UUID: 8-4-4-4-12 hexadecimal digits with hyphens, or the 32 digits alone
    /// (default: derived from the image's config digest, so the same image gives the same
    /// filesystem).
    #[arg(long, value_name = "UUID", value_parser = d2l_fs_writer::parse_uuid, help_heading = "Disk")]
    pub fs_uuid: Option<[u8; 16]>,
    /// Boot loader on the disk (default: the ones --firmware needs, extlinux for the BIOS
    /// and GRUB for UEFI; none with `--table none`, which refuses extlinux).
    #[arg(long, value_enum, help_heading = "Boot")]
    pub boot: Option<Boot>,
    /// Firmware the disk boots with: `bios` (extlinux), `uefi` (GRUB on an EFI System
    /// Partition, no BIOS boot code) or `hybrid`, both into the same kernel (default:
    /// hybrid for x86-64 images, uefi for arm64 ones).
    #[arg(
        long,
        value_enum,
        value_name = "bios|uefi|hybrid",
        help_heading = "Boot"
    )]
    pub firmware: Option<Firmware>,
    /// Take syslinux's pieces (ldlinux.bss, ldlinux.sys, ldlinux.c32, mbr.bin, gptmbr.bin)
    /// from this directory instead of the host's syslinux packages.
    #[arg(long, value_name = "DIR", help_heading = "Boot")]
    pub syslinux_dir: Option<PathBuf>,
    /// Kernel to boot, a path inside the image (default: the newest one found); no spaces or
    /// control characters.
    #[arg(long, value_name = "PATH", help_heading = "Boot")]
    pub kernel: Option<String>,
    /// Initrd to boot with, a path inside the image (default: the kernel's); no spaces or
    /// control characters.
    #[arg(long, value_name = "PATH", help_heading = "Boot")]
    pub initrd: Option<String>,
    /// More kernel command line, after d2l's (root=UUID=... console=...); no control
    /// characters (newlines, tabs...).
    #[arg(long, value_name = "ARGS", default_value = "", help_heading = "Boot")]
    pub cmdline: String,
    /// Host name of the machine (/etc/hostname, /etc/hosts); no spaces or control characters.
    #[arg(long, default_value = "d2l", help_heading = "The machine")]
    pub hostname: String,
    /// Root password, stored as a SHA-512 crypt hash in /etc/shadow.
    #[arg(
        long,
        value_name = "PASSWORD",
        conflicts_with = "root_password_file",
        help_heading = "The machine"
    )]
    pub root_password: Option<String>,
    /// Read the root password from a file (its first line, which may hold no control
    /// characters).
    #[arg(long, value_name = "FILE", help_heading = "The machine")]
    pub root_password_file: Option<PathBuf>,
    /// Leave the image's files as they are: no fstab, hostname, machine-id, password,
    /// network, users, SSH keys, cloud-init seed or growing root.
    #[arg(long, help_heading = "The machine")]
    pub no_prepare: bool,
    /// On success, print one JSON object describing the disk on standard output (see
    /// docs/build-report.schema.json).
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    #[command(flatten)]
    pub install: InstallArgs,
    #[command(flatten)]
    pub init: InitArgs,
    #[command(flatten)]
    pub reach: ReachArgs,
    #[command(flatten)]
    pub apply: ApplyArgs,
    #[command(flatten)]
    pub format: FormatArgs,
    #[command(flatten)]
    pub hardware: HardwareArgs,
}

/// The virtual machine an OVA describes (`-o NAME.ova`); other outputs carry no hardware.
#[derive(Debug, Args)]
#[command(next_help_heading = "Virtual hardware (.ova)")]
pub struct HardwareArgs {
    /// Virtual CPUs of the machine an .ova describes, 1 to 64 (default 2); only for .ova
    /// outputs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=i64::from(d2l_disk_format::MAX_CPUS)))]
    pub cpus: Option<u16>,
    /// Memory of the machine an .ova describes: MiB, or digits with a unit K, M, G or T
    /// (1024-based, optionally followed by iB or B); a whole number of MiB, at least 16M
    /// (default 1G); only for .ova outputs.
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    pub memory: Option<d2l_fs_writer::ByteSize>,
}

/// `--memory` in MiB, as QEMU's `-m` and an OVF take it: a whole number of MiB, at least 16;
/// otherwise the message that says why not.
pub fn memory_mib(memory: d2l_fs_writer::ByteSize) -> Result<u64, String> {
    const MIB: u64 = 1 << 20;
    /// Less than this boots nothing (QEMU's own default is 128 MiB).
    const MIN_MIB: u64 = d2l_disk_format::MIN_MEMORY_MIB;
    if !memory.0.is_multiple_of(MIB) {
        return Err(format!(
            "--memory {}: not a whole number of MiB (write e.g. 512 or 512M, 2G)",
            memory.0
        ));
    }
    if memory.0 / MIB < MIN_MIB {
        return Err(format!(
            "--memory {}: too little to boot anything (at least {MIN_MIB}M)",
            memory.0
        ));
    }
    Ok(memory.0 / MIB)
}

/// `--install-kernel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InstallKernel {
    /// Install the distribution's kernel and init when the image has no kernel.
    Auto,
    /// Never: an image without a kernel is an error.
    Never,
}

/// What the image builder adds to an image (a stock `debian:bookworm` has no kernel).
#[derive(Debug, Args)]
#[command(next_help_heading = "Kernel and packages")]
pub struct InstallArgs {
    /// When the image has no kernel (and no --kernel is given): `auto` installs the
    /// distribution's kernel, init and initramfs tools with the image builder (buildah,
    /// podman or docker; the recipe is chosen from /etc/os-release, the result cached), or
    /// `never` stops with an error.
    #[arg(long, value_enum, default_value = "auto", value_name = "auto|never")]
    pub install_kernel: InstallKernel,
    /// A package to install with the image's package manager in the same builder step, e.g.
    /// openssh-server (repeatable).
    #[arg(long = "install", value_name = "PKG", conflicts_with = "dockerfile")]
    pub packages: Vec<String>,
}

/// Where `--kernel-from` takes the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelFrom {
    /// The running host's kernel package (`/boot/vmlinuz-$(uname -r)`, its modules).
    Host,
    /// Another image, in any source syntax.
    Image(SourceSpec),
}

impl std::str::FromStr for KernelFrom {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "host" => Ok(KernelFrom::Host),
            _ => s.parse().map(KernelFrom::Image).map_err(|e| format!("{e}")),
        }
    }
}

/// `--init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InitChoice {
    /// The image's /sbin/init if it has one, else d2l's.
    Auto,
    /// The image's own /sbin/init (systemd, OpenRC...).
    Image,
    /// d2l's init, which runs the image's ENTRYPOINT and CMD and powers off when it ends.
    D2l,
}

/// What boots an image that has no kernel or no init of its own: any image, even `FROM
/// scratch` or distroless, as a small machine running its own command.
#[derive(Debug, Args)]
#[command(next_help_heading = "Kernel and init")]
pub struct InitArgs {
    /// Take the kernel and its modules from another image (oci:DIR, oci-archive:FILE,
    /// docker-archive:FILE, a registry reference; /boot/vmlinuz-VERSION with
    /// /lib/modules/VERSION, or LinuxKit's /kernel with /kernel.tar) or from `host`, the
    /// running kernel's package; the image's own files are left as they are.
    #[arg(long, value_name = "SOURCE|host", conflicts_with_all = ["kernel", "initrd"])]
    pub kernel_from: Option<KernelFrom>,
    /// Which init the machine runs: `image` (its /sbin/init), `d2l` (d2l's own, which runs
    /// ENTRYPOINT + CMD with the config's Env, WorkingDir and User, and powers off when the
    /// command exits), or `auto`: the image's if it has one, else d2l's.
    #[arg(
        long,
        value_enum,
        default_value = "auto",
        value_name = "auto|image|d2l"
    )]
    pub init: InitChoice,
    /// With d2l's init: the program to run instead of the image's ENTRYPOINT (a JSON array
    /// such as '["/bin/app","-v"]', or words split at spaces; "" for none). As with docker
    /// run, it also drops the image's CMD.
    #[arg(long, value_name = "COMMAND")]
    pub entrypoint: Option<String>,
    /// With d2l's init: the arguments to run instead of the image's CMD (a JSON array, or
    /// words split at spaces).
    #[arg(long, value_name = "ARGS")]
    pub cmd: Option<String>,
}

/// `--entrypoint` or `--cmd` as argv: a JSON array of strings, or words split at spaces.
pub fn command_words(option: &str, value: &str) -> Result<Vec<String>, String> {
    if value.trim_start().starts_with('[') {
        serde_json::from_str(value)
            .map_err(|e| format!("{option} {value}: not a JSON array of strings: {e}"))
    } else {
        Ok(value.split_whitespace().map(str::to_owned).collect())
    }
}

/// `--network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkMode {
    /// DHCP on the first wired NIC, through the image's network stack.
    Dhcp,
    /// Leave the image's network configuration as it is.
    None,
}

/// How the machine is reached: network, SSH keys, a user, a cloud-init seed.
#[derive(Debug, Args)]
#[command(next_help_heading = "Reaching the machine")]
pub struct ReachArgs {
    /// Network on first boot: DHCP through the image's stack (systemd-networkd, ifupdown,
    /// NetworkManager, OpenRC), or none (the image's configuration as it is).
    #[arg(long, value_enum, default_value = "dhcp")]
    pub network: NetworkMode,
    /// A public key or authorized_keys file, installed for root (or --user); repeatable.
    #[arg(long = "ssh-key", value_name = "FILE")]
    pub ssh_keys: Vec<PathBuf>,
    /// Create this user (group of its own, home from /etc/skel, in sudo or wheel when the
    /// image has it); --ssh-key keys go to it instead of root.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// The user's password, stored as a SHA-512 crypt hash in /etc/shadow.
    #[arg(
        long,
        value_name = "PASSWORD",
        requires = "user",
        conflicts_with = "user_password_file"
    )]
    pub user_password: Option<String>,
    /// Read the user's password from a file (its first line, which may hold no control
    /// characters).
    #[arg(long, value_name = "FILE", requires = "user")]
    pub user_password_file: Option<PathBuf>,
    /// A cloud-init NoCloud seed: DIR holds user-data and optionally meta-data and
    /// network-config (the image must have cloud-init).
    #[arg(long = "cloud-init", value_name = "DIR")]
    pub cloud_init: Option<PathBuf>,
}

/// The output's disk image format.
#[derive(Debug, Args)]
#[command(next_help_heading = "Disk image format")]
pub struct FormatArgs {
    /// Disk image format (default: from the output's extension: .img/.raw raw, .qcow2,
    /// .vdi, .vmdk, .vhd, .vhdx; raw for any other). Hyper-V generation 2 machines boot a
    /// .vhdx through UEFI: build it with --firmware uefi --table gpt. `d2l build` also
    /// writes archives that other tools import, by extension only: .ova (OVF and a
    /// streamOptimized VMDK), .tar.gz or .tgz (a Compute Engine image), .box (a Vagrant
    /// libvirt box), whose disk format is their own (no --format).
    #[arg(long, value_name = "raw|qcow2|vdi|vmdk|vhd|vhdx")]
    pub format: Option<d2l_disk_format::Format>,
    /// qcow2 (and a .box's qcow2): deflate the clusters (smaller, slower to write).
    #[arg(long)]
    pub compress: bool,
    /// VMDK: monolithicSparse (`sparse`, default) or streamOptimized (`stream`: OVA,
    /// vSphere import).
    #[arg(long, value_enum, value_name = "sparse|stream")]
    pub vmdk_subformat: Option<VmdkSubformat>,
    /// VHD: `dynamic` (default) or `fixed` (the size rounded to 1 MiB, as Azure requires).
    #[arg(long, value_enum, value_name = "dynamic|fixed")]
    pub vhd_subformat: Option<VhdSubformat>,
}

/// `--vmdk-subformat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VmdkSubformat {
    /// monolithicSparse.
    Sparse,
    /// streamOptimized.
    Stream,
}

/// `--vhd-subformat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VhdSubformat {
    /// Blocks allocated as written.
    Dynamic,
    /// All of the disk, then a footer.
    Fixed,
}

/// `d2l convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The image to read: raw, qcow2, VDI, VMDK, VHD or VHDX (detected from its content).
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// The image to write.
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// On success, print one JSON object describing the output on standard output (see
    /// docs/convert-report.schema.json).
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// Boot loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Boot {
    /// The boot loaders --firmware needs: extlinux (syslinux for ext4, the BIOS path), and
    /// GRUB for UEFI, installed without root or a mount.
    Extlinux,
    /// No boot loader.
    None,
}

/// `--firmware`: what starts the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Firmware {
    /// A PC BIOS (SeaBIOS): MBR boot code and extlinux.
    Bios,
    /// UEFI (OVMF): GRUB on an EFI System Partition.
    Uefi,
    /// Both: one disk that either firmware boots into the same kernel.
    Hybrid,
}

impl Firmware {
    /// Whether a PC BIOS boots the disk.
    pub fn bios(self) -> bool {
        self != Firmware::Uefi
    }

    /// Whether UEFI boots the disk.
    pub fn uefi(self) -> bool {
        self != Firmware::Bios
    }
}

impl std::fmt::Display for Firmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
            Firmware::Hybrid => "hybrid",
        })
    }
}

/// `d2l inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Print JSON instead of a table.
    #[arg(long, help_heading = "Output")]
    pub json: bool,
}

/// `--memory`: the size grammar, except that a bare number is MiB, as QEMU's `-m` (and d2l
/// before the grammar was shared) reads it.
fn parse_memory(s: &str) -> Result<d2l_fs_writer::ByteSize, d2l_fs_writer::ParseError> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return format!("{s}M")
            .parse()
            .map_err(|mut e: d2l_fs_writer::ParseError| {
                e.text = s.to_owned();
                e
            });
    }
    s.parse()
}

/// `d2l run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The disk image to boot.
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// Guest memory: MiB, or digits with a unit K, M, G or T (1024-based, optionally
    /// followed by iB or B); a whole number of MiB, at least 16M.
    #[arg(short, long, default_value = "1G", value_name = "SIZE", value_parser = parse_memory)]
    pub memory: d2l_fs_writer::ByteSize,
    /// Disk format as QEMU names it (raw, qcow2, vdi, vmdk, vpc, vhdx); detected from the
    /// file's magic bytes by default.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Firmware to boot with: `bios` (SeaBIOS) or `uefi` (OVMF, package ovmf); by default
    /// the BIOS when the disk has BIOS boot code (bios and hybrid disks), else UEFI.
    #[arg(long, value_enum, value_name = "bios|uefi")]
    pub firmware: Option<RunFirmware>,
    /// Forward this port of 127.0.0.1 to the guest's SSH port 22 (default: a free port,
    /// printed), through QEMU's user networking.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub ssh_port: Option<u16>,
}

/// `d2l run --firmware`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunFirmware {
    /// SeaBIOS, QEMU's own.
    Bios,
    /// OVMF.
    Uefi,
}

/// `d2l pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Print JSON instead of text.
    #[arg(long, help_heading = "Output")]
    pub json: bool,
}

/// `d2l cache`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List the images pulled and the blobs cached.
    Ls(CacheLsArgs),
    /// Remove unfinished downloads and blobs no pulled image needs (--all: everything);
    /// refused while another d2l pulls into the cache.
    Prune(CachePruneArgs),
}

/// Which cache.
#[derive(Debug, Args)]
pub struct CacheDirArg {
    /// The cache directory (default $XDG_CACHE_HOME/d2l).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// `d2l cache ls`.
#[derive(Debug, Args)]
pub struct CacheLsArgs {
    #[command(flatten)]
    pub dir: CacheDirArg,
    /// Print JSON instead of a table.
    #[arg(long, help_heading = "Output")]
    pub json: bool,
}

/// `d2l cache prune`.
#[derive(Debug, Args)]
pub struct CachePruneArgs {
    #[command(flatten)]
    pub dir: CacheDirArg,
    /// Remove every pulled image and blob, not only what no image needs.
    #[arg(long)]
    pub all: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_checked(std::iter::once("d2l").chain(args.iter().copied()))
    }

    fn build_args(args: &[&str]) -> Result<Box<BuildArgs>, clap::Error> {
        let all = ["build", "oci:/l", "-o", "x.img"].iter().chain(args);
        match parse(&all.copied().collect::<Vec<_>>())?.command {
            Command::Build(args) => Ok(args),
            _ => panic!("not build"),
        }
    }

    #[test]
    fn boot_with_table_none() {
        let args = build_args(&["--table", "none"]).unwrap();
        assert_eq!(
            args.boot, None,
            "a bare filesystem has no boot loader by default"
        );
        let args = build_args(&["--table", "none", "--boot", "none"]).unwrap();
        assert_eq!(args.boot, Some(Boot::None));
        let e = build_args(&["--table", "none", "--boot", "extlinux"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        assert!(e.to_string().contains("--boot extlinux"), "{e}");
        assert!(build_args(&["--table", "gpt", "--boot", "extlinux"]).is_ok());
    }

    #[test]
    fn firmware_conflicts_are_usage_errors() {
        assert_eq!(build_args(&[]).unwrap().firmware, None);
        for (args, says) in [
            (
                &["--table", "none", "--firmware", "uefi"][..],
                "--table none",
            ),
            (&["--boot", "none", "--firmware", "bios"][..], "--boot none"),
            (
                &["--boot", "extlinux", "--firmware", "uefi"][..],
                "--firmware hybrid",
            ),
        ] {
            let e = build_args(args).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{args:?}"
            );
            assert!(e.to_string().contains(says), "{args:?}: {e}");
        }
        for firmware in ["bios", "uefi", "hybrid"] {
            for table in ["mbr", "gpt"] {
                let args = build_args(&["--table", table, "--firmware", firmware]).unwrap();
                assert_eq!(args.firmware.unwrap().to_string(), firmware);
            }
        }
        assert!(build_args(&["--boot", "extlinux", "--firmware", "hybrid"]).is_ok());
    }

    #[test]
    fn control_characters_refused() {
        for (option, value) in [
            ("--cmdline", "quiet\nMENU HIDDEN"),
            ("--cmdline", "a\rb"),
            ("--cmdline", "a\u{7f}"),
            ("--cmdline", "a\u{85}b"),
            ("--hostname", "host\nevil"),
            ("--hostname", "two words"),
            ("--hostname", "tab\t"),
            ("--kernel", "/boot/vmlinuz\nAPPEND x"),
            ("--kernel", "/boot/vm linuz"),
            ("--initrd", "/boot/initrd\0"),
        ] {
            let e = build_args(&[option, value]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
            let text = e.to_string();
            assert!(text.contains(option), "{option} {value:?}: {text}");
            let first = text.lines().next().unwrap();
            assert!(first.contains(option), "{text}");
            assert!(
                first.contains(&format!("{value:?}")),
                "the value, escaped: {text}"
            );
        }
        let args = build_args(&[
            "--cmdline",
            "quiet splash=1 a=\"b c\"",
            "--hostname",
            "hôte",
        ]);
        assert!(
            args.is_ok(),
            "spaces in --cmdline, non-ASCII letters are fine"
        );
    }

    #[test]
    fn reach_options() {
        let args = build_args(&[]).unwrap();
        assert_eq!(args.reach.network, NetworkMode::Dhcp);
        assert!(args.reach.ssh_keys.is_empty() && args.reach.user.is_none());
        let args = build_args(&[
            "--network",
            "none",
            "--ssh-key",
            "a.pub",
            "--ssh-key",
            "b.pub",
            "--user",
            "alice",
            "--user-password",
            "pw",
            "--cloud-init",
            "seed",
        ])
        .unwrap();
        assert_eq!(args.reach.network, NetworkMode::None);
        assert_eq!(
            args.reach.ssh_keys,
            [PathBuf::from("a.pub"), PathBuf::from("b.pub")]
        );
        assert_eq!(args.reach.user.as_deref(), Some("alice"));
        assert_eq!(args.reach.user_password.as_deref(), Some("pw"));
        assert_eq!(args.reach.cloud_init, Some(PathBuf::from("seed")));
        assert!(build_args(&["--network", "static"]).is_err());
        let e = build_args(&["--user-password", "pw"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert!(build_args(&[
            "--user",
            "a",
            "--user-password",
            "p",
            "--user-password-file",
            "f"
        ])
        .is_err());
        let e = build_args(&["--user", "al ice"]).unwrap_err();
        assert!(e.to_string().contains("--user"), "{e}");
        let cli = parse(&["run", "d.img", "--ssh-port", "2222"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.ssh_port, Some(2222));
        assert!(parse(&["run", "d.img", "--ssh-port", "0"]).is_err());
        assert!(parse(&["run", "d.img", "--ssh-port", "65536"]).is_err());
    }

    #[test]
    fn export_takes_source_and_output() {
        let cli = parse(&["export", "oci:/tmp/l:tag", "-o", "out.tar"]).unwrap();
        let Command::Export(args) = cli.command else {
            panic!("not export")
        };
        assert_eq!(args.output, PathBuf::from("out.tar"));
        assert_eq!(args.source.platform.to_string(), "linux/amd64");
        assert!(matches!(args.source.source, SourceSpec::Oci { .. }));
    }

    #[test]
    fn export_to_stdout_and_platform() {
        let cli = parse(&[
            "export",
            "--platform",
            "linux/arm64",
            "docker-archive:x.tar",
            "-o",
            "-",
        ])
        .unwrap();
        let Command::Export(args) = cli.command else {
            panic!("not export")
        };
        assert_eq!(args.output, PathBuf::from("-"));
        assert_eq!(args.source.platform.architecture, "arm64");
    }

    #[test]
    fn build_defaults_and_options() {
        let cli = parse(&["build", "oci:/l", "-o", "disk.img"]).unwrap();
        let Command::Build(args) = cli.command else {
            panic!("not build")
        };
        assert_eq!(args.table, Table::Mbr);
        assert_eq!(args.size, d2l_fs_writer::SizeSpec::Auto);
        let cli = parse(&[
            "build",
            "oci:/l",
            "-o",
            "fs.ext4",
            "--table",
            "none",
            "--size",
            "+2G",
            "--fs-uuid",
            "0123456789ab-cdef-0123-4567-89abcdef01"
                .replace("ab-", "ab")
                .as_str(),
        ]);
        assert!(cli.is_err(), "malformed uuid is a usage error");
        let cli = parse(&[
            "build",
            "oci:/l",
            "-o",
            "fs.ext4",
            "--table",
            "none",
            "--size",
            "+2G",
            "--fs-uuid",
            "01234567-89ab-cdef-0123-456789abcdef",
        ])
        .unwrap();
        let Command::Build(args) = cli.command else {
            panic!("not build")
        };
        assert_eq!(args.table, Table::None);
        assert_eq!(args.size, d2l_fs_writer::SizeSpec::Extra(2 << 30));
        assert_eq!(args.fs_uuid.unwrap()[..2], [0x01, 0x23]);
        assert!(parse(&["build", "oci:/l", "-o", "x", "--size", "lots"]).is_err());
        for bad in [
            "",
            "+",
            "-1G",
            "4IIII",
            "99999999999999999999",
            "17179869184T",
            "4 G",
        ] {
            let e = build_args(&[&format!("--size={bad}")]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad:?}");
            assert!(e.to_string().contains("+SIZE"), "{bad:?}: {e}");
        }
        for bad in [
            "0123456é-89ab-cdef-0123-456789abcdef",
            "+1234567-89ab-cdef-0123-456789abcdef",
            "",
        ] {
            let e = build_args(&[&format!("--fs-uuid={bad}")]).unwrap_err();
            assert!(e.to_string().contains("8-4-4-4-12"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn build_from_a_dockerfile() {
        let cli = parse(&["build", "-f", "img/Dockerfile", "-o", "x.img"]).unwrap();
        let Command::Build(args) = cli.command else {
            panic!("not build")
        };
        assert_eq!(
            args.source.dockerfile,
            Some(PathBuf::from("img/Dockerfile"))
        );
        assert_eq!(args.source.source, None, "CONTEXT is optional");
        let cli = parse(&[
            "build",
            "-f",
            "D",
            "ctx",
            "--build-arg",
            "A=1",
            "--build-arg",
            "B",
            "--target",
            "kernel",
            "--builder",
            "podman",
            "--platform",
            "linux/arm64",
            "-o",
            "x",
        ])
        .unwrap();
        let Command::Build(args) = cli.command else {
            panic!("not build")
        };
        let source = args.source;
        assert_eq!(source.source.as_deref(), Some("ctx"));
        assert_eq!(source.build_args, ["A=1", "B"]);
        assert_eq!(source.target.as_deref(), Some("kernel"));
        assert_eq!(source.builder, Some(d2l_image_builder::BuilderKind::Podman));
        assert_eq!(source.platform.architecture, "arm64");
        assert!(parse(&["build", "-o", "x"]).is_err(), "SOURCE or -f");
        assert!(
            parse(&["build", "oci:/l", "--target", "k", "-o", "x"]).is_err(),
            "--target needs -f"
        );
        assert!(parse(&["build", "-f", "D", "--builder", "kaniko", "-o", "x"]).is_err());
        // Without -f, SOURCE is an image.
        let cli = parse(&["build", "oci:", "-o", "x"]).unwrap();
        let Command::Build(args) = cli.command else {
            panic!("not build")
        };
        assert!(args.source.image_source().is_err());
    }

    /// Each option sits under its own heading: nothing after a flattened group (the registry
    /// options) is listed under that group's heading.
    #[test]
    fn help_headings_hold_only_their_own_options() {
        use clap::CommandFactory;
        let mut cli = Cli::command();
        cli.build();
        let registry: Vec<String> = ["creds", "cert_dir", "insecure_registry", "cache_dir"]
            .into_iter()
            .chain(["max_concurrent_downloads"])
            .map(String::from)
            .collect();
        for command in cli.get_subcommands() {
            for arg in command.get_arguments() {
                if arg.get_help_heading() == Some("Registry options") {
                    assert!(
                        registry.contains(&arg.get_id().to_string()),
                        "d2l {} --{} is listed under Registry options",
                        command.get_name(),
                        arg.get_id()
                    );
                }
            }
        }
        let build = cli.find_subcommand("build").unwrap();
        let heading = |id: &str| {
            build
                .get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_help_heading())
                .map(String::from)
        };
        assert_eq!(heading("output").as_deref(), Some("Output"));
        assert_eq!(heading("firmware").as_deref(), Some("Boot"));
        assert_eq!(heading("format").as_deref(), Some("Disk image format"));
        assert_eq!(heading("cpus").as_deref(), Some("Virtual hardware (.ova)"));
        assert_eq!(
            heading("memory").as_deref(),
            Some("Virtual hardware (.ova)")
        );
    }

    #[test]
    fn archives_take_only_the_options_that_fit_them() {
        let build = |args: &[&str]| {
            let mut all = vec!["build", "oci:/l"];
            all.extend_from_slice(args);
            parse(&all)
        };
        let cli = build(&["-o", "vm.ova", "--cpus", "4", "--memory", "4096"]).unwrap();
        let Command::Build(args) = cli.command else {
            panic!("not build")
        };
        assert_eq!(args.hardware.cpus, Some(4));
        assert_eq!(args.hardware.memory, Some(d2l_fs_writer::ByteSize(4 << 30)));
        assert!(build(&["-o", "x.box", "--compress"]).is_ok());
        assert!(build(&["-o", "x.tar.gz", "--table", "none"]).is_ok());
        let refused: [(&[&str], &str); 9] = [
            (&["-o", "vm.ova", "--cpus", "0"], "--cpus"),
            (&["-o", "vm.ova", "--cpus", "65"], "--cpus"),
            (
                &["-o", "x.img", "--cpus", "2"],
                "--cpus is for .ova outputs",
            ),
            (
                &["-o", "x.box", "--memory", "1G"],
                "--memory is for .ova outputs",
            ),
            (&["-o", "vm.ova", "--memory", "8M"], "too little"),
            (
                &["-o", "vm.ova", "--format", "vmdk"],
                "--format: vm.ova is an OVA",
            ),
            (
                &["-o", "i.tgz", "--compress"],
                "--compress: i.tgz is a Compute Engine image",
            ),
            (
                &["-o", "d.box", "--vhd-subformat", "fixed"],
                "--vhd-subformat",
            ),
            (&["-o", "vm.ova", "--table", "none"], "--table none"),
        ];
        for (args, needle) in refused {
            let e = build(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
            assert!(e.to_string().contains(needle), "{args:?}: {e}");
        }
        let e = parse(&["convert", "a.img", "b.box"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("d2l convert writes disk images, not vagrant archives"),
            "{e}"
        );
    }

    #[test]
    fn install_options() {
        let cli = parse(&["build", "debian:bookworm", "-o", "x"]).unwrap();
        let Command::Build(args) = cli.command else {
            panic!("not build")
        };
        assert_eq!(args.install.install_kernel, InstallKernel::Auto);
        assert!(args.install.packages.is_empty());
        let cli = parse(&[
            "build",
            "debian:bookworm",
            "--install",
            "openssh-server",
            "--install",
            "curl",
            "--install-kernel",
            "never",
            "--builder",
            "podman",
            "-o",
            "x",
        ])
        .unwrap();
        let Command::Build(args) = cli.command else {
            panic!("not build")
        };
        assert_eq!(args.install.packages, ["openssh-server", "curl"]);
        assert_eq!(args.install.install_kernel, InstallKernel::Never);
        assert_eq!(
            args.source.builder,
            Some(d2l_image_builder::BuilderKind::Podman),
            "--builder serves the kernel recipe too"
        );
        assert!(
            parse(&["build", "-f", "D", "--install", "curl", "-o", "x"]).is_err(),
            "with -f, the Dockerfile installs what it needs"
        );
        assert!(parse(&["build", "s", "--install-kernel", "always", "-o", "x"]).is_err());
    }

    #[test]
    fn run_image_memory_format() {
        let cli = parse(&["run", "disk.img"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.image, PathBuf::from("disk.img"));
        assert_eq!(args.memory, d2l_fs_writer::ByteSize(1 << 30));
        assert_eq!(args.format, None);
        let cli = parse(&["run", "--memory", "2G", "--format", "qcow2", "d.qcow2"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.memory, d2l_fs_writer::ByteSize(2 << 30));
        assert_eq!(args.format.as_deref(), Some("qcow2"));
        // A bare number is MiB, as it always was for --memory.
        let cli = parse(&["run", "--memory", "512", "d.img"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.memory, d2l_fs_writer::ByteSize(512 << 20));
        assert!(parse(&["run"]).is_err(), "missing image");
        for bad in [
            "",
            "+1G",
            "-1G",
            "1.5G",
            "4IIII",
            "1G ",
            "99999999999T",
            "１G",
        ] {
            let e = parse(&["run", &format!("--memory={bad}"), "d.img"]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad:?}");
            assert!(e.to_string().contains("--memory"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn formats_for_build_and_convert() {
        let cli = parse(&["build", "oci:/l", "-o", "linux.vdi"]).unwrap();
        let Command::Build(args) = cli.command else {
            panic!("not build")
        };
        assert_eq!(args.format.format, None);
        assert!(!args.format.compress);
        let cli = parse(&[
            "build",
            "oci:/l",
            "-o",
            "x",
            "--format",
            "vmdk",
            "--vmdk-subformat",
            "stream",
        ])
        .unwrap();
        let Command::Build(args) = cli.command else {
            panic!("not build")
        };
        assert_eq!(args.format.format, Some(d2l_disk_format::Format::Vmdk));
        assert_eq!(args.format.vmdk_subformat, Some(VmdkSubformat::Stream));
        assert!(parse(&["build", "oci:/l", "-o", "x", "--format", "vpc"]).is_err());
        let cli = parse(&["build", "oci:/l", "-o", "x", "--format", "vhdx"]).unwrap();
        let Command::Build(args) = cli.command else {
            panic!("not build")
        };
        assert_eq!(args.format.format, Some(d2l_disk_format::Format::Vhdx));
        assert!(parse(&["build", "oci:/l", "-o", "x", "--vhd-subformat", "big"]).is_err());

        let cli = parse(&[
            "convert",
            "in.qcow2",
            "out.vhd",
            "--vhd-subformat",
            "fixed",
            "--compress",
        ])
        .unwrap();
        let Command::Convert(args) = cli.command else {
            panic!("not convert")
        };
        assert_eq!(args.input, PathBuf::from("in.qcow2"));
        assert_eq!(args.output, PathBuf::from("out.vhd"));
        assert_eq!(args.format.vhd_subformat, Some(VhdSubformat::Fixed));
        assert!(args.format.compress);
        assert!(parse(&["convert", "in.img"]).is_err(), "missing OUT");
    }

    #[test]
    fn usage_errors() {
        assert!(parse(&["export", "oci:/x"]).is_err(), "missing -o");
        assert!(parse(&["inspect"]).is_err(), "missing source");
        assert!(
            parse(&["inspect", "oci:/x", "--platform", "linux"]).is_err(),
            "bad platform"
        );
        assert!(parse(&["frobnicate"]).is_err());
        let cli = parse(&["inspect", "--json", "debian:bookworm"]).unwrap();
        let Command::Inspect(args) = cli.command else {
            panic!("not inspect")
        };
        assert!(args.json);
    }

    #[test]
    fn registry_options_on_every_source() {
        let cli = parse(&[
            "build",
            "localhost:5000/app",
            "-o",
            "x.img",
            "--creds",
            "u:p:w",
            "--cert-dir",
            "/certs",
            "--insecure-registry",
            "localhost:5000",
            "--cache-dir",
            "/c",
        ])
        .unwrap();
        let Command::Build(args) = cli.command else {
            panic!("not build")
        };
        let registry = args.source.registry;
        assert_eq!(registry.creds.unwrap().password.expose(), "p:w");
        assert_eq!(registry.cert_dir, vec![PathBuf::from("/certs")]);
        assert_eq!(
            registry.insecure_registry,
            vec!["localhost:5000".to_owned()]
        );
        assert_eq!(registry.cache_dir, Some(PathBuf::from("/c")));
        assert_eq!(registry.max_concurrent_downloads, 3);
        assert!(parse(&["inspect", "x", "--creds", "nocolon"]).is_err());
        assert!(parse(&["pull", "debian:bookworm", "--platform", "linux/arm64"]).is_ok());
        assert!(parse(&["cache", "ls", "--cache-dir", "/c"]).is_ok());
        assert!(parse(&["cache", "prune", "--all"]).is_ok());
    }
}
