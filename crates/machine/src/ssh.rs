//! SSH: the user's public keys in `~/.ssh/authorized_keys` with the modes and owners sshd's
//! StrictModes demands, and host keys that belong to the machine, not the image: those baked
//! in are removed and `ssh-keygen -A` makes new ones on the first boot, before sshd starts.

use d2l_rootfs::ContentStore;

use crate::accounts::Account;
use crate::error::{Error, Result};
use crate::files::Files;
use crate::init::{self, Init};
use crate::{KeyFile, Outcome};

const SSH_DIR: &str = "/etc/ssh";
/// The prefix of host key files (`ssh_host_ed25519_key`, `.pub`, `-cert.pub`).
const HOST_KEY_PREFIX: &str = "ssh_host_";
const SSHD: &[&str] = &["/usr/sbin/sshd", "/sbin/sshd"];
const SSH_KEYGEN: &[&str] = &["/usr/bin/ssh-keygen", "/bin/ssh-keygen"];
/// The systemd unit that makes host keys.
pub(crate) const KEYGEN_UNIT: &str = "d2l-ssh-host-keys.service";
/// The OpenRC service that makes host keys.
pub(crate) const KEYGEN_SERVICE: &str = "d2l-ssh-host-keys";
/// Public key algorithms sshd accepts in authorized_keys (sshd(8), "AUTHORIZED_KEYS FILE
/// FORMAT").
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Vagrant's insecure public keys, one per line: published data (Vagrant's repository,
/// `keys/vagrant.pub.rsa` and `keys/vagrant.pub.ed25519`), the convention every base box
/// follows for its first login.
pub(crate) const VAGRANT_INSECURE_KEYS: &str = "\
ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzIw+niNltGEFHzD8+v1I2YJ6oXevct1YeS0o9HZyN1Q9qgCgzUFtdOKLv6IedplqoPkcmF0aYet2PkEDo3MlTBckFXPITAMzF8dJSIFo9D8HfdOV0IAdx4O7PtixWKn5y2hMNG0zQPyUecp4pzC6kivAIhyfHilFR61RGL+GPXQ2MWZWFYbAGjyiYJnAmCP3NOTd0jMZEnDkbUvxhMmBYSdETk1rRgm+R4LOzFUGaHqHDLKLX+FIPKcF96hrucXzcWyLbIbEgE98OHlnVYCzRdK8jlqm8tehUc9c9WhQ== vagrant insecure public key
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN1YdxBpNlzxDqfJyw/QKow1F+wvG9hXGoqiysfJOn5Y vagrant insecure public key
";

/// The systemd unit: before either name of the OpenSSH service, and before its socket.
fn keygen_unit(keygen: &str) -> String {
    format!(
        "# Written by d2l: this machine's own SSH host keys, made on its first boot.\n\
         [Unit]\n\
         Description=Generate this machine's SSH host keys (d2l)\n\
         Before=ssh.service sshd.service ssh.socket sshd.socket\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={keygen} -A\n\
         RemainAfterExit=yes\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// The OpenRC service.
fn keygen_service(keygen: &str) -> String {
    format!(
        "#!/sbin/openrc-run\n\
         # Written by d2l: this machine's own SSH host keys, made on its first boot.\n\
         description=\"Generate this machine's SSH host keys (d2l)\"\n\
         \n\
         depend() {{\n\
         \tneed localmount\n\
         \tbefore sshd\n\
         }}\n\
         \n\
         start() {{\n\
         \tebegin \"Generating SSH host keys\"\n\
         \t{keygen} -A\n\
         \teend $?\n\
         }}\n"
    )
}

/// The lines of `key`, checked: each non-blank, non-comment line must hold a public key
/// (options may come first). Returns the key lines.
pub(crate) fn key_lines(key: &KeyFile) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for (n, line) in key.text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: &str| Error::SshKey {
            file: key.name.clone(),
            line: n + 1,
            reason: reason.to_owned(),
        };
        if line.contains("PRIVATE KEY") {
            return Err(bad("a private key; give the public one (.pub)"));
        }
        if line.chars().any(char::is_control) {
            return Err(bad("control characters in a key line"));
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words
            .iter()
            .position(|w| KEY_TYPES.contains(w))
            .ok_or_else(|| {
                bad("not a public key (`TYPE BASE64 [COMMENT]`, TYPE one of ssh-ed25519, ssh-rsa, ecdsa-sha2-*, ...)")
            })?;
        let blob = words.get(at + 1).copied().unwrap_or_default();
        if blob.len() < 16
            || !blob
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
        {
            return Err(bad("the key after its type is not base64"));
        }
        lines.push(line.to_owned());
    }
    if lines.is_empty() {
        return Err(Error::SshKey {
            file: key.name.clone(),
            line: 0,
            reason: "no public key in the file".to_owned(),
        });
    }
    Ok(lines)
}

/// Adds the keys to `user`'s `~/.ssh/authorized_keys` (kept lines first, no duplicates).
pub(crate) fn authorize<S: ContentStore>(
    files: &mut Files<'_, S>,
    keys: &[KeyFile],
    user: &str,
    account: &Account,
) -> Result<Outcome> {
    let mut new = Vec::new();
    for key in keys {
        new.extend(key_lines(key)?);
    }
    let home = account.home.trim_end_matches('/');
    let dir = format!("{home}/.ssh");
    let path = format!("{dir}/authorized_keys");
    let mut text = files.read_text(&path)?.unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let mut added = 0;
    for line in new {
        if !text.lines().any(|l| l.trim() == line) {
            text.push_str(&line);
            text.push('\n');
            added += 1;
        }
    }
    // sshd's StrictModes: the directory and file writable by their owner only.
    let meta = files.meta(0o700, account.uid, account.gid);
    files.mkdir(&dir, meta, true)?;
    let meta = files.meta(0o600, account.uid, account.gid);
    files.write(&path, meta, text.as_bytes())?;
    let mut out = Outcome::default();
    out.change(format!(
        "ssh: {added} key{} in {path} (for {user})",
        if added == 1 { "" } else { "s" }
    ));
    if files.first(SSHD).is_none() {
        out.warn("ssh: the image has no sshd (openssh-server): the keys are installed, but nothing will listen on port 22");
    }
    Ok(out)
}

/// Removes the image's host keys; makes the init generate the machine's own before sshd.
pub(crate) fn host_keys<S: ContentStore>(files: &mut Files<'_, S>, init: Init) -> Result<Outcome> {
    let mut out = Outcome::default();
    let baked: Vec<String> = files
        .list(SSH_DIR)
        .into_iter()
        .filter(|n| n.starts_with(HOST_KEY_PREFIX))
        .collect();
    for name in &baked {
        files.remove(&format!("{SSH_DIR}/{name}"))?;
    }
    if !baked.is_empty() {
        out.change(format!(
            "ssh: removed the image's host keys ({SSH_DIR}/{})",
            baked.join(", ")
        ));
    }
    if files.first(SSHD).is_none() {
        return Ok(out);
    }
    let Some(keygen) = files.first(SSH_KEYGEN) else {
        out.warn("ssh: sshd but no ssh-keygen in the image: no host keys will be made, sshd will not start");
        return Ok(out);
    };
    match init {
        Init::Systemd => {
            let path = init::add_unit(
                files,
                KEYGEN_UNIT,
                &keygen_unit(keygen),
                "multi-user.target",
            )?;
            out.change(format!(
                "ssh: added {path}: new host keys (ssh-keygen -A) on first boot, before sshd"
            ));
        }
        Init::OpenRc => {
            let path = init::add_openrc_service(
                files,
                KEYGEN_SERVICE,
                &keygen_service(keygen),
                "default",
            )?;
            out.change(format!(
                "ssh: added {path}: new host keys (ssh-keygen -A) on first boot, before sshd"
            ));
        }
        Init::Unknown => out.warn(
            "ssh: no systemd or OpenRC in the image: nothing will make host keys; run \
             `ssh-keygen -A` before sshd starts",
        ),
    }
    Ok(out)
}
