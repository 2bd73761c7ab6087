//! The one error type of this crate: every message names the file or the key it is about.

use std::path::PathBuf;

/// Errors from building nets and reading or writing weights.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the checkpoint failed (I/O, or a truncated, corrupt or forbidden file).
    #[error(transparent)]
    Checkpoint(#[from] desdis_checkpoint::Error),
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

impl Error {
    /// A checkpoint that was read but cannot be a net's (named by `path`).
    pub fn checkpoint(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Checkpoint(desdis_checkpoint::Error::checkpoint(path, msg))
    }
}
