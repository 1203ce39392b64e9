//! Image references (`debian:bookworm`, `ghcr.io/org/app@sha256:...`) with Docker's
//! normalisation.
//!
//! Grammar and rules from distribution/reference (`reference.go`, `normalize.go`):
//!
//! ```text
//! reference := name [ ":" tag ] [ "@" digest ]
//! name      := [ registry "/" ] path-component { "/" path-component }
//! registry  := host [ ":" port ]          host: domain-component { "." domain-component } | "[" IPv6 "]"
//! path-component := [a-z0-9]+ { ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ }
//! tag       := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! ```
//!
//! The first component is a registry when it contains a `.` or `:`, is `localhost`, or has an
//! uppercase letter (repositories never do); otherwise the registry is `docker.io`.
//! `index.docker.io` is `docker.io`; a one-component repository on `docker.io` gets `library/`;
//! a reference with neither tag nor digest gets the tag `latest`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{quote, Error, Result};
use crate::limits::{MAX_NAME_LENGTH, MAX_TAG_LENGTH};

/// Docker Hub's canonical registry name.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// Docker Hub's legacy name, normalised to [`DEFAULT_REGISTRY`].
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
/// Prefix of Docker Hub's official images (`debian` is `library/debian`).
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag implied when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// Length of an image ID, which Docker refuses as a reference (`anchoredIdentifierRegexp`).
const IMAGE_ID_HEX_LEN: usize = 64;

/// A normalised image reference: registry, repository, and a tag and/or digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// The registry host, with port if any: `docker.io`, `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path within the registry: `library/debian`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag; `latest` when the reference had neither tag nor digest.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, when the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let err = |reason: String| Error::InvalidReference {
            input: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(err("empty".to_owned()));
        }
        if s.len() == IMAGE_ID_HEX_LEN && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err(
                "a 64-digit hex string is an image ID, not a reference".to_owned()
            ));
        }

        let (name_tag, digest) = match s.split_once('@') {
            Some((name_tag, digest)) => {
                let digest = digest.parse::<Digest>().map_err(|e| match e {
                    d2l_blob::Error::InvalidDigest { reason, .. } => {
                        err(format!("digest: {reason}"))
                    }
                    other => other.into(),
                })?;
                (name_tag, Some(digest))
            }
            None => (s, None),
        };

        let (registry, remainder) = split_registry(name_tag);
        let (path, tag) = match remainder.rfind(':') {
            Some(i) => (&remainder[..i], Some(&remainder[i + 1..])),
            None => (remainder, None),
        };

        if let Some(registry) = registry {
            check_registry(registry).map_err(err)?;
        }
        if path.to_ascii_lowercase() != path {
            return Err(err(format!(
                "repository name {} must be lowercase",
                quote(path)
            )));
        }
        check_path(path).map_err(err)?;
        if let Some(tag) = tag {
            check_tag(tag).map_err(err)?;
        }

        let mut registry = registry.unwrap_or(DEFAULT_REGISTRY).to_owned();
        if registry == LEGACY_DEFAULT_REGISTRY {
            registry = DEFAULT_REGISTRY.to_owned();
        }
        let mut repository = path.to_owned();
        if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            repository = format!("{OFFICIAL_REPO_PREFIX}{repository}");
        }
        let name = format!("{registry}/{repository}");
        if name.len() > MAX_NAME_LENGTH {
            return Err(err(format!(
                "name {} is {} bytes, longer than {MAX_NAME_LENGTH}",
                quote(&name),
                name.len()
            )));
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_owned()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_owned()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

/// Splits `name[:tag]` into an explicit registry (if the first component is one) and the rest.
fn split_registry(name_tag: &str) -> (Option<&str>, &str) {
    match name_tag.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_ascii_lowercase() != first =>
        {
            (Some(first), rest)
        }
        _ => (None, name_tag),
    }
}

fn check_registry(registry: &str) -> std::result::Result<(), String> {
    let bad = |why: &str| Err(format!("registry {}: {why}", quote(registry)));
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return bad("unclosed '['");
        };
        if v6.is_empty()
            || !v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return bad("invalid IPv6 address");
        }
        match after {
            "" => (None, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return bad("expected ':PORT' after ']'"),
            },
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(registry), None),
        }
    };
    if let Some(host) = host {
        for component in host.split('.') {
            let ok = !component.is_empty()
                && component
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !component.starts_with('-')
                && !component.ends_with('-');
            if !ok {
                return bad("invalid host name");
            }
        }
    }
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return bad("port must be digits");
        }
    }
    Ok(())
}

fn check_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("empty repository name".to_owned());
    }
    for component in path.split('/') {
        if !is_path_component(component) {
            return Err(format!(
                "repository component {} must be lowercase letters and digits \
                 separated by '.', '_', '__' or dashes",
                quote(component)
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*`
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        // One run of alphanumerics.
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        // One separator.
        let sep_start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[sep_start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
}

fn check_tag(tag: &str) -> std::result::Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = match tag.as_bytes() {
        [] => false,
        [first, rest @ ..] => {
            word(*first)
                && rest.iter().all(|&b| word(b) || b == b'.' || b == b'-')
                && tag.len() <= MAX_TAG_LENGTH
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag {} must be 1 to {MAX_TAG_LENGTH} of letters, digits, '_', '.', '-', \
             not starting with '.' or '-'",
            quote(tag)
        ))
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn normalisation_table() {
        let cases: Vec<(String, String)> = vec![
            ("debian".into(), "docker.io/library/debian:latest".into()),
            (
                "debian:bookworm".into(),
                "docker.io/library/debian:bookworm".into(),
            ),
            ("user/app".into(), "docker.io/user/app:latest".into()),
            (
                "docker.io/debian".into(),
                "docker.io/library/debian:latest".into(),
            ),
            (
                "docker.io/library/debian:12".into(),
                "docker.io/library/debian:12".into(),
            ),
            (
                "index.docker.io/debian:12".into(),
                "docker.io/library/debian:12".into(),
            ),
            (
                "index.docker.io/user/app".into(),
                "docker.io/user/app:latest".into(),
            ),
            ("localhost/x".into(), "localhost/x:latest".into()),
            (
                "localhost:5000/x/y:tag".into(),
                "localhost:5000/x/y:tag".into(),
            ),
            (
                "quay.io/org/app:v1.2.3".into(),
                "quay.io/org/app:v1.2.3".into(),
            ),
            (
                "example.com:443/a/b/c".into(),
                "example.com:443/a/b/c:latest".into(),
            ),
            (
                "Registry.Example/app".into(),
                "Registry.Example/app:latest".into(),
            ),
            ("[::1]:5000/app:x".into(), "[::1]:5000/app:x".into()),
            (
                "a/b.c_d__e-f---g".into(),
                "docker.io/a/b.c_d__e-f---g:latest".into(),
            ),
            (
                format!("debian@{D}"),
                format!("docker.io/library/debian@{D}"),
            ),
            (format!("ghcr.io/o/a:v1@{D}"), format!("ghcr.io/o/a:v1@{D}")),
            // Docker's own quirk: no '/', so "localhost:5000" is repository:tag.
            (
                "localhost:5000".into(),
                "docker.io/library/localhost:5000".into(),
            ),
        ];
        for (input, want) in cases {
            let r: Reference = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), want, "{input}");
            // The normalised form parses to itself.
            assert_eq!(r.to_string().parse::<Reference>().unwrap(), r, "{input}");
        }
    }

    #[test]
    fn parts() {
        let r: Reference = format!("localhost:5000/x/y@{D}").parse().unwrap();
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.repository(), "x/y");
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().to_string(), D);
        assert_eq!(r.name(), "localhost:5000/x/y");
        let r: Reference = "debian".parse().unwrap();
        assert_eq!(r.tag(), Some(DEFAULT_TAG));
        assert_eq!(r.digest(), None);
    }

    #[test]
    fn errors() {
        let long_tag = format!("debian:{}", "t".repeat(129));
        let long_name = format!("a/{}", "b".repeat(260));
        let id = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        for (input, needle) in [
            ("", "empty"),
            ("Debian", "lowercase"),
            ("user/App:1", "lowercase"),
            (id, "image ID"),
            ("debian:", "tag"),
            ("debian:-x", "tag"),
            ("debian:a b", "tag"),
            (long_tag.as_str(), "tag"),
            ("-debian", "component"),
            ("a//b", "component"),
            ("debian_", "component"),
            ("a/b.", "component"),
            ("quay.io/", "empty repository"),
            ("debian@sha256:abc", "digest"),
            ("debian@", "digest"),
            ("exa_mple.com/app", "registry"),
            ("host:port/app", "port"),
            ("[::1/app", "registry"),
            (long_name.as_str(), "longer"),
        ] {
            match input.parse::<Reference>() {
                Err(e @ Error::InvalidReference { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(needle), "{input:?}: {msg}");
                }
                other => panic!("{input:?}: {other:?}"),
            }
        }
    }
}
