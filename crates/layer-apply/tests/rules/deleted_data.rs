//! Deleted data.

use crate::helpers::*;

#[test]
fn deleted_data_is_released() {
    let mut l1 = LayerTar::new();
    l1.file("a", b"aaaa")
        .file("b", b"bbbbbbbb")
        .dir("d")
        .file("d/c", b"cc")
        .dir("e")
        .file("e/x", b"xxx")
        .file("f", b"f")
        .file("g", b"g");
    let mut l2 = LayerTar::new();
    l2.file("a", b"A")
        .whiteout("b")
        .whiteout("d")
        .opaque("e")
        .file("g", b"G1")
        .file("g", b"G2");
    let a = apply(&[l1.finish(), l2.finish()]);
    assert_eq!(
        listing(&a),
        lines(&[
            ". dir 0755 0:0",
            "a file 0644 0:0 1 \"A\"",
            "e dir 0755 0:0 1",
            "f file 0644 0:0 1 \"f\"",
            "g file 0644 0:0 1 \"G2\"",
        ])
    );
    assert_eq!(a.stored, 4 + 8 + 2 + 3 + 1 + 1 + 1 + 2 + 2);
    // a, b, d/c, e/x, g and the first G1.
    assert_eq!(a.released, 4 + 8 + 2 + 3 + 1 + 2);
    // What is left is exactly the live files' data.
    let live: u64 = a
        .tree
        .inodes()
        .filter_map(|(_, i)| i.as_file())
        .map(|f| f.stored_bytes())
        .sum();
    assert_eq!(a.stored - a.released, live);
}
