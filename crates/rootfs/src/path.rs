//! Lexical cleaning of tar entry paths, before they meet the tree.

use crate::error::Error;

/// Longest name of one path component (ext4 and every Linux filesystem).
pub const NAME_MAX: usize = 255;

/// Splits a tar path into clean components: leading "/" and "./" stripped, "//" and "."
/// dropped, ".." resolved lexically (`g/h/../i` is `g/i`). A path that still climbs above
/// the root is an error, as is a component over [`NAME_MAX`] bytes. An empty result is the
/// root itself.
pub fn clean(path: &[u8]) -> Result<Vec<&[u8]>, Error> {
    let mut out: Vec<&[u8]> = Vec::new();
    for comp in path.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(Error::EscapesRoot);
                }
            }
            name => {
                if name.len() > NAME_MAX {
                    return Err(Error::NameTooLong);
                }
                out.push(name);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(p: &str) -> Result<String, Error> {
        clean(p.as_bytes()).map(|c| {
            c.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
    }

    #[test]
    fn cleans_like_the_semantics_note() {
        assert_eq!(joined("/etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(joined("./etc//./passwd").unwrap(), "etc/passwd");
        assert_eq!(joined("g/h/../i").unwrap(), "g/i");
        assert_eq!(joined("etc/").unwrap(), "etc");
        assert_eq!(joined("./").unwrap(), "");
        assert_eq!(joined("a/../..x").unwrap(), "..x");
        assert!(matches!(joined("../etc/x"), Err(Error::EscapesRoot)));
        assert!(matches!(joined("a/../../b"), Err(Error::EscapesRoot)));
        assert!(matches!(joined(&"x".repeat(256)), Err(Error::NameTooLong)));
        assert_eq!(joined(&"x".repeat(255)).unwrap().len(), 255);
    }

    #[test]
    fn names_are_bytes_not_utf8() {
        let c = clean(b"dir/\xff\xfe").unwrap();
        assert_eq!(c, vec![&b"dir"[..], &b"\xff\xfe"[..]]);
    }
}
