//! How a layer blob is compressed: named by its media type, or shown by its first bytes
//! (docker-save archives carry no media types).

use crate::media_type;

/// Magic bytes at the start of a gzip member (RFC 1952, section 2.3.1: ID1 ID2).
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Magic number of a zstd frame, 0xFD2FB528 little endian (RFC 8878, section 3.1.1).
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip, one or more members.
    Gzip,
    /// zstd, one or more frames.
    Zstd,
}

impl Compression {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// The compression a layer media type names: `Ok(None)` when it names none we know (then
    /// the magic bytes decide), `Err(())` for encrypted layers, which cannot be applied.
    #[allow(clippy::result_unit_err)]
    pub fn from_media_type(media_type: &str) -> Result<Option<Compression>, ()> {
        if media_type.contains(media_type::ENCRYPTED_SUFFIX) {
            return Err(());
        }
        Ok(
            if media_type.ends_with("+gzip") || media_type.ends_with(".tar.gzip") {
                Some(Compression::Gzip)
            } else if media_type.ends_with("+zstd") {
                Some(Compression::Zstd)
            } else if media_type.ends_with(".tar") {
                Some(Compression::None)
            } else {
                None
            },
        )
    }

    /// The compression the first bytes of a blob show (a plain tar when neither magic).
    pub fn from_magic(head: &[u8]) -> Compression {
        if head.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The layer media type Docker uses for this compression (OCI's for zstd, which Docker's
    /// schema 2 has no type for).
    pub fn docker_layer_media_type(self) -> &'static str {
        match self {
            Compression::None => media_type::DOCKER_LAYER,
            Compression::Gzip => media_type::DOCKER_LAYER_GZIP,
            Compression::Zstd => media_type::OCI_LAYER_ZSTD,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic() {
        assert_eq!(
            Compression::from_magic(&[0x1f, 0x8b, 8, 0]),
            Compression::Gzip
        );
        assert_eq!(
            Compression::from_magic(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::from_magic(b"etc/"), Compression::None);
        assert_eq!(Compression::from_magic(&[0x1f]), Compression::None);
        assert_eq!(Compression::from_magic(&[]), Compression::None);
    }

    #[test]
    fn media_types() {
        let m = Compression::from_media_type;
        assert_eq!(m(media_type::OCI_LAYER_GZIP), Ok(Some(Compression::Gzip)));
        assert_eq!(m(media_type::OCI_LAYER_ZSTD), Ok(Some(Compression::Zstd)));
        assert_eq!(m(media_type::OCI_LAYER), Ok(Some(Compression::None)));
        assert_eq!(
            m(media_type::DOCKER_LAYER_GZIP),
            Ok(Some(Compression::Gzip))
        );
        assert_eq!(
            m(media_type::DOCKER_FOREIGN_LAYER_GZIP),
            Ok(Some(Compression::Gzip))
        );
        assert_eq!(m(media_type::DOCKER_LAYER), Ok(Some(Compression::None)));
        assert_eq!(
            m(media_type::OCI_LAYER_NONDISTRIBUTABLE_ZSTD),
            Ok(Some(Compression::Zstd))
        );
        assert_eq!(m(""), Ok(None));
        assert_eq!(
            m("application/vnd.oci.image.layer.v1.tar+gzip+encrypted"),
            Err(())
        );
    }
}
