//! A layer's tar stream from anywhere: arbitrary bytes applied as a layer (and whatever
//! follows its end-of-archive marker as a second one) with `Applier` on a `SpillFile`, then,
//! if that worked, exported as one PAX tar with `write_tar`. Any input may be refused with an
//! error; none may panic, hang or take memory beyond the metadata it declares.
#![no_main]

use d2l_layer_apply::{write_tar, Applier, ApplyOptions};
use d2l_rootfs::SpillFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut applier = Applier::new(
        SpillFile::new().expect("spill file"),
        ApplyOptions::default(),
    );
    let Ok((rest, _)) = applier.apply_layer(1, data) else {
        return;
    };
    // The bytes after the first archive's end: a second layer, if they are not all padding.
    if rest.iter().any(|&b| b != 0) && applier.apply_layer(2, rest).is_err() {
        return;
    }
    let Ok(rootfs) = applier.finish() else {
        return;
    };
    let (tree, store) = rootfs.into_parts();
    let reader = store.into_reader().expect("spill reader");
    let _ = write_tar(&tree, &reader, &mut std::io::sink());
});
