//! Manifests and indexes, parsed leniently: just the fields d2l needs, any media type kept as a
//! string (oci-spec's typed structs would not tell a Docker manifest list from an OCI index).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::digest::Digest;
use crate::error::{quote, Error, Result};
use crate::limits::MAX_LAYERS;
use crate::media_type;
use crate::platform::Platform;

/// Annotation naming an image in an OCI layout's `index.json` (OCI image-spec annotations.md).
pub(crate) const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// Annotation containerd (and Docker 25+ `docker save`) give the full image name.
pub(crate) const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";
/// Annotation buildx gives attestation manifests in an index.
const DOCKER_REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";
/// Its value for attestations.
const ATTESTATION_MANIFEST: &str = "attestation-manifest";
/// `schemaVersion` of Docker schema 1 manifests.
const SCHEMA_VERSION_1: i64 = 1;
/// `schemaVersion` of every manifest and index d2l reads: OCI image-spec manifest.md and
/// image-index.md ("this MUST be `2`"), Docker's image manifest v2 schema 2 and manifest
/// list (manifest-v2-2.md).
const SCHEMA_VERSION_2: i64 = 2;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawHeader {
    #[serde(default)]
    schema_version: Option<serde_json::Value>,
    #[serde(default)]
    media_type: Option<String>,
}

#[derive(Deserialize)]
struct RawPlatform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    #[serde(default)]
    media_type: Option<String>,
    digest: String,
    /// OCI descriptor.md: `int64`; negative sizes are refused after parsing.
    size: i64,
    #[serde(default)]
    platform: Option<RawPlatform>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RawDocument {
    #[serde(default)]
    config: Option<RawDescriptor>,
    #[serde(default)]
    layers: Option<Vec<RawDescriptor>>,
    #[serde(default)]
    manifests: Option<Vec<RawDescriptor>>,
}

/// A content descriptor, validated.
#[derive(Debug, Clone)]
pub(crate) struct Descriptor {
    pub media_type: Option<String>,
    pub digest: Digest,
    pub size: u64,
    pub platform: Option<Platform>,
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    fn from_raw(raw: RawDescriptor, what: &str) -> Result<Self> {
        let digest = raw
            .digest
            .parse::<Digest>()
            .map_err(|e| Error::InvalidDocument {
                what: what.to_owned(),
                reason: e.to_string(),
            })?;
        let size = u64::try_from(raw.size).map_err(|_| Error::InvalidDocument {
            what: what.to_owned(),
            reason: format!("descriptor {digest}: size {} is negative", raw.size),
        })?;
        Ok(Descriptor {
            media_type: raw.media_type.filter(|m| !m.is_empty()),
            digest,
            size,
            platform: raw
                .platform
                .map(|p| Platform::new(&p.os, &p.architecture, p.variant.as_deref())),
            annotations: raw.annotations.unwrap_or_default(),
        })
    }

    /// The `org.opencontainers.image.ref.name` annotation.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations
            .get(REF_NAME_ANNOTATION)
            .map(String::as_str)
    }

    /// Whether this index entry is an attestation rather than an image (buildx marks them with
    /// an annotation and the platform `unknown/unknown`).
    pub fn is_attestation(&self) -> bool {
        self.annotations
            .get(DOCKER_REFERENCE_TYPE_ANNOTATION)
            .is_some_and(|v| v == ATTESTATION_MANIFEST)
            || self.platform.as_ref().is_some_and(Platform::is_unknown)
    }
}

/// A parsed image manifest.
#[derive(Debug, Clone)]
pub(crate) struct Manifest {
    pub digest: Digest,
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// A parsed manifest-or-index blob.
#[derive(Debug, Clone)]
pub(crate) enum Document {
    Manifest(Manifest),
    Index {
        digest: Digest,
        manifests: Vec<Descriptor>,
    },
}

/// A JSON value for a message: short ones whole, long strings (and anything long) quoted
/// and cut.
fn excerpt_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => quote(s),
        other => {
            let text = other.to_string();
            if text.len() <= 20 {
                text
            } else {
                quote(&text)
            }
        }
    }
}

/// The `schemaVersion` must be 2.
fn check_schema_version(header: &RawHeader, what: &str) -> Result<()> {
    match &header.schema_version {
        Some(v) if v.as_i64() == Some(SCHEMA_VERSION_2) => Ok(()),
        found => Err(Error::InvalidDocument {
            what: what.to_owned(),
            reason: match found {
                Some(v) => format!(
                    "schemaVersion is {}, not {SCHEMA_VERSION_2}",
                    excerpt_json(v)
                ),
                None => format!("no schemaVersion (it must be {SCHEMA_VERSION_2})"),
            },
        }),
    }
}

/// An index has no `config` or `layers`; a manifest no `manifests`.
fn check_shape(raw: &RawDocument, media_type: &str, what: &str) -> Result<()> {
    let stray = if media_type::is_index(media_type) {
        [
            ("config", raw.config.is_some()),
            ("layers", raw.layers.is_some()),
        ]
        .into_iter()
        .find_map(|(field, present)| present.then_some(field))
    } else {
        raw.manifests.is_some().then_some("manifests")
    };
    match stray {
        Some(field) => Err(Error::InvalidDocument {
            what: what.to_owned(),
            reason: format!("a {media_type} has no {field:?}"),
        }),
        None => Ok(()),
    }
}

/// The descriptors of an index's `manifests`.
fn index_entries(raw: RawDocument, media_type: &str, what: &str) -> Result<Vec<Descriptor>> {
    let manifests = raw.manifests.ok_or_else(|| Error::InvalidDocument {
        what: what.to_owned(),
        reason: format!("{media_type} without a \"manifests\" list"),
    })?;
    manifests
        .into_iter()
        .map(|d| Descriptor::from_raw(d, what))
        .collect()
}

/// Parses an OCI layout's `index.json` (an image index with no digest of its own) to its
/// `manifests` list.
pub(crate) fn parse_index_entries(bytes: &[u8], what: &str) -> Result<Vec<Descriptor>> {
    let json_err = |source| Error::Json {
        what: what.to_owned(),
        error: source,
    };
    let header: RawHeader = serde_json::from_slice(bytes).map_err(json_err)?;
    check_schema_version(&header, what)?;
    let media_type = header
        .media_type
        .as_deref()
        .unwrap_or(media_type::OCI_INDEX);
    if !media_type::is_index(media_type) {
        return Err(Error::InvalidDocument {
            what: what.to_owned(),
            reason: format!("mediaType {} is not an image index", quote(media_type)),
        });
    }
    let raw: RawDocument = serde_json::from_slice(bytes).map_err(json_err)?;
    check_shape(&raw, media_type, what)?;
    index_entries(raw, media_type, what)
}

/// Parses the blob `digest` (already verified) as a manifest or index. The kind comes from
/// `descriptor_media_type`, else the blob's own `mediaType`, else its shape; when both
/// name one they must agree. The document is checked against what its spec bounds:
/// `schemaVersion` 2, the fields of its kind only, at most [`MAX_LAYERS`] layers,
/// non-negative sizes.
pub(crate) fn parse_document(
    bytes: &[u8],
    digest: &Digest,
    descriptor_media_type: Option<&str>,
) -> Result<Document> {
    let what = format!("manifest {digest}");
    let json_err = |source| Error::Json {
        what: what.clone(),
        error: source,
    };
    let header: RawHeader = serde_json::from_slice(bytes).map_err(json_err)?;
    let own_media_type = header.media_type.as_deref().filter(|m| !m.is_empty());
    let schema1 = header
        .schema_version
        .as_ref()
        .and_then(serde_json::Value::as_i64)
        == Some(SCHEMA_VERSION_1);
    if schema1
        || descriptor_media_type.is_some_and(media_type::is_schema1)
        || own_media_type.is_some_and(media_type::is_schema1)
    {
        return Err(Error::Schema1Unsupported {
            digest: digest.clone(),
        });
    }
    if let (Some(outer), Some(own)) = (descriptor_media_type, own_media_type) {
        if outer != own {
            return Err(Error::InvalidDocument {
                what,
                reason: format!(
                    "its descriptor gives media type {}, the document {}",
                    quote(outer),
                    quote(own)
                ),
            });
        }
    }

    let raw: RawDocument = serde_json::from_slice(bytes).map_err(json_err)?;
    let declared = descriptor_media_type.or(own_media_type);
    let media_type =
        match declared {
            Some(m) if media_type::is_manifest(m) || media_type::is_index(m) => m.to_owned(),
            Some(m) => {
                return Err(Error::UnsupportedManifest {
                    digest: digest.clone(),
                    media_type: m.to_owned(),
                })
            }
            None if raw.manifests.is_some() => media_type::OCI_INDEX.to_owned(),
            None if raw.config.is_some() => media_type::OCI_MANIFEST.to_owned(),
            None => return Err(Error::InvalidDocument {
                what,
                reason:
                    "neither a manifest (no config) nor an index (no manifests), and no mediaType"
                        .to_owned(),
            }),
        };
    check_schema_version(&header, &what)?;
    check_shape(&raw, &media_type, &what)?;

    if media_type::is_index(&media_type) {
        return Ok(Document::Index {
            digest: digest.clone(),
            manifests: index_entries(raw, &media_type, &what)?,
        });
    }

    let layers = raw.layers.unwrap_or_default();
    if layers.len() > MAX_LAYERS {
        return Err(Error::TooManyLayers {
            what,
            count: layers.len(),
            limit: MAX_LAYERS,
        });
    }
    let config = raw.config.ok_or_else(|| Error::InvalidDocument {
        what: what.clone(),
        reason: format!("{media_type} without a \"config\""),
    })?;
    let config = Descriptor::from_raw(config, &what)?;
    let layers = layers
        .into_iter()
        .map(|d| Descriptor::from_raw(d, &what))
        .collect::<Result<_>>()?;
    Ok(Document::Manifest(Manifest {
        digest: digest.clone(),
        media_type,
        config,
        layers,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(bytes: &[u8]) -> Digest {
        Digest::sha256_of(bytes)
    }

    const CONFIG: &str = r#"{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}"#;

    #[test]
    fn manifest_kind_from_descriptor_own_field_or_shape() {
        let doc = format!(r#"{{"schemaVersion":2,"config":{CONFIG},"layers":[]}}"#);
        let d = digest(doc.as_bytes());
        let Document::Manifest(m) = parse_document(doc.as_bytes(), &d, None).unwrap() else {
            panic!()
        };
        assert_eq!(m.media_type, media_type::OCI_MANIFEST);

        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{CONFIG},"layers":[]}}"#,
            media_type::DOCKER_MANIFEST
        );
        let Document::Manifest(m) = parse_document(doc.as_bytes(), &d, None).unwrap() else {
            panic!()
        };
        assert_eq!(m.media_type, media_type::DOCKER_MANIFEST);

        let doc = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            parse_document(doc.as_bytes(), &d, Some(media_type::DOCKER_MANIFEST_LIST)).unwrap(),
            Document::Index { .. }
        ));
    }

    #[test]
    fn schema1_is_refused_by_version_or_media_type() {
        let d = digest(b"x");
        for (doc, mt) in [
            (r#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#, None),
            (
                r#"{"schemaVersion":2}"#,
                Some(media_type::DOCKER_MANIFEST_V1_SIGNED),
            ),
        ] {
            let err = parse_document(doc.as_bytes(), &d, mt).unwrap_err();
            assert!(matches!(err, Error::Schema1Unsupported { .. }), "{err}");
            assert!(err
                .to_string()
                .contains("schema 1 manifests are not supported"));
            assert!(err.to_string().contains(&d.to_string()));
        }
    }

    #[test]
    fn other_media_types_and_shapes_are_errors() {
        let d = digest(b"x");
        let err = parse_document(
            b"{}",
            &d,
            Some("application/vnd.oci.artifact.manifest.v1+json"),
        )
        .unwrap_err();
        assert!(matches!(err, Error::UnsupportedManifest { .. }), "{err}");
        let err = parse_document(b"{}", &d, None).unwrap_err();
        assert!(matches!(err, Error::InvalidDocument { .. }), "{err}");
        let err = parse_document(b"[", &d, None).unwrap_err();
        assert!(matches!(err, Error::Json { .. }), "{err}");
        let bad_digest = r#"{"schemaVersion":2,"config":{"digest":"sha256:nope","size":1}}"#;
        let err = parse_document(bad_digest.as_bytes(), &d, None).unwrap_err();
        assert!(err.to_string().contains("sha256:nope"), "{err}");
    }

    #[test]
    fn attestations_are_recognised() {
        let raw = r#"{"schemaVersion":2,"manifests":[
            {"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,
             "platform":{"os":"unknown","architecture":"unknown"}},
            {"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,
             "annotations":{"vnd.docker.reference.type":"attestation-manifest"}},
            {"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,
             "platform":{"os":"linux","architecture":"arm64","variant":"v8"},
             "annotations":{"org.opencontainers.image.ref.name":"v1"}}
        ]}"#;
        let entries = parse_index_entries(raw.as_bytes(), "index.json").unwrap();
        assert!(entries[0].is_attestation());
        assert!(entries[1].is_attestation());
        assert!(!entries[2].is_attestation());
        assert_eq!(entries[2].ref_name(), Some("v1"));
        assert_eq!(
            entries[2].platform.as_ref().unwrap().to_string(),
            "linux/arm64/v8"
        );
    }

    fn invalid(doc: &str, descriptor_type: Option<&str>) -> String {
        let d = digest(doc.as_bytes());
        let err = parse_document(doc.as_bytes(), &d, descriptor_type).unwrap_err();
        assert!(matches!(err, Error::InvalidDocument { .. }), "{doc}: {err}");
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("manifest {d}: ")), "{msg}");
        msg
    }

    #[test]
    fn schema_version_must_be_2() {
        for (doc, needle) in [
            (
                format!(r#"{{"config":{CONFIG},"layers":[]}}"#),
                "no schemaVersion",
            ),
            (
                format!(r#"{{"schemaVersion":3,"config":{CONFIG},"layers":[]}}"#),
                "schemaVersion is 3, not 2",
            ),
            (
                format!(r#"{{"schemaVersion":"2","config":{CONFIG},"layers":[]}}"#),
                "schemaVersion is \"2\", not 2",
            ),
            (
                r#"{"schemaVersion":2.5,"manifests":[]}"#.to_owned(),
                "not 2",
            ),
        ] {
            let msg = invalid(&doc, None);
            assert!(msg.contains(needle), "{msg}");
        }
        let err = parse_index_entries(br#"{"manifests":[]}"#, "/l/index.json").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/l/index.json: no schemaVersion (it must be 2)"
        );
    }

    #[test]
    fn media_types_must_agree_with_the_fields_and_the_descriptor() {
        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{CONFIG},"layers":[]}}"#,
            media_type::DOCKER_MANIFEST
        );
        let msg = invalid(&doc, Some(media_type::OCI_MANIFEST));
        assert!(msg.contains("its descriptor gives media type"), "{msg}");

        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[],"config":{CONFIG}}}"#,
            media_type::OCI_INDEX
        );
        let msg = invalid(&doc, None);
        assert!(msg.contains("has no \"config\""), "{msg}");
        let doc = format!(r#"{{"schemaVersion":2,"config":{CONFIG},"manifests":[]}}"#);
        let msg = invalid(&doc, Some(media_type::OCI_MANIFEST));
        assert!(msg.contains("has no \"manifests\""), "{msg}");

        let err = parse_index_entries(
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#,
                media_type::OCI_MANIFEST
            )
            .as_bytes(),
            "index.json",
        )
        .unwrap_err();
        assert!(err.to_string().contains("is not an image index"), "{err}");
    }

    #[test]
    fn negative_sizes_are_refused() {
        let doc = r#"{"schemaVersion":2,"config":{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":-1}}"#;
        let msg = invalid(doc, None);
        assert!(
            msg.ends_with("descriptor sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a: size -1 is negative"),
            "{msg}"
        );
        // Past int64: not a size a descriptor can give.
        let doc = r#"{"schemaVersion":2,"manifests":[{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":9223372036854775808}]}"#;
        let d = digest(doc.as_bytes());
        let err = parse_document(doc.as_bytes(), &d, None).unwrap_err();
        assert!(matches!(err, Error::Json { .. }), "{err}");
        assert!(err.to_string().contains(&d.to_string()), "{err}");
    }

    fn with_layers(n: usize) -> String {
        let layer = r#"{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}"#;
        format!(
            r#"{{"schemaVersion":2,"config":{CONFIG},"layers":[{}]}}"#,
            vec![layer; n].join(",")
        )
    }

    #[test]
    fn max_layers_are_read_and_one_more_is_refused() {
        let doc = with_layers(MAX_LAYERS);
        let d = digest(doc.as_bytes());
        let Document::Manifest(m) = parse_document(doc.as_bytes(), &d, None).unwrap() else {
            panic!()
        };
        assert_eq!(m.layers.len(), MAX_LAYERS);

        let doc = with_layers(MAX_LAYERS + 1);
        let d = digest(doc.as_bytes());
        let err = parse_document(doc.as_bytes(), &d, None).unwrap_err();
        assert!(
            matches!(err, Error::TooManyLayers { count, limit, .. }
                if count == MAX_LAYERS + 1 && limit == MAX_LAYERS),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!("manifest {d} lists 129 layers; d2l reads images of at most 128")
        );
    }
}
