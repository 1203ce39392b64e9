//! Making a container's root filesystem a machine's, in the tree before it is written: a
//! machine that boots with its own identity, on the network, that its user can reach.
//!
//! [`prepare`] does it all for a [`MachineOptions`], one job per module:
//!
//! - system: /etc/fstab (root by UUID), /etc/hostname, /etc/hosts, no container markers;
//! - identity: an empty machine-id, no random seed from the image;
//! - accounts: /etc/passwd, shadow, group, gshadow parsed and edited (root's password as
//!   [`sha512_crypt`], `--user` with its group, admin group and home);
//! - network: DHCP through the image's stack (systemd-networkd, ifupdown, NetworkManager,
//!   OpenRC networking);
//! - ssh: authorized keys for root or the user; the image's host keys removed and made anew
//!   on the first boot by a systemd unit or OpenRC service;
//! - cloud_init: a NoCloud seed;
//! - grow: the root partition and filesystem grow with the disk (systemd-repart, growpart).
//!
//! Every change comes back as a [`Change`] line for the build's summary; what the user
//! should know but is not an error comes back as a warning. Nothing here is random: the same
//! tree and options give the same files.
//!
//! ```
//! use d2l_machine::{prepare, MachineOptions, Network};
//! use d2l_rootfs::{Rootfs, SpillFile, Timestamp};
//! let mut rootfs = Rootfs::new(SpillFile::new().unwrap(), Timestamp::default());
//! let options = MachineOptions {
//!     network: Network::None,
//!     ..MachineOptions::new("box", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
//! };
//! let prepared = prepare(&mut rootfs, &options).unwrap();
//! assert!(prepared.changes[0].0.starts_with("wrote /etc/fstab"));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod accounts;
pub mod appliance;
mod cloud_init;
mod crypt;
mod error;
mod files;
mod grow;
mod identity;
mod init;
mod network;
mod ssh;
mod system;

use d2l_rootfs::{ContentStore, Rootfs};

pub use crypt::{salt_from, sha512_crypt};
pub use error::{Error, Result};

use accounts::{Account, Databases, NewUser};
use files::Files;
use init::Init;

/// The warning when root has no usable password and no keys.
const ROOT_LOCKED: &str = "no --root-password: root cannot log in (the image's accounts are kept)";

/// How the machine gets on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// DHCP on the first wired NIC, through the image's network stack.
    #[default]
    Dhcp,
    /// Leave the image's network configuration as it is.
    None,
}

/// Where the root filesystem lives on the disk: what can grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RootOn {
    /// A partition of an MBR disk.
    #[default]
    Mbr,
    /// A partition of a GPT disk.
    Gpt,
    /// A bare filesystem, no partition table.
    Filesystem,
}

/// A `--ssh-key` file, read by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    /// The file as the user named it, for messages.
    pub name: String,
    /// Its text: one public key, or an authorized_keys file.
    pub text: String,
}

impl KeyFile {
    /// Vagrant's insecure public keys (RSA and Ed25519), which a base box authorizes for its
    /// `vagrant` user so that `vagrant up` can log in the first time and put a key of its
    /// own in their place (Vagrant's docs, "Creating a Base Box": "Vagrant" User; the keys
    /// are published in Vagrant's repository, `keys/vagrant.pub.rsa` and
    /// `keys/vagrant.pub.ed25519`).
    pub fn vagrant_insecure() -> KeyFile {
        KeyFile {
            name: "Vagrant's insecure public keys".to_owned(),
            text: ssh::VAGRANT_INSECURE_KEYS.to_owned(),
        }
    }
}

/// A `--user` to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user name (and its group's).
    pub name: String,
    /// Its password (`--user-password`, `--user-password-file`); `None`: key logins only.
    pub password: Option<String>,
    /// It may use sudo without a password (a Vagrant box's user, as Vagrant expects):
    /// `/etc/sudoers.d/NAME`, when the image has sudo (nothing is installed).
    pub passwordless_sudo: bool,
}

/// A `--cloud-init` seed directory, read by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudInitSeed {
    /// The directory as the user named it, for messages.
    pub dir: String,
    /// `user-data`.
    pub user_data: Vec<u8>,
    /// `meta-data`, if the directory has one.
    pub meta_data: Option<Vec<u8>>,
    /// `network-config`, if the directory has one.
    pub network_config: Option<Vec<u8>>,
}

/// What [`prepare`] makes of the tree.
#[derive(Debug, Clone)]
pub struct MachineOptions {
    /// `--hostname` (d2l's default is `d2l`).
    pub hostname: String,
    /// `--root-password` or the contents of `--root-password-file` (one trailing newline
    /// already stripped by the caller); `None` keeps the image's accounts.
    pub root_password: Option<String>,
    /// The root filesystem's UUID in text form, for /etc/fstab.
    pub fs_uuid: String,
    /// Salt for password hashes (see [`salt_from`]); `None` derives one from `fs_uuid`.
    pub salt: Option<String>,
    /// Bytes that identify the build (the image's config digest): the seed of every
    /// derived identifier (cloud-init's instance-id).
    pub build_seed: Vec<u8>,
    /// `--network`.
    pub network: Network,
    /// `--ssh-key` files, for root or [`MachineOptions::user`].
    pub ssh_keys: Vec<KeyFile>,
    /// `--user`.
    pub user: Option<User>,
    /// `--cloud-init`.
    pub cloud_init: Option<CloudInitSeed>,
    /// Where the root filesystem lives.
    pub root_on: RootOn,
}

impl MachineOptions {
    /// The defaults for a machine named `hostname` whose root is the filesystem `fs_uuid`:
    /// DHCP, no password, keys, user or seed, on an MBR disk.
    pub fn new(hostname: &str, fs_uuid: &str) -> MachineOptions {
        MachineOptions {
            hostname: hostname.to_owned(),
            root_password: None,
            fs_uuid: fs_uuid.to_owned(),
            salt: None,
            build_seed: fs_uuid.as_bytes().to_vec(),
            network: Network::default(),
            ssh_keys: Vec::new(),
            user: None,
            cloud_init: None,
            root_on: RootOn::default(),
        }
    }
}

/// One change made to the tree, as a line for the build's summary, e.g.
/// `wrote /etc/fstab (root by UUID=…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change(pub String);

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What [`prepare`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prepared {
    /// Every change, in order.
    pub changes: Vec<Change>,
    /// What the user should know (the machine will lack something).
    pub warnings: Vec<String>,
    /// Arguments the kernel command line needs (e.g. `net.ifnames=0` for ifupdown).
    pub kernel_args: Vec<String>,
}

/// What one job did; jobs' outcomes add up to [`Prepared`].
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    changes: Vec<Change>,
    warnings: Vec<String>,
    kernel_args: Vec<String>,
}

impl Outcome {
    pub(crate) fn change(&mut self, line: impl Into<String>) {
        self.changes.push(Change(line.into()));
    }

    pub(crate) fn warn(&mut self, line: impl Into<String>) {
        self.warnings.push(line.into());
    }
}

impl Prepared {
    fn add(&mut self, outcome: Outcome) {
        self.changes.extend(outcome.changes);
        self.warnings.extend(outcome.warnings);
        self.kernel_args.extend(outcome.kernel_args);
    }
}

/// Makes the tree a machine's. Files written belong to root (or the user they are for)
/// with the image's newest mtime. On error the tree may be half-edited: the caller writes
/// nothing of it.
pub fn prepare(
    rootfs: &mut Rootfs<impl ContentStore>,
    options: &MachineOptions,
) -> Result<Prepared> {
    // Cheap checks of the options first, before any edit.
    system::check_hostname(&options.hostname)?;
    if let Some(user) = &options.user {
        accounts::check_user_name(&user.name)?;
    }
    for key in &options.ssh_keys {
        ssh::key_lines(key)?;
    }

    let mut files = Files::new(rootfs);
    let mut done = Prepared::default();
    let init = Init::detect(&mut files);

    let (grown, growfs) = grow::setup(&mut files, init, options.root_on)?;
    let extra: &[&str] = if growfs { &[grow::GROWFS_OPTION] } else { &[] };
    done.add(system::write(
        &mut files,
        &options.hostname,
        &options.fs_uuid,
        extra,
    )?);
    done.add(identity::reset(&mut files)?);
    let key_owner = accounts_step(&mut files, options, &mut done)?;
    if options.network == Network::Dhcp {
        done.add(network::dhcp(&mut files, init)?);
    }
    done.add(ssh::host_keys(&mut files, init)?);
    if let Some((name, account)) = key_owner {
        done.add(ssh::authorize(
            &mut files,
            &options.ssh_keys,
            &name,
            &account,
        )?);
    }
    if let Some(seed) = &options.cloud_init {
        done.add(cloud_init::install(
            &mut files,
            seed,
            &options.build_seed,
            &options.hostname,
        )?);
    }
    done.add(grown);
    Ok(done)
}

/// Root's password and `--user`: reads the databases, edits them, writes them back whole.
/// Returns whose authorized_keys the `--ssh-key`s go to, when there are any.
fn accounts_step<S: ContentStore>(
    files: &mut Files<'_, S>,
    options: &MachineOptions,
    done: &mut Prepared,
) -> Result<Option<(String, Account)>> {
    let mut db = Databases::read(files)?;
    let salt = options
        .salt
        .clone()
        .unwrap_or_else(|| salt_from(options.fs_uuid.as_bytes()));
    let days = accounts::days(files.mtime().seconds);
    let mut changed = false;
    match &options.root_password {
        Some(password) => {
            db.set_root_password(&sha512_crypt(password, &salt), days);
            changed = true;
            done.changes.push(Change(
                "set root's password in /etc/shadow (SHA-512 crypt)".to_owned(),
            ));
        }
        None => {
            let keys_for_root = options.user.is_none() && !options.ssh_keys.is_empty();
            match db.root_password() {
                Some("") => done.warnings.push(
                    "root has an empty password in the image: anyone at the console can log \
                     in as root (set one with --root-password)"
                        .to_owned(),
                ),
                Some(f) if !(f.starts_with('!') || f.starts_with('*')) => {}
                _ if keys_for_root => {}
                _ => done.warnings.push(ROOT_LOCKED.to_owned()),
            }
        }
    }
    let mut new_home = None;
    let key_owner = if let Some(user) = &options.user {
        // Each user's own salt, so two users with one password get two hashes.
        let user_salt = salt_from(format!("{salt}:{}", user.name).as_bytes());
        let added = db.add_user(&NewUser {
            name: &user.name,
            hash: user
                .password
                .as_deref()
                .map(|p| sha512_crypt(p, &user_salt)),
            days,
            shell: accounts::shell(files),
            range: accounts::new_id_range(files)?,
        })?;
        let account = added.account;
        done.changes.push(Change(format!(
            "created user {} (uid {}, gid {}{}{}), home {} from /etc/skel",
            user.name,
            account.uid,
            account.gid,
            added
                .admin
                .as_deref()
                .map(|g| format!(", in group {g}"))
                .unwrap_or_default(),
            if user.password.is_some() {
                ", with a password"
            } else {
                ", no password: keys only"
            },
            account.home,
        )));
        new_home = Some(account.clone());
        (user.name.clone(), account)
    } else {
        let root = accounts::lookup(&db.passwd, "root").unwrap_or(Account {
            uid: 0,
            gid: 0,
            home: "/root".to_owned(),
        });
        ("root".to_owned(), root)
    };
    if changed || new_home.is_some() {
        db.write(files, new_home.is_some())?;
    }
    if let Some(account) = &new_home {
        accounts::make_home(files, account)?;
    }
    if let Some(user) = options.user.as_ref().filter(|u| u.passwordless_sudo) {
        done.add(accounts::passwordless_sudo(files, &user.name)?);
    }
    Ok((!options.ssh_keys.is_empty()).then_some(key_owner))
}
