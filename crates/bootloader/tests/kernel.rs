//! Kernel discovery on trees built from crafted layers.

use d2l_bootloader::{find_kernel, BootFiles, Error};
use d2l_rootfs::{Rootfs, SpillFile};
use d2l_testkit::layer::LayerTar;

fn rootfs(build: impl FnOnce(&mut LayerTar)) -> Rootfs<SpillFile> {
    let mut layer = LayerTar::new();
    build(&mut layer);
    d2l_testkit::apply::layers(SpillFile::new().unwrap(), &[&layer.finish()])
}

fn boot(kernel: &str, initrd: Option<&str>) -> BootFiles {
    BootFiles {
        kernel: kernel.to_owned(),
        initrd: initrd.map(str::to_owned),
        links: None,
    }
}

/// [`boot`] with the upgrade links a loader names instead.
fn linked(kernel: &str, initrd: Option<&str>, links: (&str, Option<&str>)) -> BootFiles {
    BootFiles {
        links: Some((links.0.to_owned(), links.1.map(str::to_owned))),
        ..boot(kernel, initrd)
    }
}

#[test]
fn debian_newest_version_wins_naturally() {
    let mut fs = rootfs(|l| {
        l.dir("boot")
            .file("boot/vmlinuz-6.1.0-9-amd64", b"k9")
            .file("boot/initrd.img-6.1.0-9-amd64", b"i9")
            .file("boot/vmlinuz-6.1.0-50-amd64", b"k50")
            .file("boot/initrd.img-6.1.0-50-amd64", b"i50")
            .file("boot/config-6.1.0-50-amd64", b"")
            .file("boot/System.map-6.1.0-50-amd64", b"")
            .symlink("vmlinuz", "boot/vmlinuz-6.1.0-9-amd64")
            .symlink("initrd.img", "boot/initrd.img-6.1.0-9-amd64");
    });
    assert_eq!(
        find_kernel(&mut fs, None, None).unwrap(),
        boot(
            "/boot/vmlinuz-6.1.0-50-amd64",
            Some("/boot/initrd.img-6.1.0-50-amd64")
        )
    );
}

#[test]
fn symlinks_only_resolve_to_real_files() {
    // The kernel lives elsewhere; only /vmlinuz and /initrd.img name it.
    let mut fs = rootfs(|l| {
        l.dir("usr/lib/kernel")
            .file("usr/lib/kernel/vmlinuz-6.8.0-31-generic", b"k")
            .file("usr/lib/kernel/initrd.img-6.8.0-31-generic", b"i")
            .symlink("k", "usr/lib/kernel")
            .symlink("vmlinuz", "k/vmlinuz-6.8.0-31-generic")
            .symlink("initrd.img", "/k/../k/initrd.img-6.8.0-31-generic");
    });
    // The initrd is found by version; /initrd.img does not resolve (`..` of the symlink
    // `k` is /usr/lib, as in Linux), so loaders are not given the links.
    assert_eq!(
        find_kernel(&mut fs, None, None).unwrap(),
        boot(
            "/usr/lib/kernel/vmlinuz-6.8.0-31-generic",
            Some("/usr/lib/kernel/initrd.img-6.8.0-31-generic")
        )
    );
    // Unversioned names: the /initrd.img symlink goes with the /vmlinuz one.
    let mut fs = rootfs(|l| {
        l.dir("boot")
            .file("boot/kernel", b"k")
            .file("boot/initrd", b"i")
            .symlink("vmlinuz", "boot/kernel")
            .symlink("initrd.img", "boot/initrd");
    });
    let found = find_kernel(&mut fs, None, None).unwrap();
    assert_eq!(
        found,
        linked(
            "/boot/kernel",
            Some("/boot/initrd"),
            ("/vmlinuz", Some("/initrd.img"))
        )
    );
    // Loaders name the links, so that they boot what an upgrade moves them to.
    assert_eq!(found.loader_paths(), ("/vmlinuz", Some("/initrd.img")));
}

#[test]
fn upgrade_links_are_used_whole_or_not_at_all() {
    // Debian with image_dest=/boot: the links are in /boot.
    let mut fs = rootfs(|l| {
        l.dir("boot")
            .file("boot/vmlinuz-6.1.0-50-amd64", b"k")
            .file("boot/initrd.img-6.1.0-50-amd64", b"i")
            .symlink("boot/vmlinuz", "vmlinuz-6.1.0-50-amd64")
            .symlink("boot/initrd.img", "initrd.img-6.1.0-50-amd64");
    });
    let found = find_kernel(&mut fs, None, None).unwrap();
    assert_eq!(
        found.loader_paths(),
        ("/boot/vmlinuz", Some("/boot/initrd.img"))
    );
    // The initrd link points at another kernel's initrd: neither link is used, since after
    // an upgrade the pair could name a kernel and a deleted initrd.
    let mut fs = rootfs(|l| {
        l.dir("boot")
            .file("boot/vmlinuz-6.1.0-50-amd64", b"k")
            .file("boot/initrd.img-6.1.0-50-amd64", b"i")
            .file("boot/initrd.img-6.1.0-9-amd64", b"i9")
            .symlink("vmlinuz", "boot/vmlinuz-6.1.0-50-amd64")
            .symlink("initrd.img", "boot/initrd.img-6.1.0-9-amd64");
    });
    let found = find_kernel(&mut fs, None, None).unwrap();
    assert_eq!(found.links, None);
    assert_eq!(
        found.loader_paths(),
        (
            "/boot/vmlinuz-6.1.0-50-amd64",
            Some("/boot/initrd.img-6.1.0-50-amd64")
        )
    );
    // A kernel given by hand is booted by its own name.
    let mut fs = rootfs(|l| {
        l.dir("boot")
            .file("boot/vmlinuz-6.1.0-50-amd64", b"k")
            .symlink("vmlinuz", "boot/vmlinuz-6.1.0-50-amd64");
    });
    let found = find_kernel(&mut fs, Some("/vmlinuz"), None).unwrap();
    assert_eq!(found.loader_paths(), ("/boot/vmlinuz-6.1.0-50-amd64", None));
    // No initrd anywhere: the kernel link alone.
    let found = find_kernel(&mut fs, None, None).unwrap();
    assert_eq!(found.loader_paths(), ("/vmlinuz", None));
}

#[test]
fn alpine_flavour() {
    let mut fs = rootfs(|l| {
        l.dir("boot")
            .file("boot/vmlinuz-virt", b"k")
            .file("boot/initramfs-virt", b"i")
            .file("boot/config-virt", b"");
    });
    assert_eq!(
        find_kernel(&mut fs, None, None).unwrap(),
        boot("/boot/vmlinuz-virt", Some("/boot/initramfs-virt"))
    );
}

#[test]
fn fedora_boot_and_rescue_skipped() {
    let mut fs = rootfs(|l| {
        l.dir("boot")
            .file("boot/vmlinuz-6.5.6-300.fc39.x86_64", b"k6")
            .file("boot/initramfs-6.5.6-300.fc39.x86_64.img", b"i6")
            .file("boot/vmlinuz-6.5.12-300.fc39.x86_64", b"k12")
            .file("boot/initramfs-6.5.12-300.fc39.x86_64.img", b"i12")
            .file("boot/.vmlinuz-6.5.12-300.fc39.x86_64.hmac", b"")
            .file("boot/vmlinuz-0-rescue-0123456789abcdef", b"r");
    });
    assert_eq!(
        find_kernel(&mut fs, None, None).unwrap(),
        boot(
            "/boot/vmlinuz-6.5.12-300.fc39.x86_64",
            Some("/boot/initramfs-6.5.12-300.fc39.x86_64.img")
        )
    );
}

#[test]
fn lib_modules_kernel() {
    // Fedora's container layout: /lib -> usr/lib, kernel only under modules.
    let mut fs = rootfs(|l| {
        l.symlink("lib", "usr/lib")
            .dir("usr/lib/modules/6.5.6-300.fc39.x86_64")
            .file("usr/lib/modules/6.5.6-300.fc39.x86_64/vmlinuz", b"k")
            .dir("usr/lib/modules/6.10.3-200.fc40.x86_64")
            .file("usr/lib/modules/6.10.3-200.fc40.x86_64/vmlinuz", b"k")
            .file("usr/lib/modules/6.10.3-200.fc40.x86_64/initramfs.img", b"i");
    });
    assert_eq!(
        find_kernel(&mut fs, None, None).unwrap(),
        boot(
            "/usr/lib/modules/6.10.3-200.fc40.x86_64/vmlinuz",
            Some("/usr/lib/modules/6.10.3-200.fc40.x86_64/initramfs.img")
        )
    );
}

#[test]
fn overrides() {
    let mut fs = rootfs(|l| {
        l.dir("boot")
            .file("boot/vmlinuz-6.1.0-9-amd64", b"k9")
            .file("boot/initrd.img-6.1.0-9-amd64", b"i9")
            .file("boot/vmlinuz-6.1.0-50-amd64", b"k50")
            .file("boot/initrd.img-6.1.0-50-amd64", b"i50")
            .file("opt/my-initrd", b"i")
            .symlink("opt/kernel", "../boot/vmlinuz-6.1.0-9-amd64");
    });
    // A kernel override gets its own version's initrd.
    assert_eq!(
        find_kernel(&mut fs, Some("/boot/vmlinuz-6.1.0-9-amd64"), None).unwrap(),
        boot(
            "/boot/vmlinuz-6.1.0-9-amd64",
            Some("/boot/initrd.img-6.1.0-9-amd64")
        )
    );
    // Through a symlink, and with an initrd override.
    assert_eq!(
        find_kernel(&mut fs, Some("opt/kernel"), Some("/opt/my-initrd")).unwrap(),
        boot("/boot/vmlinuz-6.1.0-9-amd64", Some("/opt/my-initrd"))
    );
    assert_eq!(
        find_kernel(&mut fs, None, Some("/opt/my-initrd")).unwrap(),
        boot("/boot/vmlinuz-6.1.0-50-amd64", Some("/opt/my-initrd"))
    );
    let err = find_kernel(&mut fs, Some("/boot/nope"), None).unwrap_err();
    assert!(matches!(err, Error::BootFile { .. }), "{err}");
    assert!(err.to_string().contains("--kernel /boot/nope"), "{err}");
    let err = find_kernel(&mut fs, None, Some("/boot")).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[test]
fn no_kernel_says_what_to_install() {
    let mut fs = rootfs(|l| {
        l.dir("boot").dir("etc").symlink("vmlinuz", "boot/missing");
    });
    let err = find_kernel(&mut fs, None, None).unwrap_err();
    assert!(matches!(err, Error::NoKernel { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("apt-get install linux-image-amd64 systemd-sysv"),
        "{msg}"
    );
    assert!(msg.contains("--boot none"), "{msg}");
}
