//! Layers applied for tests: crafted layer tars onto any content store, and a registry image
//! (the Debian fixture) wired to layer-apply as the CLI does it.

use d2l_layer_apply::{apply_layers, Applier, ApplyOptions, BlobDescriptor, BlobError, Layers};
use d2l_registry::Image;
use d2l_rootfs::{ContentStore, Rootfs, SpillFile, SpillReader, Tree};

/// Applies crafted layer tars, in order (layer 1 first), to an empty rootfs on `store`;
/// panics with the failing entry when one cannot be applied.
pub fn layers<S: ContentStore>(store: S, layers: &[&[u8]]) -> Rootfs<S> {
    let mut applier = Applier::new(store, ApplyOptions::default());
    for (i, layer) in layers.iter().enumerate() {
        let number = u32::try_from(i + 1).expect("a few layers");
        if let Err(failure) = applier.apply_layer(number, *layer) {
            panic!("layer {number}: {failure:?}");
        }
    }
    applier.finish().expect("finish the rootfs")
}

/// [`layers`] on a spill file, finished: the tree and its file data.
pub fn spilled(tars: &[&[u8]]) -> (Tree, SpillReader) {
    let (tree, spill) = layers(SpillFile::new().expect("spill file"), tars).into_parts();
    (tree, spill.into_reader().expect("spill reader"))
}

/// Every layer of a registry image applied to `store`, verified, as `d2l build` does.
pub fn image<S: ContentStore>(image: &Image, store: S) -> Rootfs<S> {
    let open = |index: usize| -> Result<Box<dyn std::io::Read + Send>, BlobError> {
        Ok(image.open_unverified_layer(index)?)
    };
    let layers = Layers {
        blobs: image
            .layers
            .iter()
            .map(|l| BlobDescriptor {
                digest: l.digest.clone(),
                size: l.size,
                media_type: l.media_type.clone(),
            })
            .collect(),
        diff_ids: image.diff_ids.clone(),
        source: &open,
    };
    apply_layers(&layers, store, ApplyOptions::default())
        .expect("apply the image's layers")
        .rootfs
}
