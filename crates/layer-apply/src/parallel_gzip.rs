//! gzip blobs that lie in files, decoded on several threads: rapidgzip's marker/window method
//! (`rapidgzip-core`, over zlib-rs). Threads start decoding at guessed block boundaries with
//! the 32 KiB window unknown, then resolve the back-references once the previous chunk is
//! done. The decoder verifies every member's CRC-32 and size, and decides itself, from a
//! timed screen of the first chunks, whether more than one thread pays; when it does not (or
//! the blob is small) it decodes sequentially with the same checks.
//!
//! Memory: at most `threads + 2` decoded chunks of [`DECODED_CHUNK`] wait for the consumer,
//! and each thread holds the output of one compressed chunk of [`COMPRESSED_CHUNK`], which
//! rapidgzip caps at 20 times its size (stored as 16-bit symbols until the window is known):
//! `threads * 40 MiB + (threads + 2) * 4 MiB` at worst, 712 MiB for the
//! [`MAX_DECODER_THREADS`] cap and 96 MiB on two cores, as rapidgzip-core 0.3 sizes its
//! buffers. Measured: the Debian fixture's 348 MB layer adds 25 MB of peak RSS on two cores.

use std::io;
use std::num::NonZeroUsize;

use rapidgzip_core::{Decoder, ReadAt};

use crate::compression::pump;
use crate::layers::BlobFile;

/// Blobs smaller than this take the sequential path: rapidgzip cuts the compressed stream
/// into [`COMPRESSED_CHUNK`] tasks and tries a second thread only from 16 of them on.
pub const PARALLEL_GZIP_MIN_BYTES: u64 = 16 << 20;
/// Most decoder threads, whatever the machine (see the memory bound above).
pub const MAX_DECODER_THREADS: usize = 16;
/// Fewest decoder threads for which the parallel decoder is used at all: on two cores
/// rapidgzip's own screen never chose a second thread on the Debian fixture (the hash and
/// the tar take the other core), and its buffers doubled d2l's peak memory for nothing.
pub const PARALLEL_GZIP_MIN_THREADS: usize = 3;
/// Decoded bytes per chunk handed from the decoder threads to the reader.
const DECODED_CHUNK: usize = 4 << 20;
/// Compressed bytes per decoding task (rapidgzip's minimum).
const COMPRESSED_CHUNK: usize = 1 << 20;

/// Decoder threads by default: one per core, up to [`MAX_DECODER_THREADS`]. rapidgzip grows
/// to them only while they raise throughput, and backs off when the stages after it (the
/// diff_id hash, the tar) are the slower ones.
pub fn default_decoder_threads() -> NonZeroUsize {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    NonZeroUsize::new(cores.min(MAX_DECODER_THREADS)).unwrap_or(NonZeroUsize::MIN)
}

/// Whether the parallel decoder takes `blob`: not when it ends with a zero byte, which may be
/// padding after the last member (that rapidgzip refuses, dropping output it had decoded) or
/// the top byte of the last member's size (below 16 MiB modulo 4 GiB); the stream path tells
/// them apart.
pub(crate) fn takes(blob: &BlobFile) -> io::Result<bool> {
    let mut last = [0u8];
    let n = blob.read_at(blob.len.saturating_sub(1), &mut last)?;
    Ok(n == 1 && last[0] != 0)
}

/// Decodes the gzip members of `blob` on up to `threads` threads, handing the output to `out`
/// in chunks taken from `spare`, as [`crate::compression::decompress`] does for a stream.
pub(crate) fn gunzip_file(
    blob: &BlobFile,
    threads: NonZeroUsize,
    out: &mut dyn FnMut(Vec<u8>) -> io::Result<()>,
    spare: &mut dyn FnMut() -> Vec<u8>,
) -> io::Result<()> {
    let decoder = Decoder::builder()
        .decoder_threads(threads.get())
        .decoded_chunk_size(DECODED_CHUNK)
        .compressed_chunk_size(COMPRESSED_CHUNK)
        .build()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let mut reader = decoder
        .reader(Region(blob.clone()))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    pump(&mut reader, out, spare)
}

/// The blob, for rapidgzip's positional reads.
struct Region(BlobFile);

impl ReadAt for Region {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.len)
    }

    fn read_at(&self, offset: u64, buffer: &mut [u8]) -> io::Result<usize> {
        self.0.read_at(offset, buffer)
    }
}
