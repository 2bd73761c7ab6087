//! Errors of the pipeline, with their sources.

use std::path::PathBuf;

/// What went wrong in extraction or matching.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading or detecting on an image.
    #[error(transparent)]
    Detect(#[from] desdis_detect::Error),
    /// Loading the net or running it (boxed: the models' error is large).
    #[error(transparent)]
    Model(Box<desdis_models::Error>),
    /// Describing patches.
    #[error(transparent)]
    Describe(#[from] desdis_eval::Error),
    /// Reading or writing a features or matches file.
    #[error(transparent)]
    H5(#[from] desdis_h5::Error),
    /// Matching or verification.
    #[error(transparent)]
    Geometry(#[from] desdis_geometry::Error),
    /// A folder that cannot be listed.
    #[error("{path}: cannot list the folder: {source}")]
    Walk {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A net that produced non-finite descriptors.
    #[error("{0}: the net produced non-finite descriptors (damaged weights?)")]
    NonFinite(String),
    /// Anything else, described.
    #[error("{0}")]
    Invalid(String),
}

impl From<desdis_models::Error> for Error {
    fn from(e: desdis_models::Error) -> Self {
        Error::Model(Box::new(e))
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
