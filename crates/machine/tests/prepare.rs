//! Machine preparation on trees built from crafted layers: the base files, root's
//! password, and every job's files for each kind of image.

use d2l_machine::{prepare, salt_from, sha512_crypt, MachineOptions, Network, RootOn};
use d2l_rootfs::{Rootfs, SpillFile};
use d2l_testkit::layer::LayerTar;

fn rootfs(build: impl FnOnce(&mut LayerTar)) -> Rootfs<SpillFile> {
    let mut layer = LayerTar::new();
    build(&mut layer);
    d2l_testkit::apply::layers(SpillFile::new().unwrap(), &[&layer.finish()])
}

#[test]
fn sha512_crypt_matches_the_system() {
    // Computed with glibc (`python3 -c 'import crypt; …'`) and `openssl passwd -6`.
    assert_eq!(
        sha512_crypt("pw", "salt"),
        "$6$salt$AkOOBO38SQQ8T8Q46KuCONe.8zg41nvCDKDq7pVQd2n2hy8sf8aR3G89VY.57up0eSIa/69odCCcLT4hx7FpW/"
    );
    assert_eq!(
        sha512_crypt("", "x"),
        "$6$x$QSmr1Bx2g4O6BzKvdkgOcyU6H91X6I/XBv5pSalMhSPkwdH6Beo3F455xZJg0v//bxVK5F4OE5k1.0xuR26MK0"
    );
    // Longer than one SHA-512 digest (64 bytes), a full 16-byte salt.
    let long = "a much longer password that exceeds sixty-four bytes in total length, yes really";
    assert_eq!(
        sha512_crypt(long, "abcdefghijklmnop"),
        "$6$abcdefghijklmnop$cIOnSFvvdiz7VCRUwR.f.mzozQl9LqKjBu1jT6bxztCQKC6BS14APaFdiMDl9iV7Puc.J567vCk0aQP7ytUDx/"
    );
    // And live against openssl when the host has it.
    let salt = salt_from(b"sha256:feedface");
    let Ok(out) = std::process::Command::new("openssl")
        .args(["passwd", "-6", "-salt", &salt, "pässwörd 1"])
        .output()
    else {
        eprintln!("openssl not found; live cross-check skipped");
        return;
    };
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim_end(),
        sha512_crypt("pässwörd 1", &salt)
    );
}

/// The base options: no network or growing, which the tests below check on their own.
fn options(password: Option<&str>) -> MachineOptions {
    MachineOptions {
        root_password: password.map(str::to_owned),
        salt: Some("saltstring".to_owned()),
        network: Network::None,
        root_on: RootOn::Filesystem,
        ..MachineOptions::new("box", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    }
}

/// [`prepare`]'s changes as lines, and its warnings.
fn run(fs: &mut Rootfs<SpillFile>, options: &MachineOptions) -> (Vec<String>, Vec<String>) {
    let prepared = prepare(fs, options).unwrap();
    (
        prepared.changes.iter().map(ToString::to_string).collect(),
        prepared.warnings,
    )
}

fn debian_like() -> Rootfs<SpillFile> {
    rootfs(|l| {
        l.mtime(1_700_000_000)
            .dir("etc")
            .file_owned(
                "etc/shadow",
                b"root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
                0,
                42,
            )
            .file("etc/group", b"root:x:0:\nshadow:x:42:\n")
            .file("etc/fstab", b"# UNCONFIGURED FSTAB FOR BASE SYSTEM\n")
            .file(".dockerenv", b"");
    })
}

fn text(fs: &mut Rootfs<SpillFile>, path: &str) -> String {
    String::from_utf8(fs.read_file(path.as_bytes(), 1 << 20).unwrap().unwrap()).unwrap()
}

fn mode_owner(fs: &Rootfs<SpillFile>, path: &str) -> (u16, u32, u32) {
    let inode = fs.tree().inode(fs.tree().lookup(path.as_bytes()).unwrap());
    (inode.mode, inode.uid, inode.gid)
}

#[test]
fn prepare_writes_machine_files() {
    let mut fs = debian_like();
    let (lines, warnings) = run(&mut fs, &options(Some("Hello world!")));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        lines,
        [
            "wrote /etc/fstab (root by UUID=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0)",
            "wrote /etc/hostname (box)",
            "wrote /etc/hosts (localhost, 127.0.1.1 box)",
            "removed /.dockerenv",
            "wrote an empty /etc/machine-id (systemd makes one on first boot)",
            "set root's password in /etc/shadow (SHA-512 crypt)",
        ]
    );
    assert_eq!(
        text(&mut fs, "etc/fstab"),
        "# Written by d2l.\n\
         UUID=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 / ext4 rw,relatime,errors=remount-ro 0 1\n"
    );
    assert_eq!(text(&mut fs, "etc/hostname"), "box\n");
    let hosts = text(&mut fs, "etc/hosts");
    assert!(hosts.starts_with("127.0.0.1\tlocalhost\n127.0.1.1\tbox\n"));
    assert!(hosts.contains("::1\tlocalhost ip6-localhost ip6-loopback\n"));
    assert!(hosts.contains("ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"));
    assert_eq!(text(&mut fs, "etc/machine-id"), "");
    assert!(fs.tree().lookup(b".dockerenv").is_none());
    // 1_700_000_000 s is day 19675.
    assert_eq!(
        text(&mut fs, "etc/shadow"),
        "root:$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1:19675:0:99999:7:::\n\
         daemon:*:19000:0:99999:7:::\n"
    );
    assert_eq!(mode_owner(&fs, "etc/fstab"), (0o644, 0, 0));
    assert_eq!(mode_owner(&fs, "etc/hostname"), (0o644, 0, 0));
    assert_eq!(mode_owner(&fs, "etc/hosts"), (0o644, 0, 0));
    assert_eq!(mode_owner(&fs, "etc/machine-id"), (0o444, 0, 0));
    // The existing shadow's mode and group are kept (the layer wrote 0644 root:42).
    assert_eq!(mode_owner(&fs, "etc/shadow"), (0o644, 0, 42));
    let mtime = fs
        .tree()
        .inode(fs.tree().lookup(b"etc/fstab").unwrap())
        .mtime;
    assert_eq!(mtime.seconds, 1_700_000_000);
}

#[test]
fn new_shadow_uses_the_shadow_group() {
    let mut fs = rootfs(|l| {
        l.dir("etc")
            .file("etc/group", b"root:x:0:\nshadow:x:42:\n")
            .file(".containerenv", b"");
    });
    let (changes, _) = run(&mut fs, &options(Some("pw")));
    assert!(changes.iter().any(|c| c == "removed /.containerenv"));
    assert_eq!(mode_owner(&fs, "etc/shadow"), (0o640, 0, 42));
    assert_eq!(
        text(&mut fs, "etc/shadow"),
        format!(
            "root:{}:19675:0:99999:7:::\n",
            sha512_crypt("pw", "saltstring")
        )
    );
    // Without a shadow group: 0600 root:root.
    let mut fs = rootfs(|l| {
        l.dir("etc");
    });
    prepare(&mut fs, &options(Some("pw"))).unwrap();
    assert_eq!(mode_owner(&fs, "etc/shadow"), (0o600, 0, 0));
}

#[test]
fn no_password_keeps_accounts_and_warns() {
    let mut fs = debian_like();
    let (changes, warnings) = run(&mut fs, &options(None));
    assert_eq!(
        warnings,
        ["no --root-password: root cannot log in (the image's accounts are kept)"]
    );
    assert!(!changes.iter().any(|c| c.contains("shadow")));
    assert_eq!(
        text(&mut fs, "etc/shadow"),
        "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
    );
    // A usable root password in the image: nothing to warn about.
    let mut fs = rootfs(|l| {
        l.file(
            "etc/shadow",
            format!("root:{}:1::::::\n", sha512_crypt("x", "y")).as_bytes(),
        );
    });
    let (_, warnings) = run(&mut fs, &options(None));
    assert!(warnings.is_empty(), "{warnings:?}");
    // Locked with "!".
    let mut fs = rootfs(|l| {
        l.file("etc/shadow", b"root:!:1::::::\n");
    });
    let (_, warnings) = run(&mut fs, &options(None));
    assert_eq!(warnings.len(), 1);
}

#[test]
fn bad_hostname_is_refused() {
    let mut fs = debian_like();
    let mut opts = options(None);
    opts.hostname = "two words".to_owned();
    let err = prepare(&mut fs, &opts).unwrap_err();
    assert!(err.to_string().starts_with("--hostname"), "{err}");
}
