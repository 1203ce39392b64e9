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
    /// Print more about what happens (repeat for more).
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
    Pull(crate::commands::pull::PullArgs),
    /// List or prune the cache of pulled blobs.
    #[command(subcommand)]
    Cache(crate::commands::cache::CacheCommand),
    /// Convert a disk image (raw, qcow2, VDI, VMDK or VHD) to another format.
    Convert(ConvertArgs),
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
    /// Trust the CA certificates (*.crt) in this directory too.
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
    #[arg(short, long, value_name = "FILE")]
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
    /// The image builder to run (default: the first of these found on PATH).
    #[arg(long, value_name = "buildah|podman|docker", requires = "dockerfile")]
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

/// `d2l build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub source: BuildSourceArgs,
    /// Output file.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Partition table; `none` writes the bare filesystem and implies no boot loader.
    #[arg(long, value_enum, default_value = "mbr")]
    pub table: Table,
    /// Size: `auto` (content + 25% or at least 512 MiB free), `4G` (exactly: the whole disk,
    /// or the filesystem with --table none), or `+2G` (content + 2 GiB free).
    #[arg(long, default_value = "auto", value_name = "auto|SIZE|+SIZE")]
    pub size: d2l_fs_writer::SizeSpec,
    /// Filesystem UUID (default: derived from the image's config digest, so the same image
    /// gives the same filesystem).
    #[arg(long, value_name = "UUID", value_parser = d2l_fs_writer::parse_uuid)]
    pub fs_uuid: Option<[u8; 16]>,
    /// Boot loader on the disk (`none` with `--table none`).
    #[arg(long, value_enum, default_value = "extlinux")]
    pub boot: Boot,
    /// Take syslinux's pieces (ldlinux.bss, ldlinux.sys, ldlinux.c32, mbr.bin, gptmbr.bin)
    /// from this directory instead of the host's syslinux packages.
    #[arg(long, value_name = "DIR")]
    pub syslinux_dir: Option<PathBuf>,
    /// Kernel to boot, a path inside the image (default: the newest one found).
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<String>,
    /// Initrd to boot with, a path inside the image (default: the kernel's).
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<String>,
    /// More kernel command line, after d2l's (root=UUID=... console=...).
    #[arg(long, value_name = "ARGS", default_value = "")]
    pub cmdline: String,
    /// Host name of the machine (/etc/hostname, /etc/hosts).
    #[arg(long, default_value = "d2l")]
    pub hostname: String,
    /// Root password, stored as a SHA-512 crypt hash in /etc/shadow.
    #[arg(long, value_name = "PASSWORD", conflicts_with = "root_password_file")]
    pub root_password: Option<String>,
    /// Read the root password from a file (its first line).
    #[arg(long, value_name = "FILE")]
    pub root_password_file: Option<PathBuf>,
    /// Leave the image's files as they are: no fstab, hostname, machine-id or password.
    #[arg(long)]
    pub no_prepare: bool,
    #[command(flatten)]
    pub apply: ApplyArgs,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// The output's disk image format.
#[derive(Debug, Args)]
pub struct FormatArgs {
    /// Disk image format (default: from the output's extension: .img/.raw raw, .qcow2,
    /// .vdi, .vmdk, .vhd; raw for any other).
    #[arg(long, value_name = "raw|qcow2|vdi|vmdk|vhd")]
    pub format: Option<d2l_disk_format::Format>,
    /// qcow2: deflate the clusters (smaller, slower to write).
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
    /// The image to read: raw, qcow2, VDI, VMDK or VHD (detected from its content).
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// The image to write.
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// Boot loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Boot {
    /// extlinux (syslinux for ext4), installed without root or a mount.
    Extlinux,
    /// No boot loader.
    None,
}

/// `d2l inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `d2l run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The disk image to boot.
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// Guest memory: MiB, or with a suffix K, M, G (1024-based).
    #[arg(short, long, default_value = "1G", value_name = "SIZE")]
    pub memory: String,
    /// Disk format as QEMU names it (raw, qcow2, vdi, vmdk, vpc, vhdx); detected from the
    /// file's magic bytes by default.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("d2l").chain(args.iter().copied()))
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

    #[test]
    fn run_image_memory_format() {
        let cli = parse(&["run", "disk.img"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.image, PathBuf::from("disk.img"));
        assert_eq!(args.memory, "1G");
        assert_eq!(args.format, None);
        let cli = parse(&["run", "--memory", "2G", "--format", "qcow2", "d.qcow2"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.memory, "2G");
        assert_eq!(args.format.as_deref(), Some("qcow2"));
        assert!(parse(&["run"]).is_err(), "missing image");
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
        assert!(parse(&["build", "oci:/l", "-o", "x", "--format", "vhdx"]).is_err());
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
