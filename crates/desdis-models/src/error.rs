//! The one error type of this crate: every message names the file or the key it is about.

use std::path::PathBuf;

/// Errors from building nets and reading or writing weights.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but its content is not a valid checkpoint (truncated, corrupt, forbidden pickle).
    #[error("{path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    /// A tensor the architecture needs is absent from the checkpoint.
    #[error("{path}: missing key `{key}` for architecture {arch}")]
    MissingKey { path: PathBuf, key: String, arch: String },
    /// A tensor in the checkpoint does not have the shape the architecture expects.
    #[error("{path}: key `{key}` has shape {found:?}, architecture {arch} expects {expected:?}")]
    Shape { path: PathBuf, key: String, arch: String, expected: Vec<usize>, found: Vec<usize> },
    /// An architecture name or checkpoint layout that no known net matches.
    #[error("unknown architecture: {0}")]
    UnknownArch(String),
    /// Invalid input given to a net (wrong rank, wrong patch size, ...).
    #[error("invalid input: {0}")]
    Input(String),
    /// An error from the tensor library.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// A checkpoint error keeps its kind (and its source): callers match on one error type.
impl From<desdis_checkpoint::Error> for Error {
    fn from(e: desdis_checkpoint::Error) -> Self {
        match e {
            desdis_checkpoint::Error::Io { path, source } => Error::Io { path, source },
            desdis_checkpoint::Error::Checkpoint { path, msg } => Error::Checkpoint { path, msg },
            desdis_checkpoint::Error::Candle(e) => Error::Candle(e),
        }
    }
}

impl Error {
    /// A [`Error::Checkpoint`] for `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Checkpoint { path: path.into(), msg: msg.into() }
    }
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
