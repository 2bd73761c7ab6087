//! Errors of training: each names the file or the setting it is about.

use std::path::PathBuf;

/// Errors from configuring, running and resuming training.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An invalid configuration value or run directory.
    #[error("{0}")]
    Config(String),
    /// What training was doing when a lower layer failed, with that failure as the source.
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// From the nets or their weights (boxed: that error carries shapes and paths).
    #[error(transparent)]
    Model(Box<desdis_models::Error>),
    /// From the tensor library.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// From a loss (bad shapes, settings or batch).
    #[error("loss: {0}")]
    Loss(#[from] desdis_loss::Error),
    /// From the training data.
    #[error("training data: {0}")]
    Data(#[from] desdis_data::DataError),
    /// The loss or the weights stopped being finite.
    #[error("training diverged: {what} is not finite (lower `lr`)")]
    Diverged { what: String },
    /// An error during a given optimizer step (1-based).
    #[error("step {step}: {source}")]
    AtStep {
        step: u64,
        #[source]
        source: Box<Error>,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl From<desdis_models::Error> for Error {
    fn from(e: desdis_models::Error) -> Self {
        Error::Model(Box::new(e))
    }
}

/// Checkpoint I/O errors are reported as the nets' (same kinds, same sources).
impl From<desdis_checkpoint::Error> for Error {
    fn from(e: desdis_checkpoint::Error) -> Self {
        Error::Model(Box::new(e.into()))
    }
}

impl Error {
    /// An [`Error::Context`]: `context` says what was being done, `source` what went wrong.
    pub fn context(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Context { context: context.into(), source: source.into() }
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
