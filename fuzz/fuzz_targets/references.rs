//! Strings with a grammar: `Reference`, `SourceSpec`, `Platform` and `Digest` parse any
//! string without panicking, and where `Display` is their canonical form, parsing what it
//! prints gives the same value back.
#![no_main]

use d2l_blob::Digest;
use d2l_registry::{Platform, Reference, SourceSpec};
use libfuzzer_sys::fuzz_target;

fn round_trip<T>(text: &str, what: &str)
where
    T: std::str::FromStr + std::fmt::Display + PartialEq + std::fmt::Debug,
    T::Err: std::fmt::Display,
{
    let Ok(value) = text.parse::<T>() else {
        return;
    };
    let shown = value.to_string();
    match shown.parse::<T>() {
        Ok(again) => assert_eq!(
            again, value,
            "{what} {text:?} displays as {shown:?}, which parses as another value"
        ),
        Err(e) => panic!("{what} {text:?} displays as {shown:?}, which does not parse: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    round_trip::<Digest>(text, "digest");
    round_trip::<Reference>(text, "reference");
    round_trip::<Platform>(text, "platform");
    if let Ok(platform) = text.parse::<Platform>() {
        let normal = platform.normalized();
        assert_eq!(normal.normalized(), normal, "normalising {text:?} twice");
    }
    // SourceSpec's Display is what messages name the image by. It round-trips except for
    // `docker-archive:` paths holding a ':' (the path ends at the first one, as in skopeo).
    if let Ok(source) = text.parse::<SourceSpec>() {
        let colon_in_archive_path = matches!(&source, SourceSpec::DockerArchive { file, .. }
            if file.to_string_lossy().contains(':'));
        if !colon_in_archive_path {
            round_trip::<SourceSpec>(text, "source");
        }
    }
});
