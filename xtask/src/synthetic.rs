//! Synthetic images for the scaling benchmark: N small regular files over
//! [`LAYERS`] gzip layers, written as an OCI image layout.
//!
//! File `i` (counting from 0) is `bench/AAA/BBB/fCC` where `CC = i % 100` and the
//! directory number `i / 100` is split into `AAA` and `BBB` (so no directory holds more
//! than [`PER_DIR`] entries below `bench/`); its size is one of [`SIZES`]. Layer `l` holds
//! the files `l*N/10 .. (l+1)*N/10` with their parent directories, so every layer repeats
//! `bench/` as real layers repeat `/usr`. Everything is a pure function of N: the same N
//! gives the same bytes.
//!
//! Layouts are cached as `<target>/bench-images/files-<N>-v<VERSION>/` and built in a
//! sibling `.partial-<pid>` directory that is renamed into place when complete. Each layer
//! is streamed through the gzip encoder and both hashes into its blob file, never held in
//! memory; layers are written on all cores.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{ensure, Context, Result};
use flate2::write::GzEncoder;
use serde_json::json;

use crate::{oci, util};

/// Bump when the generated images change, so old caches are not reused.
const VERSION: u32 = 2;
/// Layers per image.
pub const LAYERS: usize = 10;
/// Files per directory (and directories per `bench/AAA/`).
const PER_DIR: usize = 100;
/// File sizes, picked in turn by file number: "a few hundred bytes", varied.
const SIZES: &[usize] = &[96, 200, 333, 512, 700, 1000];
/// The image's reference in the layout.
pub const REFERENCE: &str = "latest";
/// All files and directories carry this modification time (2024-01-01T00:00:00Z).
const MTIME: u64 = 1_704_067_200;
/// Written last: its presence marks a complete layout.
const DONE_FILE: &str = "bench-image.json";

/// Inodes of the tree of the image with `files` files: the files, their directories
/// (`bench/AAA/BBB`, `bench/AAA`), `bench` and the root.
pub fn inodes(files: usize) -> usize {
    let leaf_dirs = files.div_ceil(PER_DIR);
    files + leaf_dirs + leaf_dirs.div_ceil(PER_DIR) + 2
}

/// Makes sure the layout with `files` files exists under `<target>/bench-images` and
/// returns its directory.
pub fn ensure(files: usize) -> Result<PathBuf> {
    let base = util::target_dir()?.join("bench-images");
    let dir = base.join(format!("files-{files}-v{VERSION}"));
    if dir.join(DONE_FILE).is_file() {
        println!("synthetic: cached at {}", dir.display());
        return Ok(dir);
    }
    println!("synthetic: writing {}", dir.display());
    fs::create_dir_all(&base).with_context(|| base.display().to_string())?;
    remove_stale(&base, files)?;
    let partial = base.join(format!(
        "files-{files}-v{VERSION}.partial-{}",
        std::process::id()
    ));
    util::remove_tree(&partial)?;
    util::remove_tree(&dir)?;
    write_layout(&partial, files).inspect_err(|_| {
        let _ = util::remove_tree(&partial);
    })?;
    fs::rename(&partial, &dir)
        .with_context(|| format!("rename {} -> {}", partial.display(), dir.display()))?;
    println!("synthetic: {files} files, {}", describe(&dir)?);
    Ok(dir)
}

/// Removes layouts of `files` files from older versions, and partial ones whose writer is
/// gone.
fn remove_stale(base: &Path, files: usize) -> Result<()> {
    let prefix = format!("files-{files}-v");
    let current = format!("{prefix}{VERSION}");
    for entry in fs::read_dir(base)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale = match name.split_once(".partial-") {
            Some((_, pid)) => !Path::new("/proc").join(pid).exists(),
            None => name.starts_with(&prefix) && name != current,
        };
        if stale && name.starts_with(&prefix) {
            println!("synthetic: removing stale {name}");
            util::remove_tree(&base.join(name))?;
        }
    }
    Ok(())
}

/// `10 layers, 34.3 MiB compressed, 1144.4 MiB uncompressed` for the layout in `dir`.
fn describe(dir: &Path) -> Result<String> {
    let done: serde_json::Value = serde_json::from_slice(&fs::read(dir.join(DONE_FILE))?)?;
    let bytes = |key: &str| util::mib(done[key].as_u64().unwrap_or(0));
    Ok(format!(
        "{LAYERS} layers, {} compressed, {} uncompressed",
        bytes("compressed_bytes"),
        bytes("uncompressed_bytes")
    ))
}

/// A layer blob as written: compressed digest and size, uncompressed digest.
struct Blob {
    digest: String,
    size: u64,
    diff_id: String,
    tar_size: u64,
}

/// Writes the whole layout into `dir` (which must not exist).
fn write_layout(dir: &Path, files: usize) -> Result<()> {
    ensure!(
        files.is_multiple_of(LAYERS * PER_DIR),
        "{files} files do not split into {LAYERS} layers of whole directories of {PER_DIR}"
    );
    let blobs = oci::blobs_dir(dir);
    fs::create_dir_all(&blobs).with_context(|| blobs.display().to_string())?;

    // Layers on all cores: each worker takes the next layer number until none are left.
    let layers: Mutex<Vec<Option<Blob>>> = Mutex::new((0..LAYERS).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..cores.min(LAYERS))
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let l = next.fetch_add(1, Ordering::Relaxed);
                        if l >= LAYERS {
                            return Ok(());
                        }
                        let per_layer = files / LAYERS;
                        let blob = write_layer(&blobs, l, l * per_layer..(l + 1) * per_layer)
                            .with_context(|| format!("layer {l}"))?;
                        layers.lock().expect("no worker panics")[l] = Some(blob);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("no worker panics")?;
        }
        Ok(())
    })?;
    let layers: Vec<Blob> = layers
        .into_inner()
        .expect("no worker panics")
        .into_iter()
        .map(|b| b.expect("every layer written"))
        .collect();

    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Cmd": ["/bin/sh"] },
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>(),
        },
        "history": [],
    });
    let blobs: Vec<oci::Layer> = layers
        .iter()
        .map(|l| oci::Layer {
            digest: l.digest.clone(),
            size: l.size,
            media_type: oci::GZIP_LAYER,
        })
        .collect();
    oci::write_image(dir, &config, &blobs, None, REFERENCE)?;
    let done = json!({
        "files": files,
        "layers": LAYERS,
        "version": VERSION,
        "compressed_bytes": layers.iter().map(|l| l.size).sum::<u64>(),
        "uncompressed_bytes": layers.iter().map(|l| l.tar_size).sum::<u64>(),
    });
    fs::write(
        dir.join(DONE_FILE),
        serde_json::to_string_pretty(&done)? + "\n",
    )?;
    Ok(())
}

/// Writes layer `layer` (the files numbered `range`) as a gzip blob in `blobs`.
fn write_layer(blobs: &Path, layer: usize, range: std::ops::Range<usize>) -> Result<Blob> {
    let tmp = blobs.join(format!("layer-{layer}.tmp"));
    let file = File::create(&tmp).with_context(|| tmp.display().to_string())?;
    let compressed = Hashing::new(BufWriter::with_capacity(1 << 20, file));
    let gzip = GzEncoder::new(compressed, flate2::Compression::fast());
    let mut tar = tar::Builder::new(Hashing::new(gzip));

    let mut content = Vec::with_capacity(SIZES.iter().copied().max().unwrap_or(0));
    append_dir(&mut tar, "bench/")?;
    let mut top = None;
    for i in range {
        let (a, b) = split_dir(i / PER_DIR);
        if top != Some(a) {
            append_dir(&mut tar, &format!("bench/{a:03}/"))?;
            top = Some(a);
        }
        // Layers start at a whole directory, so its first file comes first.
        if i % PER_DIR == 0 {
            append_dir(&mut tar, &format!("bench/{a:03}/{b:03}/"))?;
        }
        fill(&mut content, i);
        let mut header = tar::Header::new_ustar();
        header.set_path(format!("bench/{a:03}/{b:03}/f{:02}", i % PER_DIR))?;
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        header.set_size(content.len() as u64);
        header.set_cksum();
        tar.append(&header, content.as_slice())?;
    }
    let uncompressed = tar.into_inner()?;
    let (gzip, diff_id, tar_size) = uncompressed.finish();
    let (out, digest, size) = gzip.finish()?.finish();
    out.into_inner().map_err(io::IntoInnerError::into_error)?;
    let path = blobs.join(&digest);
    fs::rename(&tmp, &path).with_context(|| path.display().to_string())?;
    Ok(Blob {
        digest: format!("sha256:{digest}"),
        size,
        diff_id: format!("sha256:{diff_id}"),
        tar_size,
    })
}

/// Adds a directory entry `path` (ending in `/`).
fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_path(path)?;
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(MTIME);
    header.set_size(0);
    header.set_cksum();
    tar.append(&header, io::empty())?;
    Ok(())
}

/// Directory number `dir` as (`AAA`, `BBB`).
fn split_dir(dir: usize) -> (usize, usize) {
    (dir / PER_DIR, dir % PER_DIR)
}

/// The content of file `i`: text naming the file, repeated up to its size.
fn fill(content: &mut Vec<u8>, i: usize) {
    let size = SIZES[i % SIZES.len()];
    content.clear();
    let line = format!("d2l bench file {i:07}: small files, many of them\n");
    while content.len() < size {
        let take = (size - content.len()).min(line.len());
        content.extend_from_slice(&line.as_bytes()[..take]);
    }
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: d2l_blob::Sha256,
    count: u64,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: d2l_blob::Sha256::new(),
            count: 0,
        }
    }

    /// The inner writer, the hex sha256 and the number of bytes written.
    fn finish(self) -> (W, String, u64) {
        (
            self.inner,
            self.hasher.finish().hex().to_owned(),
            self.count,
        )
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_have_the_listed_sizes_and_name_themselves() {
        let mut content = Vec::new();
        for i in 0..SIZES.len() * 2 {
            fill(&mut content, i);
            assert_eq!(content.len(), SIZES[i % SIZES.len()]);
            assert!(content.starts_with(format!("d2l bench file {i:07}").as_bytes()));
        }
    }

    #[test]
    fn directories_split_into_two_levels() {
        assert_eq!(split_dir(0), (0, 0));
        assert_eq!(split_dir(99), (0, 99));
        assert_eq!(split_dir(100), (1, 0));
        // 1M files are 10,000 directories: bench/099/099 is the last.
        assert_eq!(split_dir(1_000_000 / PER_DIR - 1), (99, 99));
        // ... under 100 directories bench/000 .. bench/099, under bench/, under the root.
        assert_eq!(inodes(1_000_000), 1_000_000 + 10_000 + 100 + 2);
    }

    #[test]
    fn writes_a_small_layout_twice_the_same() {
        let dir = std::env::temp_dir().join(format!("xtask-synthetic-{}", std::process::id()));
        let (a, b) = (dir.join("a"), dir.join("b"));
        write_layout(&a, 2000).unwrap();
        write_layout(&b, 2000).unwrap();
        let index = |d: &Path| fs::read(d.join("index.json")).unwrap();
        assert_eq!(index(&a), index(&b), "deterministic");
        let layers = crate::fixtures::layers(&a, REFERENCE).unwrap();
        assert_eq!(layers.len(), LAYERS);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(
            File::open(&layers[1].path).unwrap(),
        ));
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        fs::remove_dir_all(&dir).unwrap();
        // Layer 1 of 2000 files: files 200..400, directories 2 and 3.
        assert_eq!(names[..3], ["bench/", "bench/000/", "bench/000/002/"]);
        assert_eq!(names[3], "bench/000/002/f00");
        assert_eq!(names.len(), 3 + 1 + 200);
        assert!(names.contains(&"bench/000/003/f99".to_string()));
    }
}
