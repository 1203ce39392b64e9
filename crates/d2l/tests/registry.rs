//! Pulling from a real registry: Debian's `docker-registry` started by the tests (see
//! `d2l_testkit::registry`) in three set-ups — plain HTTP, TLS with a self-signed CA, TLS
//! with htpasswd Basic auth — and a fourth with Bearer tokens from a token server (Docker
//! Hub's flow), with the Debian fixture pushed by skopeo, and a
//! multi-platform index (the amd64 fixture and the small arm64 one).
//!
//! What is checked: a registry build gives the same bytes as a build of the local layout;
//! a second build downloads no blob (the registry's access log counts them); TLS needs the
//! CA; wrong or missing credentials give a clear 401; credentials come from --creds, auth
//! files and credential helpers, and never show; the platform is chosen from the index; a
//! blob tampered with in the registry's storage is named; a registry killed mid-download
//! leaves no blob under its digest and the next run resumes; concurrent pulls share the
//! cache; `cache ls` and `cache prune`.
//!
//! One registry per set-up is shared by the tests (started on first use); the tests that
//! kill or corrupt a registry start their own. Tests that count requests use repositories
//! no other test reads, since tests run in parallel.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::stderr;
use d2l_testkit::registry::{write_multi_platform_layout, Registry, Setup, Throttle, PASSWORD};

/// The Debian fixture's repository in every registry.
const DEBIAN: &str = "d2l/debian";
/// The multi-platform index's repository.
const MULTI: &str = "d2l/multi";

/// A registry with the fixture pushed as `d2l/debian:bookworm` and the multi-platform index
/// as `d2l/multi:latest`.
fn registry(setup: Setup) -> &'static Registry {
    static HTTP: OnceLock<Registry> = OnceLock::new();
    static TLS: OnceLock<Registry> = OnceLock::new();
    static TLS_AUTH: OnceLock<Registry> = OnceLock::new();
    static TOKEN: OnceLock<Registry> = OnceLock::new();
    static SELF_SIGNED: OnceLock<Registry> = OnceLock::new();
    static MUTUAL_TLS: OnceLock<Registry> = OnceLock::new();
    let cell = match setup {
        Setup::Http => &HTTP,
        Setup::Tls => &TLS,
        Setup::TlsAuth => &TLS_AUTH,
        Setup::Token => &TOKEN,
        Setup::SelfSigned => &SELF_SIGNED,
        Setup::MutualTls => &MUTUAL_TLS,
    };
    cell.get_or_init(|| {
        let registry = Registry::start(setup);
        let debian = d2l_testkit::debian();
        registry.push(&debian.oci, &format!("{DEBIAN}:bookworm"), false);
        if setup == Setup::Http {
            let multi = multi_layout();
            registry.push(
                &format!("oci:{}:multi", multi.display()),
                &format!("{MULTI}:latest"),
                true,
            );
        }
        registry
    })
}

/// An OCI layout whose `multi` is an index of the amd64 fixture and the arm64 image.
fn multi_layout() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let debian = d2l_testkit::debian();
        let arm64 = d2l_testkit::arm64_layout();
        write_multi_platform_layout(
            dir.path(),
            &[(&debian.oci_dir, "bookworm"), (&arm64, "arm64")],
            "multi",
        );
        dir
    });
    dir.path().to_owned()
}

/// Runs d2l with `HOME` and `XDG_*` pointing into `home` (no auth file or cache of the
/// machine's is used) and extra environment `env`.
fn d2l_in(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    command(home, args, env).output().expect("run d2l")
}

fn command(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_d2l"));
    cmd.args(args)
        .env_remove("D2L_LOG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("DOCKER_CONFIG")
        .env_remove("SSL_CERT_FILE")
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_RUNTIME_DIR", home.join("run"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "d2l failed ({}): {}",
        out.status,
        stderr(out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The one `d2l: error:` line of a failed run (exit code 1).
fn error_line(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "exit code; stderr: {err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("d2l: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "one error line in: {err}");
    // Shown with --nocapture, to read what users get.
    eprintln!("{}", lines[0]);
    lines[0].to_owned()
}

/// `--cert-dir DIR` and `--creds` as the set-up needs.
fn access(registry: &Registry) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(dir) = registry.cert_dir() {
        args.push("--cert-dir".to_owned());
        args.push(dir.display().to_string());
    }
    if let Some(creds) = registry.creds() {
        args.push("--creds".to_owned());
        args.push(creds);
    }
    args
}

fn file_sha256(path: &Path) -> String {
    let mut file = std::fs::File::open(path).unwrap();
    let mut hasher = d2l_registry::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hasher.finish().to_string()
}

/// sha256 of `d2l build --table none` of the local OCI layout: what every registry build
/// must reproduce byte for byte.
fn local_build_digest() -> &'static str {
    static DIGEST: OnceLock<String> = OnceLock::new();
    DIGEST.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("local.ext4");
        let debian = d2l_testkit::debian();
        ok(&d2l_in(
            tmp.path(),
            &[
                "build",
                &debian.oci,
                "-o",
                out.to_str().unwrap(),
                "--table",
                "none",
            ],
            &[],
        ));
        file_sha256(&out)
    })
}

/// Builds `reference` through `registry` with a fresh cache in `home`; checks the bytes.
fn build_through(registry: &Registry, home: &Path, name: &str) -> Output {
    let reference = format!("{}/{DEBIAN}:bookworm", registry.host());
    let out_path = home.join(name);
    let mut args = vec![
        "build".to_owned(),
        reference,
        "-o".to_owned(),
        out_path.display().to_string(),
        "--table".to_owned(),
        "none".to_owned(),
    ];
    args.extend(access(registry));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = d2l_in(home, &args, &[]);
    ok(&out);
    assert_eq!(
        file_sha256(&out_path),
        local_build_digest(),
        "a registry build differs from the local one"
    );
    out
}

/// Blob files in a cache directory's `blobs/sha256`.
fn cached_blobs(cache: &Path) -> Vec<String> {
    match std::fs::read_dir(cache.join("blobs/sha256")) {
        Ok(entries) => {
            let mut names: Vec<String> = entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
        Err(_) => Vec::new(),
    }
}

/// The hex part of `sha256:HEX`.
fn hex(digest: &str) -> String {
    digest
        .strip_prefix("sha256:")
        .expect("a sha256 digest")
        .to_owned()
}

fn layer_digests() -> Vec<String> {
    d2l_testkit::debian()
        .layers
        .iter()
        .map(|l| l.digest.to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Each set-up
// ---------------------------------------------------------------------------------------------

#[test]
fn build_over_plain_http_then_again_from_the_cache() {
    let registry = registry(Setup::Http);
    let home = tempfile::tempdir().unwrap();
    let before = registry.blob_gets(DEBIAN);
    build_through(registry, home.path(), "first.ext4");
    let first = registry.blob_gets(DEBIAN) - before;
    // Config and both layers, once each.
    assert_eq!(
        first,
        1 + layer_digests().len(),
        "blob GETs of the first build"
    );
    for digest in layer_digests() {
        let hex = digest.strip_prefix("sha256:").unwrap();
        assert!(cached_blobs(&home.path().join("cache/d2l")).contains(&hex.to_owned()));
    }

    // The second build downloads no blob.
    let before = registry.blob_gets(DEBIAN);
    build_through(registry, home.path(), "second.ext4");
    assert_eq!(
        registry.blob_gets(DEBIAN) - before,
        0,
        "the second build fetched blobs: {:?}",
        registry.requests(&format!("GET /v2/{DEBIAN}/blobs/"))
    );
}

#[test]
fn a_reference_pinned_by_digest() {
    let registry = registry(Setup::Http);
    let home = tempfile::tempdir().unwrap();
    let debian = d2l_testkit::debian();
    // A repository of its own: other tests count the blob GETs of theirs.
    registry.push(&debian.oci, "d2l/pinned:bookworm", false);
    let pinned = format!("{}/d2l/pinned@{}", registry.host(), debian.manifest_digest);
    let out = d2l_in(home.path(), &["inspect", &pinned, "--json"], &[]);
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(report["manifest_digest"], debian.manifest_digest);
    assert_eq!(report["config_digest"], debian.config_digest);

    let unknown = format!("{}/d2l/pinned@sha256:{}", registry.host(), "0".repeat(64));
    let line = error_line(&d2l_in(home.path(), &["inspect", &unknown], &[]));
    assert!(
        line.contains("manifest unknown") || line.contains("404"),
        "{line}"
    );
}

#[test]
fn build_over_tls_with_the_ca_from_cert_dir_or_ssl_cert_file() {
    let registry = registry(Setup::Tls);
    let home = tempfile::tempdir().unwrap();
    build_through(registry, home.path(), "tls.ext4");

    // Without the CA: a clear certificate error, nothing cached under a digest.
    let bare = tempfile::tempdir().unwrap();
    let reference = format!("{}/{DEBIAN}:bookworm", registry.host());
    let out = d2l_in(bare.path(), &["pull", &reference], &[]);
    let line = error_line(&out);
    assert!(
        line.contains(&registry.host()) && line.contains("certificate"),
        "{line}"
    );
    assert!(cached_blobs(&bare.path().join("cache/d2l")).is_empty());

    // --insecure-registry: TLS without verification, for that host only.
    let out = d2l_in(
        bare.path(),
        &[
            "inspect",
            &reference,
            "--insecure-registry",
            &registry.host(),
        ],
        &[],
    );
    assert!(ok(&out).contains(&d2l_testkit::debian().config_digest.to_string()));
    let out = d2l_in(
        bare.path(),
        &["inspect", &reference, "--insecure-registry", "127.0.0.1:1"],
        &[],
    );
    assert!(error_line(&out).contains("certificate"));

    // SSL_CERT_FILE is read as extra roots.
    let ca = registry.cert_dir().unwrap().join("ca.crt");
    let out = d2l_in(
        bare.path(),
        &["inspect", &reference],
        &[("SSL_CERT_FILE", ca.to_str().unwrap())],
    );
    assert!(ok(&out).contains(&d2l_testkit::debian().config_digest.to_string()));
}

#[test]
fn a_self_signed_certificate_made_as_the_registry_docs_say_is_trusted_where_the_user_put_it() {
    let registry = registry(Setup::SelfSigned);
    let digest = d2l_testkit::debian().config_digest.to_string();
    let reference = format!("{}/{DEBIAN}:bookworm", registry.host());
    let cert = registry.cert_dir().unwrap().join("ca.crt");

    // Nowhere: refused, with a hint saying where to put it.
    let bare = tempfile::tempdir().unwrap();
    let line = error_line(&d2l_in(bare.path(), &["inspect", &reference], &[]));
    assert!(
        line.contains("certificate") && line.contains("certs.d"),
        "{line}"
    );

    // In the host's directory, as podman (rootless) and skopeo read it: no flag at all.
    let home = tempfile::tempdir().unwrap();
    let host_dir = home
        .path()
        .join(".config/containers/certs.d")
        .join(registry.host());
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::copy(&cert, host_dir.join("ca.crt")).unwrap();
    assert!(ok(&d2l_in(home.path(), &["inspect", &reference], &[])).contains(&digest));

    // With --cert-dir: a whole build, the same bytes as from the layout.
    let home = tempfile::tempdir().unwrap();
    build_through(registry, home.path(), "self-signed.ext4");

    // Still strict: the same certificate for another name of the same server...
    let dir = registry.cert_dir().unwrap();
    let by_name = format!("localhost:{}/{DEBIAN}:bookworm", registry.port());
    let line = error_line(&d2l_in(
        bare.path(),
        &["inspect", &by_name, "--cert-dir", dir.to_str().unwrap()],
        &[],
    ));
    assert!(line.contains("certificate"), "{line}");
    // ...or another self-signed certificate in the directory: refused.
    let other = tempfile::tempdir().unwrap();
    let made = Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-keyout", "other.key", "-x509", "-days", "1"])
        .args([
            "-addext",
            "subjectAltName = IP:127.0.0.1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-out", "ca.crt"])
        .current_dir(other.path())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let line = error_line(&d2l_in(
        bare.path(),
        &[
            "inspect",
            &reference,
            "--cert-dir",
            other.path().to_str().unwrap(),
        ],
        &[],
    ));
    assert!(line.contains("certificate"), "{line}");
}

#[test]
fn a_registry_that_asks_for_a_client_certificate_gets_the_one_in_the_cert_dir() {
    let registry = registry(Setup::MutualTls);
    let digest = d2l_testkit::debian().config_digest.to_string();
    let reference = format!("{}/{DEBIAN}:bookworm", registry.host());
    let dir = registry.cert_dir().unwrap();

    // client.cert and client.key beside ca.crt, as containers-certs.d(5) names them.
    let home = tempfile::tempdir().unwrap();
    build_through(registry, home.path(), "mtls.ext4");

    // The CA alone: the server refuses the handshake, said in one line, not retried.
    let ca_only = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("ca.crt"), ca_only.path().join("ca.crt")).unwrap();
    let started = Instant::now();
    let out = d2l_in(
        home.path(),
        &[
            "inspect",
            &reference,
            "--cert-dir",
            ca_only.path().to_str().unwrap(),
        ],
        &[],
    );
    let line = error_line(&out);
    assert!(line.contains(&registry.host()), "{line}");
    assert!(!stderr(&out).contains("retrying"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(10));

    // A certificate without its key: an error naming the file, before any request.
    let half = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("client.cert"), half.path().join("client.cert")).unwrap();
    let line = error_line(&d2l_in(
        home.path(),
        &[
            "inspect",
            &reference,
            "--cert-dir",
            half.path().to_str().unwrap(),
        ],
        &[],
    ));
    assert!(
        line.contains("client.cert") && line.contains("client.key"),
        "{line}"
    );

    // The same directory in the host's place under HOME: no flag needed.
    let host_dir = home
        .path()
        .join(".config/containers/certs.d")
        .join(registry.host());
    std::fs::create_dir_all(&host_dir).unwrap();
    for name in ["ca.crt", "client.cert", "client.key"] {
        std::fs::copy(dir.join(name), host_dir.join(name)).unwrap();
    }
    assert!(ok(&d2l_in(home.path(), &["inspect", &reference], &[])).contains(&digest));
}

#[test]
fn build_over_tls_with_basic_auth() {
    let registry = registry(Setup::TlsAuth);
    let home = tempfile::tempdir().unwrap();
    build_through(registry, home.path(), "auth.ext4");
}

#[test]
fn pull_with_bearer_tokens_as_from_docker_hub() {
    let registry = registry(Setup::Token);
    let home = tempfile::tempdir().unwrap();
    let reference = format!("{}/{DEBIAN}:bookworm", registry.host());
    let creds = registry.creds().unwrap();
    let out = d2l_in(
        home.path(),
        &["pull", &reference, "--creds", &creds, "--json"],
        &[],
    );
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(report["config_digest"], d2l_testkit::debian().config_digest);
    // The challenge sent d2l to the token endpoint, with the pull scope and the
    // credentials.
    let requests = registry.token_requests();
    assert!(
        requests.iter().any(|r| r.contains("GET /token?")
            && r.contains("scope=repository%3Ad2l%2Fdebian%3Apull")
            && r.contains("service=d2l-test-registry")
            && r.ends_with("accepted")),
        "{requests:#?}"
    );

    // Refused at the token endpoint, before anything is written (the cache cannot be).
    let out = d2l_in(
        home.path(),
        &[
            "pull",
            &reference,
            "--creds",
            "d2luser:nope",
            "--cache-dir",
            "/nonexistent/x",
        ],
        &[],
    );
    let line = error_line(&out);
    assert!(
        line.contains("401 Unauthorized") && line.contains("refused the credentials"),
        "{line}"
    );
}

#[test]
fn wrong_or_missing_credentials_give_a_clear_401() {
    let registry = registry(Setup::TlsAuth);
    let home = tempfile::tempdir().unwrap();
    let reference = format!("{}/{DEBIAN}:bookworm", registry.host());
    let cert_dir = registry.cert_dir().unwrap();
    let cert_dir = cert_dir.to_str().unwrap();

    let out = d2l_in(
        home.path(),
        &[
            "pull",
            &reference,
            "--cert-dir",
            cert_dir,
            "--creds",
            "d2luser:wrong-password",
        ],
        &[],
    );
    let line = error_line(&out);
    for needle in ["401 Unauthorized", &registry.host(), "d2luser", "--creds"] {
        assert!(line.contains(needle), "{needle:?} not in {line}");
    }
    assert!(!line.contains("wrong-password"), "{line}");

    let out = d2l_in(
        home.path(),
        &["pull", &reference, "--cert-dir", cert_dir],
        &[],
    );
    let line = error_line(&out);
    assert!(
        line.contains("401 Unauthorized") && line.contains("no credentials"),
        "{line}"
    );
    assert!(cached_blobs(&home.path().join("cache/d2l")).is_empty());
}

#[test]
fn credentials_from_auth_files_and_helpers_never_show() {
    use base64::Engine;
    let registry = registry(Setup::TlsAuth);
    let reference = format!("{}/{DEBIAN}:bookworm", registry.host());
    let cert_dir = registry.cert_dir().unwrap();
    let cert_dir = cert_dir.to_str().unwrap();
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{PASSWORD}", d2l_testkit::registry::USER));

    // $REGISTRY_AUTH_FILE (containers-auth.json).
    let home = tempfile::tempdir().unwrap();
    let auth_file = home.path().join("auth.json");
    std::fs::write(
        &auth_file,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let out = d2l_in(
        home.path(),
        &["inspect", &reference, "--cert-dir", cert_dir, "--json"],
        &[
            ("REGISTRY_AUTH_FILE", auth_file.to_str().unwrap()),
            ("D2L_LOG", "trace"),
        ],
    );
    let json = ok(&out);
    for text in [&json, &stderr(&out)] {
        assert!(
            !text.contains(PASSWORD) && !text.contains(&auth),
            "secret shown"
        );
    }

    // podman's ${XDG_RUNTIME_DIR}/containers/auth.json.
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("run/containers")).unwrap();
    std::fs::write(
        home.path().join("run/containers/auth.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    ok(&d2l_in(
        home.path(),
        &["inspect", &reference, "--cert-dir", cert_dir],
        &[],
    ));

    // ~/.docker/config.json naming a credential helper, a program on PATH.
    let home = tempfile::tempdir().unwrap();
    let bin = home.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-d2ltest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\n\
             [ \"$server\" = \"{}\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\"\n",
            registry.host(),
            d2l_testkit::registry::USER
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(home.path().join(".docker")).unwrap();
    std::fs::write(
        home.path().join(".docker/config.json"),
        format!(r#"{{"credHelpers":{{"{}":"d2ltest"}}}}"#, registry.host()),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = d2l_in(
        home.path(),
        &["pull", &reference, "--cert-dir", cert_dir, "--json"],
        &[("PATH", &path)],
    );
    let json = ok(&out);
    assert!(!json.contains(PASSWORD) && !stderr(&out).contains(PASSWORD));
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        report["config_digest"],
        d2l_testkit::debian().config_digest.to_string()
    );
}

// ---------------------------------------------------------------------------------------------
// Platforms, through a real multi-platform index
// ---------------------------------------------------------------------------------------------

#[test]
fn platform_is_chosen_from_the_index() {
    let registry = registry(Setup::Http);
    let home = tempfile::tempdir().unwrap();
    let reference = format!("docker://{}/{MULTI}:latest", registry.host());

    let before = registry.blob_gets(MULTI);
    let out = d2l_in(
        home.path(),
        &["inspect", &reference, "--platform", "linux/amd64", "--json"],
        &[],
    );
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    // inspect reads the config, never a layer.
    assert_eq!(registry.blob_gets(MULTI) - before, 1);
    assert_eq!(report["platform"], "linux/amd64");
    assert_eq!(
        report["config_digest"],
        d2l_testkit::debian().config_digest.to_string()
    );

    let tar = home.path().join("arm64.tar");
    ok(&d2l_in(
        home.path(),
        &[
            "export",
            &reference,
            "--platform",
            "linux/arm64",
            "-o",
            tar.to_str().unwrap(),
        ],
        &[],
    ));
    let mut archive = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    let mut arch = None;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("etc/d2l-arch") {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            arch = Some(text);
        }
    }
    assert_eq!(arch.as_deref(), Some("arm64\n"));

    let out = d2l_in(
        home.path(),
        &["pull", &reference, "--platform", "linux/s390x"],
        &[],
    );
    let line = error_line(&out);
    assert!(
        line.contains("linux/s390x")
            && line.contains("linux/amd64")
            && line.contains("linux/arm64"),
        "{line}"
    );
}

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------

#[test]
fn a_blob_tampered_with_in_the_registry_is_named() {
    let registry = Registry::start(Setup::Http);
    let arm64 = d2l_testkit::arm64_layout();
    registry.push(
        &format!("oci:{}:arm64", arm64.display()),
        "d2l/arm64:1",
        false,
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(arm64.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(arm64.join("blobs/sha256").join(&manifest_digest[7..])).unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let data = registry.blob_data(&layer);
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();

    let home = tempfile::tempdir().unwrap();
    let out = d2l_in(
        home.path(),
        &[
            "pull",
            &format!("{}/d2l/arm64:1", registry.host()),
            "--platform",
            "linux/arm64",
        ],
        &[],
    );
    let line = error_line(&out);
    assert!(
        line.contains(&layer) && line.contains("hashes to"),
        "{line}"
    );
    assert!(!cached_blobs(&home.path().join("cache/d2l")).contains(&layer[7..].to_owned()));
    assert!(
        std::fs::read_dir(home.path().join("cache/d2l/downloads"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "a wrong partial download was kept"
    );
}

#[test]
fn a_registry_killed_mid_download_leaves_no_blob_and_the_next_run_resumes() {
    let mut registry = Registry::start(Setup::Http);
    let debian = d2l_testkit::debian();
    registry.push(&debian.oci, "d2l/debian:bookworm", false);
    // 4 MB/s per connection: the big layer takes tens of seconds, the kill lands inside it.
    let throttle = Throttle::start(
        format!("127.0.0.1:{}", registry.port()).parse().unwrap(),
        4 << 20,
    );
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache/d2l");
    let reference = format!("{}/d2l/debian:bookworm", throttle.host());
    let child = command(home.path(), &["pull", &reference], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Kill the registry once a few MB of a layer are on disk.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let partial: u64 = std::fs::read_dir(cache.join("downloads"))
            .map(|d| d.map(|e| e.unwrap().metadata().unwrap().len()).sum())
            .unwrap_or(0);
        if partial > 3 << 20 {
            break;
        }
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    registry.kill();
    let out = child.wait_with_output().unwrap();
    let line = error_line(&out);
    assert!(line.contains(&throttle.host()), "{line}");
    let blobs = cached_blobs(&cache);
    let big = debian.layers.iter().max_by_key(|l| l.size).unwrap();
    assert!(
        !blobs.contains(&hex(&big.digest)),
        "an unfinished layer is in the cache under its digest"
    );

    // After a restart the next run completes, resuming the partial download.
    registry.restart();
    throttle.set_rate(0);
    let out = d2l_in(home.path(), &["-v", "pull", &reference, "--json"], &[]);
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let log = stderr(&out);
    assert!(log.contains("resuming"), "{log}");
    assert!(!log.contains("ignored the Range"), "{log}");
    let total: u64 = debian.layers.iter().map(|l| l.size).sum();
    let downloaded = report["downloaded_bytes"].as_u64().unwrap();
    assert!(
        downloaded <= total - (3 << 20),
        "the resumed run downloaded {downloaded} of {total} bytes"
    );
    for layer in &debian.layers {
        assert!(cached_blobs(&cache).contains(&hex(&layer.digest)));
    }
}

#[test]
fn concurrent_pulls_share_one_cache() {
    let registry = registry(Setup::Http);
    let throttle = Throttle::start(
        format!("127.0.0.1:{}", registry.port()).parse().unwrap(),
        32 << 20,
    );
    // A repository of its own: other tests count the blob GETs of theirs.
    registry.push(&d2l_testkit::debian().oci, "d2l/concurrent:bookworm", false);
    let home = tempfile::tempdir().unwrap();
    let reference = format!("{}/d2l/concurrent:bookworm", throttle.host());
    let children: Vec<_> = (0..2)
        .map(|_| {
            command(home.path(), &["pull", &reference, "--json"], &[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut downloaded = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let report: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
        downloaded += report["downloaded_bytes"].as_u64().unwrap();
    }
    let total: u64 = d2l_testkit::debian().layers.iter().map(|l| l.size).sum();
    // Each layer was downloaded by one of the two; the other waited and found it.
    assert_eq!(downloaded, total);
    let cache = home.path().join("cache/d2l");
    for layer in &d2l_testkit::debian().layers {
        let path = cache.join("blobs/sha256").join(hex(&layer.digest));
        assert_eq!(file_sha256(&path), layer.digest);
    }
}

// ---------------------------------------------------------------------------------------------
// The cache commands
// ---------------------------------------------------------------------------------------------

#[test]
fn cache_ls_and_prune() {
    let registry = registry(Setup::Http);
    let home = tempfile::tempdir().unwrap();
    let cache_dir = home.path().join("elsewhere");
    let cache = cache_dir.to_str().unwrap();
    // A repository of its own: other tests count the blob GETs of theirs.
    let arm64 = d2l_testkit::arm64_layout();
    registry.push(
        &format!("oci:{}:arm64", arm64.display()),
        "d2l/cached:latest",
        false,
    );
    let reference = format!("{}/d2l/cached:latest", registry.host());
    ok(&d2l_in(
        home.path(),
        &[
            "pull",
            &reference,
            "--platform",
            "linux/arm64",
            "--cache-dir",
            cache,
        ],
        &[],
    ));
    assert!(
        !home.path().join("cache/d2l").exists(),
        "--cache-dir ignored"
    );
    // A stray blob no image needs, and an abandoned download.
    let stray = d2l_registry::Digest::sha256_of(b"stray");
    std::fs::write(cache_dir.join("blobs/sha256").join(stray.hex()), b"stray").unwrap();
    std::fs::create_dir_all(cache_dir.join("downloads")).unwrap();
    std::fs::write(cache_dir.join("downloads/sha256-abandoned"), b"x").unwrap();

    let listing = ok(&d2l_in(
        home.path(),
        &["cache", "ls", "--cache-dir", cache],
        &[],
    ));
    let name = format!("{}/d2l/cached:latest", registry.host());
    assert!(
        listing.contains(&name)
            && listing.contains("linux/arm64")
            && listing.contains("1 used by no image"),
        "{listing}"
    );

    let pruned = ok(&d2l_in(
        home.path(),
        &["cache", "prune", "--cache-dir", cache],
        &[],
    ));
    assert!(
        pruned.contains("removed 1 blobs, 1 unfinished downloads"),
        "{pruned}"
    );
    assert!(!cache_dir.join("blobs/sha256").join(stray.hex()).exists());
    let listing = ok(&d2l_in(
        home.path(),
        &["cache", "ls", "--cache-dir", cache],
        &[],
    ));
    assert!(listing.contains(&name), "{listing}");

    ok(&d2l_in(
        home.path(),
        &["cache", "prune", "--all", "--cache-dir", cache],
        &[],
    ));
    assert!(cached_blobs(&cache_dir).is_empty());
    let listing = ok(&d2l_in(
        home.path(),
        &["cache", "ls", "--cache-dir", cache],
        &[],
    ));
    assert!(listing.contains("0 blobs"), "{listing}");
}
