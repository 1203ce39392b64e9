//! Layers applied for tests: crafted layer tars onto any content store, and a registry image
//! (the Debian fixture) wired to layer-apply as the CLI does it.

use std::io::Read;

use d2l_layer_apply::{
    apply_layers, Applier, ApplyOptions, BlobDescriptor, BlobError, BlobFile, BlobSource, Layers,
};
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

/// Opens the image `source` names (`oci:DIR:REF`, `oci-archive:FILE:REF`, ...); panics
/// when it cannot.
pub fn open_image(source: &str) -> Image {
    let spec = source
        .parse()
        .unwrap_or_else(|e| panic!("source {source}: {e}"));
    d2l_registry::open_image(&spec, &Default::default())
        .unwrap_or_else(|e| panic!("open {source}: {e}"))
}

/// Every layer of a registry image applied to `store`, verified, as `d2l build` does.
pub fn image<S: ContentStore>(image: &Image, store: S) -> Rootfs<S> {
    let blobs = ImageBlobs { image, files: true };
    apply_layers(&blobs.layers(), store, ApplyOptions::default())
        .expect("apply the image's layers")
        .rootfs
}

/// A registry image's layer blobs as `d2l build` hands them to layer application: streams it
/// verifies, and with `files` the host files they lie in (for the parallel gzip decoder).
pub struct ImageBlobs<'a> {
    /// The image.
    pub image: &'a Image,
    /// Whether [`BlobSource::blob_file`] tells where blobs lie.
    pub files: bool,
}

impl ImageBlobs<'_> {
    /// The image's layers, read from `self`.
    pub fn layers(&self) -> Layers<'_> {
        Layers {
            blobs: self
                .image
                .layers
                .iter()
                .map(|l| BlobDescriptor {
                    digest: l.digest.clone(),
                    size: l.size,
                    media_type: l.media_type.clone(),
                })
                .collect(),
            diff_ids: self.image.diff_ids.clone(),
            source: self,
        }
    }
}

impl BlobSource for ImageBlobs<'_> {
    fn open_blob(&self, index: usize) -> Result<Box<dyn Read + Send>, BlobError> {
        Ok(self.image.open_unverified_layer(index)?)
    }

    fn blob_file(&self, index: usize) -> Result<Option<BlobFile>, BlobError> {
        if !self.files {
            return Ok(None);
        }
        let range = self.image.layer_range(index)?;
        Ok(Some(BlobFile {
            file: range.file,
            offset: range.offset,
            len: range.len,
        }))
    }
}
