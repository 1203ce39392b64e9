//! `--kernel-from` and `--init`: any image as a machine. The kernel comes from another image
//! or the host, d2l's initramfs loads what it needs to reach the disk, and d2l's init runs
//! the image's ENTRYPOINT and CMD when the image has no init of its own.

use anyhow::{bail, Context, Result};
use d2l_init::config::{RunConfig, INIT_PATH};
use d2l_machine::appliance::{
    build_initramfs, copy_kernel, find_kernel_layout, has_own_init, host_kernel_version,
    initramfs_path, install_init, is_linuxkit, unpack_linuxkit, write_boot_file, HostSource,
    KernelLayout, KernelSource, TreeSource, INIT_ARCHITECTURE,
};
use d2l_rootfs::{ContentStore, Rootfs, SpillFile};

use super::Environment;
use crate::cli::{command_words, BuildArgs, InitChoice, KernelFrom, NetworkMode, SourceArgs};
use crate::progress::Progress;

/// The image's own init, which `--init image` hands over to after d2l's initramfs.
const IMAGE_INIT: &str = "/sbin/init";
/// Largest account database read to check the image's user.
const MAX_ACCOUNTS_BYTES: u64 = 16 << 20;

/// Where the machine's kernel comes from.
enum KernelOrigin<'a> {
    /// `--kernel-from host`.
    Host,
    /// `--kernel-from IMAGE`.
    Image(&'a d2l_registry::SourceSpec),
    /// The image's own, found at this layout.
    Own(KernelLayout),
}

/// What the machine boots, when `--kernel-from` or d2l's init decided it.
#[derive(Debug)]
pub struct Boots {
    /// The kernel and initrd, paths in the tree.
    pub kernel: String,
    /// See [`Boots::kernel`].
    pub initrd: Option<String>,
    /// Kernel arguments to add.
    pub kernel_args: Vec<String>,
    /// Lines for the build's summary.
    pub summary: Vec<String>,
    /// Whether d2l's init runs the machine (then the image's files are not made a
    /// distribution's machine: no fstab, accounts or network configuration).
    pub d2l_init: bool,
}

/// Refuses an image whose architecture d2l's init is not built for. `build` calls it before
/// looking anything up when `--init d2l` is explicit (an arm64 image would otherwise first
/// fail on arm64 GRUB missing from the host); [`prepare`] calls it once `auto` chose d2l's.
pub fn check_architecture(image: &d2l_registry::Image) -> Result<()> {
    if image.platform.architecture != INIT_ARCHITECTURE {
        bail!(
            "{}: d2l's init is built for {INIT_ARCHITECTURE} and this image is {}: use --init \
             image with an image that has an init",
            image.source,
            image.platform.architecture
        );
    }
    Ok(())
}

/// Sets the machine up as `--kernel-from` and `--init` ask; `None` when neither applies
/// (an image with its own kernel and init, or one a recipe will give them).
pub fn prepare<S: ContentStore>(
    args: &BuildArgs,
    image: &d2l_registry::Image,
    rootfs: &mut Rootfs<S>,
    fs_uuid: &str,
    (env, progress): (&Environment, &Progress),
) -> Result<Option<Boots>> {
    let init = match args.init.init {
        InitChoice::Auto if has_own_init(rootfs) => InitChoice::Image,
        InitChoice::Auto => InitChoice::D2l,
        chosen => chosen,
    };
    let d2l_init = init == InitChoice::D2l;
    // d2l's init with the image's own kernel: d2l's initramfs from its modules. Without a
    // kernel, `auto` leaves the image to a recipe (a stock image gets its distribution's
    // kernel and init); `--init d2l` asked for what cannot be.
    let origin = match &args.init.kernel_from {
        Some(KernelFrom::Host) => KernelOrigin::Host,
        Some(KernelFrom::Image(spec)) => KernelOrigin::Image(spec),
        None if !d2l_init => return Ok(None),
        None => match find_kernel_layout(&mut TreeSource::new(rootfs, &image.source), None) {
            Ok(layout) => KernelOrigin::Own(layout),
            Err(_) if args.init.init == InitChoice::Auto => return Ok(None),
            Err(_) => bail!(
                "{}: the image has no kernel for d2l's init to boot with: take one from \
                 another image with --kernel-from IMAGE, or the host's with --kernel-from host",
                image.source
            ),
        },
    };
    if d2l_init {
        check_architecture(image)?;
    }
    let run_config = if d2l_init {
        Some(run_config(args, image, rootfs)?)
    } else {
        None
    };
    let next = if d2l_init { INIT_PATH } else { IMAGE_INIT };
    let mut summary = Vec::new();
    let (kernel, initramfs, version) = match origin {
        KernelOrigin::Host => {
            let mut source = HostSource;
            let version = host_kernel_version()?;
            let layout = find_kernel_layout(&mut source, Some(&version))?;
            from_source(
                rootfs,
                &mut source,
                &layout,
                (fs_uuid, next, !d2l_init),
                &mut summary,
            )?
        }
        KernelOrigin::Image(spec) => {
            let kernel_source = SourceArgs {
                source: spec.clone(),
                platform: args.source.platform.clone(),
                registry: args.source.registry.clone(),
            };
            let kernel_image = super::open_image(&kernel_source, progress)?;
            let origin = spec.to_string();
            let spill = super::spill_file(None)?;
            let mut flat = super::flatten(
                &kernel_image,
                &kernel_source,
                &args.apply,
                env,
                spill,
                progress,
            )?;
            let mut unpacked: Rootfs<SpillFile>;
            let tree = if is_linuxkit(&mut flat.rootfs) {
                unpacked = unpack_linuxkit(&mut flat.rootfs, &origin)?;
                &mut unpacked
            } else {
                &mut flat.rootfs
            };
            let mut source = TreeSource::new(tree, &origin);
            let layout = find_kernel_layout(&mut source, None)?;
            from_source(
                rootfs,
                &mut source,
                &layout,
                (fs_uuid, next, !d2l_init),
                &mut summary,
            )?
        }
        KernelOrigin::Own(layout) => {
            let mut source = TreeSource::new(rootfs, &image.source);
            let initramfs = build_initramfs(&mut source, &layout, fs_uuid, next)?;
            (layout.image.clone(), initramfs, layout.version)
        }
    };
    let initrd = match initramfs {
        Some(initramfs) => {
            let path = initramfs_path(&version);
            write_boot_file(rootfs, &path, &initramfs.bytes)?;
            summary.push(format!(
                "d2l's initramfs {path}: {} modules ({})",
                initramfs.modules.len(),
                initramfs.modules.join(" ")
            ));
            Some(path)
        }
        None => None,
    };
    let mut kernel_args = Vec::new();
    if let Some(config) = run_config {
        summary.extend(install_init(rootfs, &config)?);
        // Without an initramfs the kernel starts the init itself.
        kernel_args.push(format!("init={INIT_PATH}"));
    }
    Ok(Some(Boots {
        kernel,
        initrd,
        kernel_args,
        summary,
        d2l_init,
    }))
}

/// The kernel of `layout` copied from `source` (with all its modules for the image's own
/// init), and d2l's initramfs for it.
fn from_source<S: ContentStore>(
    rootfs: &mut Rootfs<S>,
    source: &mut dyn KernelSource,
    layout: &KernelLayout,
    (fs_uuid, next, all_modules): (&str, &str, bool),
    summary: &mut Vec<String>,
) -> Result<(String, Option<d2l_machine::appliance::Initramfs>, String)> {
    let (kernel, lines) = copy_kernel(rootfs, source, layout, all_modules)?;
    summary.extend(lines);
    let initramfs = build_initramfs(source, layout, fs_uuid, next)?;
    Ok((kernel, initramfs, layout.version.clone()))
}

/// What d2l's init runs: the image config's ENTRYPOINT, CMD, Env, WorkingDir and User, or
/// `--entrypoint` and `--cmd`; the user and the program checked against the image now,
/// rather than on the console at boot.
fn run_config<S: ContentStore>(
    args: &BuildArgs,
    image: &d2l_registry::Image,
    rootfs: &mut Rootfs<S>,
) -> Result<RunConfig> {
    let config = image.config.config().clone().unwrap_or_default();
    let words = |option: &str, value: &Option<String>| -> Result<Option<Vec<String>>> {
        value
            .as_deref()
            .map(|v| command_words(option, v).map_err(anyhow::Error::msg))
            .transpose()
    };
    let entrypoint = words("--entrypoint", &args.init.entrypoint)?;
    let cmd = words("--cmd", &args.init.cmd)?;
    let mut argv = entrypoint
        .clone()
        .unwrap_or_else(|| config.entrypoint().clone().unwrap_or_default());
    argv.extend(match (cmd, entrypoint) {
        (Some(cmd), _) => cmd,
        // As `docker run --entrypoint`: the image's CMD belonged to its ENTRYPOINT.
        (None, Some(_)) => Vec::new(),
        (None, None) => config.cmd().clone().unwrap_or_default(),
    });
    if argv.is_empty() {
        bail!(
            "{}: the image has no ENTRYPOINT or CMD for d2l's init to run: give one with --cmd",
            image.source
        );
    }
    let env = config.env().clone().unwrap_or_default();
    let user = config.user().clone().unwrap_or_default();
    let workdir = config
        .working_dir()
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    let mut read = |path: &str| -> Result<String> {
        Ok(rootfs
            .read_file(path.as_bytes(), MAX_ACCOUNTS_BYTES)
            .with_context(|| format!("{path} in {}", image.source))?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default())
    };
    let (passwd, group) = (read("/etc/passwd")?, read("/etc/group")?);
    d2l_init::passwd::resolve_user(&user, &passwd, &group)
        .with_context(|| format!("{}: the config's User {user:?}", image.source))?;
    check_program(rootfs, &argv[0], &env, &image.source)?;
    if !args.reach.ssh_keys.is_empty()
        || args.reach.user.is_some()
        || args.reach.cloud_init.is_some()
    {
        bail!(
            "--ssh-key, --user and --cloud-init set up the image's own services, and d2l's \
             init runs only the image's command (use --init image with an image that has an \
             init)"
        );
    }
    Ok(RunConfig {
        hostname: args.hostname.clone(),
        argv,
        env,
        workdir,
        user,
        network: args.reach.network == NetworkMode::Dhcp,
    })
}

/// Whether the image has `program` (a path, or a name found on the config's PATH).
fn check_program<S: ContentStore>(
    rootfs: &mut Rootfs<S>,
    program: &str,
    env: &[String],
    source: &str,
) -> Result<()> {
    let found = if program.starts_with('/') {
        rootfs.resolve(program.as_bytes()).is_some()
    } else if program.contains('/') {
        // Relative to the working directory: found or not at boot.
        true
    } else {
        let path = env
            .iter()
            .find_map(|v| v.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        path.split(':').any(|dir| {
            rootfs
                .resolve(format!("{dir}/{program}").as_bytes())
                .is_some()
        })
    };
    if !found {
        bail!("{source}: the command's program {program:?} is not in the image");
    }
    Ok(())
}
