//! A connection to one registry: TLS, HTTP or HTTPS, authentication, retries, and errors
//! that say what happened.
//!
//! d2l speaks the pull side of the distribution protocol itself, over reqwest: the `/v2/`
//! challenge, Basic auth, the Bearer token flow (Docker Hub's: challenge, token endpoint,
//! `repository:NAME:pull` scope; see `protocol`), manifests read up to their limit, and
//! blob streams with `Range`. With it come retries with backoff, the choice between HTTPS
//! and plain HTTP, TLS set up from certificate directories as podman's (`tls`), and error
//! messages that name the registry, the image and the credentials' origin (never the
//! secret).

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::TryStreamExt;

use super::credentials::Found;
use super::protocol::{fetch_token, read_at_most, status_error, Challenge, RequestError};
use super::retry::{is_transient, RetryPolicy};
use super::tls::TlsFiles;
use super::RegistryOptions;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::limits::DocumentKind;
use crate::media_type;
use crate::reference::{Reference, DEFAULT_REGISTRY, DEFAULT_TAG};

/// What d2l accepts as a manifest (the registry picks among them).
const MANIFEST_ACCEPT: &[&str] = &[
    media_type::OCI_MANIFEST,
    media_type::OCI_INDEX,
    media_type::DOCKER_MANIFEST,
    media_type::DOCKER_MANIFEST_LIST,
];
/// Where Docker Hub's API answers (`docker.io` is its name in references).
const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Time to establish a connection.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Longest silence while reading an answer.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// What d2l calls itself in requests.
const USER_AGENT: &str = concat!("d2l/", env!("CARGO_PKG_VERSION"));
/// The most bytes of an error answer's body read, for its message.
const MAX_ERROR_BODY: usize = 64 << 10;

/// A blob's bytes as they arrive, and whether the registry sent the whole blob (ignoring
/// a `Range`).
pub(crate) struct BlobStream {
    pub stream: BoxStream<'static, std::io::Result<Bytes>>,
    pub whole: bool,
}

/// One registry, connected and authenticated for pulling one repository.
pub(crate) struct Connection {
    http: reqwest::Client,
    /// Whether the registry is reached over plain HTTP.
    plain_http: bool,
    /// The Bearer token the registry handed out (`None`: Basic or no auth), renewed once
    /// when a manifest request gets a 401.
    token: std::sync::Mutex<Option<String>>,
    /// User name and password, sent as Basic auth (to the registry, or to its token
    /// server).
    basic: Option<(String, String)>,
    reference: Reference,
    /// Where the credentials came from, for messages; `None` for anonymous access.
    credential_origin: Option<(String, String)>,
    pub(crate) retry: RetryPolicy,
}

impl Connection {
    /// Reads the credentials and certificate directories, then finds how to talk to the
    /// registry: HTTPS, or plain HTTP for an `--insecure-registry` host or a loopback one
    /// that does not speak TLS. Retries connection errors.
    pub(crate) async fn open(reference: &Reference, options: &RegistryOptions) -> Result<Self> {
        let host = reference.registry().to_owned();
        let found: Option<Found> = match &options.credentials {
            Some(credentials) => Some(Found {
                credentials: credentials.clone(),
                origin: "--creds".to_owned(),
            }),
            None => options.credential_sources.lookup(reference)?,
        };
        let (basic, credential_origin) = match found {
            Some(f) => {
                tracing::debug!(registry = %host, origin = %f.origin, user = %f.credentials.username, "using credentials");
                (
                    Some((
                        f.credentials.username.clone(),
                        f.credentials.password.expose().to_owned(),
                    )),
                    Some((f.origin, f.credentials.username)),
                )
            }
            None => (None, None),
        };
        let insecure = options
            .insecure_registries
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&host));
        let may_use_http = insecure || is_loopback(&host);
        let tls = TlsFiles::for_host(&host, &options.cert_dirs)?;
        if tls.has_identity() {
            tracing::debug!(registry = %host, "presenting a client certificate");
        }

        let mut connection = Connection {
            http: build_http_client(&tls, insecure, &host)?,
            plain_http: false,
            token: std::sync::Mutex::new(None),
            basic,
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

    /// `https://HOST` (or `http://`), Docker Hub's API host for `docker.io`.
    fn base_url(&self) -> String {
        let host = match self.reference.registry() {
            DEFAULT_REGISTRY => DOCKER_HUB_API,
            other => other,
        };
        let scheme = if self.plain_http { "http" } else { "https" };
        format!("{scheme}://{host}")
    }

    /// A GET of `url` with the credentials the registry asked for.
    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.get(url);
        let token = self.token.lock().expect("not poisoned").clone();
        match (token, &self.basic) {
            (Some(token), _) => request.bearer_auth(token),
            (None, Some((user, password))) => request.basic_auth(user, Some(password)),
            (None, None) => request,
        }
    }

    /// `GET /v2/` and, for a registry that asks, the token exchange; keeps the token.
    async fn probe(&self) -> std::result::Result<(), RequestError> {
        *self.token.lock().expect("not poisoned") = None;
        let url = format!("{}/v2/", self.base_url());
        let mut response = self.http.get(&url).send().await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let challenge = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(Challenge::parse);
        match (status, challenge) {
            // Basic: every request carries the credentials (a later 401 says if they are
            // missing or wrong).
            (reqwest::StatusCode::UNAUTHORIZED, Some(Challenge::Basic)) => Ok(()),
            (reqwest::StatusCode::UNAUTHORIZED, Some(Challenge::Bearer { realm, service })) => {
                let basic = self
                    .basic
                    .as_ref()
                    .map(|(user, password)| (user.as_str(), password.as_str()));
                let token = fetch_token(
                    &self.http,
                    &realm,
                    service.as_deref(),
                    self.reference.repository(),
                    basic,
                )
                .await?;
                *self.token.lock().expect("not poisoned") = Some(token);
                Ok(())
            }
            _ => {
                let body = read_at_most(&mut response, MAX_ERROR_BODY).await?;
                Err(status_error(status, &body.unwrap_or_default(), &url))
            }
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
            let unauthorized = matches!(&e, RequestError::Status(s) if s.code == 401);
            if unauthorized && !renewed && self.token.lock().expect("not poisoned").is_some() {
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

    /// What names the manifest in a URL: `digest`, else the reference's digest or tag.
    fn manifest_reference(&self, digest: Option<&Digest>) -> String {
        match (digest.or(self.reference.digest()), self.reference.tag()) {
            (Some(d), _) => d.to_string(),
            (None, tag) => tag.unwrap_or(DEFAULT_TAG).to_owned(),
        }
    }

    /// One `GET /v2/NAME/manifests/REF`, its body read up to the limit.
    async fn get_manifest(
        &self,
        digest: Option<&Digest>,
    ) -> std::result::Result<Fetch, RequestError> {
        let url = format!(
            "{}/v2/{}/manifests/{}",
            self.base_url(),
            self.reference.repository(),
            self.manifest_reference(digest),
        );
        let mut response = self
            .get(&url)
            .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT.join(", "))
            .send()
            .await?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            let body = read_at_most(&mut response, MAX_ERROR_BODY).await?;
            return Err(status_error(status, &body.unwrap_or_default(), &url));
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
    /// the caller retries, resuming where it got to. Redirects (to a CDN or object store)
    /// are followed; reqwest drops the credentials when one leaves the registry's host.
    pub(crate) async fn blob(
        &self,
        digest: &Digest,
        offset: u64,
    ) -> std::result::Result<BlobStream, RequestError> {
        let url = format!(
            "{}/v2/{}/blobs/{digest}",
            self.base_url(),
            self.reference.repository()
        );
        let mut request = self.get(&url);
        if offset > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={offset}-"));
        }
        let mut response = request.send().await?;
        let status = response.status();
        let whole = match status {
            reqwest::StatusCode::OK => true,
            reqwest::StatusCode::PARTIAL_CONTENT if offset > 0 => false,
            _ => {
                let body = read_at_most(&mut response, MAX_ERROR_BODY).await?;
                return Err(status_error(status, &body.unwrap_or_default(), &url));
            }
        };
        let stream = response.bytes_stream().map_err(std::io::Error::other);
        Ok(BlobStream {
            stream: Box::pin(stream),
            whole,
        })
    }

    /// [`Connection::error`] for a manifest: says which (by digest, else the tag).
    fn manifest_error(&self, e: RequestError, digest: Option<&Digest>) -> Error {
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

    /// Turns a failed request into d2l's error: 401/403 say which credentials were tried
    /// and what to do; `blob` names the blob being fetched.
    pub(crate) fn error(&self, e: RequestError, blob: Option<&Digest>) -> Error {
        let registry = self.registry().to_owned();
        if let RequestError::Status(status) = &e {
            if status.is_denied() {
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
                let status = match status.code {
                    403 => "403 Forbidden",
                    _ => "401 Unauthorized",
                };
                return Error::Unauthorized {
                    registry,
                    image: self.reference.to_string(),
                    status: status.to_owned(),
                    reason,
                };
            }
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

/// A one-line description of a failed request, with the causes of a connection error
/// (where a TLS or connection problem is told) and a hint for certificate failures.
pub(crate) fn describe(e: &RequestError) -> String {
    match e {
        RequestError::Http(inner) => {
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
            if text.contains("alert: BadCertificate") || text.contains("CertificateRequired") {
                text.push_str(
                    " (the registry wants a client certificate: put NAME.cert and NAME.key in \
                     --cert-dir DIR or /etc/containers/certs.d/HOST/)",
                );
            } else if text.contains("certificate") || text.contains("UnknownIssuer") {
                text.push_str(
                    " (a private CA or a self-signed certificate? put it in --cert-dir DIR \
                     or /etc/containers/certs.d/HOST/, or name the host with \
                     --insecure-registry)",
                );
            } else if super::retry::is_tls_failure(inner) {
                text.push_str(" (a registry without TLS? name it with --insecure-registry HOST)");
            }
            text
        }
        RequestError::Status(status) => status.to_string(),
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

/// The one HTTP client of a connection: TLS as the certificate directories say, timeouts,
/// d2l's user agent.
fn build_http_client(tls: &TlsFiles, insecure: bool, host: &str) -> Result<reqwest::Client> {
    let config = tls.client_config(insecure).map_err(|e| Error::Registry {
        registry: host.to_owned(),
        reason: format!("setting up TLS: {e}"),
    })?;
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|error| Error::HttpClient {
            registry: host.to_owned(),
            error,
        })
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
}
