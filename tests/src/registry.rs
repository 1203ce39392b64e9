//! A real registry for tests: Debian's `docker-registry` (distribution v2) on 127.0.0.1 at a
//! free port, in three set-ups ([`Setup`]): plain HTTP, TLS with a self-signed CA, TLS with
//! htpasswd Basic auth. Images are pushed with `skopeo copy`. Its access log lets a test
//! count requests (blob GETs). [`Throttle`] is a slow TCP relay to put in front of it, so a
//! test can kill the registry in the middle of a download.
//!
//! The registry runs under a small `sh` that kills it (SIGKILL) when its standard input
//! closes: when the [`Registry`] is dropped, or when the test process ends, even for a
//! registry kept in a `static`. A second one removes its directory (storage holding the
//! pushed images, hundreds of MB) at the same moment, since a `static` is never dropped.
//!
//! ```no_run
//! use d2l_testkit::registry::{Registry, Setup};
//! let registry = Registry::start(Setup::Tls);
//! let fixture = d2l_testkit::debian();
//! registry.push(&fixture.oci, "d2l/debian:bookworm", false);
//! println!("pull {}/d2l/debian:bookworm with --cert-dir {}", registry.host(), registry.cert_dir().unwrap().display());
//! ```

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The user name the auth set-up accepts.
pub const USER: &str = "d2luser";
/// Its password.
pub const PASSWORD: &str = "s3cret-Pa55";
/// How long a registry may take to answer after starting.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Ports tried before giving up.
const PORT_ATTEMPTS: usize = 5;
/// Stands for the port in the registry's configuration until one is chosen.
const PORT_PLACEHOLDER: &str = "@PORT@";

/// How the registry is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// Plain HTTP, anonymous.
    Http,
    /// TLS with a certificate from a CA made for the test (see [`Registry::cert_dir`]).
    Tls,
    /// TLS as above, and htpasswd Basic auth ([`USER`], [`PASSWORD`]).
    TlsAuth,
    /// TLS with the registry documentation's own recipe: a self-signed certificate
    /// (`openssl req -newkey rsa:4096 -nodes -sha256 -keyout domain.key -addext
    /// "subjectAltName = IP:127.0.0.1" -x509 -days 365 -out domain.crt`), which is its own
    /// CA. [`Registry::cert_dir`] holds it as `ca.crt`, as users copy it to
    /// `/etc/containers/certs.d/HOST/`.
    SelfSigned,
    /// TLS as [`Setup::Tls`], and the registry asks for a client certificate signed by
    /// the test CA (`http.tls.clientcas`): [`Registry::cert_dir`] also holds
    /// `client.cert` and `client.key`.
    MutualTls,
    /// Plain HTTP with Bearer tokens, Docker Hub's flow: the registry answers 401 with a
    /// `Bearer realm=...,service=...` challenge; a token server started beside it
    /// ([`Registry::token_requests`]) checks [`USER`] and [`PASSWORD`] by Basic auth and
    /// hands out a JWT signed with a key the registry trusts.
    Token,
}

/// A running registry; killed on drop.
pub struct Registry {
    setup: Setup,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<(Child, ChildStdin)>,
    token_server: Option<TokenServer>,
    /// Its standard input closes when this process ends: then it removes `dir`.
    _reaper: Option<ChildStdin>,
}

impl Registry {
    /// Starts a registry with empty storage at a free port and waits until it answers.
    pub fn start(setup: Setup) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("d2l-registry-")
            .tempdir()
            .expect("a temporary directory");
        let root = dir.path();
        fs::create_dir_all(root.join("storage")).unwrap();
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{PORT_PLACEHOLDER}\n",
            storage = root.join("storage").display()
        );
        let mut token_server = None;
        if setup == Setup::Token {
            let server = TokenServer::start(root);
            config.push_str(&format!(
                "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {TOKEN_SERVICE}\n    \
                 issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                server.port,
                root.join("token.crt").display()
            ));
            token_server = Some(server);
        }
        if matches!(setup, Setup::Tls | Setup::TlsAuth | Setup::MutualTls) {
            make_certificates(root);
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                root.join("server.crt").display(),
                root.join("server.key").display()
            ));
        }
        if setup == Setup::MutualTls {
            make_client_certificate(root);
            config.push_str(&format!(
                "    clientcas:\n      - {}\n",
                root.join("ca/ca.crt").display()
            ));
        }
        if setup == Setup::SelfSigned {
            make_self_signed(root);
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                root.join("certs/domain.crt").display(),
                root.join("certs/domain.key").display()
            ));
        }
        if setup == Setup::TlsAuth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", USER, PASSWORD])
                .output()
                .expect("htpasswd (apache2-utils) runs");
            assert!(out.status.success(), "htpasswd failed");
            fs::write(root.join("htpasswd"), out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: d2l-test\n    path: {}\n",
                root.join("htpasswd").display()
            ));
        }
        let reaper = remove_at_exit(dir.path());
        let mut registry = Registry {
            setup,
            dir,
            port: 0,
            child: None,
            token_server,
            _reaper: reaper,
        };
        // A port found free may be taken by another test's server before the registry binds
        // it: then try another.
        for _ in 0..PORT_ATTEMPTS {
            registry.port = free_port();
            let config = config.replace(PORT_PLACEHOLDER, &registry.port.to_string());
            fs::write(registry.dir.path().join("config.yml"), config).unwrap();
            if registry.spawn() {
                return registry;
            }
            registry.kill();
        }
        panic!("docker-registry found no free port in {PORT_ATTEMPTS} attempts");
    }

    /// Starts the registry again (same port, same storage) after [`Registry::kill`].
    pub fn restart(&mut self) {
        assert!(
            self.spawn(),
            "docker-registry could not listen on port {} again; log:\n{}",
            self.port,
            self.log()
        );
    }

    /// Runs the registry; waits until it says it listens (true) or that the port is taken
    /// (false).
    fn spawn(&mut self) -> bool {
        assert!(self.child.is_none(), "the registry is running");
        let logged_before = self.log().len();
        let root = self.dir.path();
        // `read` returns when our end of the pipe closes (drop, or this process ending):
        // then the registry is killed.
        let mut child = Command::new("sh")
            .args([
                "-c",
                "/usr/bin/docker-registry serve \"$1\" >>\"$2\" 2>&1 & pid=$!; read _; \
                 kill -9 $pid; wait $pid",
                "sh",
            ])
            .arg(root.join("config.yml"))
            .arg(self.log_path())
            .stdin(Stdio::piped())
            // The registry's output goes to its log; sh's own ("Killed") nowhere.
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh runs");
        let stdin = child.stdin.take().expect("piped");
        self.child = Some((child, stdin));
        let listening = format!("listening on 127.0.0.1:{}", self.port);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = self.log();
            let new = log.get(logged_before..).unwrap_or("");
            if new.contains(&listening) {
                return true;
            }
            if new.contains("address already in use") {
                return false;
            }
            if Instant::now() > deadline {
                panic!(
                    "docker-registry did not listen on port {} within {START_TIMEOUT:?}; log:\n{log}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the registry (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some((mut child, stdin)) = self.child.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The set-up.
    pub fn setup(&self) -> Setup {
        self.setup
    }

    /// A directory holding the CA certificate (`ca.crt`, for [`Setup::SelfSigned`] the
    /// server's own), and for [`Setup::MutualTls`] the client certificate: for
    /// `--cert-dir`, or to copy to a `certs.d/HOST/` directory. `None` for HTTP.
    pub fn cert_dir(&self) -> Option<PathBuf> {
        let dir = match self.setup {
            Setup::Tls | Setup::TlsAuth => "ca",
            Setup::SelfSigned => "trust",
            Setup::MutualTls => "client",
            Setup::Http | Setup::Token => return None,
        };
        Some(self.dir.path().join(dir))
    }

    /// `USER:PASS` for the set-ups with auth.
    pub fn creds(&self) -> Option<String> {
        matches!(self.setup, Setup::TlsAuth | Setup::Token).then(|| format!("{USER}:{PASSWORD}"))
    }

    /// The token server's requests so far (`GET /token?...` lines, with whether the
    /// credentials were accepted), for the [`Setup::Token`] set-up.
    pub fn token_requests(&self) -> Vec<String> {
        self.token_server
            .as_ref()
            .map(|t| t.requests.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// Pushes `source` (a skopeo source such as `oci:DIR:REF`) as `REPO:TAG`; `all` copies
    /// every image of an index (`skopeo copy --all`).
    pub fn push(&self, source: &str, repo_tag: &str, all: bool) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet"]);
        if all {
            cmd.arg("--all");
        }
        match self.cert_dir() {
            Some(dir) => {
                cmd.arg("--dest-cert-dir").arg(dir);
            }
            None => {
                cmd.arg("--dest-tls-verify=false");
            }
        }
        if let Some(creds) = self.creds() {
            cmd.arg("--dest-creds").arg(creds);
        }
        cmd.arg(source)
            .arg(format!("docker://{}/{repo_tag}", self.host()));
        let out = cmd.output().expect("skopeo runs");
        assert!(
            out.status.success(),
            "skopeo copy {source} -> {repo_tag} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// Everything the registry logged.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Access-log lines (`"METHOD PATH HTTP/1.1" STATUS`) whose request starts with
    /// `prefix`, e.g. `GET /v2/d2l/debian/blobs/`.
    pub fn requests(&self, prefix: &str) -> Vec<String> {
        let needle = format!("\"{prefix}");
        self.log()
            .lines()
            .filter(|l| l.contains(&needle))
            .map(str::to_owned)
            .collect()
    }

    /// Blob GETs of repository `repo` so far.
    pub fn blob_gets(&self, repo: &str) -> usize {
        self.requests(&format!("GET /v2/{repo}/blobs/")).len()
    }

    /// Where the registry keeps blob `digest` (`sha256:HEX`): its storage layout's `data`.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts a `sh` that removes `dir` once its standard input closes, retrying while the
/// killed registry may still be writing in it. `None` if `sh` cannot start (then the
/// directory stays, as a `TempDir` in a `static` would).
fn remove_at_exit(dir: &Path) -> Option<ChildStdin> {
    let mut child = Command::new("sh")
        .args([
            "-c",
            "read _; for try in 1 2 3 4 5; do rm -rf \"$1\" 2>/dev/null; \
             [ -e \"$1\" ] || exit 0; sleep 1; done",
            "sh",
        ])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()
}

/// A free TCP port on 127.0.0.1 (bound, then released for the registry to take).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

/// openssl's arguments for a new P-256 key without a passphrase.
const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// A CA (`ca/ca.crt`) and a server certificate for 127.0.0.1 and localhost signed by it
/// (`server.crt`, `server.key`), with openssl.
fn make_certificates(root: &Path) {
    fs::create_dir_all(root.join("ca")).unwrap();
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=d2l test CA"];
    ca.extend(EC_KEY);
    ca.extend(["-keyout", "ca.key", "-out", "ca/ca.crt"]);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
    ca.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(root, &ca);
    issue_from_ca(
        root,
        "/CN=localhost",
        ("server.key", "server.crt"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n",
    );
}

/// A key (`files.0`) and a certificate (`files.1`) for `subject`, signed by the test CA,
/// with the extensions `extensions` (an openssl extension file's text).
fn issue_from_ca(root: &Path, subject: &str, (key, cert): (&str, &str), extensions: &str) {
    let mut csr = vec!["req", "-subj", subject];
    csr.extend(EC_KEY);
    csr.extend(["-keyout", key, "-out", "request.csr"]);
    openssl(root, &csr);
    fs::write(root.join("request.ext"), extensions).unwrap();
    openssl(
        root,
        &[
            "x509",
            "-req",
            "-in",
            "request.csr",
            "-CA",
            "ca/ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            cert,
            "-extfile",
            "request.ext",
        ],
    );
}

/// The registry documentation's self-signed certificate for 127.0.0.1 (`certs/domain.crt`,
/// `certs/domain.key`), exactly its recipe, and a copy as `trust/ca.crt`.
fn make_self_signed(root: &Path) {
    fs::create_dir_all(root.join("certs")).unwrap();
    openssl(
        root,
        &[
            "req",
            "-newkey",
            "rsa:4096",
            "-nodes",
            "-sha256",
            "-keyout",
            "certs/domain.key",
            "-addext",
            "subjectAltName = IP:127.0.0.1",
            "-x509",
            "-days",
            "365",
            "-out",
            "certs/domain.crt",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    fs::create_dir_all(root.join("trust")).unwrap();
    fs::copy(root.join("certs/domain.crt"), root.join("trust/ca.crt")).unwrap();
}

/// A client certificate signed by the test CA, with the CA, in `client/` (`ca.crt`,
/// `client.cert`, `client.key`: containers-certs.d(5)'s names).
fn make_client_certificate(root: &Path) {
    let client = root.join("client");
    fs::create_dir_all(&client).unwrap();
    fs::copy(root.join("ca/ca.crt"), client.join("ca.crt")).unwrap();
    issue_from_ca(
        root,
        "/CN=d2l test client",
        ("client/client.key", "client/client.cert"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n\
         keyUsage=critical,digitalSignature\n",
    );
}

/// Runs `openssl ARGS` in `dir`; panics with its error output if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A TCP relay on 127.0.0.1 that forwards to `upstream`, sending the answers back at a
/// limited rate (requests pass at full speed). It closes a client's connection when the
/// upstream one ends, as a dying server's would. Stops on drop.
pub struct Throttle {
    port: u16,
    stop: Arc<AtomicBool>,
    bytes_per_second: Arc<AtomicU64>,
}

/// Bytes forwarded per step of the throttled direction.
const THROTTLE_CHUNK: usize = 16 << 10;

impl Throttle {
    /// Starts relaying to `upstream` at `bytes_per_second`.
    pub fn start(upstream: SocketAddr, bytes_per_second: u64) -> Throttle {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let rate = Arc::new(AtomicU64::new(bytes_per_second));
        let (stop2, rate2) = (Arc::clone(&stop), Arc::clone(&rate));
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(upstream) else {
                            continue;
                        };
                        relay(client, server, Arc::clone(&rate2), Arc::clone(&stop2));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Throttle {
            port,
            stop,
            bytes_per_second: rate,
        }
    }

    /// `127.0.0.1:PORT` of the relay.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Changes the rate (0: unlimited) for what is sent from now on.
    pub fn set_rate(&self, bytes_per_second: u64) {
        self.bytes_per_second
            .store(bytes_per_second, Ordering::Relaxed);
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Two threads: client to server at full speed, server to client throttled.
fn relay(client: TcpStream, server: TcpStream, rate: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let mut buf = [0u8; THROTTLE_CHUNK];
        loop {
            match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    std::thread::spawn(move || {
        let mut buf = [0u8; THROTTLE_CHUNK];
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let n = match s_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if c_write.write_all(&buf[..n]).is_err() {
                break;
            }
            let rate = rate.load(Ordering::Relaxed);
            if rate > 0 {
                std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
            }
        }
        let _ = c_write.shutdown(Shutdown::Both);
    });
}

/// Writes an OCI layout at `dest` whose index.json names one image index, `reference`,
/// listing the images `images` name (`(layout dir, ref name)`), with their platforms from
/// their configs. Blobs are hard-linked from the sources (copied across filesystems).
/// `skopeo copy --all oci:DEST:REF docker://...` then pushes a multi-platform image.
pub fn write_multi_platform_layout(dest: &Path, images: &[(&Path, &str)], reference: &str) {
    use serde_json::{json, Value};
    let blobs = dest.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let link = |src: &Path, digest: &str| {
        let hex = digest.strip_prefix("sha256:").unwrap();
        let from = src.join("blobs/sha256").join(hex);
        let to = blobs.join(hex);
        if !to.exists() && fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to).unwrap();
        }
    };
    let read_json = |path: PathBuf| -> Value {
        serde_json::from_slice(
            &fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
        .unwrap()
    };
    let mut manifests = Vec::new();
    for (src, name) in images {
        let index = read_json(src.join("index.json"));
        let entry = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == *name)
            .unwrap_or_else(|| panic!("{}: no image {name}", src.display()))
            .clone();
        let digest = entry["digest"].as_str().unwrap().to_owned();
        let manifest = read_json(src.join("blobs/sha256").join(&digest["sha256:".len()..]));
        link(src, &digest);
        let config_digest = manifest["config"]["digest"].as_str().unwrap();
        link(src, config_digest);
        for layer in manifest["layers"].as_array().unwrap() {
            link(src, layer["digest"].as_str().unwrap());
        }
        let config = read_json(
            src.join("blobs/sha256")
                .join(&config_digest["sha256:".len()..]),
        );
        manifests.push(json!({
            "mediaType": entry["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json"),
            "digest": digest,
            "size": entry["size"],
            "platform": { "os": config["os"], "architecture": config["architecture"] },
        }));
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap();
    let digest = d2l_registry::Digest::sha256_of(&index);
    fs::write(blobs.join(digest.hex()), &index).unwrap();
    let top = json!({
        "schemaVersion": 2,
        "manifests": [ {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest.to_string(),
            "size": index.len(),
            "annotations": { "org.opencontainers.image.ref.name": reference },
        } ]
    });
    fs::write(dest.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    fs::write(
        dest.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
}

/// The `service` the token set-up's registry and tokens name.
const TOKEN_SERVICE: &str = "d2l-test-registry";
/// The tokens' issuer.
const TOKEN_ISSUER: &str = "d2l-test-token-server";
/// Repositories a token grants (pull and push).
pub const TOKEN_REPOSITORIES: &[&str] = &["d2l/debian", "d2l/multi"];

/// A token server for the [`Setup::Token`] registry: `GET /token` with Basic credentials
/// gets a JWT (RS256, signed by openssl with a key whose self-signed certificate the
/// registry trusts, sent in the `x5c` header) granting pull and push on
/// [`TOKEN_REPOSITORIES`]; wrong or missing credentials get 401.
struct TokenServer {
    port: u16,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl TokenServer {
    fn start(root: &Path) -> TokenServer {
        use base64::Engine;
        let b64url = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=d2l test token signer"])
            .args(["-keyout", "token.key", "-out", "token.crt"])
            .current_dir(root)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pem = fs::read_to_string(root.join("token.crt")).unwrap();
        let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({ "typ": "JWT", "alg": "RS256", "x5c": [der_b64] });
        let access: Vec<serde_json::Value> = TOKEN_REPOSITORIES
            .iter()
            .map(|name| serde_json::json!({ "type": "repository", "name": name, "actions": ["pull", "push"] }))
            .collect();
        let claims = serde_json::json!({
            "iss": TOKEN_ISSUER, "sub": USER, "aud": TOKEN_SERVICE,
            "exp": now + 3600, "nbf": now - 60, "iat": now - 60, "jti": "d2l-test",
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        fs::write(root.join("token.input"), &signing_input).unwrap();
        let out = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign", "token.key", "token.input"])
            .current_dir(root)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = format!("{signing_input}.{}", b64url(&out.stdout));
        let body = serde_json::json!({ "token": token, "access_token": token, "expires_in": 3600 })
            .to_string();
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
        );

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopped) = (Arc::clone(&requests), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let line = text.lines().next().unwrap_or("").to_owned();
                let authorized = text.lines().any(|l| {
                    l.split_once(':').is_some_and(|(k, v)| {
                        k.eq_ignore_ascii_case("authorization") && v.trim() == expected
                    })
                });
                log.lock().unwrap().push(format!(
                    "{line} {}",
                    if authorized { "accepted" } else { "refused" }
                ));
                let answer = if authorized {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    let refusal = r#"{"details":"wrong user name or password"}"#;
                    format!(
                        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{refusal}",
                        refusal.len()
                    )
                };
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        TokenServer {
            port,
            requests,
            stop,
        }
    }
}
