//! `d2l build` of a stock distribution image (`debian:bookworm`), which has no kernel: the
//! image's `/etc/os-release` picks a recipe (d2l_image_builder's `recipe_for`), the user's
//! image builder runs it on a Containerfile `FROM` the image d2l already has (handed over as
//! an OCI archive, see `d2l_registry::write_oci_archive`), and the build goes on with the
//! result. The result is kept in d2l's cache (`DIR/built/`), keyed by the base image's digest,
//! the platform and the recipe's text, so the next build of the same image runs no builder.
//!
//! The kernel is looked for in the flattened tree, so a first build applies the base image's
//! layers once before knowing it needs a recipe (cheap: stock images are small). A later one
//! finds the cached result before applying anything, from the base's digest and the
//! os-release recorded with it.

use std::fmt;
use std::path::Path;

use anyhow::{Context, Result};
use d2l_image_builder::{
    recipe_for, ArchiveFormat, BuildRequest, Builder, BuilderKind, BuiltImage, OsRelease, Recipe,
};
use d2l_registry::remote::{default_cache_dir, BlobCache, BuiltRecord};
use d2l_registry::{Digest, Image, SourceSpec};
use d2l_rootfs::{ContentStore, Rootfs};

use crate::cli::{BuildArgs, InstallKernel};
use crate::output;

/// Where os-release(5) may be, in order.
const OS_RELEASE: [&[u8]; 2] = [b"/etc/os-release", b"/usr/lib/os-release"];
/// More than any os-release holds; a larger one is not read.
const OS_RELEASE_LIMIT: u64 = 64 << 10;
/// Bump when the cached results of older d2l versions must not be reused.
const CACHE_KEY_VERSION: u32 = 1;

/// Running recipes, as the command line asks.
pub struct Recipes {
    /// Install a kernel when the image has none (`--install-kernel auto`).
    kernel: bool,
    /// `--install` packages.
    installs: Vec<String>,
    builder: Option<BuilderKind>,
    cache: BlobCache,
    quiet: bool,
    verbose: bool,
}

/// What the flattened image lacks: the reason to run a recipe. An error value, so that a
/// build can stop at the point where it is known and start again from the builder's result.
#[derive(Debug)]
pub struct NeedsRecipe {
    /// The image's os-release text, if it has one.
    os_release: Option<String>,
    /// It has no kernel (else only `--install` packages are wanted).
    kernel: bool,
}

impl fmt::Display for NeedsRecipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kernel {
            f.write_str("the image has no kernel")
        } else {
            f.write_str("packages to install")
        }
    }
}

impl std::error::Error for NeedsRecipe {}

impl Recipes {
    /// The recipes the command line allows: none with `-f` (the Dockerfile is the recipe),
    /// or with `--install-kernel never` (or `--kernel`, or a disk that does not `boot`) and
    /// no `--install`. Checks `--install` values now.
    pub fn from_args(
        args: &BuildArgs,
        boot: bool,
        verbose: bool,
        quiet: bool,
    ) -> Result<Option<Recipes>> {
        if args.source.dockerfile.is_some() {
            return Ok(None);
        }
        let kernel =
            boot && args.install.install_kernel == InstallKernel::Auto && args.kernel.is_none();
        let installs = args.install.packages.clone();
        if !kernel && installs.is_empty() {
            return Ok(None);
        }
        for package in &installs {
            d2l_image_builder::check_package(package)?;
        }
        let dir = match &args.source.registry.cache_dir {
            Some(dir) => dir.clone(),
            None => default_cache_dir().context(
                "no cache directory for built images: set $XDG_CACHE_HOME or $HOME, or give \
                 --cache-dir",
            )?,
        };
        Ok(Some(Recipes {
            kernel,
            installs,
            builder: args.source.builder,
            cache: BlobCache::new(dir),
            quiet,
            verbose,
        }))
    }

    /// Whether the flattened image needs a recipe: it has no kernel (and one is to be
    /// installed), or packages were asked for.
    pub fn needed<S: ContentStore>(&self, rootfs: &mut Rootfs<S>) -> Option<NeedsRecipe> {
        let no_kernel = self.kernel && d2l_bootloader::find_kernel(rootfs, None, None).is_err();
        if !no_kernel && self.installs.is_empty() {
            return None;
        }
        let os_release = OS_RELEASE.iter().find_map(|path| {
            rootfs
                .read_file(path, OS_RELEASE_LIMIT)
                .ok()
                .flatten()
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        });
        Some(NeedsRecipe {
            os_release,
            kernel: no_kernel,
        })
    }

    /// The source to build instead of `image`, when an earlier build left its result in
    /// the cache: looked up before any layer is applied.
    pub fn cached(&self, image: &Image) -> Result<Option<SourceSpec>> {
        let base = base_digest(image);
        let platform = image.platform.to_string();
        let records = self
            .cache
            .built_images()
            .with_context(|| self.cache.root().display().to_string())?;
        for record in records {
            if record.base_digest != base || record.platform != platform {
                continue;
            }
            if record.kernel != self.kernel || record.installs != self.installs {
                continue;
            }
            let os = record.os_release.as_deref().map(OsRelease::parse);
            let Ok(recipe) = recipe_for(
                os.as_ref(),
                &image.platform.architecture,
                record.kernel,
                &self.installs,
            ) else {
                continue;
            };
            if cache_key(&base, &platform, &recipe) == record.key {
                self.say(format!(
                    "{}: {} (cached, built earlier from {})",
                    image.source, recipe.summary, record.base
                ));
                return Ok(Some(self.source_of(&record)));
            }
        }
        Ok(None)
    }

    /// Runs the recipe `needs` calls for on `image`, keeps the result in the cache and
    /// returns it as the source to build. The builder's scratch files go beside `output`.
    pub fn build(&self, image: &Image, needs: &NeedsRecipe, output: &Path) -> Result<SourceSpec> {
        let os = needs.os_release.as_deref().map(OsRelease::parse);
        let recipe = recipe_for(
            os.as_ref(),
            &image.platform.architecture,
            needs.kernel,
            &self.installs,
        )
        .with_context(|| format!("{}: {needs}", image.source))?;
        let base = base_digest(image);
        let platform = image.platform.to_string();
        let key = cache_key(&base, &platform, &recipe);
        if let Some(record) = self
            .cache
            .built_images()?
            .into_iter()
            .find(|r| r.key == key)
        {
            self.say(format!("{}: {} (cached)", image.source, recipe.summary));
            return Ok(self.source_of(&record));
        }

        let builder = Builder::find(self.builder).with_context(|| {
            format!(
                "{}: {needs}, and installing one needs an image builder",
                image.source
            )
        })?;
        self.say(format!(
            "{}: {needs}: {}, with {} ({})",
            image.source,
            recipe.summary,
            builder.kind,
            builder.program.display()
        ));
        let scratch = super::dockerfile::scratch_dir(output)?;
        let built = self
            .run_builder(&builder, image, &recipe, scratch.path())
            .inspect_err(|_| output::untrack(scratch.path()))
            .with_context(|| format!("installing into {} with {}", image.source, builder.kind))?;
        let archive = built.archive();
        let size = std::fs::metadata(archive)
            .with_context(|| archive.display().to_string())?
            .len();
        let record = BuiltRecord {
            key,
            base: image.source.clone(),
            base_digest: base,
            platform,
            os_release: needs.os_release.clone(),
            kernel: needs.kernel,
            installs: self.installs.clone(),
            summary: recipe.summary.clone(),
            format: match built.format() {
                ArchiveFormat::OciArchive => "oci-archive".into(),
                ArchiveFormat::DockerArchive => "docker-archive".into(),
            },
            size,
        };
        let stored = {
            let _lock = self.cache.lock_shared()?;
            self.cache.store_built(&record, archive)?
        };
        drop(built);
        output::untrack(scratch.path());
        drop(scratch);
        self.say(format!("kept the result in {}", stored.display()));
        Ok(self.source_of(&record))
    }

    /// Writes the base image, the Containerfile and an empty context into `dir`, runs the
    /// builder; its result (inside `dir`).
    fn run_builder(
        &self,
        builder: &Builder,
        image: &Image,
        recipe: &Recipe,
        dir: &Path,
    ) -> Result<BuiltImage> {
        let dir = std::path::absolute(dir).with_context(|| dir.display().to_string())?;
        let base_path = dir.join("base.tar");
        let file = std::fs::File::create(&base_path)
            .with_context(|| format!("{}: cannot create", base_path.display()))?;
        d2l_registry::write_oci_archive(image, std::io::BufWriter::new(file), &base_path)
            .with_context(|| format!("handing {} to {}", image.source, builder.kind))?;
        let base = builder.base_image(&base_path)?;
        let containerfile = recipe.containerfile(&base.reference);
        if self.verbose && !self.quiet {
            eprintln!("d2l: the generated Containerfile:\n{containerfile}");
        }
        let containerfile_path = dir.join("Containerfile");
        let context = dir.join("context");
        std::fs::write(&containerfile_path, &containerfile)
            .and_then(|()| std::fs::create_dir(&context))
            .with_context(|| format!("{}: cannot write", dir.display()))?;
        let mut request = BuildRequest::new(
            &containerfile_path,
            Some(&context),
            &image.platform.to_string(),
        )?;
        request.quiet = self.quiet;
        let out_dir = tempfile::tempdir_in(&dir).with_context(|| dir.display().to_string())?;
        let built = builder.build(&request, out_dir)?;
        // The base is no longer needed: free its space before the result is copied.
        drop(base);
        let _ = std::fs::remove_file(&base_path);
        Ok(built)
    }

    fn source_of(&self, record: &BuiltRecord) -> SourceSpec {
        let file = self.cache.built_archive(&record.key);
        if record.format == "docker-archive" {
            SourceSpec::DockerArchive {
                file,
                name_tag: None,
            }
        } else {
            SourceSpec::OciArchive {
                file,
                reference: None,
            }
        }
    }

    fn say(&self, line: String) {
        if !self.quiet {
            eprintln!("d2l: {line}");
        }
    }
}

/// The base image's identity: its manifest digest (the config digest for a `docker save`
/// archive, which has no manifest).
fn base_digest(image: &Image) -> String {
    image
        .manifest_digest
        .as_ref()
        .unwrap_or(&image.config_digest)
        .to_string()
}

/// The cache key of `recipe` run on the image `base` for `platform`.
fn cache_key(base: &str, platform: &str, recipe: &Recipe) -> String {
    let text = format!(
        "d2l built image v{CACHE_KEY_VERSION}\n{base}\n{platform}\n{}",
        recipe.body()
    );
    Digest::sha256_of(text.as_bytes()).hex()[..32].to_string()
}
