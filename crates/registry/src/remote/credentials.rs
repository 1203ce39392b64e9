//! Where registry credentials come from, in the order podman and skopeo look:
//!
//! 1. `--creds USER:PASS`;
//! 2. `$REGISTRY_AUTH_FILE`;
//! 3. podman's `${XDG_RUNTIME_DIR}/containers/auth.json`;
//! 4. Docker's `~/.docker/config.json` (`$DOCKER_CONFIG/config.json`).
//!
//! An auth file (containers-auth.json(5), Docker's config.json) maps a registry, or a
//! `registry/namespace` prefix, to `{"auth": base64(USER:PASS)}`, and may name credential
//! helpers: `credHelpers` per registry and `credsStore` for all, run as
//! `docker-credential-NAME get` with the server name on standard input. The first file that
//! has an entry for the registry wins; no entry anywhere means anonymous access.
//!
//! Secrets live in [`Secret`], whose `Debug` and `Display` print `***`: they never reach a
//! log line, an error or JSON output.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::reference::{Reference, DEFAULT_REGISTRY};

/// Environment variable naming an auth file to read first (podman, skopeo, buildah).
pub const REGISTRY_AUTH_FILE_ENV: &str = "REGISTRY_AUTH_FILE";
/// Docker Hub's key in auth files and for credential helpers (Docker's `IndexServer`).
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";
/// Other names Docker Hub goes by in auth files.
const DOCKER_HUB_ALIASES: &[&str] = &["docker.io", "index.docker.io", "registry-1.docker.io"];
/// The user name a credential helper gives for an identity (refresh) token.
const IDENTITY_TOKEN_USER: &str = "<token>";

/// A secret string: shown as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A user name and password (or token) for a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: Secret,
}

impl std::str::FromStr for Credentials {
    type Err = Error;

    /// `USER:PASS`, as `--creds` takes it (the password may contain `:`).
    fn from_str(s: &str) -> Result<Credentials> {
        let bad = |reason: &str| Error::Credentials {
            origin: "--creds".to_owned(),
            reason: reason.to_owned(),
        };
        let (user, pass) = s.split_once(':').ok_or_else(|| bad("expected USER:PASS"))?;
        if user.is_empty() {
            return Err(bad("the user name is empty"));
        }
        Ok(Credentials {
            username: user.to_owned(),
            password: Secret::new(pass),
        })
    }
}

/// Credentials found for a registry and where they came from (for messages).
#[derive(Clone, Debug)]
pub struct Found {
    /// The credentials.
    pub credentials: Credentials,
    /// `--creds`, an auth file's path, or `docker-credential-NAME`.
    pub origin: String,
}

/// The places searched for credentials.
#[derive(Clone, Debug, Default)]
pub struct CredentialSources {
    /// Auth files, in the order they are searched.
    pub auth_files: Vec<PathBuf>,
}

impl CredentialSources {
    /// The default search path from the environment: `$REGISTRY_AUTH_FILE`,
    /// `${XDG_RUNTIME_DIR}/containers/auth.json`, `$DOCKER_CONFIG/config.json` or
    /// `~/.docker/config.json`.
    pub fn from_env() -> CredentialSources {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let mut auth_files = Vec::new();
        if let Some(file) = var(REGISTRY_AUTH_FILE_ENV) {
            auth_files.push(PathBuf::from(file));
        }
        if let Some(runtime) = var("XDG_RUNTIME_DIR") {
            auth_files.push(Path::new(&runtime).join("containers/auth.json"));
        }
        if let Some(docker) = var("DOCKER_CONFIG") {
            auth_files.push(Path::new(&docker).join("config.json"));
        } else if let Some(home) = var("HOME") {
            auth_files.push(Path::new(&home).join(".docker/config.json"));
        }
        CredentialSources { auth_files }
    }

    /// The credentials for `reference`: from the first auth file with an entry (or helper)
    /// for its registry; `None` for anonymous access. A missing file is skipped; an
    /// unreadable or malformed one is an error naming it.
    pub fn lookup(&self, reference: &Reference) -> Result<Option<Found>> {
        for path in &self.auth_files {
            let text = match std::fs::read(path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(path, e)),
            };
            let file: AuthFile = serde_json::from_slice(&text).map_err(|e| Error::Credentials {
                origin: path.display().to_string(),
                reason: format!("not a valid auth file: {e}"),
            })?;
            if let Some(found) = file.lookup(reference, path)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

/// An auth file: containers-auth.json(5) or Docker's config.json (fields d2l reads).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// `host[:port]` of an auth-file key, which may be a URL (`https://host/v1/`) or carry a
/// repository path (`quay.io/org`): (host, path after it).
fn split_key(key: &str) -> (String, String) {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let (host, path) = key.split_once('/').unwrap_or((key, ""));
    let host = if DOCKER_HUB_ALIASES.contains(&host) {
        DEFAULT_REGISTRY
    } else {
        host
    };
    // Docker Hub's URL key ends in the API version, not a namespace.
    let path = if host == DEFAULT_REGISTRY && (path == "v1/" || path == "v1" || path == "v2/") {
        ""
    } else {
        path.trim_end_matches('/')
    };
    (host.to_owned(), path.to_owned())
}

impl AuthFile {
    fn lookup(&self, reference: &Reference, path: &Path) -> Result<Option<Found>> {
        let origin = path.display().to_string();
        let registry = reference.registry();
        let repository = reference.repository();
        // The most specific `auths` key wins: registry/namespace/repo before registry.
        let mut best: Option<(usize, &AuthEntry)> = None;
        for (key, entry) in &self.auths {
            let (host, prefix) = split_key(key);
            if host != registry {
                continue;
            }
            let matches = prefix.is_empty()
                || repository == prefix
                || repository.starts_with(&format!("{prefix}/"));
            if matches && best.is_none_or(|(len, _)| prefix.len() > len) {
                best = Some((prefix.len(), entry));
            }
        }
        if let Some((_, entry)) = best {
            if let Some(credentials) = entry.credentials(&origin)? {
                return Ok(Some(Found {
                    credentials,
                    origin,
                }));
            }
        }
        let helper = self
            .cred_helpers
            .iter()
            .find(|(key, _)| split_key(key).0 == registry)
            .map(|(_, helper)| helper)
            .or(self.creds_store.as_ref())
            .filter(|h| !h.is_empty());
        match helper {
            Some(helper) => run_helper(helper, registry),
            None => Ok(None),
        }
    }
}

impl AuthEntry {
    fn credentials(&self, origin: &str) -> Result<Option<Credentials>> {
        let bad = |reason: String| Error::Credentials {
            origin: origin.to_owned(),
            reason,
        };
        if let Some(auth) = self.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|e| bad(format!("\"auth\" is not base64: {e}")))?;
            let decoded = String::from_utf8(decoded)
                .map_err(|_| bad("\"auth\" does not decode to UTF-8".to_owned()))?;
            let (user, pass) = decoded
                .split_once(':')
                .ok_or_else(|| bad("\"auth\" does not decode to USER:PASS".to_owned()))?;
            return Ok(Some(Credentials {
                username: user.to_owned(),
                password: Secret::new(pass),
            }));
        }
        if let (Some(user), Some(pass)) = (&self.username, &self.password) {
            return Ok(Some(Credentials {
                username: user.clone(),
                password: Secret::new(pass.clone()),
            }));
        }
        if self.identitytoken.is_some() {
            tracing::warn!(
                "{origin}: an identity token is not supported (log in with a password); \
                 trying anonymous access"
            );
        }
        Ok(None)
    }
}

/// What `docker-credential-NAME get` prints.
#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs `docker-credential-NAME get` for `registry` (Docker's credential helper protocol).
fn run_helper(name: &str, registry: &str) -> Result<Option<Found>> {
    let program = format!("docker-credential-{name}");
    let server = if registry == DEFAULT_REGISTRY {
        DOCKER_HUB_SERVER
    } else {
        registry
    };
    let bad = |reason: String| Error::Credentials {
        origin: program.clone(),
        reason,
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| bad(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .map_err(|e| bad(format!("writing to it: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| bad(format!("waiting for it: {e}")))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        // The protocol's answer for "nothing stored": anonymous access.
        if said.contains("credentials not found") {
            return Ok(None);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or("").trim();
        return Err(bad(format!("get {server}: {} {first}", out.status)));
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout)
        .map_err(|e| bad(format!("get {server}: unreadable answer: {e}")))?;
    if answer.username.is_empty() || answer.username == IDENTITY_TOKEN_USER {
        if answer.username == IDENTITY_TOKEN_USER {
            tracing::warn!(
                "{program}: an identity token is not supported; trying anonymous access"
            );
        }
        return Ok(None);
    }
    Ok(Some(Found {
        credentials: Credentials {
            username: answer.username,
            password: Secret::new(answer.secret),
        },
        origin: program,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        s.parse().unwrap()
    }

    fn file(json: &str) -> AuthFile {
        serde_json::from_str(json).unwrap()
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn secrets_do_not_print() {
        let c: Credentials = "user:pa:ss".parse().unwrap();
        assert_eq!(c.username, "user");
        assert_eq!(c.password.expose(), "pa:ss");
        let shown = format!("{c:?} {}", c.password);
        assert!(!shown.contains("pa:ss"), "{shown}");
        assert!("nocolon".parse::<Credentials>().is_err());
        assert!(":x".parse::<Credentials>().is_err());
    }

    #[test]
    fn keys_match_registry_and_most_specific_prefix() {
        let f = file(&format!(
            r#"{{"auths":{{
                "https://index.docker.io/v1/":{{"auth":"{}"}},
                "quay.io":{{"auth":"{}"}},
                "quay.io/org":{{"auth":"{}"}},
                "localhost:5000":{{"username":"u","password":"p"}}
            }}}}"#,
            b64("hub:1"),
            b64("quay:2"),
            b64("org:3")
        ));
        let p = Path::new("auth.json");
        let user = |reference: &str| {
            f.lookup(&r(reference), p)
                .unwrap()
                .map(|found| found.credentials.username)
        };
        assert_eq!(user("debian").as_deref(), Some("hub"));
        assert_eq!(user("quay.io/other/app").as_deref(), Some("quay"));
        assert_eq!(user("quay.io/org/app").as_deref(), Some("org"));
        assert_eq!(user("quay.io/organisation/app").as_deref(), Some("quay"));
        assert_eq!(user("localhost:5000/x").as_deref(), Some("u"));
        assert_eq!(user("ghcr.io/x/y"), None);
    }

    #[test]
    fn malformed_auth_names_the_file_not_the_secret() {
        let f = file(r#"{"auths":{"example.com":{"auth":"%%%"}}}"#);
        let err = f
            .lookup(&r("example.com/a"), Path::new("/x/auth.json"))
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/x/auth.json") && msg.contains("base64"),
            "{msg}"
        );
        let f = file(&format!(
            r#"{{"auths":{{"example.com":{{"auth":"{}"}}}}}}"#,
            b64("nocolonsecret")
        ));
        let msg = f
            .lookup(&r("example.com/a"), Path::new("a.json"))
            .unwrap_err()
            .to_string();
        assert!(!msg.contains("nocolonsecret"), "{msg}");
    }

    #[test]
    fn split_keys() {
        assert_eq!(
            split_key("https://index.docker.io/v1/"),
            ("docker.io".into(), "".into())
        );
        assert_eq!(
            split_key("registry-1.docker.io"),
            ("docker.io".into(), "".into())
        );
        assert_eq!(
            split_key("http://localhost:5000/"),
            ("localhost:5000".into(), "".into())
        );
        assert_eq!(split_key("quay.io/a/b"), ("quay.io".into(), "a/b".into()));
    }
}
