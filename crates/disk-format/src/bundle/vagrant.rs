//! A Vagrant box for the libvirt provider (vagrant-libvirt's box format, version 2): an
//! uncompressed tar, which `vagrant box add` accepts, holding `metadata.json` (provider,
//! format, virtual size in GB), a `Vagrantfile` with the box's defaults (KVM, the disk on
//! virtio, the SSH user), and `box.img`, the disk as qcow2.
//!
//! `box.img` is written in disk order straight into its member (clusters as they are, or
//! deflated with `compress`), its header patched with its length afterwards. Which user
//! Vagrant logs in as, and with which key, is the machine's business (`d2l build` makes the
//! user and authorizes the key); the Vagrantfile only says who.

use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::fs::FileExt;

use super::tar::{self, BLOCK, END};
use super::{BundleOptions, VagrantSsh};
use crate::compress::Codec;
use crate::{Error, Result};

/// The disk's member (vagrant-libvirt's name for it).
pub const VAGRANT_DISK_NAME: &str = "box.img";
/// metadata.json's unit of `virtual_size`: vagrant-libvirt reads it as GB.
const GIB: u64 = 1 << 30;

/// `metadata.json` for a disk of `size` bytes: its size in whole GiB, rounded up, so the
/// machine's volume holds all of it.
pub(crate) fn metadata(size: u64) -> String {
    format!(
        "{{\"provider\":\"libvirt\",\"format\":\"qcow2\",\"virtual_size\":{}}}\n",
        size.div_ceil(GIB).max(1)
    )
}

/// `text` as a single-quoted Ruby string: only `\` and `'` need escaping there.
fn ruby_string(text: &str) -> Result<String> {
    if text.chars().any(char::is_control) {
        return Err(Error::Options(format!(
            "{text:?} cannot go into a Vagrantfile (control characters)"
        )));
    }
    Ok(format!(
        "'{}'",
        text.replace('\\', "\\\\").replace('\'', "\\'")
    ))
}

/// The box's Vagrantfile.
pub(crate) fn vagrantfile(vagrant: &VagrantSsh, uefi_only: bool) -> Result<String> {
    let user = ruby_string(&vagrant.user)?;
    let mut v = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        v,
        "# Written by d2l: the defaults of this box (provider libvirt). Settings in your own\n\
         # Vagrantfile take precedence.\n\
         Vagrant.configure(\"2\") do |config|\n\
         \x20 config.vm.provider :libvirt do |libvirt|\n\
         \x20   libvirt.driver = \"kvm\"\n\
         \x20   libvirt.disk_bus = \"virtio\"\n"
    );
    if uefi_only {
        v.push_str(
            "    # This disk boots only through UEFI: give libvirt your host's OVMF, e.g.\n\
             \x20   #   libvirt.loader = \"/usr/share/OVMF/OVMF_CODE_4M.fd\"\n",
        );
    }
    v.push_str("  end\n");
    if vagrant.own_key {
        let _ = write!(
            v,
            "  # The machine authorizes only the keys given to `d2l build --ssh-key`. Point\n\
             \x20 # Vagrant at the private half in your Vagrantfile, e.g.\n\
             \x20 #   config.ssh.private_key_path = \"~/.ssh/id_ed25519\"\n\
             \x20 config.ssh.username = {user}\n"
        );
    } else {
        let _ = write!(
            v,
            "  # Vagrant's insecure public keys are authorized for this user; `vagrant up`\n\
             \x20 # replaces them with a key of its own (config.ssh.insert_key).\n\
             \x20 config.ssh.username = {user}\n"
        );
    }
    v.push_str("end\n");
    Ok(v)
}

/// Writes the box into `out` from the first `size` bytes of `scratch`; returns the
/// archive's length.
pub(super) fn write(out: &File, scratch: &File, size: u64, options: &BundleOptions) -> Result<u64> {
    let mtime = options.disk.timestamp;
    let files = [
        ("metadata.json", metadata(size)),
        (
            "Vagrantfile",
            vagrantfile(&options.vagrant, options.uefi_only)?,
        ),
    ];
    let mut at = 0;
    for (name, text) in &files {
        let mut member = tar::ustar_header(name, text.len() as u64, mtime)?.to_vec();
        member.extend_from_slice(text.as_bytes());
        member.extend_from_slice(tar::padding(text.len() as u64));
        put(out, &member, at)?;
        at += member.len() as u64;
    }
    let disk_at = at + BLOCK;
    let codec = if options.disk.compress {
        Codec::Qcow2
    } else {
        Codec::Store
    };
    let len = crate::qcow2::write_in_order(out, disk_at, scratch, size, codec)?;
    put(out, &tar::ustar_header(VAGRANT_DISK_NAME, len, mtime)?, at)?;
    let mut tail = tar::padding(len).to_vec();
    tail.extend_from_slice(&END);
    put(out, &tail, disk_at + len)?;
    Ok(disk_at + len + tail.len() as u64)
}

/// Writes `bytes` at `offset` of the box.
fn put(out: &File, bytes: &[u8], offset: u64) -> Result<()> {
    out.write_all_at(bytes, offset)
        .map_err(Error::output("writing the Vagrant box", offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_rounds_up_to_whole_gib() {
        assert_eq!(
            metadata(1),
            "{\"provider\":\"libvirt\",\"format\":\"qcow2\",\"virtual_size\":1}\n"
        );
        assert!(metadata(GIB).contains("\"virtual_size\":1}"));
        assert!(metadata(GIB + 1).contains("\"virtual_size\":2}"));
        assert!(metadata(0).contains("\"virtual_size\":1}"));
    }

    #[test]
    fn vagrantfile_says_who_logs_in() {
        let insecure = VagrantSsh {
            user: "vagrant".into(),
            own_key: false,
        };
        let text = vagrantfile(&insecure, false).unwrap();
        assert!(text.contains("Vagrant.configure(\"2\") do |config|\n"));
        assert!(text.contains("  config.vm.provider :libvirt do |libvirt|\n    libvirt.driver = \"kvm\"\n    libvirt.disk_bus = \"virtio\"\n  end\n"));
        assert!(text.contains("  config.ssh.username = 'vagrant'\n"));
        assert!(text.contains("insecure"));
        assert!(!text.contains("private_key_path"));
        assert!(!text.contains("OVMF"));
        assert!(text.ends_with("end\n"));

        let own = VagrantSsh {
            user: "o'brien\\".into(),
            own_key: true,
        };
        let text = vagrantfile(&own, true).unwrap();
        assert!(
            text.contains("config.ssh.username = 'o\\'brien\\\\'\n"),
            "{text}"
        );
        assert!(text.contains("#   config.ssh.private_key_path"));
        assert!(text.contains("libvirt.loader"));

        let bad = VagrantSsh {
            user: "a\nb".into(),
            own_key: true,
        };
        assert!(vagrantfile(&bad, false).is_err());
    }
}
