//! Copying one disk image into another format: a reading thread walks the source's data
//! ranges in order and drops zero blocks; the calling thread writes what is left.

use std::sync::mpsc::{channel, sync_channel};

use d2l_disk::VirtualDisk;

use crate::read::DiskReader;
use crate::usize_from;
use crate::{Error, Result, MIB};
use d2l_disk::bytes::is_zero;

/// Bytes read at a time (pieces never cross a multiple of it).
const PIECE: u64 = MIB;
/// Granularity of zero detection: an all-zero block of this size is not written (as
/// `qemu-img convert -S 4k`).
const ZERO_BLOCK: usize = 4096;
/// Buffers in flight between the threads.
const BUFFERS: usize = 8;

/// What a conversion copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvertReport {
    /// The disk's virtual size.
    pub virtual_size: u64,
    /// Bytes of data written (zero blocks left out).
    pub data_bytes: u64,
}

/// A piece read: where it goes, its bytes, and the non-zero runs in it.
struct Piece {
    offset: u64,
    buf: Vec<u8>,
    runs: Vec<(usize, usize)>,
}

/// Copies the disk `src` into `dst` (a new, empty image): its size, then every non-zero
/// block of its data, in order.
pub fn convert(src: &dyn DiskReader, dst: &dyn VirtualDisk) -> Result<ConvertReport> {
    let size = src.virtual_size();
    dst.grow_to(size)
        .map_err(Error::output("sizing the output image", size))?;
    let (piece_tx, piece_rx) = sync_channel::<Piece>(BUFFERS);
    let (free_tx, free_rx) = channel::<Vec<u8>>();
    for _ in 0..BUFFERS {
        free_tx
            .send(vec![0u8; usize_from(PIECE)])
            .expect("the receiver is here");
    }
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            src.data_ranges(&mut |start, len| {
                let end = start + len;
                let mut pos = start;
                while pos < end {
                    let piece_end = end.min((pos / PIECE + 1) * PIECE);
                    // No buffer back: the writer stopped (its error is reported).
                    let Ok(mut buf) = free_rx.recv() else {
                        return Ok(());
                    };
                    let n = usize_from(piece_end - pos);
                    buf.resize(n, 0);
                    src.read_at(&mut buf, pos)?;
                    let runs = nonzero_runs(&buf);
                    if piece_tx
                        .send(Piece {
                            offset: pos,
                            buf,
                            runs,
                        })
                        .is_err()
                    {
                        return Ok(());
                    }
                    pos = piece_end;
                }
                Ok(())
            })
        });
        // Owns the writer's ends of both channels: they close when it returns.
        let written = (move || {
            let mut data_bytes = 0u64;
            for piece in piece_rx {
                for &(at, len) in &piece.runs {
                    let offset = piece.offset + at as u64;
                    dst.write_at(&piece.buf[at..at + len], offset)
                        .map_err(Error::output("writing the output image", offset))?;
                    data_bytes += len as u64;
                }
                // The reader may be done already; the buffer is then not needed.
                let _ = free_tx.send(piece.buf);
            }
            Ok(data_bytes)
        })();
        let read = reader.join().unwrap_or(Err(Error::ReaderPanicked));
        let data_bytes = written?;
        read?;
        Ok(ConvertReport {
            virtual_size: size,
            data_bytes,
        })
    })
}

/// The runs of `buf` made of blocks that are not all zero: `(start, len)`.
fn nonzero_runs(buf: &[u8]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, block) in buf.chunks(ZERO_BLOCK).enumerate() {
        if is_zero(block) {
            continue;
        }
        let at = i * ZERO_BLOCK;
        match runs.last_mut() {
            Some((start, len)) if *start + *len == at => *len += block.len(),
            _ => runs.push((at, block.len())),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_blocks_split_the_runs() {
        let mut buf = vec![0u8; 5 * 4096 + 100];
        buf[10] = 1;
        buf[4096 + 4095] = 1;
        buf[3 * 4096] = 1;
        buf[5 * 4096 + 99] = 1;
        assert_eq!(
            nonzero_runs(&buf),
            [(0, 8192), (3 * 4096, 4096), (5 * 4096, 100)]
        );
        assert!(nonzero_runs(&[0; 9000]).is_empty());
    }
}
