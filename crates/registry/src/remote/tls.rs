//! TLS to registries as podman, skopeo and docker set it up (containers-certs.d(5)):
//! per-host certificate directories, extra CAs, client certificates, and a self-signed
//! server certificate trusted because the user put it there for that host.
//!
//! A certificate directory holds `*.crt` files (CAs, or the server's own certificate) and
//! `NAME.cert` with `NAME.key` (a client certificate and its key, for registries that ask
//! for one). The directories read are each `--cert-dir`, then `HOST` (with `:PORT`) under
//! `/etc/containers/certs.d`, `/etc/docker/certs.d` and `~/.config/containers/certs.d`.
//!
//! Verification is the platform's (system roots plus those CAs). One exception, which the
//! other clients make too: the registry documentation's recipe (`openssl req -x509 ...
//! -addext subjectAltName=...`) gives a server certificate that is its own CA, which WebPKI
//! refuses as an end entity. When the certificate the server presents is byte for byte one
//! the user put in a certificate directory, it is accepted if it names the host and is
//! within its validity period. Everything else stays strict.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::error::{Error, Result};

/// Per-host certificate directories that podman/skopeo (containers-certs.d(5)) and Docker
/// read.
const SYSTEM_CERT_DIRS: &[&str] = &["/etc/containers/certs.d", "/etc/docker/certs.d"];
/// The rootless podman one, under the user's home.
const USER_CERT_DIR: &str = ".config/containers/certs.d";
/// The OpenSSL variable naming a CA bundle, honoured as extra roots.
const SSL_CERT_FILE_ENV: &str = "SSL_CERT_FILE";
/// A CA (or a server's own certificate) in a certificate directory.
const CA_SUFFIX: &str = ".crt";
/// A client certificate; its key is the same name with [`KEY_SUFFIX`].
const CLIENT_CERT_SUFFIX: &str = ".cert";
const KEY_SUFFIX: &str = ".key";

/// What the certificate directories and `$SSL_CERT_FILE` say about one host.
#[derive(Debug, Default)]
pub(crate) struct TlsFiles {
    /// Extra roots: every `*.crt` and the `$SSL_CERT_FILE` bundle.
    roots: Vec<CertificateDer<'static>>,
    /// Certificates from the certificate directories, trusted as the server's own.
    pinned: Vec<CertificateDer<'static>>,
    /// A client certificate chain and its key, from the first directory that has one.
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl TlsFiles {
    /// Reads the certificate directories for `host` (`registry.example:5000`).
    pub fn for_host(host: &str, cert_dirs: &[PathBuf]) -> Result<TlsFiles> {
        let mut dirs: Vec<PathBuf> = cert_dirs.to_vec();
        for base in SYSTEM_CERT_DIRS {
            dirs.push(Path::new(base).join(host));
        }
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            dirs.push(Path::new(&home).join(USER_CERT_DIR).join(host));
        }
        let mut files = TlsFiles::default();
        for (index, dir) in dirs.iter().enumerate() {
            let given = index < cert_dirs.len();
            files.read_dir(dir, given)?;
        }
        if let Some(bundle) = std::env::var_os(SSL_CERT_FILE_ENV).filter(|v| !v.is_empty()) {
            files.roots.extend(read_certificates(Path::new(&bundle))?);
        }
        Ok(files)
    }

    /// Adds what `dir` holds. A `--cert-dir` (`given`) must exist; a per-host directory
    /// that does not is simply not there.
    fn read_dir(&mut self, dir: &Path, given: bool) -> Result<()> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if !given && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(dir, e)),
        };
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        let named = |path: &Path, suffix: &str| path.to_string_lossy().ends_with(suffix);
        let mut found = false;
        for path in &names {
            if named(path, CA_SUFFIX) {
                let certs = read_certificates(path)?;
                self.pinned.extend(certs.iter().cloned());
                self.roots.extend(certs);
                found = true;
            } else if named(path, CLIENT_CERT_SUFFIX) {
                let key = path.with_extension(&KEY_SUFFIX[1..]);
                if !key.exists() {
                    return Err(Error::Certificate {
                        path: path.clone(),
                        reason: format!("a client certificate without its key {}", key.display()),
                    });
                }
                if self.identity.is_none() {
                    self.identity = Some((read_certificates(path)?, read_key(&key)?));
                }
                found = true;
            } else if named(path, KEY_SUFFIX) {
                let cert = path.with_extension(&CLIENT_CERT_SUFFIX[1..]);
                if !cert.exists() {
                    return Err(Error::Certificate {
                        path: path.clone(),
                        reason: format!("a key without its client certificate {}", cert.display()),
                    });
                }
            }
        }
        if given && !found {
            tracing::warn!(
                "--cert-dir {}: no *{CA_SUFFIX} or *{CLIENT_CERT_SUFFIX} file in it",
                dir.display()
            );
        }
        Ok(())
    }

    /// Whether a client certificate was found.
    pub fn has_identity(&self) -> bool {
        self.identity.is_some()
    }

    /// The TLS configuration: the platform's verification with the extra roots (or none at
    /// all for an `--insecure-registry` host), the pinned certificates, the client
    /// certificate if any.
    pub fn client_config(
        &self,
        insecure: bool,
    ) -> std::result::Result<rustls::ClientConfig, rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let platform = rustls_platform_verifier::Verifier::new_with_extra_roots(
            self.roots.iter().cloned(),
            provider.clone(),
        )?;
        let verifier = Verifier {
            platform,
            pinned: self.pinned.clone(),
            provider: provider.clone(),
            insecure,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = match &self.identity {
            Some((chain, key)) => builder.with_client_auth_cert(chain.clone(), key.clone_key())?,
            None => builder.with_no_client_auth(),
        };
        // reqwest speaks HTTP/1.1 only here (no http2 feature).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Every certificate of a PEM file (a bundle holds several).
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bad = |reason: String| Error::Certificate {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(format!("not readable as PEM: {e}")))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a valid PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".to_owned(),
        ));
    }
    for cert in &certs {
        rustls::server::ParsedCertificate::try_from(cert)
            .map_err(|e| bad(format!("not a valid certificate: {e}")))?;
    }
    Ok(certs)
}

/// A PEM private key (PKCS#8, PKCS#1 or SEC1).
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| Error::Certificate {
        path: path.to_owned(),
        reason: format!("not a PEM private key: {e}"),
    })
}

/// The platform's verification, then the pinned certificates.
#[derive(Debug)]
struct Verifier {
    platform: rustls_platform_verifier::Verifier,
    pinned: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
    /// `--insecure-registry`: any certificate (the handshake's signatures still checked).
    insecure: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if self.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        let refused = match self.platform.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(e) => e,
        };
        if !self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return Err(refused);
        }
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        let (not_before, not_after) = validity(end_entity).ok_or(
            rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
        )?;
        let now = now.as_secs();
        if now < not_before {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidYet,
            ));
        }
        if now > not_after {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
        }
        tracing::debug!(server = ?server_name, "accepted the certificate from a certificate directory as the server's own");
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A certificate's validity period (notBefore, notAfter) in seconds since the Unix epoch,
/// from its DER: Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version
/// OPTIONAL, serialNumber, signature, issuer, validity SEQUENCE { notBefore, notAfter },
/// ... } ... } (RFC 5280, 4.1). `None` for anything that does not parse.
fn validity(der: &[u8]) -> Option<(u64, u64)> {
    let (certificate, _) = der_element(der, 0x30)?;
    let (tbs, _) = der_element(certificate, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = der_element(rest, 0xa0)?.1;
    }
    rest = der_element(rest, 0x02)?.1; // serialNumber
    rest = der_element(rest, 0x30)?.1; // signature
    rest = der_element(rest, 0x30)?.1; // issuer
    let (validity, _) = der_element(rest, 0x30)?;
    let (not_before, after) = der_time(validity)?;
    let (not_after, _) = der_time(after)?;
    Some((not_before, not_after))
}

/// The contents of the DER element at the start of `bytes` if its tag is `tag`, and what
/// follows it.
fn der_element(bytes: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = bytes.split_first()?;
    if first != tag {
        return None;
    }
    let (&len_byte, mut rest) = rest.split_first()?;
    let len = if len_byte < 0x80 {
        usize::from(len_byte)
    } else {
        let count = usize::from(len_byte & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (len_bytes, after) = rest.split_at(count);
        rest = after;
        len_bytes
            .iter()
            .fold(0usize, |n, &b| (n << 8) | usize::from(b))
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, years 1950-2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`)
/// at the start of `bytes`, as seconds since the Unix epoch, and what follows.
fn der_time(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (text, rest, century) = match bytes.first()? {
        0x17 => {
            let (text, rest) = der_element(bytes, 0x17)?;
            (text, rest, None)
        }
        0x18 => {
            let (text, rest) = der_element(bytes, 0x18)?;
            (text, rest, Some(()))
        }
        _ => return None,
    };
    let digits = text.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        digits
            .get(range)?
            .iter()
            .try_fold(0u64, |n, &d| Some(n * 10 + u64::from(d - b'0')))
    };
    let (year, at) = match century {
        None if digits.len() == 12 => {
            let yy = number(0..2)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
        }
        Some(()) if digits.len() == 14 => (number(0..4)?, 4),
        _ => return None,
    };
    let month = number(at..at + 2)?;
    let day = number(at + 2..at + 4)?;
    let hour = number(at + 4..at + 6)?;
    let minute = number(at + 6..at + 8)?;
    let second = number(at + 8..at + 10)?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_since_epoch(year, month, day)?;
    Some((days * 86_400 + hour * 3600 + minute * 60 + second, rest))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (from 1970 on).
fn days_since_epoch(year: u64, month: u64, day: u64) -> Option<u64> {
    // Counting from March makes the leap day the last of the year.
    let (y, m) = if month <= 2 {
        (year.checked_sub(1)?, month + 9)
    } else {
        (year, month - 3)
    };
    let era_days = y * 365 + y / 4 - y / 100 + y / 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    // 719_468: the same count for 1970-01-01.
    (era_days + day_of_year).checked_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_days() {
        assert_eq!(days_since_epoch(1970, 1, 1), Some(0));
        assert_eq!(days_since_epoch(2000, 3, 1), Some(11_017));
        assert_eq!(days_since_epoch(2024, 2, 29), Some(19_782));
        assert_eq!(days_since_epoch(2026, 12, 3), Some(20_790));
        assert_eq!(days_since_epoch(1969, 12, 31), None);
    }

    #[test]
    fn der_times() {
        let utc = [&[0x17, 13][..], b"261203194023Z"].concat();
        assert_eq!(
            der_time(&utc).map(|t| t.0),
            Some(20_790 * 86_400 + 19 * 3600 + 40 * 60 + 23)
        );
        let generalized = [&[0x18, 15][..], b"20491231235959Z"].concat();
        assert!(der_time(&generalized).is_some());
        let pre_1970 = [&[0x17, 13][..], b"690101000000Z"].concat();
        assert_eq!(der_time(&pre_1970), None);
        for bad in [
            &b"2612031940Z"[..],
            b"261303194023Z",
            b"26120319402Z3",
            b"261203194023+",
        ] {
            let element = [&[0x17, u8::try_from(bad.len()).unwrap()][..], bad].concat();
            assert_eq!(
                der_time(&element),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(der_time(&[0x17, 40, b'2']), None);
    }

    #[test]
    fn der_lengths_never_overrun() {
        assert_eq!(der_element(&[0x30, 0x82, 0x01], 0x30), None);
        assert_eq!(der_element(&[0x30, 0x81, 0x05, 1, 2], 0x30), None);
        assert_eq!(der_element(&[0x30, 0x80], 0x30), None);
        assert_eq!(der_element(&[0x31, 0x00], 0x30), None);
        assert_eq!(
            der_element(&[0x30, 0x01, 7, 8], 0x30),
            Some((&[7u8][..], &[8u8][..]))
        );
        assert_eq!(validity(&[]), None);
        assert_eq!(validity(&[0x30, 0x03, 0x30, 0x01, 0x00]), None);
    }
}
