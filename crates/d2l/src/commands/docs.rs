//! `d2l completions SHELL` and the hidden `d2l man --dir DIR`: what clap's definitions say,
//! as a shell completion script and as manual pages, so neither can drift from the options.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::output::{Destination, Output};

pub fn completions(args: CompletionsArgs) -> Result<()> {
    let mut cli = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cli, "d2l", &mut out);
    Ok(())
}

/// `d2l.1`, then `d2l-COMMAND.1` for each visible command.
pub fn man(args: ManArgs) -> Result<()> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let mut cli = Cli::command();
    cli.build();
    write_page(dir, "d2l", &cli)?;
    for command in cli
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
    {
        let name = format!("d2l-{}", command.get_name());
        let command = command.clone().name(name.clone());
        write_page(dir, &name, &command)?;
    }
    Ok(())
}

fn write_page(dir: &Path, name: &str, command: &clap::Command) -> Result<()> {
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut page)
        .with_context(|| format!("rendering {name}.1"))?;
    Output::create(&path)?.write_with(|out| {
        let Destination::File(mut file) = out else {
            unreachable!("a path, not standard output")
        };
        file.write_all(&page)
            .with_context(|| format!("{}: cannot write", path.display()))
    })
}
