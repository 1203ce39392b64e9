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
        gunzip_member(input, out, spare)?;
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

/// gzip header flags (RFC 1952, 2.3.1).
const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;
const RESERVED_FLAGS: u8 = 0xe0;

/// One gzip member: header, raw deflate, trailer. The trailer's CRC-32 is not computed: the
/// blob digest covers every compressed byte and the diff_id every decompressed byte, so it
/// could only repeat their check (it cost 3% of a build's CPU). Its ISIZE is checked.
fn gunzip_member(
    input: &mut dyn BufRead,
    out: &mut dyn FnMut(Vec<u8>) -> io::Result<()>,
    spare: &mut dyn FnMut() -> Vec<u8>,
) -> io::Result<()> {
    skip_gzip_header(input)?;
    let mut size = 0u64;
    let mut deflate = flate2::bufread::DeflateDecoder::new(&mut *input);
    pump(
        &mut deflate,
        &mut |chunk: Vec<u8>| {
            size += chunk.len() as u64;
            out(chunk)
        },
        spare,
    )?;
    let mut trailer = [0u8; 8];
    exact(input, &mut trailer, "its trailer")?;
    let isize = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    // ISIZE is the size modulo 2^32.
    #[allow(clippy::cast_possible_truncation)]
    if isize != size as u32 {
        return Err(invalid(format!(
            "a gzip member decompressed to {size} bytes, its trailer says {isize} (mod 2^32)"
        )));
    }
    Ok(())
}

/// Reads a gzip member's header up to its deflate data, checking what can be checked.
fn skip_gzip_header(input: &mut dyn BufRead) -> io::Result<()> {
    let mut fixed = [0u8; 10];
    exact(input, &mut fixed, "its header")?;
    if fixed[..2] != d2l_blob::compression::GZIP_MAGIC {
        return Err(invalid("not a gzip member (bad magic bytes)".into()));
    }
    if fixed[2] != 8 {
        return Err(invalid(format!(
            "gzip compression method {} is not deflate (8)",
            fixed[2]
        )));
    }
    let flags = fixed[3];
    if flags & RESERVED_FLAGS != 0 {
        return Err(invalid(format!(
            "gzip header has reserved flags set ({flags:#04x})"
        )));
    }
    if flags & FEXTRA != 0 {
        let mut len = [0u8; 2];
        exact(input, &mut len, "its extra field")?;
        skip(input, u64::from(u16::from_le_bytes(len)), "its extra field")?;
    }
    for (flag, what) in [(FNAME, "its file name"), (FCOMMENT, "its comment")] {
        if flags & flag != 0 {
            skip_past_nul(input, what)?;
        }
    }
    if flags & FHCRC != 0 {
        skip(input, 2, "its header CRC")?;
    }
    Ok(())
}

/// Fills `buf`; an early end says which part of the member was cut short.
fn exact(input: &mut dyn BufRead, buf: &mut [u8], what: &str) -> io::Result<()> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => truncated(what),
        _ => e,
    })
}

/// Skips `n` bytes.
fn skip(input: &mut dyn BufRead, n: u64, what: &str) -> io::Result<()> {
    let skipped = io::copy(&mut input.take(n), &mut io::sink())?;
    if skipped < n {
        return Err(truncated(what));
    }
    Ok(())
}

/// Skips a NUL-terminated string of any length without holding it.
fn skip_past_nul(input: &mut dyn BufRead, what: &str) -> io::Result<()> {
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Err(truncated(what));
        }
        if let Some(nul) = buf.iter().position(|&b| b == 0) {
            input.consume(nul + 1);
            return Ok(());
        }
        let n = buf.len();
        input.consume(n);
    }
}

fn truncated(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("a gzip member ends inside {what}"),
    )
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
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
    fn corrupt_gzip_structure_is_an_error() {
        let blob = gzip(b"hello world, hello world, hello world");
        let fails = |blob: &[u8], what: &str| {
            let err = run(Some(Compression::Gzip), blob).expect_err(what);
            err.to_string()
        };
        // Cut anywhere: in the header, the deflate data or the trailer.
        for len in [0, 5, 12, blob.len() - 9, blob.len() - 1] {
            assert!(!fails(&blob[..len], "truncated").is_empty());
        }
        let mut wrong_size = blob.clone();
        let last = wrong_size.len() - 1;
        wrong_size[last] ^= 1;
        assert!(fails(&wrong_size, "ISIZE").contains("its trailer says"));
        let mut not_deflate = blob.clone();
        not_deflate[2] = 9;
        assert!(fails(&not_deflate, "method").contains("not deflate"));
        let mut reserved = blob.clone();
        reserved[3] |= 0x80;
        assert!(fails(&reserved, "flags").contains("reserved flags"));
        // A deflate block type that does not exist (BTYPE 11).
        let mut bad_block = blob.clone();
        bad_block[10] |= 0b110;
        fails(&bad_block, "block type");
    }

    #[test]
    fn gzip_header_fields_are_skipped() {
        let mut blob = gzip(b"named");
        // FEXTRA, FNAME, FCOMMENT and FHCRC: rebuild the header around the same deflate data.
        let (deflate, trailer) = blob[10..].split_at(blob.len() - 18);
        let mut full = vec![0x1f, 0x8b, 8, 0b1_1110, 0, 0, 0, 0, 0, 3];
        full.extend([3, 0, b'a', b'b', b'c']);
        full.extend(b"name.tar\0a comment\0");
        full.extend([0xaa, 0xbb]);
        full.extend(deflate);
        full.extend(trailer);
        blob = full;
        assert_eq!(run(None, &blob).unwrap().1, b"named");
    }
}
