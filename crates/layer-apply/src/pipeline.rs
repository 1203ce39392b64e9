//! Applying an image's layers with the work spread over threads.
//!
//! Four stages, connected by bounded channels of byte chunks, run concurrently across all
//! layers (layer N+1 is read and decompressed while layer N is applied):
//!
//! 1. read the blob, hashing it (size and digest checked at its end, by the registry's reader);
//! 2. decompress (gzip, zstd or none); a gzip blob of [`PARALLEL_GZIP_MIN_BYTES`] or more
//!    that lies in a file is decoded from the file on several threads instead of from stage
//!    1's chunks, which then only hashes it, and its end still waits for that check;
//! 3. hash the decompressed stream for the diff_id;
//! 4. parse the tar stream and apply it to the tree (the calling thread).
//!
//! Memory stays bounded by the channel depth times the chunk size, whatever the layer size,
//! plus the parallel decoder's own bound (see `parallel_gzip`).
//! When a stage fails, the others stop; the error reported is the one nearest the source
//! (a corrupt blob is reported as a digest mismatch, not as the tar garbage it decodes to).

use std::io::{self, BufRead, Read};
use std::num::NonZeroUsize;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use d2l_blob::{Digest, Sha256, VerifiedReader};
use d2l_rootfs::{ContentStore, Rootfs};

use crate::apply::{Applier, ApplyOptions, LayerStats};
use crate::compression::{self, Compression};
use crate::error::{Error, Result};
use crate::layers::{BlobFile, Layers};
use crate::parallel_gzip::{self, PARALLEL_GZIP_MIN_BYTES};

/// Bytes per chunk passed between stages.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight between two stages.
const DEPTH: usize = 8;
/// Used decompressed chunks kept for reuse: what the two channels after decompression hold.
const SPARE_CHUNKS: usize = 2 * DEPTH + 2;

/// What was applied for one layer.
#[derive(Debug, Clone)]
pub struct AppliedLayer {
    /// Blob digest.
    pub digest: Digest,
    /// Digest of the decompressed stream (verified against the config).
    pub diff_id: Digest,
    /// chainID up to and including this layer.
    pub chain_id: Digest,
    /// Compression found.
    pub compression: Compression,
    /// Decompressed size in bytes.
    pub uncompressed_size: u64,
    /// What applying it did.
    pub stats: LayerStats,
}

/// The result of [`apply_layers`].
pub struct AppliedImage<S> {
    /// The flattened rootfs: its tree and the store holding its file data.
    pub rootfs: Rootfs<S>,
    /// Per-layer results, bottom layer first.
    pub layers: Vec<AppliedLayer>,
}

/// chainIDs of a list of diff_ids: chainID(0) = diffID(0), chainID(n) =
/// sha256(chainID(n-1) + " " + diffID(n)).
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match out.last() {
            None => diff_id.clone(),
            Some(prev) => Digest::sha256_of(format!("{prev} {diff_id}").as_bytes()),
        };
        out.push(next);
    }
    out
}

enum Msg {
    Data(Vec<u8>),
    /// First and only data message of a layer whose gzip blob the decompressor reads from
    /// its file; the reader sends `End` once it has checked the blob's size and digest.
    Direct(BlobFile),
    End(LayerEnd),
}

/// What the stages learn about a layer, passed along with its end.
#[derive(Default)]
struct LayerEnd {
    /// Filled in by the decompressor.
    compression: Option<Compression>,
    /// Filled in by the diff hasher: the diff_id and the decompressed size.
    diff: Option<(Digest, u64)>,
}

/// Why a stage stopped early.
enum Stop {
    /// Its own failure.
    Failed(Error),
    /// Its neighbour went away; the neighbour's own result says why.
    Neighbour,
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Failed(e)
    }
}

/// Applies every layer of `image`, in order, verifying blob sizes and digests, diff_ids and
/// the layer count, into a tree whose file data goes to `store`.
pub fn apply_layers<S: ContentStore>(
    image: &Layers<'_>,
    store: S,
    options: ApplyOptions,
) -> Result<AppliedImage<S>> {
    if image.blobs.len() != image.diff_ids.len() {
        return Err(Error::LayerCount {
            layers: image.blobs.len(),
            diff_ids: image.diff_ids.len(),
        });
    }
    let mut compressions = Vec::with_capacity(image.blobs.len());
    for (index, layer) in image.blobs.iter().enumerate() {
        compressions.push(
            Compression::from_media_type(&layer.media_type).map_err(|()| {
                Error::UnsupportedMediaType {
                    layer: index,
                    digest: layer.digest.clone(),
                    media_type: layer.media_type.clone(),
                }
            })?,
        );
    }

    let (raw_tx, raw_rx) = sync_channel::<Msg>(DEPTH);
    let (plain_tx, plain_rx) = sync_channel::<Msg>(DEPTH);
    let (hashed_tx, hashed_rx) = sync_channel::<Msg>(DEPTH);
    // Decompressed chunks the apply stage is done with go back to be filled again: no
    // allocation, zeroing or page faults per chunk.
    let (spare_tx, spare_rx) = sync_channel::<Vec<u8>>(SPARE_CHUNKS);
    let decoder_threads = options.decoder_threads;
    let mut rootfs = Applier::new(store, options);

    let defer = defer_to_decompressor();
    let (read, decompress, hash, applied) = std::thread::scope(|scope| {
        let compressions = &compressions;
        let read = scope.spawn(move || {
            defer();
            read_blobs(image, compressions, decoder_threads, raw_tx)
        });
        let decompress = scope.spawn(move || {
            let stage = Decompress {
                image,
                compressions,
                threads: decoder_threads,
            };
            stage.run(raw_rx, plain_tx, spare_rx)
        });
        let hash = scope.spawn(move || {
            defer();
            hash_streams(image.blobs.len(), plain_rx, hashed_tx)
        });
        // On a thread of its own, so that its priority can be lowered and the caller's is not.
        let rootfs = &mut rootfs;
        let applied = scope.spawn(move || {
            defer();
            apply_streams(image, rootfs, hashed_rx, spare_tx)
        });
        (read.join(), decompress.join(), hash.join(), applied.join())
    });

    // Report the failure nearest the source.
    let mut panicked = false;
    for stage in [read, decompress, hash] {
        match stage {
            Ok(Err(Stop::Failed(e))) => return Err(e),
            Ok(_) => {}
            Err(_) => panicked = true,
        }
    }
    if panicked {
        return Err(Error::Panicked);
    }
    let applied = match applied {
        Ok(Ok(layers)) => layers,
        Ok(Err(Stop::Failed(e))) => return Err(e),
        // Unreachable in practice: a stage that stopped the stream reported its own error.
        Ok(Err(Stop::Neighbour)) | Err(_) => return Err(Error::Panicked),
    };
    let rootfs = rootfs.finish().map_err(Error::Tree)?;
    Ok(AppliedImage {
        rootfs,
        layers: applied,
    })
}

/// Stages that run beside the decompressor when the machine has fewer cores than stages.
const STAGES: usize = 4;
/// How much nicer than the decompressor those stages are (see [`defer_to_decompressor`]).
const NICER_BY: i32 = 5;

/// What the stages beside the decompressor call first on their threads: with fewer cores
/// than stages, lower the calling thread's scheduling priority, so that the decompressor,
/// the pipeline's critical path, keeps a core to itself rather than sharing it evenly with
/// stages that wait on it anyway (on Linux the priority set this way is the calling
/// thread's alone); otherwise nothing. Best effort: a failure changes nothing else. The
/// cores are counted once, here.
fn defer_to_decompressor() -> impl Fn() + Copy {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let fewer_cores = cores < STAGES;
    move || {
        if fewer_cores {
            if let Ok(nice) = rustix::process::getpriority_process(None) {
                let _ = rustix::process::setpriority_process(None, nice.saturating_add(NICER_BY));
            }
        }
    }
}

/// Stage 1: read each blob, checking its size and digest.
fn read_blobs(
    image: &Layers<'_>,
    compressions: &[Option<Compression>],
    decoder_threads: NonZeroUsize,
    tx: SyncSender<Msg>,
) -> std::result::Result<(), Stop> {
    for (index, layer) in image.blobs.iter().enumerate() {
        let blob_error = |error| Error::Blob {
            layer: index,
            digest: layer.digest.clone(),
            error,
        };
        let raw = image.source.open_blob(index).map_err(blob_error)?;
        let mut blob = VerifiedReader::new(raw, layer.digest.clone(), layer.size);
        let read_error = |error| Error::Read {
            layer: index,
            digest: layer.digest.clone(),
            error,
        };
        let mut downstream_gone = false;
        if let Some(file) = parallel_gzip_file(image, index, compressions[index], decoder_threads)
            .map_err(blob_error)?
        {
            downstream_gone = tx.send(Msg::Direct(file)).is_err();
            // Only the check is left to do here: the decompressor reads the file itself.
            let mut buf = vec![0u8; CHUNK];
            while compression::read_full(&mut blob, &mut buf).map_err(read_error)? > 0 {}
        } else {
            send_chunks(&mut blob, &tx, &mut downstream_gone).map_err(read_error)?;
        }
        if downstream_gone || tx.send(Msg::End(LayerEnd::default())).is_err() {
            return Err(Stop::Neighbour);
        }
    }
    Ok(())
}

/// Sends `blob` down `tx` in chunks, reading it to its end even when nobody receives them
/// any more (`downstream_gone`), so that a corrupt blob is reported as such rather than as
/// whatever its garbage made a later stage say.
fn send_chunks(
    blob: &mut dyn Read,
    tx: &SyncSender<Msg>,
    downstream_gone: &mut bool,
) -> io::Result<()> {
    loop {
        // A fresh chunk, not a recycled one: the allocator hands back the one the decompressor
        // just freed, still in cache; the oldest recycled chunk made the kernel's copy into it
        // four times as costly. (Chunks of 1 MiB instead of 256 KiB cost more CPU too.)
        let mut chunk = vec![0u8; CHUNK];
        let n = compression::read_full(blob, &mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        chunk.truncate(n);
        if !*downstream_gone && tx.send(Msg::Data(chunk)).is_err() {
            *downstream_gone = true;
        }
    }
}

/// The blob of layer `index` as a file, when it is gzip (by media type, or by its magic
/// bytes when it has none) and large enough for the parallel decoder.
fn parallel_gzip_file(
    image: &Layers<'_>,
    index: usize,
    compression: Option<Compression>,
    threads: NonZeroUsize,
) -> std::result::Result<Option<BlobFile>, crate::layers::BlobError> {
    if threads.get() < parallel_gzip::PARALLEL_GZIP_MIN_THREADS
        || !matches!(compression, None | Some(Compression::Gzip))
        || image.blobs[index].size < PARALLEL_GZIP_MIN_BYTES
    {
        return Ok(None);
    }
    let Some(file) = image.source.blob_file(index)? else {
        return Ok(None);
    };
    if file.len != image.blobs[index].size {
        // Stage 1 reports the size mismatch; the stream path is the one that meets it.
        return Ok(None);
    }
    if compression.is_none() {
        let mut magic = [0u8; d2l_blob::compression::ZSTD_MAGIC.len()];
        let n = file.read_at(0, &mut magic)?;
        if Compression::from_magic(&magic[..n]) != Compression::Gzip {
            return Ok(None);
        }
    }
    Ok(parallel_gzip::takes(&file)?.then_some(file))
}

/// Stage 2: decompress each layer.
struct Decompress<'a, 'b> {
    image: &'a Layers<'b>,
    compressions: &'a [Option<Compression>],
    /// Most threads for one blob that lies in a file.
    threads: NonZeroUsize,
}

impl Decompress<'_, '_> {
    fn run(
        &self,
        rx: Receiver<Msg>,
        tx: SyncSender<Msg>,
        spare: Receiver<Vec<u8>>,
    ) -> std::result::Result<(), Stop> {
        for (index, layer) in self.image.blobs.iter().enumerate() {
            let first = rx.recv().map_err(|_| Stop::Neighbour)?;
            let mut downstream_gone = false;
            let mut out = |chunk| {
                tx.send(Msg::Data(chunk)).map_err(|_| {
                    downstream_gone = true;
                    io::Error::from(io::ErrorKind::BrokenPipe)
                })
            };
            let mut take_spare = || spare.try_recv().unwrap_or_default();
            let mut chosen = self.compressions[index];
            let (result, upstream_gone) = match first {
                Msg::Direct(file) => {
                    chosen = Some(Compression::Gzip);
                    let result =
                        parallel_gzip::gunzip_file(&file, self.threads, &mut out, &mut take_spare)
                            .map(|()| Compression::Gzip);
                    // Stage 1's end of this blob: its size and digest are checked.
                    let checked = result.is_err() || matches!(rx.recv(), Ok(Msg::End(_)));
                    (result, !checked)
                }
                first => {
                    let mut input = ChunkReader::starting_with(&rx, None, first);
                    let result =
                        compression::decompress(chosen, &mut input, &mut out, &mut take_spare);
                    (result, input.disconnected)
                }
            };
            if upstream_gone || downstream_gone {
                return Err(Stop::Neighbour);
            }
            let compression = result.map_err(|e| Error::Decompress {
                layer: index,
                digest: layer.digest.clone(),
                compression: chosen.map_or("layer", Compression::name),
                message: e.to_string(),
            })?;
            let end = LayerEnd {
                compression: Some(compression),
                diff: None,
            };
            if tx.send(Msg::End(end)).is_err() {
                return Err(Stop::Neighbour);
            }
        }
        Ok(())
    }
}

/// Stage 3: hash each decompressed stream for its diff_id.
fn hash_streams(
    layers: usize,
    rx: Receiver<Msg>,
    tx: SyncSender<Msg>,
) -> std::result::Result<(), Stop> {
    for _ in 0..layers {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            match rx.recv() {
                Ok(Msg::Data(chunk)) => {
                    hasher.update(&chunk);
                    size += chunk.len() as u64;
                    tx.send(Msg::Data(chunk)).map_err(|_| Stop::Neighbour)?;
                }
                Ok(Msg::End(mut end)) => {
                    end.diff = Some((hasher.finish(), size));
                    tx.send(Msg::End(end)).map_err(|_| Stop::Neighbour)?;
                    break;
                }
                Ok(Msg::Direct(_)) | Err(_) => return Err(Stop::Neighbour),
            }
        }
    }
    Ok(())
}

/// Stage 4: parse and apply each layer's tar stream, then check its diff_id.
fn apply_streams<S: ContentStore>(
    image: &Layers<'_>,
    rootfs: &mut Applier<S>,
    rx: Receiver<Msg>,
    spare: SyncSender<Vec<u8>>,
) -> std::result::Result<Vec<AppliedLayer>, Stop> {
    let chain = chain_ids(&image.diff_ids);
    let mut applied = Vec::with_capacity(image.blobs.len());
    for (index, layer) in image.blobs.iter().enumerate() {
        let input = ChunkReader::new(&rx, Some(&spare));
        let layer_number = u32::try_from(index + 1).expect("fewer than 2^32 layers");
        let (mut rest, stats) = match rootfs.apply_layer(layer_number, input) {
            Ok(done) => done,
            Err(failure) => {
                return Err(Stop::Failed(Error::Entry {
                    layer: index,
                    digest: layer.digest.clone(),
                    path: failure.path,
                    offset: failure.offset,
                    error: Box::new(failure.error),
                }))
            }
        };
        // The diff_id covers every byte up to the end of the stream, padding included.
        let _ = io::copy(&mut rest, &mut io::sink());
        if rest.disconnected {
            return Err(Stop::Neighbour);
        }
        let Some(LayerEnd {
            compression: Some(compression),
            diff: Some((diff_id, uncompressed_size)),
        }) = rest.end.take()
        else {
            return Err(Stop::Neighbour);
        };
        let expected = &image.diff_ids[index];
        if &diff_id != expected {
            return Err(Stop::Failed(Error::DiffIdMismatch {
                layer: index,
                digest: layer.digest.clone(),
                expected: Box::new(expected.clone()),
                actual: Box::new(diff_id),
            }));
        }
        tracing::debug!(layer = index, %diff_id, entries = stats.entries, "layer applied");
        applied.push(AppliedLayer {
            digest: layer.digest.clone(),
            diff_id,
            chain_id: chain[index].clone(),
            compression,
            uncompressed_size,
            stats,
        });
    }
    Ok(applied)
}

/// Reads the chunks of one layer from a channel, up to that layer's `End` message.
pub(crate) struct ChunkReader<'a> {
    rx: &'a Receiver<Msg>,
    spare: Option<&'a SyncSender<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
    /// The `End` message's payload, once reached.
    end: Option<LayerEnd>,
    /// The sender went away before `End`.
    disconnected: bool,
}

impl<'a> ChunkReader<'a> {
    /// Reads from `rx`; finished chunks go to `spare`, if given, to be reused.
    fn new(rx: &'a Receiver<Msg>, spare: Option<&'a SyncSender<Vec<u8>>>) -> Self {
        ChunkReader {
            rx,
            spare,
            chunk: Vec::new(),
            pos: 0,
            end: None,
            disconnected: false,
        }
    }

    /// Like [`ChunkReader::new`], for a layer whose first message was already received.
    fn starting_with(
        rx: &'a Receiver<Msg>,
        spare: Option<&'a SyncSender<Vec<u8>>>,
        first: Msg,
    ) -> Self {
        let mut reader = ChunkReader::new(rx, spare);
        reader.accept(first);
        reader
    }

    /// Takes in the next message of the layer.
    fn accept(&mut self, msg: Msg) {
        match msg {
            Msg::Data(chunk) => {
                let done = std::mem::replace(&mut self.chunk, chunk);
                if let Some(spare) = self.spare {
                    // Full: the producer has enough; this one is simply freed.
                    let _ = spare.try_send(done);
                }
                self.pos = 0;
            }
            Msg::End(payload) => self.end = Some(payload),
            // Only stage 2 is sent blob files, and it takes them before reading chunks.
            Msg::Direct(_) => self.disconnected = true,
        }
    }
}

impl Read for ChunkReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChunkReader<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.chunk.len() && self.end.is_none() && !self.disconnected {
            match self.rx.recv() {
                Ok(msg) => self.accept(msg),
                Err(_) => self.disconnected = true,
            }
        }
        if self.disconnected {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the layer stream ended early",
            ));
        }
        Ok(&self.chunk[self.pos..])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.chunk.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_id_matches_the_semantics_note_example() {
        let a = Digest::sha256_of(&[0u8; 1024]);
        let b = Digest::sha256_of(&[0u8; 10240]);
        let chain = chain_ids(&[a.clone(), b]);
        assert_eq!(chain[0], a);
        assert_eq!(
            chain[1].to_string(),
            "sha256:8ed5d20d8ff95e90a64a163a79dc3fac0b49680c21680295726dc3a511ff5811"
        );
    }
}
