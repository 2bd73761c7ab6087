//! The crate's error type: every variant names the file (and line, where there is one) and the problem.

use std::path::{Path, PathBuf};

/// Errors from reading, writing, generating or mining patch data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An I/O operation on `path` failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An image could not be decoded or encoded.
    #[error("{path}: image error: {source}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// The underlying error.
        source: image::ImageError,
    },
    /// A text file has a line that does not parse.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The text file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// A file or folder has the wrong content or shape (not tied to one line).
    #[error("{path}: {message}")]
    Invalid {
        /// The file or folder involved.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A checksum did not match.
    #[error("{path}: md5 is {actual}, expected {expected}; the file is corrupt or incomplete, delete it and download it again")]
    Checksum {
        /// The file that was checked.
        path: PathBuf,
        /// The expected md5, hex.
        expected: String,
        /// The md5 found, hex.
        actual: String,
    },
    /// A download could not be done (no network, or offline mode).
    #[error("cannot download {url}: {reason}; place {file} (md5 {md5}) there by hand to use it offline")]
    Download {
        /// The URL tried.
        url: String,
        /// Why it failed.
        reason: String,
        /// Where the archive is expected.
        file: PathBuf,
        /// The archive's expected md5.
        md5: String,
    },
    /// A remote data set could not be fetched.
    #[error("cannot fetch {name}: {reason}")]
    Remote {
        /// The data set.
        name: String,
        /// Why.
        reason: String,
    },
    /// A parameter is out of its allowed range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A tensor could not be built.
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// Short alias used throughout the crate.
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io { path: path.to_path_buf(), source }
    }

    /// Wraps an image error with the path it happened on.
    pub fn image(path: &Path, source: image::ImageError) -> Self {
        DataError::Image { path: path.to_path_buf(), source }
    }

    /// A parse error at `line` (1-based) of `path`.
    pub fn parse(path: &Path, line: usize, message: impl Into<String>) -> Self {
        DataError::Parse { path: path.to_path_buf(), line, message: message.into() }
    }

    /// A content or shape error of `path`.
    pub fn invalid(path: &Path, message: impl Into<String>) -> Self {
        DataError::Invalid { path: path.to_path_buf(), message: message.into() }
    }
}
