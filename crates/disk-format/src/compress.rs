//! Deflating a disk's grains on every core, handing them on in disk order.
//!
//! One thread reads the grains that hold data from a sparse raw file (holes skipped with
//! `SEEK_DATA`, all-zero grains dropped) in batches; workers deflate the batches; the
//! caller's thread receives them, puts them back in order and passes each grain to a sink
//! that writes the format. Channels are bounded, so memory stays at a few batches per core.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};

use flate2::{Compress, Compression, FlushCompress, Status};

use crate::cluster_map::read_up_to;
use crate::usize_from;
use crate::{Error, Result};
use d2l_disk::bytes::is_zero;

/// Grains read and deflated together.
const BATCH_GRAINS: u64 = 16;
/// Deflate level 9. QEMU deflates at zlib's default, 6; zlib-rs (the zlib-ng algorithms)
/// at 6 gives output about 1% larger than zlib's, at 9 about 1% smaller, still faster than
/// QEMU's single thread when spread over two cores.
pub(crate) const LEVEL: u32 = 9;

/// How grains are deflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// qcow2 compressed clusters: raw deflate with a 4 KiB window (QEMU inflates them with
    /// windowBits -12, so no match may reach further back).
    Qcow2,
    /// VMDK streamOptimized grains: a zlib stream (RFC 1950) each, at `level`.
    Zlib {
        /// The deflate level, 1 to 9.
        level: u32,
    },
    /// No compression: every grain as it is ([`Grain::Plain`]), for a format written in
    /// disk order without deflating (the qcow2 of a Vagrant box).
    Store,
}

/// A grain as the sink gets it.
#[derive(Debug)]
pub(crate) enum Grain {
    /// Deflated bytes.
    Deflated(Vec<u8>),
    /// The grain's own bytes: deflating did not make it smaller (qcow2), or not asked for
    /// ([`Codec::Store`]).
    Plain(Vec<u8>),
}

/// A batch of grains: `(grain index, bytes)`.
type Batch = Vec<(u64, Vec<u8>)>;

/// Reads the non-zero grains of `src` (the first `size` bytes), deflates them with `codec`
/// on all cores and calls `sink(grain_index, grain)` for each, in increasing index order.
pub(crate) fn deflate_grains(
    src: &File,
    size: u64,
    grain: u64,
    codec: Codec,
    sink: &mut dyn FnMut(u64, Grain) -> Result<()>,
) -> Result<()> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (job_tx, job_rx) = sync_channel::<(u64, Batch)>(2 * workers);
    let (done_tx, done_rx) = sync_channel::<(u64, Vec<(u64, Grain)>)>(2 * workers);
    // Shared by the workers only: when they all stop, the reader's sends fail.
    let job_rx = Arc::new(Mutex::new(job_rx));

    std::thread::scope(|scope| {
        let reader = scope.spawn(move || read_batches(src, size, grain, &job_tx));
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let job_rx = Arc::clone(&job_rx);
            scope.spawn(move || {
                let mut deflater = Deflater::new(codec, grain);
                loop {
                    let job = job_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((seq, batch)) = job else { break };
                    let out = batch
                        .into_iter()
                        .map(|(index, bytes)| (index, deflater.deflate(bytes)))
                        .collect();
                    if done_tx.send((seq, out)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        drop(job_rx);
        let sunk = sink_in_order(done_rx, sink);
        // A failed sink drops the receiver: workers and reader stop at their next send.
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(Error::Corrupt("the reading thread panicked".into())));
        sunk.and(read)
    })
}

/// Receives batches in any order and passes their grains to `sink` in sequence order.
fn sink_in_order(
    done: Receiver<(u64, Vec<(u64, Grain)>)>,
    sink: &mut dyn FnMut(u64, Grain) -> Result<()>,
) -> Result<()> {
    let mut waiting = BTreeMap::new();
    let mut next = 0u64;
    for (seq, grains) in done {
        waiting.insert(seq, grains);
        while let Some(grains) = waiting.remove(&next) {
            for (index, grain) in grains {
                sink(index, grain)?;
            }
            next += 1;
        }
    }
    Ok(())
}

/// Reads the grains holding data, in batches numbered from 0.
fn read_batches(
    src: &File,
    size: u64,
    grain: u64,
    jobs: &std::sync::mpsc::SyncSender<(u64, Batch)>,
) -> Result<()> {
    let mut seq = 0u64;
    // The first grain not yet read: data ranges may share a grain.
    let mut next_grain = 0u64;
    let mut buf = vec![0u8; usize_from(BATCH_GRAINS * grain)];
    crate::raw::data_ranges(src, size, &mut |start, len| {
        let first = (start / grain).max(next_grain);
        let end = (start + len).min(size).div_ceil(grain);
        let mut index = first;
        while index < end {
            let count = (end - index).min(BATCH_GRAINS);
            let bytes = usize_from(count * grain);
            let at = index * grain;
            let n = read_up_to(src, &mut buf[..bytes], at)
                .map_err(Error::output("reading the scratch file", at))?;
            buf[n..bytes].fill(0);
            let batch: Batch = buf[..bytes]
                .chunks(usize_from(grain))
                .enumerate()
                .filter(|(_, data)| !is_zero(data))
                .map(|(i, data)| (index + i as u64, data.to_vec()))
                .collect();
            if !batch.is_empty() {
                if jobs.send((seq, batch)).is_err() {
                    // The sink failed; its error is the one to report.
                    return Ok(());
                }
                seq += 1;
            }
            index += count;
        }
        next_grain = next_grain.max(end);
        Ok(())
    })
}

/// One worker's compressor, reused from grain to grain.
struct Deflater {
    codec: Codec,
    grain: usize,
    compress: Compress,
}

impl Deflater {
    fn new(codec: Codec, grain: u64) -> Self {
        let compress = match codec {
            Codec::Qcow2 | Codec::Store => {
                Compress::new_with_window_bits(Compression::new(LEVEL), false, 12)
            }
            Codec::Zlib { level } => Compress::new(Compression::new(level), true),
        };
        Deflater {
            codec,
            grain: usize_from(grain),
            compress,
        }
    }

    fn deflate(&mut self, bytes: Vec<u8>) -> Grain {
        self.compress.reset();
        match self.codec {
            Codec::Store => Grain::Plain(bytes),
            Codec::Qcow2 => {
                // Only worth it if it ends up smaller than a cluster.
                let mut out = Vec::with_capacity(self.grain - 1);
                match self
                    .compress
                    .compress_vec(&bytes, &mut out, FlushCompress::Finish)
                {
                    Ok(Status::StreamEnd) => Grain::Deflated(out),
                    _ => Grain::Plain(bytes),
                }
            }
            Codec::Zlib { .. } => {
                let mut out = Vec::with_capacity(self.grain + self.grain / 8 + 64);
                loop {
                    let consumed = usize_from(self.compress.total_in());
                    match self.compress.compress_vec(
                        &bytes[consumed..],
                        &mut out,
                        FlushCompress::Finish,
                    ) {
                        Ok(Status::StreamEnd) => return Grain::Deflated(out),
                        Ok(_) => out.reserve(self.grain),
                        Err(e) => unreachable!("deflating into a growing buffer: {e}"),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};
    use std::os::unix::fs::FileExt;

    #[test]
    fn grains_come_back_in_order_deflated_and_zeros_are_skipped() {
        let grain = 4096u64;
        let src = tempfile::tempfile().unwrap();
        let size = 300 * grain;
        src.set_len(size).unwrap();
        // Text in grains 1, 2 (one write across both), 40 and 299; zeros written at 100.
        let text: Vec<u8> = b"d2l writes disks. "
            .iter()
            .copied()
            .cycle()
            .take(2 * 4096)
            .collect();
        src.write_all_at(&text, grain).unwrap();
        src.write_all_at(&text[..100], 40 * grain + 7).unwrap();
        src.write_all_at(&[0; 4096], 100 * grain).unwrap();
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        src.write_all_at(&noise, 299 * grain).unwrap();

        for codec in [
            Codec::Qcow2,
            Codec::Zlib { level: LEVEL },
            Codec::Zlib { level: 6 },
        ] {
            let mut seen = Vec::new();
            deflate_grains(&src, size, grain, codec, &mut |index, g| {
                let mut original = vec![0u8; grain as usize];
                src.read_exact_at(&mut original, index * grain).unwrap();
                let data = match g {
                    Grain::Deflated(d) => {
                        let mut out = Vec::with_capacity(grain as usize);
                        let mut inflate = Decompress::new(codec != Codec::Qcow2);
                        inflate
                            .decompress_vec(&d, &mut out, FlushDecompress::Finish)
                            .unwrap();
                        assert!(d.len() < grain as usize);
                        out
                    }
                    Grain::Plain(p) => {
                        assert_eq!(codec, Codec::Qcow2);
                        p
                    }
                };
                assert_eq!(data, original, "grain {index}");
                seen.push(index);
                Ok(())
            })
            .unwrap();
            assert_eq!(seen, [1, 2, 40, 299], "{codec:?}");
        }
    }

    #[test]
    fn a_failing_sink_stops_everything_with_its_error() {
        let grain = 4096u64;
        let src = tempfile::tempfile().unwrap();
        let data = vec![7u8; 200 * 4096];
        src.write_all_at(&data, 0).unwrap();
        let mut calls = 0;
        let codec = Codec::Zlib { level: LEVEL };
        let err = deflate_grains(&src, data.len() as u64, grain, codec, &mut |_, _| {
            calls += 1;
            if calls == 3 {
                return Err(Error::Corrupt("sink full".into()));
            }
            Ok(())
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "sink full");
    }
}
