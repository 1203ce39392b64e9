//! Lexical cleaning of tar entry paths, before they meet the tree.

use crate::error::Error;

/// Longest name of one path component (ext4 and every Linux filesystem).
pub const NAME_MAX: usize = 255;

/// Longest path of a name in the tree, in bytes, counted as a tar stores it: relative to the
/// image root, components joined by "/", no leading "/" (`usr/bin/env` is 11). Linux's
/// `PATH_MAX` (4096) less its terminating NUL: the longest path a system call accepts, so the
/// longest a container runtime (which joins the name onto its root directory) can create and
/// the longest symlink target `symlink(2)` and ext4 store. It counts where the name really
/// lands, after symlinks in its parents are followed, and applies to link targets too. Past
/// it: [`Error::PathTooLong`].
pub const MAX_PATH_LEN: usize = 4095;

/// Deepest a name can sit in the tree: components from the root, the name included
/// (`usr/bin/env` is 3 deep), after symlinks in its parents are followed. Real images stay
/// below 30 (Debian's deepest paths are about 15); the deepest trees seen in practice
/// (npm's nested `node_modules` before npm 3) stayed in the low hundreds. 1024 leaves room
/// for those and keeps what is proportional to depth small (resolving a parent, the walk's
/// stack, tools on the booted system that recurse per level, e.g. Python's `os.walk` with its
/// recursion limit of 1000). Plain paths within [`MAX_PATH_LEN`] can reach 2048 levels, so
/// this is the tighter bound for one-letter names. Past it: [`Error::TooDeep`].
pub const MAX_DEPTH: usize = 1024;

/// Splits a tar path into clean components: leading "/" and "./" stripped, "//" and "."
/// dropped, ".." resolved lexically (`g/h/../i` is `g/i`). A path that still climbs above
/// the root is an error, as is a component over [`NAME_MAX`] bytes, a cleaned path over
/// [`MAX_PATH_LEN`] bytes or deeper than [`MAX_DEPTH`]. An empty result is the root itself.
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
                // Checked as it grows, so that a hostile path of megabytes costs no more
                // than MAX_DEPTH components (a path that goes deeper and comes back with
                // ".." passes through a name that deep).
                if out.len() > MAX_DEPTH {
                    return Err(Error::TooDeep(out.len()));
                }
            }
        }
    }
    let len = out.iter().map(|c| c.len()).sum::<usize>() + out.len().saturating_sub(1);
    check_limits(len, out.len())?;
    Ok(out)
}

/// Checks a path of `len` bytes, `depth` components deep against [`MAX_PATH_LEN`] and
/// [`MAX_DEPTH`].
pub fn check_limits(len: usize, depth: usize) -> Result<(), Error> {
    if len > MAX_PATH_LEN {
        return Err(Error::PathTooLong(len));
    }
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep(depth));
    }
    Ok(())
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
