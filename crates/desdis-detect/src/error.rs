//! Errors of image loading and detection, each naming the file it concerns.

use std::path::PathBuf;

/// What went wrong, and with which file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not an image this build decodes, or its data is corrupt or truncated.
    #[error("{path}: cannot decode the image: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: image::ImageError,
    },
    /// The file stops before the image's data does (a JPEG decoder would fill the rest with gray).
    #[error("{path}: the image file is truncated: {what}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where it stops.
        what: &'static str,
    },
    /// The image header declares a size past the limits (checked before any pixel is allocated).
    #[error("{path}: the image is {width}x{height}, larger than the limit of {limit} pixels per side; downscale it first")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Largest side accepted.
        limit: u32,
    },
    /// An image with no pixels.
    #[error("{path}: the image has no pixels ({width}x{height})")]
    Empty {
        /// The file.
        path: PathBuf,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// A setting out of its range.
    #[error("invalid detector setting: {0}")]
    Config(String),
    /// Pixel values that are not finite numbers (NaN or infinite).
    #[error("the image holds non-finite pixel values")]
    NonFinite,
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
