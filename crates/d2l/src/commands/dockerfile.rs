//! What `d2l build` reads: the image SOURCE, or with `-f` the image an image builder makes
//! from a Dockerfile first (kept as an archive next to the output until the disk is written).

use std::path::Path;

use anyhow::{Context, Result};
use d2l_image_builder::{ArchiveFormat, BuildRequest, Builder, BuiltImage};
use d2l_registry::SourceSpec;

use crate::cli::{BuildSourceArgs, RegistryArgs, SourceArgs};
use crate::output;

/// The input of `d2l build`, checked but not yet built.
pub enum Input {
    /// An image that exists.
    Image(SourceArgs),
    /// A Dockerfile to build first.
    Dockerfile {
        builder: Builder,
        request: BuildRequest,
        platform: d2l_registry::Platform,
        registry: RegistryArgs,
    },
}

impl Input {
    /// Checks what can be checked at once: SOURCE parses (a usage error, exit code 2,
    /// otherwise), or the Dockerfile and its context exist and a builder is on PATH.
    pub fn from_args(args: &BuildSourceArgs, quiet: bool) -> Result<Input> {
        let Some(dockerfile) = &args.dockerfile else {
            let source = args.image_source().unwrap_or_else(|e| e.exit());
            return Ok(Input::Image(SourceArgs {
                source,
                platform: args.platform.clone(),
                registry: args.registry.clone(),
            }));
        };
        let context = args.source.as_deref().map(Path::new);
        let mut request = BuildRequest::new(dockerfile, context, &args.platform.to_string())?;
        request.build_args = args.build_args.clone();
        request.target = args.target.clone();
        request.quiet = quiet;
        let builder = Builder::find(args.builder)?;
        Ok(Input::Dockerfile {
            builder,
            request,
            platform: args.platform.clone(),
            registry: args.registry.clone(),
        })
    }

    /// The image to read: SOURCE, or the builder's result, exported into a temporary
    /// directory beside `output` (the filesystem the user chose for a file of about this
    /// size), which lives as long as the returned [`Built`].
    pub fn resolve(self, output: &Path, quiet: bool) -> Result<(SourceArgs, Option<Built>)> {
        let (builder, request, platform, registry) = match self {
            Input::Image(source) => return Ok((source, None)),
            Input::Dockerfile {
                builder,
                request,
                platform,
                registry,
            } => (builder, request, platform, registry),
        };
        let dir = scratch_dir(output)?;
        let what = format!(
            "building {} with {}",
            request.dockerfile.display(),
            builder.kind
        );
        if !quiet {
            eprintln!("d2l: {what} ({})", builder.program.display());
        }
        let dir_path = dir.path().to_path_buf();
        let image = builder
            .build(&request, dir)
            .inspect_err(|_| output::untrack(&dir_path))
            .context(what)?;
        let file = image.archive().to_path_buf();
        let source = match image.format() {
            ArchiveFormat::OciArchive => SourceSpec::OciArchive {
                file,
                reference: None,
            },
            ArchiveFormat::DockerArchive => SourceSpec::DockerArchive {
                file,
                name_tag: None,
            },
        };
        Ok((
            SourceArgs {
                source,
                platform,
                registry,
            },
            Some(Built(image)),
        ))
    }
}

/// The image a builder made; its directory is removed when this is dropped, or by the
/// interrupt handler.
pub struct Built(BuiltImage);

impl Drop for Built {
    fn drop(&mut self) {
        output::untrack(self.0.dir());
    }
}

/// A new directory `.NAME.XXXXXX.build` beside the output `NAME`, removed on Ctrl-C too.
pub(super) fn scratch_dir(output: &Path) -> Result<tempfile::TempDir> {
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = output
        .file_name()
        .with_context(|| format!("{}: not a file name", output.display()))?;
    let dir = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".build")
        .tempdir_in(parent)
        .with_context(|| {
            format!(
                "{}: cannot create a directory in {}",
                output.display(),
                parent.display()
            )
        })?;
    output::track(dir.path());
    Ok(dir)
}
