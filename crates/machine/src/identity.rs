//! What makes two machines from one image two: no machine-id (systemd makes one on first
//! boot) and no random seed carried over from the image.

use d2l_rootfs::ContentStore;

use crate::error::Result;
use crate::files::Files;
use crate::Outcome;

const MACHINE_ID: &str = "/etc/machine-id";
/// Seed files init systems carry across boots (systemd, Debian's sysvinit urandom, OpenRC's
/// urandom, seedrng): the image's would make every machine start from the same entropy.
const RANDOM_SEEDS: &[&str] = &[
    "/var/lib/systemd/random-seed",
    "/var/lib/urandom/random-seed",
    "/var/lib/misc/random-seed",
    "/var/lib/seedrng/seed.credit",
    "/var/lib/seedrng/seed.no-credit",
];

/// Empties /etc/machine-id and removes random seeds.
pub(crate) fn reset<S: ContentStore>(files: &mut Files<'_, S>) -> Result<Outcome> {
    let mut out = Outcome::default();
    let meta = files.root(0o444);
    files.write(MACHINE_ID, meta, b"")?;
    out.change("wrote an empty /etc/machine-id (systemd makes one on first boot)");
    for seed in RANDOM_SEEDS {
        if files.remove(seed)? {
            out.change(format!("removed {seed} (the image's random seed)"));
        }
    }
    Ok(out)
}
