//! gzip on every core, as one member (RFC 1952), the way pigz does it: the stream is cut
//! into blocks; each is deflated on its own (raw deflate, RFC 1951) with the 32 KiB before
//! it as the dictionary and ends with a sync flush (an empty stored block), so the pieces
//! join into one deflate stream that reads as if deflated in one go; the last block ends the
//! stream. Each block's output depends only on its bytes and the ones before it: the same
//! input gives the same file whatever the threads do. One member, not a series, because not
//! every gzip reader reads past the first.

use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

use crate::seq::SeqWriter;
use crate::{Error, Result};

/// Bytes deflated as one block.
const BLOCK: usize = 1 << 20;
/// deflate's window: the dictionary each block gets from the one before (RFC 1951, 2.1).
const WINDOW: usize = 32 << 10;
/// gzip's level: zlib's default, what `tar -z` (gzip -6) uses.
const LEVEL: u32 = 6;
/// The header's OS field: Unix (RFC 1952, 2.3.1), as gzip writes it.
const OS_UNIX: u8 = 3;

/// Where the producer puts the bytes to compress.
pub(super) type Sink<'a> = &'a mut dyn FnMut(&[u8]) -> Result<()>;
/// What hands the bytes to compress, in order, to a [`Sink`].
pub(super) type Produce<'a> = &'a mut dyn FnMut(Sink<'_>) -> Result<()>;

/// A block to deflate: its number, bytes, the window before it, whether it is the last.
type Job = (u64, Vec<u8>, Vec<u8>, bool);
/// A deflated block: its number, the deflate bytes (or what went wrong), the CRC of its
/// input.
type Done = (
    u64,
    std::result::Result<Vec<u8>, flate2::CompressError>,
    Crc,
);

/// The gzip header: deflate, no name or comment, `mtime` (0: none), no extra flags.
fn header(mtime: u32) -> [u8; 10] {
    let t = mtime.to_le_bytes();
    [0x1f, 0x8b, 8, 0, t[0], t[1], t[2], t[3], 0, OS_UNIX]
}

/// Deflates `block` as raw deflate after `window`, ending with a sync flush, or as the end of
/// the stream when `last`.
fn deflate(
    block: &[u8],
    window: &[u8],
    last: bool,
) -> std::result::Result<Vec<u8>, flate2::CompressError> {
    // A new compressor each block: zlib-rs's reset followed by a dictionary does not always
    // give what a new one gives (found by building an image twice), and the bytes must not
    // depend on which worker deflated what before.
    let mut compress = Compress::new(Compression::new(LEVEL), false);
    if !window.is_empty() {
        compress.set_dictionary(window)?;
    }
    let mut out = Vec::with_capacity(block.len() / 2 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        let consumed = usize::try_from(compress.total_in()).unwrap_or(block.len());
        let status = compress.compress_vec(&block[consumed.min(block.len())..], &mut out, flush);
        let consumed = usize::try_from(compress.total_in()).unwrap_or(block.len());
        match status? {
            Status::StreamEnd => return Ok(out),
            // A sync flush is complete when all input is in and the output did not fill up.
            _ if !last && consumed >= block.len() && out.len() < out.capacity() => return Ok(out),
            _ => out.reserve(out.capacity().max(4096)),
        }
    }
}

/// Writes a gzip member into `out` (from its position on) holding the bytes `produce` hands
/// to its sink, in order; `mtime` goes into the header.
pub(super) fn gzip(out: &mut SeqWriter<'_>, mtime: u32, produce: Produce<'_>) -> Result<()> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (job_tx, job_rx) = sync_channel::<Job>(2 * workers);
    let (done_tx, done_rx) = sync_channel::<Done>(2 * workers);
    let job_rx = Arc::new(Mutex::new(job_rx));
    out.write(&header(mtime))?;
    let body = &mut *out;
    let (crc, len) = std::thread::scope(|scope| {
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let job_rx = Arc::clone(&job_rx);
            scope.spawn(move || loop {
                let job = job_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok((seq, block, window, last)) = job else {
                    break;
                };
                let mut crc = Crc::new();
                crc.update(&block);
                let bytes = deflate(&block, &window, last);
                if done_tx.send((seq, bytes, crc)).is_err() {
                    break;
                }
            });
        }
        drop(done_tx);
        drop(job_rx);
        let collector = scope.spawn(move || collect(done_rx, body));
        let fed = feed(&job_tx, produce);
        // The workers finish what they were given, then the collector its writes.
        drop(job_tx);
        let collected = collector
            .join()
            .unwrap_or_else(|_| Err(Error::Corrupt("the gzip writer thread panicked".into())));
        // A failed write stops the feeding too: its error is the one to report.
        match (collected, fed) {
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            (Ok(crc), Ok(len)) => Ok((crc, len)),
        }
    })?;
    let mut trailer = [0u8; 8];
    trailer[..4].copy_from_slice(&crc.sum().to_le_bytes());
    // ISIZE: the input's length modulo 2^32 (RFC 1952, 2.3.1).
    let isize = u32::try_from(len % (1 << 32)).unwrap_or(0);
    trailer[4..].copy_from_slice(&isize.to_le_bytes());
    out.write(&trailer)
}

/// Cuts what `produce` gives into blocks and hands them to the workers, each with the
/// window before it; returns the input's length.
fn feed(jobs: &SyncSender<Job>, produce: Produce<'_>) -> Result<u64> {
    let mut seq = 0u64;
    let mut len = 0u64;
    let mut block: Vec<u8> = Vec::with_capacity(BLOCK);
    // The last WINDOW bytes of the input sent so far.
    let mut history: Vec<u8> = Vec::with_capacity(2 * WINDOW);
    let mut send = |block: &mut Vec<u8>, last: bool| -> Result<()> {
        let full = std::mem::replace(block, Vec::with_capacity(BLOCK));
        let window = history.clone();
        history.extend_from_slice(&full[full.len().saturating_sub(WINDOW)..]);
        let cut = history.len().saturating_sub(WINDOW);
        history.drain(..cut);
        jobs.send((seq, full, window, last))
            .map_err(|_| Error::Corrupt("the gzip threads stopped".into()))?;
        seq += 1;
        Ok(())
    };
    produce(&mut |mut bytes: &[u8]| {
        len += bytes.len() as u64;
        while !bytes.is_empty() {
            let n = (BLOCK - block.len()).min(bytes.len());
            block.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if block.len() == BLOCK {
                send(&mut block, false)?;
            }
        }
        Ok(())
    })?;
    send(&mut block, true)?;
    Ok(len)
}

/// Writes the deflated blocks in order; returns the CRC of the whole input.
fn collect(done: Receiver<Done>, out: &mut SeqWriter<'_>) -> Result<Crc> {
    let mut waiting = BTreeMap::new();
    let mut next = 0u64;
    let mut crc = Crc::new();
    for (seq, bytes, block_crc) in done {
        waiting.insert(seq, (bytes, block_crc));
        while let Some((bytes, block_crc)) = waiting.remove(&next) {
            let bytes = bytes.map_err(|e| Error::Output {
                what: "compressing the archive",
                offset: out.pos(),
                source: std::io::Error::other(e),
            })?;
            out.write(&bytes)?;
            crc.combine(&block_crc);
            next += 1;
        }
    }
    Ok(crc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    /// Compresses `input` fed in pieces of `piece` bytes; returns the file's bytes.
    fn gzip_of(input: &[u8], piece: usize) -> Vec<u8> {
        let file = tempfile::tempfile().unwrap();
        let mut writer = SeqWriter::new(&file, 0);
        gzip(&mut writer, 1_700_000_000, &mut |sink| {
            for chunk in input.chunks(piece.max(1)) {
                sink(chunk)?;
            }
            Ok(())
        })
        .unwrap();
        let (end, _) = writer.finish().unwrap();
        let mut out = vec![0u8; usize::try_from(end).unwrap()];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut out, 0).unwrap();
        out
    }

    #[test]
    fn one_member_that_inflates_to_the_input() {
        // Text that repeats across block boundaries (the window matters), then noise.
        let mut input: Vec<u8> = b"d2l writes disks for other tools. "
            .iter()
            .copied()
            .cycle()
            .take(3 * BLOCK + 12_345)
            .collect();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        input.extend((0..200_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        }));
        for piece in [1000, BLOCK, 7 * BLOCK] {
            let gz = gzip_of(&input, piece);
            assert_eq!(&gz[..10], &[0x1f, 0x8b, 8, 0, 0x00, 0xf1, 0x53, 0x65, 0, 3]);
            let mut back = Vec::new();
            let mut decoder = GzDecoder::new(&gz[..]);
            decoder.read_to_end(&mut back).unwrap();
            assert_eq!(back, input, "pieces of {piece}");
            // One member: nothing after the first.
            let mut rest = Vec::new();
            decoder.into_inner().read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty());
            // Compressed as well as one stream would be, within a few bytes a block.
            assert!(gz.len() < 250_000, "{}", gz.len());
            assert_eq!(
                gz,
                gzip_of(&input, 4096),
                "the same bytes however it is fed"
            );
        }
        // Nothing at all is a valid member too.
        let empty = gzip_of(&[], 1);
        let mut back = Vec::new();
        GzDecoder::new(&empty[..]).read_to_end(&mut back).unwrap();
        assert!(back.is_empty());
    }
}
