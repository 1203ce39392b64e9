//! The one error type of this crate.

/// What can stop a tree from becoming a machine's. Every variant names the file (a path in
/// the image, or the user's file) or the option at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or editing a file of the image tree failed.
    #[error("editing {path} in the image: {reason}")]
    Edit {
        /// The path inside the image.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A host file d2l reads (`--kernel-from host`) cannot be read.
    #[error("{path} on the host: {reason}")]
    Host {
        /// The host path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A file of the kernel being taken (`--kernel-from`) cannot be used.
    #[error("{path}: {reason}")]
    Kernel {
        /// The path and the image or host it is in.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No kernel where one was looked for.
    #[error("no kernel in {origin} (looked for {looked})")]
    NoKernel {
        /// The image or `the host`.
        origin: String,
        /// What was looked for.
        looked: String,
    },
    /// A machine option (hostname, user name, password) is not usable.
    #[error("{option}: {reason}")]
    Option {
        /// The command-line option, e.g. `--hostname`.
        option: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A line of an account database (/etc/passwd, shadow, group, gshadow) cannot be read:
    /// d2l will not rewrite a file it does not understand.
    #[error("{path} line {line}: {reason}")]
    Malformed {
        /// The file in the image.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// `--user` names a user or group the image already has.
    #[error("--user {name}: {path} already has {what}")]
    Collision {
        /// The user name asked for.
        name: String,
        /// The file that has it.
        path: String,
        /// What it has, e.g. `a user alice (uid 1000)`.
        what: String,
    },
    /// A `--ssh-key` file holds something that is not a public key.
    #[error("--ssh-key {file} line {line}: {reason}")]
    SshKey {
        /// The file as the user named it.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// `--cloud-init` was given for an image without cloud-init.
    #[error(
        "--cloud-init {dir}: the image has no cloud-init (looked for {looked}); install it in \
         the image (Debian, Ubuntu: apt-get install cloud-init; Fedora: dnf install \
         cloud-init; Alpine: apk add cloud-init) or leave --cloud-init out"
    )]
    NoCloudInit {
        /// The seed directory as given.
        dir: String,
        /// The paths looked at.
        looked: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
