//! References, source specs and platforms from a hostile user: every string is an error or
//! a value that displays and parses back to itself, never a panic, and an error is one short
//! line whatever the input's length.

use std::panic::{catch_unwind, AssertUnwindSafe};

use d2l_registry::{Error, Platform, Reference, SourceSpec, MAX_NAME_LENGTH, MAX_TAG_LENGTH};

/// Longest error message accepted, whatever the input: it quotes at most a cut input.
const MAX_MESSAGE: usize = 1200;

/// Pieces the inputs are made of: separators, empty parts, non-ASCII (multi-byte, combining,
/// bidi, BOM), controls, prefixes of every transport, numbers that overflow, long runs.
fn atoms() -> Vec<String> {
    let mut atoms: Vec<String> = [
        "",
        ":",
        "@",
        "/",
        "//",
        ".",
        "..",
        "-",
        "_",
        "__",
        "a",
        "A",
        "0",
        "é",
        "ß",
        "日本",
        "🦀",
        "e\u{301}",
        "\u{202e}",
        "\u{feff}",
        "\0",
        "\n",
        " ",
        "[",
        "]",
        "[::1]",
        "localhost",
        "docker.io",
        "index.docker.io",
        "library",
        "sha256:",
        "sha512:",
        "@0",
        "@99999999999999999999999",
        "oci:",
        "oci-archive:",
        "docker-archive:",
        "docker://",
        "dir:",
        "linux",
        "amd64",
        "arm/v7",
        "%",
        "\\",
        "\u{7f}",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    atoms.push(format!("sha256:{}", "a".repeat(64)));
    atoms.push(format!("sha256:{}é", "a".repeat(63)));
    atoms.push("x".repeat(300));
    atoms.push("é".repeat(200));
    atoms.push("日".repeat(MAX_NAME_LENGTH));
    atoms
}

/// Parses `input` every way, checking each outcome.
fn try_all(input: &str) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        check(input, input.parse::<Reference>(), |e| {
            matches!(e, Error::InvalidReference { .. })
        });
        check(input, input.parse::<SourceSpec>(), |e| {
            matches!(e, Error::InvalidSource { .. })
        });
        check(input, input.parse::<Platform>(), |e| {
            matches!(e, Error::InvalidPlatform { .. })
        });
        let platform = Platform::new(input, input, Some(input));
        let _ = platform.normalized();
        let _ = platform.matches(&Platform::default());
        let _ = platform.to_string();
    }));
    assert!(outcome.is_ok(), "panicked on {input:?}");
}

fn check<T>(input: &str, parsed: d2l_registry::Result<T>, expected: impl Fn(&Error) -> bool)
where
    T: std::fmt::Display + std::str::FromStr<Err = Error> + PartialEq + std::fmt::Debug,
{
    match parsed {
        Ok(value) => {
            let shown = value.to_string();
            let again: T = shown
                .parse()
                .unwrap_or_else(|e| panic!("{input:?} gave {shown:?}, which does not parse: {e}"));
            assert_eq!(again, value, "{input:?} does not parse back to itself");
        }
        Err(e) => {
            assert!(expected(&e), "{input:?}: unexpected error {e:?}");
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{input:?}: not one line: {msg}");
            assert!(
                msg.len() <= MAX_MESSAGE,
                "{input:?}: {} bytes of message",
                msg.len()
            );
        }
    }
}

#[test]
fn every_combination_of_three_pieces_is_an_error_or_a_value() {
    let atoms = atoms();
    for a in &atoms {
        for b in &atoms {
            for c in &atoms {
                try_all(&format!("{a}{b}{c}"));
            }
        }
    }
}

#[test]
fn huge_inputs_give_short_errors() {
    let mega = "a".repeat(1 << 20);
    for input in [
        mega.clone(),
        format!("{mega}:tag"),
        format!("quay.io/{mega}"),
        format!("debian:{mega}"),
        format!("debian@sha256:{mega}"),
        format!("{}/x", "é".repeat(1 << 18)),
        format!("oci-archive:x.tar:{}", "日".repeat(1 << 18)),
        format!("docker-archive:x.tar:{mega}"),
        format!("docker://{mega}"),
        format!("linux/{mega}"),
        "/".repeat(1 << 20),
        ":".repeat(1 << 20),
        "@".repeat(1 << 20),
    ] {
        try_all(&input);
    }
}

#[test]
fn a_name_of_max_name_length_is_accepted_and_one_more_refused() {
    // "quay.io/" and a repository filling the rest of the name.
    let at_limit = format!("quay.io/{}", "a".repeat(MAX_NAME_LENGTH - "quay.io/".len()));
    let r: Reference = at_limit.parse().unwrap();
    assert_eq!(r.name().len(), MAX_NAME_LENGTH);

    let past = format!("{at_limit}b");
    let err = past.parse::<Reference>().unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("is 256 bytes, longer than {MAX_NAME_LENGTH}")),
        "{msg}"
    );
    assert!(msg.len() < 400, "{msg}");

    // Normalisation counts: `docker.io/library/` is part of the name.
    let short = "a".repeat(MAX_NAME_LENGTH - "docker.io/library/".len());
    assert!(short.parse::<Reference>().is_ok());
    assert!(format!("{short}a").parse::<Reference>().is_err());
}

#[test]
fn a_tag_of_max_tag_length_is_accepted_and_one_more_refused() {
    let at_limit = format!("debian:{}", "t".repeat(MAX_TAG_LENGTH));
    let r: Reference = at_limit.parse().unwrap();
    assert_eq!(r.tag().unwrap().len(), MAX_TAG_LENGTH);
    let err = format!("{at_limit}t").parse::<Reference>().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&format!("1 to {MAX_TAG_LENGTH}")), "{msg}");
    assert!(msg.len() < 600, "{msg}");
}
