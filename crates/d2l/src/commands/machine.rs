//! The user's files behind `d2l build`'s machine options (`--root-password-file`,
//! `--ssh-key`, `--user-password-file`, `--cloud-init`), read before the long steps so a bad
//! one fails the build at once, and the [`MachineOptions`] they make.

use std::path::Path;

use anyhow::{bail, Context, Result};
use d2l_disk_format::VagrantSsh;
use d2l_machine::{CloudInitSeed, KeyFile, MachineOptions, Network, RootOn, User};

use crate::cli::{BuildArgs, NetworkMode};

/// Largest `--ssh-key` or seed file read (keys are a few hundred bytes; user-data rarely
/// more than a few KiB).
const MAX_INPUT_BYTES: u64 = 1 << 20;

/// Everything read from the user's files.
#[derive(Clone)]
pub struct MachineInputs {
    pub root_password: Option<String>,
    pub user: Option<User>,
    pub ssh_keys: Vec<KeyFile>,
    pub cloud_init: Option<CloudInitSeed>,
}

impl MachineInputs {
    /// Reads them; an error names the option and the file.
    pub fn read(args: &BuildArgs) -> Result<MachineInputs> {
        let root_password = match (&args.root_password, &args.root_password_file) {
            (Some(pw), _) => Some(pw.clone()),
            (None, Some(path)) => Some(read_password("--root-password-file", path)?),
            (None, None) => None,
        };
        let reach = &args.reach;
        let user = match &reach.user {
            None => None,
            Some(name) => Some(User {
                name: name.clone(),
                password: match (&reach.user_password, &reach.user_password_file) {
                    (Some(pw), _) => Some(pw.clone()),
                    (None, Some(path)) => Some(read_password("--user-password-file", path)?),
                    (None, None) => None,
                },
                passwordless_sudo: false,
            }),
        };
        let ssh_keys = reach
            .ssh_keys
            .iter()
            .map(|path| {
                let text = read_text("--ssh-key", path)?;
                Ok(KeyFile {
                    name: path.display().to_string(),
                    text,
                })
            })
            .collect::<Result<_>>()?;
        let cloud_init = reach.cloud_init.as_deref().map(read_seed).transpose()?;
        Ok(MachineInputs {
            root_password,
            user,
            ssh_keys,
            cloud_init,
        })
    }

    /// Makes the machine a Vagrant box's, as Vagrant expects a base box: a user who may
    /// sudo without a password (when the image has sudo), reached with Vagrant's insecure
    /// keys, user `vagrant` unless `--user` names another; with `--ssh-key`, the user's own
    /// keys instead, for `--user` or root. Returns who the box's Vagrantfile logs in as.
    pub fn for_vagrant(&mut self) -> VagrantSsh {
        let own_key = !self.ssh_keys.is_empty();
        if !own_key {
            self.ssh_keys.push(KeyFile::vagrant_insecure());
            self.user.get_or_insert_with(|| User {
                name: "vagrant".to_owned(),
                password: None,
                passwordless_sudo: true,
            });
        }
        let user = match &mut self.user {
            Some(user) => {
                user.passwordless_sudo = true;
                user.name.clone()
            }
            // --ssh-key without --user: the keys are root's.
            None => "root".to_owned(),
        };
        VagrantSsh { user, own_key }
    }

    /// The machine options for a build whose filesystem is `fs_uuid`, seeded by `digest`.
    pub fn options(
        self,
        args: &BuildArgs,
        fs_uuid: &str,
        digest: &[u8],
        gpt: bool,
    ) -> MachineOptions {
        MachineOptions {
            hostname: args.hostname.clone(),
            root_password: self.root_password,
            fs_uuid: fs_uuid.to_owned(),
            salt: Some(d2l_machine::salt_from(digest)),
            build_seed: digest.to_vec(),
            network: match args.reach.network {
                NetworkMode::Dhcp => Network::Dhcp,
                NetworkMode::None => Network::None,
            },
            ssh_keys: self.ssh_keys,
            user: self.user,
            cloud_init: self.cloud_init,
            root_on: if gpt { RootOn::Gpt } else { RootOn::Mbr },
        }
    }
}

/// The first line of a password file, which must be non-empty and free of control
/// characters.
fn read_password(option: &str, path: &Path) -> Result<String> {
    let text = read_text(option, path)?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        bail!(
            "{option} {}: the first line (the password) is empty",
            path.display()
        );
    }
    if let Some((at, c)) = line.char_indices().find(|(_, c)| c.is_control()) {
        bail!(
            "{option} {}: the first line holds a control character ({c:?} at byte {at}); \
             control characters are not allowed in a password",
            path.display()
        );
    }
    Ok(line.to_string())
}

/// A small UTF-8 file.
fn read_text(option: &str, path: &Path) -> Result<String> {
    let bytes = read_bytes(option, path)?;
    String::from_utf8(bytes).with_context(|| format!("{option} {}: not UTF-8 text", path.display()))
}

fn read_bytes(option: &str, path: &Path) -> Result<Vec<u8>> {
    let what = || format!("{option} {}", path.display());
    let meta = std::fs::metadata(path).with_context(what)?;
    if !meta.is_file() {
        bail!("{}: not a regular file", what());
    }
    if meta.len() > MAX_INPUT_BYTES {
        bail!(
            "{}: {} bytes, more than {MAX_INPUT_BYTES}",
            what(),
            meta.len()
        );
    }
    std::fs::read(path).with_context(what)
}

/// A NoCloud seed directory: `user-data` required, `meta-data` and `network-config` not.
fn read_seed(dir: &Path) -> Result<CloudInitSeed> {
    if !dir.is_dir() {
        bail!("--cloud-init {}: not a directory", dir.display());
    }
    let optional = |name: &str| -> Result<Option<Vec<u8>>> {
        let path = dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            _ => read_bytes("--cloud-init", &path).map(Some),
        }
    };
    let Some(user_data) = optional("user-data")? else {
        bail!(
            "--cloud-init {}: no user-data file (a NoCloud seed needs one; meta-data and \
             network-config are optional)",
            dir.display()
        );
    };
    Ok(CloudInitSeed {
        dir: dir.display().to_string(),
        user_data,
        meta_data: optional("meta-data")?,
        network_config: optional("network-config")?,
    })
}
