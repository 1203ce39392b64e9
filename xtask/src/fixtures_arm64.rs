//! A small linux/arm64 image beside the Debian fixture, so that platform choice can be tested
//! through a real registry (pushed with the amd64 Debian image as one multi-platform index).
//!
//! It does not boot: one gzip layer of a few files written here, a config labelled
//! `linux/arm64`, in an OCI layout at `FIX/arm64-oci` with the reference `arm64`. The bytes
//! are the same on every machine (fixed mtimes, owners and gzip settings), so it needs no
//! cache key of its own; it is written into a sibling directory and renamed into place.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use crate::oci;

/// The layout's directory name in FIX.
pub const DIR: &str = "arm64-oci";
/// The image's `org.opencontainers.image.ref.name`.
pub const REFERENCE: &str = "arm64";
/// What the layer holds: path, mode, content.
const FILES: &[(&str, u32, &str)] = &[
    ("etc/", 0o755, ""),
    (
        "etc/os-release",
        0o644,
        "ID=d2l-arm64-fixture\nPRETTY_NAME=\"d2l arm64 test image\"\n",
    ),
    ("etc/d2l-arch", 0o644, "arm64\n"),
    ("opt/", 0o755, ""),
    ("opt/d2l/", 0o755, ""),
    ("opt/d2l/hello.txt", 0o644, "hello from the arm64 fixture\n"),
];
/// mtime of every entry (2024-01-01T00:00:00Z): fixed, so the bytes never change.
const MTIME: u64 = 1_704_067_200;

/// Writes `FIX/arm64-oci` unless it is there.
pub fn ensure(fix: &Path) -> Result<()> {
    let dir = fix.join(DIR);
    if dir.join("index.json").is_file() {
        return Ok(());
    }
    let partial = fix.join(format!("{DIR}.partial-{}", std::process::id()));
    let _ = fs::remove_dir_all(&partial);
    write_layout(&partial).with_context(|| format!("writing {}", partial.display()))?;
    if let Err(e) = fs::rename(&partial, &dir) {
        let _ = fs::remove_dir_all(&partial);
        if !dir.join("index.json").is_file() {
            return Err(e).with_context(|| format!("renaming to {}", dir.display()));
        }
    }
    println!("fixtures: wrote {}", dir.display());
    Ok(())
}

fn layer_tar() -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, mode, content) in FILES {
        let mut header = tar::Header::new_ustar();
        header.set_mode(*mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        if path.ends_with('/') {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            builder.append_data(&mut header, path, std::io::empty())?;
        } else {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(content.len() as u64);
            builder.append_data(&mut header, path, content.as_bytes())?;
        }
    }
    Ok(builder.into_inner()?)
}

fn write_layout(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)?;
    let tar = layer_tar()?;
    let diff_id = oci::sha256(&tar);
    // No name or mtime in the gzip header: the same bytes every time.
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar)?;
    let layer = gz.finish()?;
    let (digest, size) = oci::put_blob(dir, &layer)?;

    let config = json!({
        "architecture": "arm64",
        "os": "linux",
        "config": { "Cmd": ["/bin/sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"] },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [ { "created_by": "cargo xtask fixtures (fixtures_arm64.rs)" } ]
    });
    oci::write_image(
        dir,
        &config,
        &[oci::Layer {
            digest,
            size,
            media_type: oci::GZIP_LAYER,
        }],
        Some(json!({ "os": "linux", "architecture": "arm64" })),
        REFERENCE,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_the_same_every_time() {
        let a = tempfile_dir("a");
        let b = tempfile_dir("b");
        write_layout(&a).unwrap();
        write_layout(&b).unwrap();
        assert_eq!(
            fs::read(a.join("index.json")).unwrap(),
            fs::read(b.join("index.json")).unwrap()
        );
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(a.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["platform"]["architecture"], "arm64");
        let _ = fs::remove_dir_all(&a);
        let _ = fs::remove_dir_all(&b);
    }

    fn tempfile_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("d2l-arm64-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }
}
