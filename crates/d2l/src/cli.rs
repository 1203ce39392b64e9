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
    /// Flatten an image's layers and write the root filesystem as a tar archive.
    Export(ExportArgs),
    /// Show an image's manifest, config and layers.
    Inspect(InspectArgs),
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

/// `d2l inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
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
}
