//! The parts of the distribution protocol d2l speaks (distribution spec, "Pull"; Docker's
//! token authentication): errors as registries send them, `WWW-Authenticate` challenges,
//! and the Bearer token exchange.

use std::fmt;

use serde::Deserialize;

/// The most bytes of a token answer read.
const MAX_TOKEN_ANSWER: usize = 1 << 20;

/// A request to a registry (or its token server) that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    /// No answer: connection, TLS, timeout, or the body cut short.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// An answer other than the one asked for.
    #[error("{0}")]
    Status(StatusError),
}

/// A registry's answer other than success.
#[derive(Debug)]
pub(crate) struct StatusError {
    /// The HTTP status.
    pub code: u16,
    /// The URL asked.
    pub url: String,
    /// The error codes and messages of the distribution spec's error envelope, if the body
    /// was one.
    pub errors: Vec<(String, String)>,
    /// Otherwise the body's first line.
    pub message: String,
}

impl StatusError {
    /// Whether the registry said no to the credentials (or their absence).
    pub fn is_denied(&self) -> bool {
        matches!(self.code, 401 | 403)
            || self
                .errors
                .iter()
                .any(|(code, _)| code == "UNAUTHORIZED" || code == "DENIED")
    }
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.errors.is_empty() {
            let message = self.message.lines().next().unwrap_or("").trim();
            let text = format!("HTTP {} from {} {message}", self.code, self.url);
            return f.write_str(text.trim_end());
        }
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(code, message)| format!("{code}: {message}"))
            .collect();
        write!(f, "{} ({})", errors.join("; "), self.url)
    }
}

/// The distribution spec's error body: `{"errors": [{"code": ..., "message": ...}]}`.
#[derive(Deserialize)]
struct Envelope {
    errors: Vec<EnvelopeError>,
}

#[derive(Deserialize)]
struct EnvelopeError {
    code: String,
    #[serde(default)]
    message: String,
}

/// The error for an answer with `status` and `body` (as much of it as was read).
pub(crate) fn status_error(status: reqwest::StatusCode, body: &[u8], url: &str) -> RequestError {
    let errors = serde_json::from_slice::<Envelope>(body)
        .map(|e| e.errors.into_iter().map(|e| (e.code, e.message)).collect())
        .unwrap_or_default();
    RequestError::Status(StatusError {
        code: status.as_u16(),
        url: url.to_owned(),
        errors,
        message: String::from_utf8_lossy(body).into_owned(),
    })
}

/// Reads `response`'s body, or `None` once it is longer than `limit` bytes (what came is
/// dropped, nothing more is read).
pub(crate) async fn read_at_most(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Option<Vec<u8>>, RequestError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if chunk.len() > limit - body.len() {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// How a registry asks to be authenticated (`WWW-Authenticate` on its 401).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// Basic auth on every request.
    Basic,
    /// A token from `realm`, for `service`.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    /// Parses a `WWW-Authenticate` value (RFC 7235: a scheme, then `name=value` or
    /// `name="quoted value"` pairs separated by commas). `None` for other schemes.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut realm = None;
        let mut service = None;
        for (name, value) in auth_params(params) {
            match name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value),
                "service" => service = Some(value),
                _ => {}
            }
        }
        Some(Challenge::Bearer {
            realm: realm?,
            service,
        })
    }
}

/// The `name=value` pairs of a challenge, quoted values unescaped.
fn auth_params(mut text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    loop {
        text = text.trim_start_matches([' ', ',']);
        let Some((name, rest)) = text.split_once('=') else {
            return params;
        };
        let name = name.trim().to_owned();
        let rest = rest.trim_start();
        let (value, after) = match rest.strip_prefix('"') {
            Some(quoted) => {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[end.min(quoted.len())..])
            }
            None => {
                let end = rest.find(',').unwrap_or(rest.len());
                (rest[..end].trim().to_owned(), &rest[end..])
            }
        };
        params.push((name, value));
        text = after;
    }
}

/// A token server's answer (Docker's token spec: `token`, or OAuth2's `access_token`).
#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
}

/// Asks `realm` for a token to pull `repository`, with Basic credentials if any.
pub(crate) async fn fetch_token(
    http: &reqwest::Client,
    realm: &str,
    service: Option<&str>,
    repository: &str,
    basic: Option<(&str, &str)>,
) -> Result<String, RequestError> {
    let mut url = reqwest::Url::parse(realm).map_err(|e| {
        RequestError::Status(StatusError {
            code: 401,
            url: realm.to_owned(),
            errors: Vec::new(),
            message: format!("the registry's token realm is not a URL: {e}"),
        })
    })?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(service) = service {
            query.append_pair("service", service);
        }
        query.append_pair("scope", &format!("repository:{repository}:pull"));
    }
    let mut request = http.get(url.clone());
    if let Some((user, password)) = basic {
        request = request.basic_auth(user, Some(password));
    }
    let mut response = request.send().await?;
    let status = response.status();
    let body = read_at_most(&mut response, MAX_TOKEN_ANSWER).await?;
    let url = url.as_str();
    let body = match body {
        Some(body) if status.is_success() => body,
        Some(body) => return Err(status_error(status, &body, url)),
        None => return Err(status_error(status, b"an answer too large", url)),
    };
    let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
        status_error(
            reqwest::StatusCode::BAD_GATEWAY,
            format!("the token server's answer is not a token: {e}").as_bytes(),
            url,
        )
    })?;
    answer.token.or(answer.access_token).ok_or_else(|| {
        status_error(
            reqwest::StatusCode::BAD_GATEWAY,
            b"the token server's answer holds no token",
            url,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
            })
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="d2l-test""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            Challenge::parse(r#"bearer  service=svc, realm="http://h/t\"x""#),
            Some(Challenge::Bearer {
                realm: "http://h/t\"x".into(),
                service: Some("svc".into()),
            })
        );
        assert_eq!(Challenge::parse("Bearer service=x"), None);
        assert_eq!(Challenge::parse("Negotiate abc"), None);
        assert!(Challenge::parse(r#"Bearer realm="unterminated"#).is_some());
        assert_eq!(Challenge::parse(""), None);
    }

    #[test]
    fn status_errors_read_the_envelope() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        let RequestError::Status(e) = status_error(reqwest::StatusCode::NOT_FOUND, body, "u")
        else {
            panic!("a status error")
        };
        assert_eq!(e.to_string(), "MANIFEST_UNKNOWN: manifest unknown (u)");
        assert!(!e.is_denied());
        let RequestError::Status(e) = status_error(
            reqwest::StatusCode::BAD_REQUEST,
            br#"{"errors":[{"code":"DENIED"}]}"#,
            "u",
        ) else {
            panic!("a status error")
        };
        assert!(e.is_denied());
        let RequestError::Status(e) =
            status_error(reqwest::StatusCode::BAD_GATEWAY, b"<html>\nbad", "u")
        else {
            panic!("a status error")
        };
        assert_eq!(e.to_string(), "HTTP 502 from u <html>");
    }
}
