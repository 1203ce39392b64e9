//! Image documents from anywhere: an OCI layout or a `docker save` archive whose index,
//! manifests and config are the fuzz input, opened with `open_image` (which verifies each
//! document's digest, then parses it). Nothing is applied: layers are only opened.
//!
//! Input: a mode byte, then documents separated by the line `%%`. Document 0 is
//! `index.json` (OCI) or `manifest.json` (docker-archive); document k >= 1 is a blob. So that
//! random bytes can pass the digest checks, `@Dk@`, `@Hk@` and `@Sk@` in a document stand for
//! the digest (`sha256:HEX`), the hex and the size of document k (k a single digit greater
//! than the document's own number; the others stay as they are). Modes:
//! 0: OCI layout directory, blobs under `blobs/sha256/`; 1: the same with `:latest` asked
//! for; 2: `docker save` tar with the documents at `blobs/sha256/HEX`; 3 and 4: the rest of
//! the input is itself the archive, read as oci-archive or docker-archive.
#![no_main]

use std::io::Read;
use std::path::Path;

use d2l_blob::Digest;
use d2l_registry::{open_image, Platform, SourceSpec};
use libfuzzer_sys::fuzz_target;

const SEPARATOR: &[u8] = b"\n%%\n";
/// More documents than any index walk worth testing needs, few enough to stay fast.
const MAX_DOCUMENTS: usize = 10;
/// Bytes of each layer read through its verifying reader.
const LAYER_READ_LIMIT: u64 = 1 << 16;

fn split(data: &[u8]) -> Vec<Vec<u8>> {
    let mut docs = Vec::new();
    let mut rest = data;
    while docs.len() + 1 < MAX_DOCUMENTS {
        match rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(at) => {
                docs.push(rest[..at].to_vec());
                rest = &rest[at + SEPARATOR.len()..];
            }
            None => break,
        }
    }
    docs.push(rest.to_vec());
    docs
}

/// Replaces the placeholders of documents after `k`, last first, so each document is final
/// when the ones before it take its digest.
fn resolve(docs: &mut [Vec<u8>]) -> Vec<Digest> {
    let mut digests = vec![Digest::sha256_of(b""); docs.len()];
    for k in (0..docs.len()).rev() {
        for j in k + 1..docs.len() {
            let digest = &digests[j];
            let doc = &docs[k];
            let doc = replace(
                doc,
                format!("@D{j}@").as_bytes(),
                digest.to_string().as_bytes(),
            );
            let doc = replace(&doc, format!("@H{j}@").as_bytes(), digest.hex().as_bytes());
            let doc = replace(
                &doc,
                format!("@S{j}@").as_bytes(),
                docs[j].len().to_string().as_bytes(),
            );
            docs[k] = doc;
        }
        digests[k] = Digest::sha256_of(&docs[k]);
    }
    digests
}

fn replace(text: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

fn tar_of(files: &[(String, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, path, *bytes)
            .expect("tar in memory");
    }
    builder.into_inner().expect("tar in memory")
}

fn open_and_read(source: &SourceSpec) {
    let Ok(image) = open_image(source, &Platform::default()) else {
        return;
    };
    for index in 0..image.layers.len() {
        if let Ok(layer) = image.open_layer(index) {
            let _ = std::io::copy(&mut layer.take(LAYER_READ_LIMIT), &mut std::io::sink());
        }
    }
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("writing the temporary layout");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = tmp.path();
    match mode % 5 {
        mode @ (0 | 1) => {
            let mut docs = split(rest);
            let digests = resolve(&mut docs);
            write(
                &dir.join("oci-layout"),
                br#"{"imageLayoutVersion":"1.0.0"}"#,
            );
            write(&dir.join("index.json"), &docs[0]);
            std::fs::create_dir_all(dir.join("blobs/sha256")).expect("blobs directory");
            for (doc, digest) in docs.iter().zip(&digests).skip(1) {
                write(&dir.join("blobs/sha256").join(digest.hex()), doc);
            }
            let reference = (mode == 1).then(|| "latest".to_owned());
            open_and_read(&SourceSpec::Oci {
                dir: dir.to_owned(),
                reference,
            });
        }
        2 => {
            let mut docs = split(rest);
            let digests = resolve(&mut docs);
            let mut files = vec![("manifest.json".to_owned(), &docs[0][..])];
            for (doc, digest) in docs.iter().zip(&digests).skip(1) {
                files.push((format!("blobs/sha256/{}", digest.hex()), &doc[..]));
            }
            let archive = dir.join("image.tar");
            write(&archive, &tar_of(&files));
            open_and_read(&SourceSpec::DockerArchive {
                file: archive,
                name_tag: None,
            });
        }
        mode => {
            let archive = dir.join("image.tar");
            write(&archive, rest);
            open_and_read(&if mode == 3 {
                SourceSpec::OciArchive {
                    file: archive,
                    reference: None,
                }
            } else {
                SourceSpec::DockerArchive {
                    file: archive,
                    name_tag: None,
                }
            });
        }
    }
});
