//! Errors of evaluation: each says which input was wrong and how, so a bad call never turns into a NaN.

use std::path::PathBuf;

/// Errors from computing metrics, measuring speed and writing results.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Two inputs that must pair up element by element have different lengths.
    #[error("{what}: lengths differ ({left} vs {right})")]
    LengthMismatch { what: &'static str, left: usize, right: usize },
    /// An input that needs at least one element is empty.
    #[error("{0}: empty input")]
    Empty(&'static str),
    /// A rate or precision needs at least one positive (matching) pair.
    #[error("{0}: no positive pairs, so recall is undefined")]
    NoPositives(&'static str),
    /// A false-positive rate needs at least one negative (non-matching) pair.
    #[error("{0}: no negative pairs, so the false-positive rate is undefined")]
    NoNegatives(&'static str),
    /// A distance or descriptor value is NaN or infinite.
    #[error("{what}: non-finite value at index {index}")]
    NonFinite { what: &'static str, index: usize },
    /// A flat descriptor buffer does not split into rows of the given dimension.
    #[error("descriptors: {len} values do not form rows of dimension {dim}")]
    Shape { len: usize, dim: usize },
    /// Two descriptor sets that are compared have different dimensions.
    #[error("{what}: descriptor dimensions differ ({left} vs {right})")]
    DimensionMismatch { what: &'static str, left: usize, right: usize },
    /// Any other argument outside its documented range.
    #[error("{0}")]
    InvalidArgument(String),
    /// The function whose speed is measured failed.
    #[error("measured function failed: {0}")]
    Measured(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Describing patches with a net failed.
    #[error(transparent)]
    Model(Box<desdis_models::Error>),
    /// Reading or cutting the evaluation data failed.
    #[error(transparent)]
    Data(Box<desdis_data::DataError>),
    /// A value could not be serialised to JSON.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl From<desdis_models::Error> for Error {
    fn from(e: desdis_models::Error) -> Self {
        Error::Model(Box::new(e))
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Model(Box::new(e.into()))
    }
}

impl From<desdis_data::DataError> for Error {
    fn from(e: desdis_data::DataError) -> Self {
        Error::Data(Box::new(e))
    }
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
