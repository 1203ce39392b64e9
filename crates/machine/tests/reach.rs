//! Reaching the machine: `--user`, `--ssh-key`, host keys made on first boot, the
//! cloud-init seed, and a root that grows.

mod common;

use common::{exists, link, mode_owner, options, rootfs, run, systemd, text};
use d2l_machine::{prepare, sha512_crypt, CloudInitSeed, Error, KeyFile, RootOn, User};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGv3yY0m5bI6bQ2u3XcB1Kk3kq0zK3l3xYc1t7m9aB7c test@host";

fn key(name: &str, text: &str) -> KeyFile {
    KeyFile {
        name: name.to_owned(),
        text: text.to_owned(),
    }
}

fn sshd(l: &mut d2l_testkit::layer::LayerTar) {
    l.file_mode("usr/sbin/sshd", b"", 0o755)
        .file_mode("usr/bin/ssh-keygen", b"", 0o755)
        .file_mode("etc/ssh/ssh_host_ed25519_key", b"private", 0o600)
        .file("etc/ssh/ssh_host_ed25519_key.pub", b"public")
        .file_mode("etc/ssh/ssh_host_rsa_key", b"private", 0o600)
        .file("etc/ssh/ssh_host_rsa_key.pub", b"public")
        .file("etc/ssh/sshd_config", b"# kept\n");
}

#[test]
fn root_keys_with_the_modes_sshd_demands() {
    let mut fs = systemd(sshd);
    let mut opts = options();
    opts.ssh_keys = vec![
        key("a.pub", &format!("{KEY}\n")),
        // An authorized_keys file: options, comments, a duplicate.
        key(
            "keys",
            &format!("# mine\n\nfrom=\"10.0.0.0/8\" {KEY}\n{KEY}\n"),
        ),
    ];
    let (changes, warnings) = run(&mut fs, &opts);
    assert!(
        warnings.is_empty(),
        "no root-password warning with keys: {warnings:?}"
    );
    assert_eq!(
        text(&mut fs, "root/.ssh/authorized_keys"),
        format!("{KEY}\nfrom=\"10.0.0.0/8\" {KEY}\n")
    );
    assert_eq!(mode_owner(&fs, "root/.ssh"), (0o700, 0, 0));
    assert_eq!(mode_owner(&fs, "root/.ssh/authorized_keys"), (0o600, 0, 0));
    assert!(changes.contains(&"ssh: 2 keys in /root/.ssh/authorized_keys (for root)".to_owned()));
}

#[test]
fn host_keys_removed_and_made_on_first_boot() {
    let mut fs = systemd(sshd);
    let (changes, _) = run(&mut fs, &options());
    for name in ["ed25519", "rsa"] {
        assert!(!exists(&fs, &format!("etc/ssh/ssh_host_{name}_key")));
        assert!(!exists(&fs, &format!("etc/ssh/ssh_host_{name}_key.pub")));
    }
    assert!(exists(&fs, "etc/ssh/sshd_config"));
    let unit = text(&mut fs, "etc/systemd/system/d2l-ssh-host-keys.service");
    assert!(
        unit.contains("ExecStart=/usr/bin/ssh-keygen -A\n"),
        "{unit}"
    );
    assert!(unit.contains("Before=ssh.service sshd.service"), "{unit}");
    assert_eq!(
        link(
            &fs,
            "etc/systemd/system/multi-user.target.wants/d2l-ssh-host-keys.service"
        )
        .as_deref(),
        Some("/etc/systemd/system/d2l-ssh-host-keys.service")
    );
    assert!(changes
        .iter()
        .any(|c| c.starts_with("ssh: removed the image's host keys")));
    // OpenRC: a service before sshd, in the default runlevel.
    let mut fs = rootfs(|l| {
        l.file_mode("sbin/openrc-run", b"", 0o755);
        sshd(l);
    });
    run(&mut fs, &options());
    let service = text(&mut fs, "etc/init.d/d2l-ssh-host-keys");
    assert!(service.starts_with("#!/sbin/openrc-run\n") && service.contains("before sshd"));
    assert_eq!(mode_owner(&fs, "etc/init.d/d2l-ssh-host-keys").0, 0o755);
    assert_eq!(
        link(&fs, "etc/runlevels/default/d2l-ssh-host-keys").as_deref(),
        Some("/etc/init.d/d2l-ssh-host-keys")
    );
}

#[test]
fn bad_key_files_name_file_and_line() {
    for (text, line, why) in [
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n",
            1,
            "private key",
        ),
        ("# only a comment\n", 0, "no public key"),
        (
            &format!("{KEY}\nhello world\n") as &str,
            2,
            "not a public key",
        ),
        ("ssh-ed25519 not*base64\n", 1, "not base64"),
    ] {
        let mut fs = systemd(sshd);
        let mut opts = options();
        opts.ssh_keys = vec![key("k.pub", text)];
        let err = prepare(&mut fs, &opts).unwrap_err();
        assert!(matches!(err, Error::SshKey { .. }));
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("--ssh-key k.pub line {line}: ")) && msg.contains(why),
            "{text:?}: {msg}"
        );
    }
}

#[test]
fn user_with_keys_password_sudo_and_skel() {
    let mut fs = systemd(|l| {
        sshd(l);
        l.file("etc/skel/.bashrc", b"# skel\n")
            .dir("etc/skel/.config")
            .file("etc/skel/.config/x", b"x")
            .symlink("etc/skel/.profile", ".bashrc");
    });
    let mut opts = options();
    opts.user = Some(User {
        name: "alice".into(),
        password: Some("secret".into()),
        passwordless_sudo: false,
    });
    opts.ssh_keys = vec![key("a.pub", KEY)];
    let (changes, warnings) = run(&mut fs, &opts);
    assert_eq!(
        warnings,
        ["no --root-password: root cannot log in (the image's accounts are kept)"]
    );
    assert!(
        changes.contains(
            &"created user alice (uid 1001, gid 1001, in group sudo, with a password), home \
              /home/alice from /etc/skel"
                .to_owned()
        ),
        "{changes:?}"
    );
    assert!(text(&mut fs, "etc/passwd").ends_with("alice:x:1001:1001::/home/alice:/bin/bash\n"));
    assert!(text(&mut fs, "etc/group").contains("sudo:x:27:alice\n"));
    assert!(text(&mut fs, "etc/gshadow").contains("sudo:*::alice\n"));
    let shadow = text(&mut fs, "etc/shadow");
    let line = shadow.lines().find(|l| l.starts_with("alice:")).unwrap();
    let hash = line.split(':').nth(1).unwrap();
    let salt = hash.split('$').nth(2).unwrap();
    assert_eq!(hash, sha512_crypt("secret", salt));
    // The databases keep their mode and owner (shadow, gshadow: root:shadow).
    assert_eq!(mode_owner(&fs, "etc/shadow"), (0o644, 0, 42));
    assert_eq!(mode_owner(&fs, "etc/gshadow").2, 42);
    assert_eq!(mode_owner(&fs, "home/alice"), (0o700, 1001, 1001));
    assert_eq!(text(&mut fs, "home/alice/.bashrc"), "# skel\n");
    assert_eq!(mode_owner(&fs, "home/alice/.config/x").1, 1001);
    assert_eq!(link(&fs, "home/alice/.profile").as_deref(), Some(".bashrc"));
    assert_eq!(
        text(&mut fs, "home/alice/.ssh/authorized_keys"),
        format!("{KEY}\n")
    );
    assert_eq!(mode_owner(&fs, "home/alice/.ssh"), (0o700, 1001, 1001));
    assert_eq!(
        mode_owner(&fs, "home/alice/.ssh/authorized_keys"),
        (0o600, 1001, 1001)
    );
    assert!(
        !exists(&fs, "root/.ssh"),
        "the keys are alice's, not root's"
    );
}

#[test]
fn vagrant_user_with_the_insecure_keys_and_sudo_without_password() {
    let mut fs = systemd(|l| {
        sshd(l);
        l.file_mode("usr/bin/sudo", b"", 0o4755);
    });
    let mut opts = options();
    opts.user = Some(User {
        name: "vagrant".into(),
        password: None,
        passwordless_sudo: true,
    });
    opts.ssh_keys = vec![KeyFile::vagrant_insecure()];
    let (changes, _) = run(&mut fs, &opts);
    let keys = text(&mut fs, "home/vagrant/.ssh/authorized_keys");
    assert_eq!(keys.lines().count(), 2, "{keys}");
    assert!(
        keys.starts_with("ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8Y")
    );
    assert!(keys.contains("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN1YdxBpNlzxDqfJyw/QKow1F+wvG9hXGoqiysfJOn5Y vagrant insecure public key\n"));
    assert_eq!(
        text(&mut fs, "etc/sudoers.d/vagrant"),
        "vagrant ALL=(ALL) NOPASSWD: ALL\n"
    );
    assert_eq!(mode_owner(&fs, "etc/sudoers.d/vagrant"), (0o440, 0, 0));
    assert!(
        changes
            .contains(&"sudo without a password for vagrant (/etc/sudoers.d/vagrant)".to_owned()),
        "{changes:?}"
    );

    // No sudo in the image: nothing installed, a warning.
    let mut fs = systemd(sshd);
    let (_, warnings) = run(&mut fs, &opts);
    assert!(!exists(&fs, "etc/sudoers.d"));
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("no sudo in the image: vagrant")),
        "{warnings:?}"
    );
}

#[test]
fn user_collisions_and_malformed_databases_are_errors() {
    let mut fs = systemd(|_| {});
    let mut opts = options();
    opts.user = Some(User {
        name: "bob".into(),
        password: None,
        passwordless_sudo: false,
    });
    let err = prepare(&mut fs, &opts).unwrap_err().to_string();
    assert_eq!(
        err,
        "--user bob: /etc/passwd already has a user bob (uid 1000)"
    );
    let mut fs = systemd(|l| {
        l.file("etc/group", b"root:x:0:\nbroken\n");
    });
    opts.user.as_mut().unwrap().name = "alice".into();
    let err = prepare(&mut fs, &opts).unwrap_err().to_string();
    assert_eq!(
        err,
        "/etc/group line 2: 1 fields separated by `:`, expected 4"
    );
    opts.user.as_mut().unwrap().name = "Alice".into();
    let err = prepare(&mut fs, &opts).unwrap_err().to_string();
    assert!(err.starts_with("--user: \"Alice\""), "{err}");
}

#[test]
fn cloud_init_seed_or_an_error() {
    let seed = CloudInitSeed {
        dir: "seed/".into(),
        user_data: b"#cloud-config\nruncmd: [touch /x]\n".to_vec(),
        meta_data: None,
        network_config: Some(b"version: 2\n".to_vec()),
    };
    let mut opts = options();
    opts.cloud_init = Some(seed);
    let mut fs = systemd(|_| {});
    let err = prepare(&mut fs, &opts).unwrap_err().to_string();
    assert!(
        err.starts_with("--cloud-init seed/: the image has no cloud-init"),
        "{err}"
    );
    let mut fs = systemd(|l| {
        l.file_mode("usr/bin/cloud-init", b"", 0o755);
    });
    let (changes, _) = run(&mut fs, &opts);
    let dir = "var/lib/cloud/seed/nocloud";
    assert_eq!(
        text(&mut fs, &format!("{dir}/user-data")),
        "#cloud-config\nruncmd: [touch /x]\n"
    );
    assert_eq!(
        text(&mut fs, &format!("{dir}/network-config")),
        "version: 2\n"
    );
    let meta = text(&mut fs, &format!("{dir}/meta-data"));
    assert!(meta.starts_with("instance-id: d2l-") && meta.ends_with("local-hostname: box\n"));
    assert_eq!(mode_owner(&fs, &format!("{dir}/user-data")), (0o600, 0, 0));
    assert!(changes
        .iter()
        .any(|c| c.starts_with("cloud-init: NoCloud seed")));
    // The same build gives the same instance-id; another build another.
    let mut again = systemd(|l| {
        l.file_mode("usr/bin/cloud-init", b"", 0o755);
    });
    run(&mut again, &opts);
    assert_eq!(text(&mut again, &format!("{dir}/meta-data")), meta);
    opts.build_seed = b"another image".to_vec();
    let mut other = systemd(|l| {
        l.file_mode("usr/bin/cloud-init", b"", 0o755);
    });
    run(&mut other, &opts);
    assert_ne!(text(&mut other, &format!("{dir}/meta-data")), meta);
}

#[test]
fn identity_is_reset() {
    let mut fs = systemd(|l| {
        l.file("etc/machine-id", b"0123456789abcdef0123456789abcdef\n")
            .file("var/lib/systemd/random-seed", b"entropy");
    });
    let (changes, _) = run(&mut fs, &options());
    assert_eq!(text(&mut fs, "etc/machine-id"), "");
    assert!(!exists(&fs, "var/lib/systemd/random-seed"));
    assert!(changes
        .contains(&"removed /var/lib/systemd/random-seed (the image's random seed)".to_owned()));
}

#[test]
fn root_grows_through_what_the_image_has() {
    let repart = |l: &mut d2l_testkit::layer::LayerTar| {
        l.file_mode("usr/bin/systemd-repart", b"", 0o755)
            .file_mode("usr/bin/growpart", b"", 0o755)
            .file_mode("usr/sbin/resize2fs", b"", 0o755);
    };
    // GPT with systemd-repart: a repart.d definition and x-systemd.growfs.
    let mut fs = systemd(repart);
    let mut opts = options();
    opts.root_on = RootOn::Gpt;
    let (changes, _) = run(&mut fs, &opts);
    assert_eq!(
        text(&mut fs, "etc/repart.d/50-d2l-root.conf"),
        "# Written by d2l: the root partition grows to fill the disk.\n\
         [Partition]\nType=root\nGrowFileSystem=yes\n"
    );
    assert!(text(&mut fs, "etc/fstab")
        .contains(" / ext4 rw,relatime,errors=remount-ro,x-systemd.growfs 0 1\n"));
    assert!(!exists(&fs, "usr/lib/d2l/growroot"));
    assert!(changes
        .iter()
        .any(|c| c.starts_with("grow: wrote /etc/repart.d")));
    // MBR: d2l's own unit with growpart.
    let mut fs = systemd(repart);
    opts.root_on = RootOn::Mbr;
    let (changes, _) = run(&mut fs, &opts);
    assert!(!exists(&fs, "etc/repart.d"));
    assert!(!text(&mut fs, "etc/fstab").contains("growfs"));
    let script = text(&mut fs, "usr/lib/d2l/growroot");
    assert!(script.starts_with("#!/bin/sh\n") && script.contains("growpart \"$disk\" \"$part\""));
    assert_eq!(mode_owner(&fs, "usr/lib/d2l/growroot").0, 0o755);
    assert!(text(&mut fs, "etc/systemd/system/d2l-growroot.service")
        .contains("ExecStart=/usr/lib/d2l/growroot\n"));
    assert_eq!(
        link(
            &fs,
            "etc/systemd/system/sysinit.target.wants/d2l-growroot.service"
        )
        .as_deref(),
        Some("/etc/systemd/system/d2l-growroot.service")
    );
    assert!(
        changes
            .iter()
            .any(|c| c.contains("(growpart, then resize2fs")),
        "{changes:?}"
    );
    // Nothing to grow with: a warning, no unit.
    let mut fs = systemd(|_| {});
    let (_, warnings) = run(&mut fs, &opts);
    assert!(
        warnings.iter().any(|w| w.contains("cloud-guest-utils")),
        "{warnings:?}"
    );
    assert!(!exists(&fs, "usr/lib/d2l"));
    // A bare filesystem: nothing at all.
    let mut fs = systemd(repart);
    opts.root_on = RootOn::Filesystem;
    let (changes, warnings) = run(&mut fs, &opts);
    assert!(!changes.iter().any(|c| c.starts_with("grow")));
    assert!(
        !warnings.iter().any(|w| w.starts_with("grow")),
        "{warnings:?}"
    );
}
