//! cloud-init's NoCloud seed: `user-data`, `meta-data` (with an `instance-id` derived from
//! the build when the user gives none) and `network-config`, in the directory cloud-init
//! reads before any datasource.

use d2l_rootfs::ContentStore;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::files::Files;
use crate::{CloudInitSeed, Outcome};

/// Where cloud-init looks for a local NoCloud seed.
pub(crate) const SEED_DIR: &str = "/var/lib/cloud/seed/nocloud";
const CLOUD_INIT: &[&str] = &["/usr/bin/cloud-init", "/usr/local/bin/cloud-init"];
/// Hex digits of the hash in a derived instance-id.
const INSTANCE_ID_HEX: usize = 16;

/// The instance-id d2l derives: from the build's seed and the seed files, so the same image
/// and seed give the same machine (and a new seed a new instance, which cloud-init applies).
pub(crate) fn instance_id(build_seed: &[u8], seed: &CloudInitSeed) -> String {
    let mut hash = Sha256::new();
    for part in [
        build_seed,
        &seed.user_data,
        seed.meta_data.as_deref().unwrap_or_default(),
        seed.network_config.as_deref().unwrap_or_default(),
    ] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("d2l-{}", &hex[..INSTANCE_ID_HEX])
}

/// `meta-data` as written: the user's, with `instance-id` (and `local-hostname`) added when
/// it lacks them.
pub(crate) fn meta_data(user: Option<&[u8]>, instance_id: &str, hostname: &str) -> Vec<u8> {
    let mut text = user.map(<[u8]>::to_vec).unwrap_or_default();
    let has = |key: &str, text: &[u8]| {
        text.split(|&b| b == b'\n')
            .any(|line| line.starts_with(format!("{key}:").as_bytes()))
    };
    if !text.is_empty() && !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    if !has("instance-id", &text) {
        text.extend_from_slice(format!("instance-id: {instance_id}\n").as_bytes());
    }
    if !has("local-hostname", &text) {
        text.extend_from_slice(format!("local-hostname: {hostname}\n").as_bytes());
    }
    text
}

/// Installs `seed`; an error when the image has no cloud-init.
pub(crate) fn install<S: ContentStore>(
    files: &mut Files<'_, S>,
    seed: &CloudInitSeed,
    build_seed: &[u8],
    hostname: &str,
) -> Result<Outcome> {
    if files.first(CLOUD_INIT).is_none() {
        return Err(Error::NoCloudInit {
            dir: seed.dir.clone(),
            looked: CLOUD_INIT.join(", "),
        });
    }
    let id = instance_id(build_seed, seed);
    let meta = files.root(0o755);
    files.mkdir(SEED_DIR, meta, false)?;
    // user-data may hold passwords: root's alone.
    let private = files.root(0o600);
    files.write(
        &format!("{SEED_DIR}/user-data"),
        private.clone(),
        &seed.user_data,
    )?;
    let meta_data = meta_data(seed.meta_data.as_deref(), &id, hostname);
    files.write(
        &format!("{SEED_DIR}/meta-data"),
        private.clone(),
        &meta_data,
    )?;
    let mut written = vec!["user-data", "meta-data"];
    if let Some(config) = &seed.network_config {
        files.write(&format!("{SEED_DIR}/network-config"), private, config)?;
        written.push("network-config");
    }
    let mut out = Outcome::default();
    out.change(format!(
        "cloud-init: NoCloud seed in {SEED_DIR} ({}; instance-id {})",
        written.join(", "),
        String::from_utf8_lossy(&meta_data)
            .lines()
            .find_map(|l| l.strip_prefix("instance-id:"))
            .map(str::trim)
            .unwrap_or(&id)
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(user_data: &[u8], meta: Option<&[u8]>) -> CloudInitSeed {
        CloudInitSeed {
            dir: "seed".into(),
            user_data: user_data.to_vec(),
            meta_data: meta.map(<[u8]>::to_vec),
            network_config: None,
        }
    }

    #[test]
    fn instance_id_follows_build_and_seed() {
        let a = instance_id(b"sha256:aa", &seed(b"#cloud-config\n", None));
        assert!(
            a.starts_with("d2l-") && a.len() == 4 + INSTANCE_ID_HEX,
            "{a}"
        );
        assert_eq!(
            a,
            instance_id(b"sha256:aa", &seed(b"#cloud-config\n", None))
        );
        assert_ne!(
            a,
            instance_id(b"sha256:ab", &seed(b"#cloud-config\n", None))
        );
        assert_ne!(
            a,
            instance_id(b"sha256:aa", &seed(b"#cloud-config\nx: 1\n", None))
        );
    }

    #[test]
    fn meta_data_gets_what_it_lacks() {
        assert_eq!(
            meta_data(None, "d2l-1", "box"),
            b"instance-id: d2l-1\nlocal-hostname: box\n"
        );
        assert_eq!(
            meta_data(
                Some(b"instance-id: mine\nlocal-hostname: web"),
                "d2l-1",
                "box"
            ),
            b"instance-id: mine\nlocal-hostname: web\n"
        );
        assert_eq!(
            meta_data(Some(b"local-hostname: web\n"), "d2l-1", "box"),
            b"local-hostname: web\ninstance-id: d2l-1\n"
        );
    }
}
