//! A connection to one registry: TLS roots, HTTP or HTTPS, credentials, retries, and errors
//! that say what happened.
//!
//! oci-client does the distribution protocol: the `/v2/` challenge, Basic auth, the Bearer
//! token flow (Docker Hub's: challenge, token endpoint, `repository:NAME:pull` scope),
//! manifests, and blob streams with `Range` (`pull_blob_stream_partial`). What it leaves out,
//! d2l adds here: retries with backoff, the choice between HTTPS and plain HTTP, extra CAs,
//! and error messages that name the registry, the image and the credentials' origin (never
//! the secret).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use oci_client::client::ClientProtocol;
use oci_client::client::{BlobResponse, Certificate, CertificateEncoding, ClientConfig};
use oci_client::errors::{OciDistributionError, OciEnvelope};
use oci_client::secrets::RegistryAuth;
use oci_client::RegistryOperation;

use super::credentials::Found;
use super::retry::{is_transient, RetryPolicy};
use super::RegistryOptions;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::limits::DocumentKind;
use crate::media_type;
use crate::reference::{Reference, DEFAULT_TAG};

/// What d2l accepts as a manifest (the registry picks among them).
const MANIFEST_ACCEPT: &[&str] = &[
    media_type::OCI_MANIFEST,
    media_type::OCI_INDEX,
    media_type::DOCKER_MANIFEST,
    media_type::DOCKER_MANIFEST_LIST,
];
/// Per-host CA directories that podman/skopeo (containers-certs.d(5)) and Docker read.
const SYSTEM_CERT_DIRS: &[&str] = &["/etc/containers/certs.d", "/etc/docker/certs.d"];
/// The OpenSSL variable naming a CA bundle, honoured as extra roots.
const SSL_CERT_FILE_ENV: &str = "SSL_CERT_FILE";
/// Time to establish a connection.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Longest silence while reading an answer.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// A CA file in a certificate directory (containers-certs.d(5): `*.crt`).
const CA_SUFFIX: &str = ".crt";
/// What d2l calls itself in requests.
const USER_AGENT: &str = concat!("d2l/", env!("CARGO_PKG_VERSION"));
/// The most bytes of an error answer's body read, for its message.
const MAX_ERROR_BODY: usize = 64 << 10;
const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const PEM_END: &str = "-----END CERTIFICATE-----";

/// A blob's bytes as they arrive, and whether the registry sent the whole blob (ignoring
/// a `Range`).
pub(crate) struct BlobStream {
    pub stream: BoxStream<'static, std::io::Result<Bytes>>,
    pub whole: bool,
}

/// One registry, connected and authenticated for pulling one repository.
pub(crate) struct Connection {
    client: oci_client::Client,
    /// Manifests are fetched with this client, not oci-client's, whose `pull_manifest_raw`
    /// reads a body whole however large: the same TLS roots and timeouts, and a read that
    /// stops at [`MAX_MANIFEST_SIZE`](crate::limits::MAX_MANIFEST_SIZE).
    http: reqwest::Client,
    /// Whether the registry is reached over plain HTTP.
    plain_http: bool,
    /// The Bearer token the registry handed out (`None`: Basic or no auth), renewed once
    /// when a manifest request gets a 401.
    token: std::sync::Mutex<Option<String>>,
    auth: RegistryAuth,
    reference: Reference,
    /// Where the credentials came from, for messages; `None` for anonymous access.
    credential_origin: Option<(String, String)>,
    pub(crate) retry: RetryPolicy,
}

impl Connection {
    /// Reads the credentials and CAs, then finds how to talk to the registry: HTTPS, or
    /// plain HTTP for an `--insecure-registry` host or a loopback one that does not speak
    /// TLS. Retries connection errors.
    pub(crate) async fn open(reference: &Reference, options: &RegistryOptions) -> Result<Self> {
        let host = reference.registry().to_owned();
        let found: Option<Found> = match &options.credentials {
            Some(credentials) => Some(Found {
                credentials: credentials.clone(),
                origin: "--creds".to_owned(),
            }),
            None => options.credential_sources.lookup(reference)?,
        };
        let (auth, credential_origin) = match found {
            Some(f) => {
                tracing::debug!(registry = %host, origin = %f.origin, user = %f.credentials.username, "using credentials");
                (
                    RegistryAuth::Basic(
                        f.credentials.username.clone(),
                        f.credentials.password.expose().to_owned(),
                    ),
                    Some((f.origin, f.credentials.username)),
                )
            }
            None => (RegistryAuth::Anonymous, None),
        };
        let insecure = options
            .insecure_registries
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&host));
        let may_use_http = insecure || is_loopback(&host);
        let roots = extra_roots(&host, &options.cert_dirs)?;

        let mut connection = Connection {
            client: build_client(ClientProtocol::Https, insecure, &roots, &host)?,
            http: build_http_client(insecure, &roots, &host)?,
            plain_http: false,
            token: std::sync::Mutex::new(None),
            auth,
            reference: reference.clone(),
            credential_origin,
            retry: options.retry,
        };
        let mut failures = 0;
        loop {
            let https_error = match connection.probe().await {
                Ok(()) => return Ok(connection),
                Err(e) => e,
            };
            if may_use_http && speaks_plain_http(&host).await {
                tracing::info!(registry = %host, "no TLS: using plain HTTP");
                connection.client = build_client(
                    ClientProtocol::HttpsExcept(vec![oci_host(&host)]),
                    insecure,
                    &roots,
                    &host,
                )?;
                connection.plain_http = true;
                connection
                    .probe()
                    .await
                    .map_err(|e| connection.error(e, None))?;
                return Ok(connection);
            }
            if !is_transient(&https_error) {
                return Err(connection.error(https_error, None));
            }
            failures += 1;
            match connection.retry.delay_after(failures) {
                Some(delay) => {
                    tracing::warn!(
                        "{host}: {}; retrying in {:.1}s",
                        describe(&https_error),
                        delay.as_secs_f64()
                    );
                    tokio::time::sleep(delay).await;
                }
                None => {
                    let mut err = connection.error(https_error, None);
                    if let Error::Registry { reason, .. } = &mut err {
                        reason.push_str(&format!(" (after {failures} attempts)"));
                    }
                    return Err(err);
                }
            }
        }
    }

    /// `GET /v2/` and, for a registry that asks, the token exchange; keeps the token.
    async fn probe(&self) -> std::result::Result<(), OciDistributionError> {
        let token = self
            .client
            .auth(&self.target(None), &self.auth, RegistryOperation::Pull)
            .await?;
        *self.token.lock().expect("not poisoned") = token;
        Ok(())
    }

    /// The oci-client reference for the image's tag, or for `digest` in its repository.
    fn target(&self, digest: Option<&Digest>) -> oci_client::Reference {
        let registry = oci_host(self.reference.registry());
        let repository = self.reference.repository().to_owned();
        match (digest.or(self.reference.digest()), self.reference.tag()) {
            (Some(d), _) => oci_client::Reference::with_digest(registry, repository, d.to_string()),
            (None, Some(tag)) => {
                oci_client::Reference::with_tag(registry, repository, tag.to_owned())
            }
            (None, None) => unreachable!("a Reference has a tag or a digest"),
        }
    }

    /// The manifest or index the reference names (`digest`: one in its repository), as
    /// bytes, no more than [`MAX_MANIFEST_SIZE`](crate::limits::MAX_MANIFEST_SIZE) of them
    /// whatever the registry sends.
    /// Retries transient errors; the caller verifies the digest.
    pub(crate) async fn manifest(&self, digest: Option<&Digest>) -> Result<Vec<u8>> {
        let mut failures = 0;
        let mut renewed = false;
        loop {
            let e = match self.get_manifest(digest).await {
                Ok(Fetch::Body(bytes)) => return Ok(bytes),
                Ok(Fetch::TooLarge(size)) => {
                    return Err(DocumentKind::Manifest.too_large(self.manifest_name(digest), size))
                }
                Err(e) => e,
            };
            if let (false, OciDistributionError::UnauthorizedError { .. }) = (renewed, &e) {
                // The token may have expired: ask for a new one, once.
                renewed = true;
                if self.probe().await.is_ok() {
                    continue;
                }
            }
            if !is_transient(&e) {
                return Err(self.manifest_error(e, digest));
            }
            failures += 1;
            let Some(delay) = self.retry.delay_after(failures) else {
                return Err(self.manifest_error(e, digest));
            };
            tracing::warn!(
                "{}: manifest: {}; retrying in {:.1}s",
                self.reference.registry(),
                describe(&e),
                delay.as_secs_f64()
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One `GET /v2/NAME/manifests/REF`, its body read up to the limit.
    async fn get_manifest(
        &self,
        digest: Option<&Digest>,
    ) -> std::result::Result<Fetch, OciDistributionError> {
        let target = self.target(digest);
        let reference = match target.digest() {
            Some(digest) => digest.to_owned(),
            None => target.tag().unwrap_or(DEFAULT_TAG).to_owned(),
        };
        let url = format!(
            "{}://{}/v2/{}/manifests/{reference}",
            if self.plain_http { "http" } else { "https" },
            target.resolve_registry(),
            target.repository(),
        );
        let mut request = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT.join(", "));
        let token = self.token.lock().expect("not poisoned").clone();
        request = match (token, &self.auth) {
            (Some(token), _) => request.bearer_auth(token),
            (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
            (None, _) => request,
        };
        let mut response = request.send().await?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            let body = read_at_most(&mut response, MAX_ERROR_BODY).await?;
            return Err(registry_error(status, &body.unwrap_or_default(), &url));
        }
        let limit = DocumentKind::Manifest.limit();
        if let Some(length) = response.content_length().filter(|&n| n > limit) {
            return Ok(Fetch::TooLarge(Some(length)));
        }
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(match read_at_most(&mut response, limit).await? {
            Some(body) => Fetch::Body(body),
            None => Fetch::TooLarge(None),
        })
    }

    /// The manifest `digest` (else the reference's tag) names, for messages.
    fn manifest_name(&self, digest: Option<&Digest>) -> String {
        let registry = self.registry();
        match (digest.or(self.reference.digest()), self.reference.tag()) {
            (Some(d), _) => format!("manifest {d} from {registry}"),
            (None, Some(tag)) => format!(
                "manifest {tag:?} of {} from {registry}",
                self.reference.repository()
            ),
            (None, None) => format!("manifest of {}", self.reference),
        }
    }

    /// Starts a blob download at byte `offset` (a `Range` request when not 0). One attempt:
    /// the caller retries, resuming where it got to.
    pub(crate) async fn blob(
        &self,
        digest: &Digest,
        offset: u64,
    ) -> std::result::Result<BlobStream, OciDistributionError> {
        let target = self.target(None);
        let digest = digest.to_string();
        if offset == 0 {
            let sized = self
                .client
                .pull_blob_stream(&target, digest.as_str())
                .await?;
            return Ok(BlobStream {
                stream: sized.stream,
                whole: true,
            });
        }
        match self
            .client
            .pull_blob_stream_partial(&target, digest.as_str(), offset, None)
            .await?
        {
            BlobResponse::Full(sized) => Ok(BlobStream {
                stream: sized.stream,
                whole: true,
            }),
            BlobResponse::Partial(sized) => Ok(BlobStream {
                stream: sized.stream,
                whole: false,
            }),
        }
    }

    /// [`Connection::error`] for a manifest: says which (by digest, else the tag).
    fn manifest_error(&self, e: OciDistributionError, digest: Option<&Digest>) -> Error {
        match self.error(e, None) {
            Error::Registry { registry, reason } => {
                let name = match (digest.or(self.reference.digest()), self.reference.tag()) {
                    (Some(d), _) => d.to_string(),
                    (None, Some(tag)) => format!("tag {tag:?}"),
                    (None, None) => String::new(),
                };
                Error::Registry {
                    registry,
                    reason: format!("manifest {name}: {reason}"),
                }
            }
            other => other,
        }
    }

    /// The registry host, for messages.
    pub(crate) fn registry(&self) -> &str {
        self.reference.registry()
    }

    /// Turns an oci-client error into d2l's: 401/403 say which credentials were tried and
    /// what to do; `blob` names the blob being fetched.
    pub(crate) fn error(&self, e: OciDistributionError, blob: Option<&Digest>) -> Error {
        let registry = self.registry().to_owned();
        let denied = match &e {
            OciDistributionError::UnauthorizedError { .. } => Some("401 Unauthorized"),
            OciDistributionError::AuthenticationFailure(_) => Some("401 Unauthorized"),
            OciDistributionError::ServerError { code: 401, .. } => Some("401 Unauthorized"),
            OciDistributionError::ServerError { code: 403, .. } => Some("403 Forbidden"),
            OciDistributionError::RegistryError { envelope, .. }
                if envelope.errors.iter().any(|e| {
                    matches!(
                        e.code,
                        oci_client::errors::OciErrorCode::Unauthorized
                            | oci_client::errors::OciErrorCode::Denied
                    )
                }) =>
            {
                Some("401 Unauthorized")
            }
            _ => None,
        };
        if let Some(status) = denied {
            let reason = match &self.credential_origin {
                Some((origin, user)) => format!(
                    "the registry refused the credentials of user {user:?} from {origin}; \
                     check the user name and password"
                ),
                None => format!(
                    "no credentials were found for {registry}; give --creds USER:PASS or \
                     log in (podman login, docker login)"
                ),
            };
            return Error::Unauthorized {
                registry,
                image: self.reference.to_string(),
                status: status.to_owned(),
                reason,
            };
        }
        let reason = describe(&e);
        match blob {
            Some(digest) => Error::Download {
                digest: digest.clone(),
                registry,
                reason,
            },
            None => Error::Registry { registry, reason },
        }
    }
}

/// What a manifest request brought.
enum Fetch {
    Body(Vec<u8>),
    /// More than the limit: the size the registry gave, if it gave one.
    TooLarge(Option<u64>),
}

/// Reads `response`'s body, or `None` once it is longer than `limit` bytes (what came is
/// dropped, nothing more is read).
async fn read_at_most(
    response: &mut reqwest::Response,
    limit: usize,
) -> std::result::Result<Option<Vec<u8>>, OciDistributionError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if chunk.len() > limit - body.len() {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// A registry's answer other than 200 as oci-client reports it (so that retries and
/// messages treat both alike): 401, the distribution spec's error envelope for a 4xx, else
/// the status and the start of the body.
fn registry_error(status: reqwest::StatusCode, body: &[u8], url: &str) -> OciDistributionError {
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return OciDistributionError::UnauthorizedError {
            url: url.to_owned(),
        };
    }
    if status.is_client_error() {
        if let Ok(envelope) = serde_json::from_slice::<OciEnvelope>(body) {
            return OciDistributionError::RegistryError {
                envelope,
                url: url.to_owned(),
            };
        }
    }
    OciDistributionError::ServerError {
        code: status.as_u16(),
        url: url.to_owned(),
        message: String::from_utf8_lossy(body).into_owned(),
    }
}

/// A one-line description of an oci-client error, with the causes of a request error (where
/// a TLS or connection problem is told) and a hint for certificate failures.
pub(crate) fn describe(e: &OciDistributionError) -> String {
    match e {
        OciDistributionError::RequestError(inner) => {
            let mut text =
                without_url(inner).replace("error sending request for url", "request failed");
            let mut source = std::error::Error::source(inner);
            while let Some(cause) = source {
                let s = cause.to_string();
                if !text.contains(&s) {
                    text.push_str(": ");
                    text.push_str(&s);
                }
                source = cause.source();
            }
            if text.contains("certificate") || text.contains("UnknownIssuer") {
                text.push_str(
                    " (a private CA? give its certificate with --cert-dir DIR or \
                     SSL_CERT_FILE, or name the host with --insecure-registry)",
                );
            } else if super::retry::is_tls_failure(inner) {
                text.push_str(" (a registry without TLS? name it with --insecure-registry HOST)");
            }
            text
        }
        OciDistributionError::RegistryError { envelope, url } => {
            let errors: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}: {}", e.code, e.message))
                .collect();
            format!("{} ({url})", errors.join("; "))
        }
        OciDistributionError::ServerError { code, url, message } => {
            let message = message.lines().next().unwrap_or("").trim();
            format!("HTTP {code} from {url} {message}")
                .trim_end()
                .to_owned()
        }
        other => other.to_string(),
    }
}

/// A reqwest error's own text, without its URL (which the rest of the message gives).
fn without_url(e: &reqwest::Error) -> String {
    let text = e.to_string();
    match e.url() {
        Some(url) => text
            .replace(&format!(" ({url})"), "")
            .replace(url.as_str(), "URL"),
        None => text,
    }
}

/// The host name oci-client expects: Docker Hub is `docker.io` in d2l, and oci-client maps it
/// to its API host itself.
fn oci_host(registry: &str) -> String {
    registry.to_owned()
}

/// `localhost`, `127.x.x.x` or `[::1]`, with any port: plain HTTP is allowed there.
pub(crate) fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    name == "localhost"
        || name == "::1"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `http://HOST/v2/` answers as a registry does (200, or 401 asking for auth): a
/// TLS server answers plain HTTP with 400, which must not count.
async fn speaks_plain_http(host: &str) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CONNECT_TIMEOUT)
        .build()
    else {
        return false;
    };
    match client.get(format!("http://{host}/v2/")).send().await {
        Ok(answer) => matches!(answer.status().as_u16(), 200 | 401),
        Err(_) => false,
    }
}

/// The client manifests are fetched with: what [`build_client`] gives oci-client.
fn build_http_client(
    accept_invalid_certificates: bool,
    roots: &[Certificate],
    host: &str,
) -> Result<reqwest::Client> {
    let setup = |error| Error::HttpClient {
        registry: host.to_owned(),
        error,
    };
    let roots = roots
        .iter()
        .map(|c| reqwest::Certificate::from_pem(&c.data))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(setup)?;
    reqwest::Client::builder()
        .danger_accept_invalid_certs(accept_invalid_certificates)
        .tls_certs_merge(roots)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(USER_AGENT)
        .build()
        .map_err(setup)
}

fn build_client(
    protocol: ClientProtocol,
    accept_invalid_certificates: bool,
    roots: &[Certificate],
    host: &str,
) -> Result<oci_client::Client> {
    let config = ClientConfig {
        protocol,
        accept_invalid_certificates,
        extra_root_certificates: roots.to_vec(),
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        user_agent: USER_AGENT,
        ..ClientConfig::default()
    };
    oci_client::Client::try_from(config).map_err(|e| Error::Registry {
        registry: host.to_owned(),
        reason: format!("setting up the HTTP client: {}", describe(&e)),
    })
}

/// CAs to trust besides the system's: `*.crt` in each `--cert-dir`, in
/// `/etc/containers/certs.d/HOST/` and `/etc/docker/certs.d/HOST/`, and the bundle
/// `$SSL_CERT_FILE`.
fn extra_roots(host: &str, cert_dirs: &[PathBuf]) -> Result<Vec<Certificate>> {
    let mut roots = Vec::new();
    for dir in cert_dirs {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(CA_SUFFIX))
            .collect();
        files.sort();
        if files.is_empty() {
            tracing::warn!("--cert-dir {}: no *{CA_SUFFIX} file in it", dir.display());
        }
        for file in files {
            roots.extend(read_pem(&file)?);
        }
    }
    for base in SYSTEM_CERT_DIRS {
        let dir = Path::new(base).join(host);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.to_string_lossy().ends_with(CA_SUFFIX) {
                    roots.extend(read_pem(&path)?);
                }
            }
        }
    }
    if let Some(file) = std::env::var_os(SSL_CERT_FILE_ENV).filter(|v| !v.is_empty()) {
        roots.extend(read_pem(Path::new(&file))?);
    }
    Ok(roots)
}

/// Every certificate of a PEM file (a bundle holds several).
fn read_pem(path: &Path) -> Result<Vec<Certificate>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let certs: Vec<Certificate> = split_pem(&text)
        .into_iter()
        .map(|block| Certificate {
            encoding: CertificateEncoding::Pem,
            data: block.into_bytes(),
        })
        .collect();
    if certs.is_empty() {
        return Err(Error::Certificate {
            path: path.to_owned(),
            reason: format!("no PEM certificate ({PEM_BEGIN}) in it"),
        });
    }
    for cert in &certs {
        reqwest::Certificate::from_pem(&cert.data).map_err(|e| Error::Certificate {
            path: path.to_owned(),
            reason: format!("not a valid certificate: {e}"),
        })?;
    }
    Ok(certs)
}

/// The `BEGIN CERTIFICATE` ... `END CERTIFICATE` blocks of a PEM text.
fn split_pem(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(PEM_BEGIN) {
        let Some(len) = rest[start..].find(PEM_END) else {
            break;
        };
        let end = start + len + PEM_END.len();
        blocks.push(format!("{}\n", &rest[start..end]));
        rest = &rest[end..];
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.0.0.1:443",
            "127.1.2.3:1",
            "[::1]:5000",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "docker.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn pem_bundles_split() {
        let one = format!("{PEM_BEGIN}\nAAAA\n{PEM_END}");
        let text = format!("junk\n{one}\n# comment\n{one}\ntrailing");
        let blocks = split_pem(&text);
        assert_eq!(blocks.len(), 2);
        assert!(blocks[0].starts_with(PEM_BEGIN) && blocks[0].trim_end().ends_with(PEM_END));
        assert!(split_pem("nothing").is_empty());
        assert!(split_pem(&format!("{PEM_BEGIN}\nunterminated")).is_empty());
    }
}
