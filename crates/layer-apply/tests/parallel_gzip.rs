//! gzip layers that lie in files, decoded on several threads: the same diff_id and tree as
//! the stream path, corruption and truncation in the middle reported as such, members and
//! padding as the stream path takes them, and small blobs left to the stream path.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use d2l_blob::Digest;
use d2l_layer_apply::{
    apply_layers, write_tar, AppliedLayer, ApplyOptions, BlobDescriptor, BlobError, BlobFile,
    BlobSource, Error, Layers, PARALLEL_GZIP_MIN_BYTES,
};
use d2l_rootfs::SpillFile;
use d2l_testkit::layer::LayerTar;

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Bytes before the blob in the file that holds it, as in an archive read in place.
const PREFIX: &[u8] = b"bytes of the archive before the blob; not gzip";

/// A layer tar whose gzip is larger than [`PARALLEL_GZIP_MIN_BYTES`]: incompressible files
/// (deflate's stored blocks) and text-like ones (Huffman-coded blocks with back-references).
fn large_tar() -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        // xorshift64: deterministic, and incompressible enough for gzip.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut layer = LayerTar::new();
    for i in 0..12 {
        let noise: Vec<u8> = (0..(2 << 20) / 8)
            .flat_map(|_| next().to_le_bytes())
            .collect();
        layer.file(&format!("noise/{i}"), &noise);
    }
    for i in 0..8 {
        let mut text = String::new();
        for line in 0..60_000 {
            text.push_str(&format!(
                "file {i} line {line} value {}\n",
                next() % 100_000
            ));
        }
        layer.file(&format!("text/{i}.txt"), text.as_bytes());
    }
    layer.finish()
}

/// `data` through the system's `gzip` (one member).
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .args(["-1", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run gzip");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut out)
        .expect("read gzip");
    writer.join().expect("writer").expect("write to gzip");
    assert!(child.wait().expect("gzip").success());
    out
}

/// How a test source hands out its blob.
#[derive(Clone, Copy, PartialEq)]
enum Access {
    /// As a stream only: the sequential path.
    Stream,
    /// As a range of a file too: the parallel path, for large gzip.
    File,
    /// As a range of a file, which the parallel path declines (it ends with zero bytes).
    PaddedFile,
    /// As a stream, and asking for the file is a failure of the test.
    FileNeverAsked,
}

/// One blob in a temporary file, after [`PREFIX`].
struct FileBlob {
    _dir: tempfile::TempDir,
    path: PathBuf,
    len: u64,
    access: Access,
    /// The file was handed out: the parallel path decoded the blob.
    file_taken: AtomicBool,
}

impl FileBlob {
    fn new(blob: &[u8], access: Access) -> FileBlob {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("archive");
        let mut content = PREFIX.to_vec();
        content.extend_from_slice(blob);
        content.extend_from_slice(b"bytes after the blob");
        std::fs::write(&path, content).expect("write blob");
        FileBlob {
            _dir: dir,
            path,
            len: blob.len() as u64,
            access,
            file_taken: AtomicBool::new(false),
        }
    }
}

impl BlobSource for FileBlob {
    fn open_blob(&self, _: usize) -> Result<Box<dyn Read + Send>, BlobError> {
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(PREFIX.len() as u64))?;
        Ok(Box::new(file.take(self.len)))
    }

    fn blob_file(&self, _: usize) -> Result<Option<BlobFile>, BlobError> {
        match self.access {
            Access::Stream => Ok(None),
            Access::File | Access::PaddedFile => Ok(Some(BlobFile {
                file: {
                    self.file_taken.store(true, Ordering::Relaxed);
                    Arc::new(File::open(&self.path)?)
                },
                offset: PREFIX.len() as u64,
                len: self.len,
            })),
            Access::FileNeverAsked => Err("a small blob's file was asked for".into()),
        }
    }
}

/// Applies one gzip layer `blob` (manifest digest `digest`, config diff_id `diff_id`) read
/// with `access`; returns the layer's result and the tree exported as a tar.
fn apply(
    blob: &[u8],
    digest: Digest,
    diff_id: Digest,
    access: Access,
) -> Result<(AppliedLayer, Vec<u8>), Error> {
    let source = FileBlob::new(blob, access);
    let layers = Layers {
        blobs: vec![BlobDescriptor {
            digest,
            size: blob.len() as u64,
            media_type: GZIP.to_owned(),
        }],
        diff_ids: vec![diff_id],
        source: &source,
    };
    let options = ApplyOptions {
        decoder_threads: NonZeroUsize::new(4).expect("4 > 0"),
        ..ApplyOptions::default()
    };
    let applied = apply_layers(&layers, SpillFile::new().expect("spill"), options);
    assert_eq!(
        source.file_taken.load(Ordering::Relaxed),
        access == Access::File || access == Access::PaddedFile,
        "only a large blob's file is asked for"
    );
    let applied = applied?;
    let (tree, store) = applied.rootfs.into_parts();
    let mut exported = Vec::new();
    write_tar(&tree, &store.into_reader().expect("reader"), &mut exported).expect("export");
    let layer = applied.layers.into_iter().next().expect("one layer");
    Ok((layer, exported))
}

/// Applies an intact blob whose descriptor and diff_id are its own.
fn apply_intact(blob: &[u8], tar: &[u8], access: Access) -> (AppliedLayer, Vec<u8>) {
    apply(
        blob,
        Digest::sha256_of(blob),
        Digest::sha256_of(tar),
        access,
    )
    .expect("apply")
}

#[test]
fn a_large_gzip_file_gives_the_stream_paths_diff_id_and_tree() {
    let tar = large_tar();
    let blob = gzip(&tar);
    assert!(
        blob.len() as u64 >= PARALLEL_GZIP_MIN_BYTES,
        "{}",
        blob.len()
    );
    let (parallel, parallel_tree) = apply_intact(&blob, &tar, Access::File);
    let (sequential, sequential_tree) = apply_intact(&blob, &tar, Access::Stream);
    assert_eq!(parallel.diff_id, Digest::sha256_of(&tar));
    assert_eq!(parallel.diff_id, sequential.diff_id);
    assert_eq!(parallel.uncompressed_size, tar.len() as u64);
    assert_eq!(parallel.stats, sequential.stats);
    assert!(
        parallel_tree == sequential_tree,
        "the exported trees differ"
    );
}

#[test]
fn corruption_in_the_middle_of_a_large_gzip_file_is_reported_as_corrupt() {
    let tar = large_tar();
    let blob = gzip(&tar);
    let mut corrupt = blob.clone();
    let middle = corrupt.len() / 2;
    for byte in &mut corrupt[middle..middle + 64] {
        *byte ^= 0x5a;
    }
    // The manifest names the intact blob: the digest check speaks first.
    let err = apply(
        &corrupt,
        Digest::sha256_of(&blob),
        Digest::sha256_of(&tar),
        Access::File,
    )
    .expect_err("a corrupt blob");
    assert!(
        matches!(&err, Error::Read { error, .. } if error.to_string().contains("content hashes to")),
        "{err}"
    );
    // A publisher's corrupt gzip (its digest is the manifest's): corrupt data, or content
    // that is not the diff_id, never a tar error about the garbage.
    let err = apply(
        &corrupt,
        Digest::sha256_of(&corrupt),
        Digest::sha256_of(&tar),
        Access::File,
    )
    .expect_err("a corrupt stream");
    assert!(
        matches!(err, Error::Decompress { .. } | Error::DiffIdMismatch { .. }),
        "{err}"
    );
}

#[test]
fn a_large_gzip_file_truncated_in_the_middle_is_reported_as_corrupt() {
    let tar = large_tar();
    let blob = gzip(&tar);
    let truncated = &blob[..blob.len() * 2 / 3];
    assert!(truncated.len() as u64 >= PARALLEL_GZIP_MIN_BYTES);
    let err = apply(
        truncated,
        Digest::sha256_of(truncated),
        Digest::sha256_of(&tar),
        Access::File,
    )
    .expect_err("a truncated stream");
    assert!(
        matches!(
            &err,
            Error::Decompress {
                compression: "gzip",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn members_of_a_large_gzip_file_decode_as_on_the_stream_path() {
    let tar = large_tar();
    let (front, back) = tar.split_at(tar.len() / 3);
    let mut blob = gzip(front);
    blob.extend(gzip(back));
    let (parallel, parallel_tree) = apply_intact(&blob, &tar, Access::File);
    let (sequential, sequential_tree) = apply_intact(&blob, &tar, Access::Stream);
    assert_eq!(parallel.diff_id, Digest::sha256_of(&tar));
    assert_eq!(parallel.diff_id, sequential.diff_id);
    assert!(
        parallel_tree == sequential_tree,
        "the exported trees differ"
    );

    // Bytes after the last member that are not a member: corrupt on both paths.
    blob.extend(b"not gzip");
    for access in [Access::File, Access::Stream] {
        let err = apply(
            &blob,
            Digest::sha256_of(&blob),
            Digest::sha256_of(&tar),
            access,
        )
        .expect_err("bytes after the last member");
        assert!(matches!(err, Error::Decompress { .. }), "{err}");
    }
}

#[test]
fn a_large_gzip_file_with_zero_padding_is_streamed() {
    let tar = large_tar();
    let mut blob = gzip(&tar);
    blob.extend([0u8; 4096]);
    let (layer, exported) = apply_intact(&blob, &tar, Access::PaddedFile);
    assert_eq!(layer.diff_id, Digest::sha256_of(&tar));
    let (_, streamed) = apply_intact(&blob, &tar, Access::Stream);
    assert!(exported == streamed, "the exported trees differ");

    // Padding followed by anything else is refused.
    blob.push(7);
    let err = apply(
        &blob,
        Digest::sha256_of(&blob),
        Digest::sha256_of(&tar),
        Access::File,
    )
    .expect_err("bytes after the padding");
    assert!(matches!(err, Error::Decompress { .. }), "{err}");
}

#[test]
fn a_gzip_blob_too_small_for_the_parallel_path_is_streamed() {
    let tar = LayerTar::new().file("etc/hostname", b"small\n").finish();
    let blob = gzip(&tar);
    assert!((blob.len() as u64) < PARALLEL_GZIP_MIN_BYTES);
    let (layer, exported) = apply_intact(&blob, &tar, Access::FileNeverAsked);
    assert_eq!(layer.diff_id, Digest::sha256_of(&tar));
    let (_, streamed) = apply_intact(&blob, &tar, Access::Stream);
    assert!(exported == streamed, "the exported trees differ");
}

/// The tree of `applied` exported as a tar, hashed.
fn exported_digest(rootfs: d2l_rootfs::Rootfs<SpillFile>) -> Digest {
    struct Hashing(d2l_blob::Sha256);
    impl Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (tree, store) = rootfs.into_parts();
    let mut out = Hashing(d2l_blob::Sha256::new());
    write_tar(&tree, &store.into_reader().expect("reader"), &mut out).expect("export");
    out.0.finish()
}

#[test]
fn the_fixture_in_an_archive_gives_the_stream_paths_diff_ids_and_tree() {
    let debian = d2l_testkit::debian();
    let image = d2l_testkit::apply::open_image(&debian.oci_archive);
    assert!(
        image
            .layers
            .iter()
            .any(|l| l.size >= PARALLEL_GZIP_MIN_BYTES),
        "a layer large enough for the parallel path"
    );
    let apply = |files: bool| {
        let blobs = d2l_testkit::apply::ImageBlobs {
            image: &image,
            files,
        };
        // Enough threads for the parallel decoder, on any machine.
        let options = ApplyOptions {
            decoder_threads: NonZeroUsize::new(4).expect("4 > 0"),
            ..ApplyOptions::default()
        };
        apply_layers(&blobs.layers(), SpillFile::new().expect("spill"), options)
            .expect("apply the fixture")
    };
    let parallel = apply(true);
    let sequential = apply(false);
    let diff_ids = |layers: &[AppliedLayer]| -> Vec<Digest> {
        layers.iter().map(|l| l.diff_id.clone()).collect()
    };
    assert_eq!(diff_ids(&parallel.layers), image.diff_ids);
    assert_eq!(diff_ids(&parallel.layers), diff_ids(&sequential.layers));
    assert_eq!(
        exported_digest(parallel.rootfs),
        exported_digest(sequential.rootfs)
    );
}
