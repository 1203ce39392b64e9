//! Layer compression: chosen by media type, else by magic bytes (docker-save archives carry
//! no media types). gzip streams may have several members (eStargz) and NUL padding after the
//! last; zstd streams may have several frames, skippable ones included.

use std::io::{self, BufRead, Read};

pub use d2l_blob::Compression;

/// Size of the chunks handed to the next stage.
const OUT_CHUNK: usize = 256 * 1024;

/// Decompresses `input` to its end, handing the output to `out` in chunks taken from
/// `spare` (used chunks to fill again, or empty vectors). Returns the compression used
/// (`choice`, or the one the magic bytes show when `choice` is `None`).
pub fn decompress(
    choice: Option<Compression>,
    input: &mut dyn BufRead,
    out: &mut dyn FnMut(Vec<u8>) -> io::Result<()>,
    spare: &mut dyn FnMut() -> Vec<u8>,
) -> io::Result<Compression> {
    let compression = match choice {
        Some(c) => c,
        None => Compression::from_magic(
            peek(input, d2l_blob::compression::ZSTD_MAGIC.len())?.as_slice(),
        ),
    };
    match compression {
        Compression::None => pump(input, out, spare)?,
        Compression::Gzip => gunzip_members(input, out, spare)?,
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(input)?;
            pump(&mut decoder, out, spare)?;
        }
    }
    Ok(compression)
}

/// Up to `n` bytes from the front of `input`, without consuming them (fewer only at the
/// end of the stream).
fn peek(input: &mut dyn BufRead, n: usize) -> io::Result<Vec<u8>> {
    let buf = input.fill_buf()?;
    Ok(buf[..buf.len().min(n)].to_vec())
}

/// gzip members one after the other; zero bytes after the last member are padding.
fn gunzip_members(
    input: &mut dyn BufRead,
    out: &mut dyn FnMut(Vec<u8>) -> io::Result<()>,
    spare: &mut dyn FnMut() -> Vec<u8>,
) -> io::Result<()> {
    let mut members = 0;
    loop {
        let head = input.fill_buf()?;
        if head.is_empty() {
            break;
        }
        if head[0] == 0 && members > 0 {
            return skip_zero_padding(input);
        }
        let mut member = flate2::bufread::GzDecoder::new(&mut *input);
        pump(&mut member, out, spare)?;
        members += 1;
    }
    if members == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "empty gzip stream",
        ));
    }
    Ok(())
}

fn skip_zero_padding(input: &mut dyn BufRead) -> io::Result<()> {
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        if buf.iter().any(|&b| b != 0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "data after the last gzip member that is neither a gzip member nor zero padding",
            ));
        }
        let n = buf.len();
        input.consume(n);
    }
}

/// Copies a reader to `out` in full chunks.
pub(crate) fn pump(
    reader: &mut dyn Read,
    out: &mut dyn FnMut(Vec<u8>) -> io::Result<()>,
    spare: &mut dyn FnMut() -> Vec<u8>,
) -> io::Result<()> {
    loop {
        // A used chunk (stale bytes are overwritten) or a new one.
        let mut chunk = spare();
        chunk.resize(OUT_CHUNK, 0);
        let filled = read_full(reader, &mut chunk)?;
        if filled == 0 {
            return Ok(());
        }
        chunk.truncate(filled);
        out(chunk)?;
        if filled < OUT_CHUNK {
            return Ok(());
        }
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
pub(crate) fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn run(choice: Option<Compression>, blob: &[u8]) -> io::Result<(Compression, Vec<u8>)> {
        let mut out = Vec::new();
        let c = decompress(
            choice,
            &mut io::BufReader::new(blob),
            &mut |chunk| {
                out.extend_from_slice(&chunk);
                Ok(())
            },
            &mut Vec::new,
        )?;
        Ok((c, out))
    }

    #[test]
    fn gzip_members_and_padding() {
        let mut blob = gzip(b"hello ");
        blob.extend(gzip(b"world"));
        blob.extend([0u8; 100]);
        let (c, out) = run(None, &blob).unwrap();
        assert_eq!(c, Compression::Gzip);
        assert_eq!(out, b"hello world");
        blob.push(7);
        assert!(run(None, &blob).is_err());
    }

    #[test]
    fn zstd_frames_and_skippable_frames() {
        let mut blob = zstd::encode_all(&b"abc"[..], 3).unwrap();
        // A skippable frame (magic 0x184D2A50..5F), 4 bytes of payload.
        blob.extend([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]);
        blob.extend(zstd::encode_all(&b"def"[..], 3).unwrap());
        let (c, out) = run(None, &blob).unwrap();
        assert_eq!(c, Compression::Zstd);
        assert_eq!(out, b"abcdef");
    }

    #[test]
    fn corrupt_gzip_is_an_error() {
        let mut blob = gzip(b"hello world, hello world, hello world");
        let mid = blob.len() / 2;
        blob[mid] ^= 0xff;
        assert!(run(Some(Compression::Gzip), &blob).is_err());
    }
}
