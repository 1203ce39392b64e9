//! When and how long to wait before trying a registry request again.
//!
//! d2l retries what a later attempt can fix: connection errors,
//! timeouts, a body cut short, HTTP 5xx and 429. It never retries what cannot change: 4xx
//! answers (401, 404...), a digest mismatch, a malformed document, a TLS failure, a host
//! name that does not resolve.

use std::time::Duration;

use super::protocol::RequestError;

/// Attempts of one request, the first included.
pub const DEFAULT_ATTEMPTS: u32 = 5;
/// Wait before the second attempt; doubled for each next one.
const FIRST_DELAY: Duration = Duration::from_millis(400);
/// Longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(8);

/// How many times to try, and the waits in between (exponential backoff).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts of one request, the first included (at least 1).
    pub attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: DEFAULT_ATTEMPTS,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `failed` (1 for the first), or `None` when no
    /// attempt is left.
    pub fn delay_after(&self, failed: u32) -> Option<Duration> {
        if failed >= self.attempts.max(1) {
            return None;
        }
        let factor = 1u32 << (failed - 1).min(16);
        Some(FIRST_DELAY.saturating_mul(factor).min(MAX_DELAY))
    }
}

/// Whether a failed request may succeed on a later attempt.
pub(crate) fn is_transient(error: &RequestError) -> bool {
    match error {
        RequestError::Http(e) => is_transient_request(e),
        RequestError::Status(status) => is_transient_status(status.code),
    }
}

/// Whether a reqwest error is about the connection rather than the answer.
pub fn is_transient_request(error: &reqwest::Error) -> bool {
    if error.is_builder() || error.is_redirect() || error.is_decode() {
        return false;
    }
    match error.status() {
        Some(status) => is_transient_status(status.as_u16()),
        None if is_tls_failure(error) || is_unknown_host(error) => false,
        None => error.is_connect() || error.is_timeout() || error.is_request() || error.is_body(),
    }
}

/// Words of rustls' errors (found in the error's causes, which reqwest boxes):
/// a certificate or handshake failure is not fixed by trying again.
const TLS_FAILURE_MARKERS: &[&str] = &[
    "certificate",
    "Certificate",
    "fatal alert",
    "handshake",
    "InvalidContentType",
    "received corrupt message",
    "peer is incompatible",
    "peer misbehaved",
];

/// Whether a request failed in TLS (a certificate, a handshake, a server not speaking TLS).
pub fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    chain_says(error, TLS_FAILURE_MARKERS)
}

/// What the resolver says of a name that does not exist (getaddrinfo's EAI_NONAME and
/// EAI_NODATA, as glibc and musl word them). "Temporary failure in name resolution"
/// (EAI_AGAIN) is not among them: that one may heal.
const UNKNOWN_HOST_MARKERS: &[&str] = &[
    "Name or service not known",
    "No address associated with hostname",
    "nodename nor servname provided",
    "Name does not resolve",
];

/// Whether a request failed because the registry's host name does not resolve: asking
/// again gives the same answer, so it is not retried.
pub fn is_unknown_host(error: &(dyn std::error::Error + 'static)) -> bool {
    chain_says(error, UNKNOWN_HOST_MARKERS)
}

/// Whether `error` or any of its causes says one of `markers`.
fn chain_says(error: &(dyn std::error::Error + 'static), markers: &[&str]) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if markers.iter().any(|m| text.contains(m)) {
            return true;
        }
        current = e.source();
    }
    false
}

/// 5xx and 429 Too Many Requests.
pub fn is_transient_status(code: u16) -> bool {
    code >= 500 || code == 429
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_stops() {
        let p = RetryPolicy { attempts: 8 };
        let waits: Vec<_> = (1..8).map(|n| p.delay_after(n).unwrap()).collect();
        assert_eq!(waits[0], Duration::from_millis(400));
        assert_eq!(waits[1], Duration::from_millis(800));
        assert_eq!(waits[2], Duration::from_millis(1600));
        assert_eq!(waits[6], MAX_DELAY);
        assert_eq!(p.delay_after(8), None);
        assert_eq!(RetryPolicy { attempts: 1 }.delay_after(1), None);
        assert_eq!(RetryPolicy { attempts: 0 }.delay_after(1), None);
    }

    #[test]
    fn a_name_that_does_not_resolve_is_not_retried_a_resolver_that_fails_is() {
        #[derive(Debug)]
        struct Chain(&'static str, std::io::Error);
        impl std::fmt::Display for Chain {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Chain {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.1)
            }
        }
        // As hyper-util words it, the resolver's words in the source.
        let unknown = Chain(
            "client error (Connect)",
            std::io::Error::other(
                "dns error: failed to lookup address information: Name or service not known",
            ),
        );
        assert!(is_unknown_host(&unknown));
        let again = Chain(
            "client error (Connect)",
            std::io::Error::other(
                "dns error: failed to lookup address information: Temporary failure in name \
                 resolution",
            ),
        );
        assert!(!is_unknown_host(&again));
        assert!(!is_unknown_host(&std::io::Error::other(
            "connection refused"
        )));
    }

    #[test]
    fn which_answers_are_transient() {
        assert!(is_transient_status(500));
        assert!(is_transient_status(503));
        assert!(is_transient_status(429));
        assert!(!is_transient_status(401));
        assert!(!is_transient_status(404));
        let answer = |code| {
            let status = reqwest::StatusCode::from_u16(code).unwrap();
            super::super::protocol::status_error(status, b"", "u")
        };
        assert!(is_transient(&answer(502)));
        assert!(is_transient(&answer(429)));
        assert!(!is_transient(&answer(403)));
        assert!(!is_transient(&answer(401)));
        assert!(!is_transient(&answer(404)));
    }
}
