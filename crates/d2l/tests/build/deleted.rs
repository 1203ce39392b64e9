//! Deleted and replaced data never reaches the image.

use crate::prelude::*;

#[test]
fn deleted_and_replaced_content_is_nowhere_in_the_image() {
    let unique = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let marker = |what: &str| format!("D2L-MARKER-{what}-{unique}");
    let deleted = marker("DELETED");
    let replaced = marker("REPLACED");
    let big_deleted = marker("BIG-DELETED");
    let in_deleted_dir = marker("IN-DELETED-DIR");
    let in_opaque_dir = marker("IN-OPAQUE-DIR");
    let deleted_xattr = marker("DELETED-XATTR");
    let deleted_name = marker("NAME");
    let kept = marker("KEPT");
    let mut lower = LayerTar::new();
    lower
        .file("etc/deleted", deleted.as_bytes())
        .file("etc/replaced", replaced.as_bytes())
        .file("etc/big-deleted", big_deleted.repeat(4000).as_bytes())
        .file("opt/gone/inside", in_deleted_dir.as_bytes())
        .file("var/opaque/inside", in_opaque_dir.as_bytes())
        .pax(&[("SCHILY.xattr.user.secret", deleted_xattr.as_bytes())])
        .file("etc/with-xattr", b"xattr carrier")
        .file(&format!("etc/{deleted_name}"), b"named")
        .file("etc/kept", kept.as_bytes());
    let mut upper = LayerTar::new();
    upper
        .whiteout("etc/deleted")
        .file("etc/replaced", b"new content")
        .whiteout("etc/big-deleted")
        .whiteout("opt/gone")
        .opaque("var/opaque")
        .file("var/opaque/other", b"other")
        .whiteout("etc/with-xattr")
        .whiteout(&format!("etc/{deleted_name}"));
    let tmp = tempfile::tempdir().unwrap();
    let source = crafted(
        tmp.path(),
        &[lower.finish(), upper.finish()],
        Compress::Gzip,
    );
    let image = build_ok(&source, &tmp.path().join("rootfs.ext4"), &[]);
    let needles = [
        &deleted,
        &replaced,
        &big_deleted,
        &in_deleted_dir,
        &in_opaque_dir,
        &deleted_xattr,
        &deleted_name,
        &kept,
    ];
    let needles: Vec<&[u8]> = needles.iter().map(|s| s.as_bytes()).collect();
    let found = find_in_file(&image, &needles);
    let leaked: Vec<&(String, u64)> = found.iter().filter(|(n, _)| n != &kept).collect();
    assert!(leaked.is_empty(), "deleted data in the image: {leaked:?}");
    // The scan works: the kept file's marker is found.
    assert_eq!(found.iter().filter(|(n, _)| n == &kept).count(), 1);
}
