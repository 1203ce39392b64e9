//! debugfs and d2l export agree.

use crate::prelude::*;

#[test]
fn debugfs_reads_every_entry_type_as_export_writes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(tmp.path(), &every_type_layers(), Compress::Gzip);
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &[]);
    let export = nodes_from_export(&source, tmp.path());
    let (mut nodes, stats) = nodes_from_image(&image, tmp.path());

    // What the crafted layers say, checked on the image directly: a bug shared by export
    // and build would pass the comparison below.
    let n = |p: &str| {
        nodes
            .get(p)
            .unwrap_or_else(|| panic!("{p} not in the image"))
    };
    let ping = n("bin/ping");
    assert_eq!((ping.mode, ping.links), (0o4755, 2));
    assert_eq!(ping.mtime, (1_700_000_000, 123_456_789));
    assert_eq!(ping.xattrs["security.capability"], CAPABILITY);
    assert_eq!(n("bin/ping6").link_group, "bin/ping");
    assert_eq!(n("files/group-c").links, 3);
    assert_eq!(n("bin/sgid").mode, 0o2755);
    assert_eq!(n("bin/all-bits").mode, 0o7777);
    assert_eq!(n("bin/none").mode, 0);
    assert_eq!((n("tmp").kind, n("tmp").mode), ("dir", 0o1777));
    assert_eq!(n("lib").content, "usr/lib");
    assert_eq!(n("slow").content, slow_target());
    let stat_of = |p: &str| {
        let ino = debugfs::batch(&image, &[format!("stat /{p}")]);
        debugfs::parse_stat(&ino[0])
    };
    assert_eq!(stat_of("lib").fast_link.as_deref(), Some("usr/lib"));
    assert_eq!(stat_of("slow").fast_link, None);
    assert_eq!(n("edge-59").content.len(), 59);
    assert_eq!(n("edge-60").content.len(), 60);
    assert_eq!(
        (n("dev/null").kind, n("dev/null").content.as_str()),
        ("char", "1:3")
    );
    assert_eq!(
        (n("dev/sda").kind, n("dev/sda").content.as_str()),
        ("block", "8:0")
    );
    assert_eq!(n("dev/big-major").content, "300:5");
    assert_eq!(n("dev/big-minor").content, "8:70000");
    assert_eq!(n("dev/both-big").content, "4095:1048575");
    assert!(!stat_of("dev/null").new_style_device);
    assert!(stat_of("dev/big-minor").new_style_device);
    assert_eq!(n("run/initctl").kind, "fifo");
    assert_eq!(
        (n("home/huge-ids").uid, n("home/huge-ids").gid),
        (4_000_000_000, 3_000_000_000)
    );
    assert_eq!(
        (n("home/user/file").uid, n("home/user/file").gid),
        (100_000, 200_000)
    );
    assert_eq!(n("times/1960").mtime, (-315_619_200, 0));
    assert_eq!(n("times/2100").mtime, (4_102_444_800, 500_000_000));
    assert_eq!(n("times/one-ns").mtime, (1_700_000_000, 1));
    assert_eq!(n("times/dir-ns").mtime, (1_600_000_000, 999_999_999));
    let acl_file = n("acl/file");
    assert_eq!(acl_file.xattrs["system.posix_acl_access"], acl(1000));
    assert_eq!(
        acl_file.xattrs["user.comment"],
        b"quote \" backslash \\ done"
    );
    assert_eq!(acl_file.xattrs["user.bin"], [0, 1, 2, 0xff, 0, b'\n']);
    assert_eq!(acl_file.xattrs.len(), 3, "trusted.* is dropped");
    assert_eq!(n("acl/dir").xattrs["system.posix_acl_default"], acl(1001));
    assert_eq!(n("files/empty").size, 0);
    assert_eq!(n("files/multi-block").content, sha256(&pattern(0, 100_001)));
    assert_eq!(n("usr/lib/libm.so").content, sha256(b"libm"));
    assert_eq!(n("usr/lib/libc.so").content, sha256(b"libc v2"));
    assert!(!nodes.contains_key("etc/secret"));
    assert!(!nodes.contains_key("var/cache/apt"));
    assert_eq!(n("var/cache/new").content, sha256(b"new"));
    assert!(stats.values().all(|s| s.kind != "socket"));

    assert_same_tree(&export, &mut nodes);
}

#[test]
fn debugfs_reads_the_debian_fixture_as_export_writes_it() {
    let debian = d2l_testkit::debian();
    let tmp = tempfile::tempdir().unwrap();
    let image = build_ok(&debian.oci, &tmp.path().join("rootfs.ext4"), &[]);
    let export = nodes_from_export(&debian.oci, tmp.path());
    let (mut nodes, _) = nodes_from_image(&image, tmp.path());
    assert!(
        nodes.len() > 5000,
        "a Debian rootfs has thousands of entries, got {}",
        nodes.len()
    );
    for removed in &debian.layer2_removed {
        assert!(
            !nodes.contains_key(removed.trim_start_matches('/')),
            "{removed}"
        );
    }
    for added in &debian.layer2_added {
        assert!(nodes.contains_key(added.trim_start_matches('/')), "{added}");
    }
    assert_same_tree(&export, &mut nodes);
}
