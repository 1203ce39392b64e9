//! Target platforms (`os/arch[/variant]`) and how two of them are compared.
//!
//! Normalisation follows containerd's `platforms.Normalize`: `x86_64` is `amd64`, `aarch64` is
//! `arm64`, `arm64/v8` is plain `arm64`, a bare `arm` is `arm/v7`, `armhf` is `arm/v7`, `armel`
//! is `arm/v6`.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The platform d2l builds for when none is given.
pub const DEFAULT_OS: &str = "linux";
/// The architecture d2l builds for when none is given.
pub const DEFAULT_ARCHITECTURE: &str = "amd64";

/// An image platform: operating system, CPU architecture and optional variant, as written in an
/// image config or index (`linux/arm64/v8`). Fields hold what was written; compare with
/// [`Platform::matches`], which normalises.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture, e.g. `amd64`, `arm64`.
    pub architecture: String,
    /// Architecture variant, e.g. `v7` for 32-bit ARM.
    pub variant: Option<String>,
}

impl Platform {
    /// A platform from its parts; an empty variant counts as none.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.filter(|v| !v.is_empty()).map(str::to_owned),
        }
    }

    /// The canonical form of this platform (lowercase, containerd's architecture aliases).
    pub fn normalized(&self) -> Platform {
        let os = self.os.to_ascii_lowercase();
        let arch = self.architecture.to_ascii_lowercase();
        let variant = self
            .variant
            .as_deref()
            .map(str::to_ascii_lowercase)
            .filter(|v| !v.is_empty());
        let (arch, variant) = match (arch.as_str(), variant.as_deref()) {
            ("x86_64" | "x86-64" | "amd64", Some("v1")) => ("amd64".to_owned(), None),
            ("x86_64" | "x86-64" | "amd64", _) => ("amd64".to_owned(), variant),
            ("i386" | "386", _) => ("386".to_owned(), variant),
            ("aarch64" | "arm64", Some("8" | "v8" | "v8.0")) => ("arm64".to_owned(), None),
            ("aarch64" | "arm64", _) => ("arm64".to_owned(), variant),
            ("armhf", _) => ("arm".to_owned(), Some("v7".to_owned())),
            ("armel", _) => ("arm".to_owned(), Some("v6".to_owned())),
            ("arm", None | Some("7")) => ("arm".to_owned(), Some("v7".to_owned())),
            ("arm", Some(v @ ("5" | "6" | "8"))) => ("arm".to_owned(), Some(format!("v{v}"))),
            _ => (arch, variant),
        };
        Platform {
            os,
            architecture: arch,
            variant,
        }
    }

    /// Whether `self` and `other` name the same platform once both are normalised.
    pub fn matches(&self, other: &Platform) -> bool {
        self.normalized() == other.normalized()
    }

    /// Whether this is the `unknown/unknown` platform that buildx gives attestation manifests.
    pub fn is_unknown(&self) -> bool {
        self.os == "unknown" && self.architecture == "unknown"
    }
}

impl Default for Platform {
    /// `linux/amd64`.
    fn default() -> Self {
        Platform::new(DEFAULT_OS, DEFAULT_ARCHITECTURE, None)
    }
}

impl FromStr for Platform {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let err = |reason: &str| Error::InvalidPlatform {
            input: s.to_owned(),
            reason: reason.to_owned(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(err("expected OS/ARCH or OS/ARCH/VARIANT, e.g. linux/arm64"));
        }
        for part in &parts {
            if part.is_empty() {
                return Err(err("empty component"));
            }
            if !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                return Err(err(
                    "components may hold only letters, digits, '_', '-', '.'",
                ));
            }
        }
        Ok(Platform::new(parts[0], parts[1], parts.get(2).copied()))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(p("linux/amd64"), Platform::default());
        let arm = p("linux/arm/v7");
        assert_eq!(arm.os, "linux");
        assert_eq!(arm.architecture, "arm");
        assert_eq!(arm.variant.as_deref(), Some("v7"));
        assert_eq!(arm.to_string(), "linux/arm/v7");
        assert_eq!(p("linux/arm64").to_string(), "linux/arm64");
    }

    #[test]
    fn parse_errors() {
        for bad in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "linux/arm/v7/x",
            "linux//v7",
            "linux/amd 64",
        ] {
            assert!(
                matches!(bad.parse::<Platform>(), Err(Error::InvalidPlatform { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn normalisation_table() {
        for (input, normal) in [
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/x86-64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
            ("linux/amd64/v3", "linux/amd64/v3"),
            ("Linux/AMD64", "linux/amd64"),
            ("linux/i386", "linux/386"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/aarch64/8", "linux/arm64"),
            ("linux/arm64/v9", "linux/arm64/v9"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/7", "linux/arm/v7"),
            ("linux/arm/6", "linux/arm/v6"),
            ("linux/arm/v5", "linux/arm/v5"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/riscv64", "linux/riscv64"),
        ] {
            assert_eq!(p(input).normalized().to_string(), normal, "{input}");
        }
    }

    #[test]
    fn matching() {
        assert!(p("linux/arm64").matches(&p("linux/arm64/v8")));
        assert!(p("linux/aarch64").matches(&p("linux/arm64")));
        assert!(p("linux/x86_64").matches(&Platform::default()));
        assert!(p("linux/arm").matches(&p("linux/arm/v7")));
        assert!(p("linux/armhf").matches(&p("linux/arm/v7")));
        assert!(!p("linux/arm/v6").matches(&p("linux/arm/v7")));
        assert!(!p("linux/arm64").matches(&p("linux/amd64")));
        assert!(!p("windows/amd64").matches(&p("linux/amd64")));
        assert!(p("unknown/unknown").is_unknown());
    }
}
