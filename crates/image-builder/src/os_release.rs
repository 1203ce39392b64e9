//! Reading `/etc/os-release` (os-release(5)): which distribution an image is, to pick the
//! recipe that gives it a kernel ([`crate::recipe_for`]).
//!
//! The format is a shell-compatible list of `KEY=VALUE` assignments. Parsing follows
//! systemd's reader, one line at a time: blank lines and `#` comments are skipped, a value may
//! mix unquoted text (a backslash quotes the next character), `'single-quoted'` text (taken
//! as is) and `"double-quoted"` text (where `\"`, `\\`, `\$` and `` \` `` stand for the
//! character after the backslash), trailing unquoted whitespace is dropped. A line without
//! `=`, with a key that is no shell variable name, or with a quote left open is ignored.

use std::collections::HashMap;

/// `ID` when the file has none, as os-release(5) says.
const DEFAULT_ID: &str = "linux";

/// The fields of os-release(5) that pick a recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsRelease {
    /// `ID`, lower-cased, e.g. `debian`; `linux` when absent or empty (os-release(5)).
    pub id: String,
    /// `ID_LIKE` split on whitespace, lower-cased, closest relative first, e.g.
    /// `["rhel", "centos", "fedora"]` for Rocky Linux.
    pub id_like: Vec<String>,
    /// `VERSION_ID`, e.g. `12`, `3.20.3`, `2023`; none for rolling releases.
    pub version_id: Option<String>,
    /// `VERSION_CODENAME`, else Ubuntu's `UBUNTU_CODENAME`, e.g. `bookworm`, `noble`.
    pub version_codename: Option<String>,
    /// `PRETTY_NAME`, e.g. `Debian GNU/Linux 12 (bookworm)`.
    pub pretty_name: Option<String>,
}

impl OsRelease {
    /// Parses os-release text: KEY=VALUE lines, comments, values in double or single quotes
    /// with os-release's shell-like escapes (`\"` `\\` `\$` `` \` ``), unquoted values. Never
    /// panics on any input; ignores malformed lines. A key given twice keeps its last value,
    /// as a shell would; empty values count as absent.
    pub fn parse(text: &str) -> OsRelease {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut fields: HashMap<&str, String> = HashMap::new();
        for line in text.lines() {
            if let Some((key, value)) = parse_line(line) {
                fields.insert(key, value);
            }
        }
        let mut take = |key: &str| fields.remove(key).filter(|v| !v.is_empty());
        let id = take("ID")
            .map(|id| id.to_ascii_lowercase())
            .unwrap_or_else(|| DEFAULT_ID.to_owned());
        let id_like = take("ID_LIKE")
            .map(|like| {
                like.split_whitespace()
                    .map(str::to_ascii_lowercase)
                    .collect()
            })
            .unwrap_or_default();
        let version_id = take("VERSION_ID");
        let version_codename = take("VERSION_CODENAME").or_else(|| take("UBUNTU_CODENAME"));
        let pretty_name = take("PRETTY_NAME");
        OsRelease {
            id,
            id_like,
            version_id,
            version_codename,
            pretty_name,
        }
    }

    /// What the image is, for messages: `PRETTY_NAME` (e.g. `Debian GNU/Linux 12
    /// (bookworm)`), else `ID VERSION_ID` (e.g. `debian 12`), else `ID`. Always one line of
    /// printable text: control characters are shown escaped.
    pub fn describe(&self) -> String {
        let text = match (&self.pretty_name, &self.version_id) {
            (Some(pretty), _) => pretty.clone(),
            (None, Some(version)) => format!("{} {version}", self.id),
            (None, None) => self.id.clone(),
        };
        printable(&text)
    }

    /// The major version: the digits that start `VERSION_ID` (`7` for `7.9`, `2023` for
    /// Amazon Linux 2023), if it starts with any.
    pub(crate) fn major_version(&self) -> Option<u32> {
        let version = self.version_id.as_deref()?;
        let end = version
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(version.len());
        version[..end].parse().ok()
    }
}

/// `text` with control characters (newlines, escape sequences) escaped, so it stays on one
/// line of a message and cannot drive a terminal.
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// One assignment line: its key and unquoted value, or none for a blank, comment or
/// malformed line.
fn parse_line(line: &str) -> Option<(&str, String)> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (key, raw) = line.split_once('=')?;
    let key = key.trim();
    if !is_variable_name(key) {
        return None;
    }
    Some((key, unquote(raw.trim_start())?))
}

/// A shell variable name: a letter or underscore, then letters, digits and underscores.
fn is_variable_name(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Where [`unquote`] is in a value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quoting {
    None,
    Single,
    Double,
}

/// The value of `raw` once its quoting is undone, or none if a quote is left open.
fn unquote(raw: &str) -> Option<String> {
    let mut value = String::with_capacity(raw.len());
    // The length of `value` without its trailing unquoted whitespace.
    let mut kept = 0;
    let mut quoting = Quoting::None;
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match (quoting, c) {
            (Quoting::None, '\'') => quoting = Quoting::Single,
            (Quoting::None, '"') => quoting = Quoting::Double,
            (Quoting::None, '\\') => {
                // Quotes the next character; a backslash ending the line (a shell line
                // continuation) stands for nothing.
                if let Some(next) = chars.next() {
                    value.push(next);
                    kept = value.len();
                }
            }
            (Quoting::None, c) => {
                value.push(c);
                if !c.is_whitespace() {
                    kept = value.len();
                }
            }
            (Quoting::Single, '\'') | (Quoting::Double, '"') => quoting = Quoting::None,
            (Quoting::Double, '\\') => match chars.next() {
                Some(next @ ('"' | '\\' | '$' | '`')) => {
                    value.push(next);
                    kept = value.len();
                }
                Some(next) => {
                    value.push('\\');
                    value.push(next);
                    kept = value.len();
                }
                None => return None,
            },
            (_, c) => {
                value.push(c);
                kept = value.len();
            }
        }
    }
    if quoting != Quoting::None {
        return None;
    }
    value.truncate(kept);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_12: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"#;

    #[test]
    fn debian_12() {
        let os = OsRelease::parse(DEBIAN_12);
        assert_eq!(
            os,
            OsRelease {
                id: "debian".into(),
                id_like: vec![],
                version_id: Some("12".into()),
                version_codename: Some("bookworm".into()),
                pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
            }
        );
        assert_eq!(os.describe(), "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(os.major_version(), Some(12));
    }

    #[test]
    fn ubuntu_codename_is_the_fallback() {
        let os = OsRelease::parse(
            "NAME=\"Linux Mint\"\nVERSION_ID=\"21.3\"\nID=linuxmint\nID_LIKE=\"ubuntu debian\"\n\
             UBUNTU_CODENAME=jammy\n",
        );
        assert_eq!(os.version_codename.as_deref(), Some("jammy"));
        assert_eq!(os.id_like, ["ubuntu", "debian"]);
        let os = OsRelease::parse("UBUNTU_CODENAME=noble\nVERSION_CODENAME=noble2\n");
        assert_eq!(os.version_codename.as_deref(), Some("noble2"));
    }

    #[test]
    fn quoting_escapes_comments_and_garbage() {
        let text = concat!(
            "\u{feff}# a comment\n",
            "   # an indented comment\n",
            "\n",
            "garbage without an equals sign\n",
            "=no key\n",
            "1ID=digit first\n",
            "BAD KEY=space in key\n",
            "ID=\"Fancy\"\n",
            "ID_LIKE='  a   b\tc '\n",
            "PRETTY_NAME=\"say \\\"hi\\\" \\\\ \\$HOME \\`x\\` \\n\"\n",
            "VERSION_ID=unquoted\\ value   \n",
            "VERSION_CODENAME=\"unterminated\n",
            "  SPACED  =  'x'\"y\"z\r\n",
            "EMPTY=\n",
        );
        let os = OsRelease::parse(text);
        assert_eq!(os.id, "fancy");
        assert_eq!(os.id_like, ["a", "b", "c"]);
        assert_eq!(
            os.pretty_name.as_deref(),
            Some(r#"say "hi" \ $HOME `x` \n"#)
        );
        assert_eq!(os.version_id.as_deref(), Some("unquoted value"));
        assert_eq!(
            os.version_codename, None,
            "a quote left open drops the line"
        );
        assert_eq!(
            parse_line("  SPACED  =  'x'\"y\"z"),
            Some(("SPACED", "xyz".into()))
        );
        assert_eq!(parse_line("A='it''s'"), Some(("A", "its".into())));
        assert_eq!(
            parse_line("A='back\\slash'"),
            Some(("A", "back\\slash".into()))
        );
        assert_eq!(parse_line("A=x\\"), Some(("A", "x".into())));
        assert_eq!(parse_line("A=\"x\\"), None);
        assert_eq!(
            parse_line("A=\"  spaced  \"  "),
            Some(("A", "  spaced  ".into()))
        );
    }

    #[test]
    fn last_value_wins_and_empty_is_absent() {
        let os = OsRelease::parse("ID=alpine\nID=debian\nVERSION_ID=\nPRETTY_NAME=''\n");
        assert_eq!(os.id, "debian");
        assert_eq!(os.version_id, None);
        assert_eq!(os.pretty_name, None);
    }

    #[test]
    fn defaults() {
        let os = OsRelease::parse("");
        assert_eq!(os.id, "linux");
        assert!(os.id_like.is_empty());
        assert_eq!(os.describe(), "linux");
        assert_eq!(OsRelease::parse("ID=\n").id, "linux");
    }

    #[test]
    fn describe_without_pretty_name() {
        let os = OsRelease::parse("ID=alpine\nVERSION_ID=3.20.3\n");
        assert_eq!(os.describe(), "alpine 3.20.3");
        assert_eq!(os.major_version(), Some(3));
        assert_eq!(OsRelease::parse("VERSION_ID=rolling").major_version(), None);
    }

    #[test]
    fn describe_is_one_printable_line() {
        let os = OsRelease::parse("PRETTY_NAME=\"a\u{1b}[31mb\rc\"\n");
        let d = os.describe();
        assert!(!d.chars().any(char::is_control), "{d:?}");
        assert_eq!(d, "a\\u{1b}[31mb\\rc");
    }

    #[test]
    fn never_panics() {
        // Every byte value, odd quoting and multi-byte characters around the syntax.
        let mut text: String = (0u8..=127).map(char::from).collect();
        text.push_str("\nID=\"é\\\nID='\\'\nÉ=1\nID=ü\"\\ü\"\n=\n\"\n'\n\\\n");
        let os = OsRelease::parse(&text);
        assert_eq!(os.id, "ü\\ü");
        for cut in 0..text.len() {
            if text.is_char_boundary(cut) {
                let _ = OsRelease::parse(&text[..cut]).describe();
            }
        }
    }
}
