//! One module per command; each turns parsed arguments into calls on the library crates.

mod build;
mod export;
mod inspect;

use anyhow::{Context, Result};
use d2l_layer_apply::{ApplyOptions, XattrPolicy};
use d2l_registry::Image;

use crate::cli::{ApplyArgs, Cli, Command, SourceArgs};

/// Runs the command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Build(args) => build::run(args, cli.quiet),
        Command::Export(args) => export::run(args, cli.quiet),
        Command::Inspect(args) => inspect::run(args),
    }
}

/// Opens the image a command names.
fn open_image(args: &SourceArgs) -> Result<Image> {
    d2l_registry::open_image(&args.source, &args.platform)
        .with_context(|| format!("{}", args.source))
}

fn apply_options(args: &ApplyArgs) -> ApplyOptions {
    ApplyOptions {
        xattrs: XattrPolicy {
            keep_selinux: args.keep_selinux,
        },
        overlay_whiteouts: args.overlay_whiteouts,
        ..ApplyOptions::from_env()
    }
}
