//! Errors of tree operations: a path that cannot name anything in the tree, or a content
//! store that failed.

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong resolving a path or changing the tree.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path that climbs above the root after cleaning (`../etc/x`).
    #[error("path escapes the image root")]
    EscapesRoot,
    /// An empty path or path component where a name is needed.
    #[error("empty file name")]
    EmptyName,
    /// A component longer than a filesystem allows.
    #[error("path component longer than 255 bytes")]
    NameTooLong,
    /// A path longer than [`MAX_PATH_LEN`](crate::path::MAX_PATH_LEN) bytes, after symlinks
    /// in its parents are followed; or a link target that long.
    #[error("path of {0} bytes, more than {max} (PATH_MAX)", max = crate::path::MAX_PATH_LEN)]
    PathTooLong(usize),
    /// A name deeper than [`MAX_DEPTH`](crate::path::MAX_DEPTH) components, after symlinks in
    /// its parents are followed.
    #[error("path {0} components deep, more than {max}", max = crate::path::MAX_DEPTH)]
    TooDeep(usize),
    /// A parent component names something that is neither a directory nor a symlink to one.
    #[error("parent {0:?} is not a directory")]
    ParentNotDirectory(String),
    /// More than 255 symlinks followed while resolving a path.
    #[error("too many levels of symbolic links")]
    SymlinkLoop,
    /// The content store failed to store, read or release file data.
    #[error("content store: {0}")]
    Store(#[source] std::io::Error),
}
