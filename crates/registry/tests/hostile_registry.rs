//! A registry that sends what it likes: manifests of any size, endless bodies, descriptors
//! that promise huge documents. A small HTTP server in the test plays it (plain HTTP on
//! 127.0.0.1, which d2l uses once TLS fails on a loopback host).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use d2l_registry::remote::{CredentialSources, RetryPolicy};
use d2l_registry::{
    media_type, pull_image, Digest, Error, Platform, Reference, RegistryOptions, MAX_CONFIG_SIZE,
    MAX_MANIFEST_SIZE,
};
use serde_json::{json, Value};

/// What the server answers to one path.
#[derive(Clone)]
enum Answer {
    /// 200 with these bytes (and their Content-Length).
    Body(Vec<u8>),
    /// 200, chunked, never ending.
    Endless,
}

/// The first byte of a TLS handshake record: d2l tries HTTPS first; the server hangs up.
const TLS_HANDSHAKE: u8 = 0x16;

struct FakeRegistry {
    host: String,
    /// The request lines received.
    requests: Arc<Mutex<Vec<String>>>,
    /// Body bytes sent for `Answer::Endless`.
    endless_sent: Arc<AtomicU64>,
}

impl FakeRegistry {
    /// Serves `/v2/` and, under `/v2/x/y/`, `routes` (`manifests/REF`, `blobs/DIGEST`).
    fn start(routes: HashMap<String, Answer>) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let endless_sent = Arc::new(AtomicU64::new(0));
        let routes = Arc::new(routes);
        {
            let requests = Arc::clone(&requests);
            let endless_sent = Arc::clone(&endless_sent);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let routes = Arc::clone(&routes);
                    let requests = Arc::clone(&requests);
                    let endless_sent = Arc::clone(&endless_sent);
                    std::thread::spawn(move || {
                        serve(stream, &routes, &requests, &endless_sent);
                    });
                }
            });
        }
        FakeRegistry {
            host,
            requests,
            endless_sent,
        }
    }

    fn reference(&self, tag_or_digest: &str) -> Reference {
        let sep = if tag_or_digest.contains(':') {
            "@"
        } else {
            ":"
        };
        format!("{}/x/y{sep}{tag_or_digest}", self.host)
            .parse()
            .unwrap()
    }

    fn requested(&self, path: &str) -> bool {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.contains(path))
    }
}

fn serve(
    mut stream: TcpStream,
    routes: &HashMap<String, Answer>,
    requests: &Mutex<Vec<String>>,
    endless_sent: &AtomicU64,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap_or(0) == 0 || head.len() > 64 << 10 {
            return;
        }
        if head.is_empty() && byte[0] == TLS_HANDSHAKE {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let line = head.lines().next().unwrap_or("").to_owned();
    requests.lock().unwrap().push(line.clone());
    let path = line.split(' ').nth(1).unwrap_or("");
    let answer = if path == "/v2/" {
        Some(Answer::Body(b"{}".to_vec()))
    } else {
        path.strip_prefix("/v2/x/y/")
            .and_then(|rest| routes.get(rest))
            .cloned()
    };
    let _ = match answer {
        Some(Answer::Body(body)) => stream
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .and_then(|()| stream.write_all(&body)),
        Some(Answer::Endless) => {
            let chunk = vec![b' '; 64 << 10];
            let mut result = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n\
                  Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            );
            while result.is_ok() {
                result = stream
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .and_then(|()| stream.write_all(&chunk))
                    .and_then(|()| stream.write_all(b"\r\n"));
                if result.is_ok() {
                    endless_sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                }
            }
            result
        }
        None => {
            let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#;
            stream
                .write_all(
                    format!(
                        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                )
                .and_then(|()| stream.write_all(body))
        }
    };
}

fn sha(bytes: &[u8]) -> Digest {
    Digest::sha256_of(bytes)
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": sha(bytes).to_string(), "size": bytes.len()})
}

/// `value` as JSON, padded with spaces to exactly `size` bytes.
fn padded(value: &Value, size: u64) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(value).unwrap();
    assert!(bytes.len() as u64 <= size);
    bytes.resize(usize::try_from(size).unwrap(), b' ');
    bytes
}

/// A config for linux/amd64 without layers, padded to `size` bytes.
fn config(size: u64) -> Vec<u8> {
    padded(
        &json!({"architecture": "amd64", "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": []}}),
        size,
    )
}

fn manifest_of(config: &[u8]) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": descriptor(media_type::OCI_CONFIG, config),
        "layers": [],
    })
}

fn options(cache: &std::path::Path) -> RegistryOptions {
    RegistryOptions {
        credential_sources: CredentialSources {
            auth_files: Vec::new(),
        },
        cache_dir: Some(cache.to_owned()),
        retry: RetryPolicy { attempts: 1 },
        ..RegistryOptions::from_env()
    }
}

/// A registry whose tag `big` is a manifest of `size` bytes (a valid one, padded).
fn registry_with_manifest_of(size: u64) -> (FakeRegistry, Vec<u8>) {
    let config = config(200);
    let manifest = padded(&manifest_of(&config), size);
    let routes = HashMap::from([
        ("manifests/big".to_owned(), Answer::Body(manifest.clone())),
        (
            format!("blobs/{}", sha(&config)),
            Answer::Body(config.clone()),
        ),
    ]);
    (FakeRegistry::start(routes), manifest)
}

#[test]
fn a_manifest_of_max_manifest_size_is_pulled() {
    let (registry, manifest) = registry_with_manifest_of(MAX_MANIFEST_SIZE);
    let cache = tempfile::tempdir().unwrap();
    let report = pull_image(
        &registry.reference("big"),
        &Platform::default(),
        &options(cache.path()),
    )
    .unwrap();
    assert_eq!(report.image.manifest_digest, Some(sha(&manifest)));
}

#[test]
fn a_manifest_one_byte_larger_is_refused_naming_it_and_the_limit() {
    let (registry, _) = registry_with_manifest_of(MAX_MANIFEST_SIZE + 1);
    let cache = tempfile::tempdir().unwrap();
    let err = pull_image(
        &registry.reference("big"),
        &Platform::default(),
        &options(cache.path()),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::DocumentTooLarge { size: Some(s), limit, .. }
            if s == MAX_MANIFEST_SIZE + 1 && limit == MAX_MANIFEST_SIZE),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "manifest \"big\" of x/y from {} is 4194305 bytes; d2l reads manifests and \
             indexes of at most 4194304 bytes",
            registry.host
        )
    );
}

#[test]
fn an_endless_manifest_is_read_no_further_than_the_limit() {
    let registry = FakeRegistry::start(HashMap::from([(
        "manifests/endless".to_owned(),
        Answer::Endless,
    )]));
    let cache = tempfile::tempdir().unwrap();
    let err = pull_image(
        &registry.reference("endless"),
        &Platform::default(),
        &options(cache.path()),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::DocumentTooLarge { size: None, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("is more than 4194304 bytes; d2l reads manifests"),
        "{err}"
    );
    // The server wrote what the socket buffers took, not much more than the limit.
    let sent = registry.endless_sent.load(Ordering::SeqCst);
    assert!(sent < 4 * MAX_MANIFEST_SIZE, "{sent} bytes sent");
}

#[test]
fn documents_promised_larger_than_the_limits_are_not_fetched() {
    // An index promising a manifest past the limit; a manifest promising a config past its
    // limit. Neither is asked for.
    let huge_manifest = sha(b"huge manifest");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": [{
            "mediaType": media_type::OCI_MANIFEST,
            "digest": huge_manifest.to_string(),
            "size": MAX_MANIFEST_SIZE + 1,
            "platform": {"os": "linux", "architecture": "amd64"},
        }],
    }))
    .unwrap();
    let huge_config = sha(b"huge config");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": {
            "mediaType": media_type::OCI_CONFIG,
            "digest": huge_config.to_string(),
            "size": MAX_CONFIG_SIZE + 1,
        },
        "layers": [],
    }))
    .unwrap();
    let registry = FakeRegistry::start(HashMap::from([
        ("manifests/index".to_owned(), Answer::Body(index)),
        ("manifests/image".to_owned(), Answer::Body(manifest)),
    ]));
    let cache = tempfile::tempdir().unwrap();

    let err = pull_image(
        &registry.reference("index"),
        &Platform::default(),
        &options(cache.path()),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::DocumentTooLarge { size: Some(s), .. } if s == MAX_MANIFEST_SIZE + 1),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("manifest {huge_manifest} from {}", registry.host)),
        "{err}"
    );
    assert!(!registry.requested(&huge_manifest.to_string()));

    let err = pull_image(
        &registry.reference("image"),
        &Platform::default(),
        &options(cache.path()),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "config {huge_config} from {} is 4194305 bytes; d2l reads configs of at most \
             4194304 bytes",
            registry.host
        )
    );
    assert!(!registry.requested(&huge_config.to_string()));
}
