//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in this crate. Variants name the offending input so that a
/// caller several layers up (CLI, Python binding) can report it without extra context.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A descriptor dimension of zero was given.
    #[error("descriptor dimension must be positive")]
    ZeroDimension,
    /// A flat descriptor array whose length is not a multiple of the dimension.
    #[error("{what}: length {len} is not a multiple of the descriptor dimension {dim}")]
    DescriptorLength {
        /// Which input (`desc0` or `desc1`).
        what: &'static str,
        /// Its length in floats.
        len: usize,
        /// The descriptor dimension it was read with.
        dim: usize,
    },
    /// A NaN or infinite value in an input that must be finite.
    #[error("{what}: non-finite value at index {index}")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// The flat index of the first offending value (element, point or keypoint).
        index: usize,
    },
    /// Two inputs that must have the same length do not.
    #[error("{what}: lengths differ ({left} vs {right})")]
    LengthMismatch {
        /// What was compared.
        what: &'static str,
        /// The first length.
        left: usize,
        /// The second length.
        right: usize,
    },
    /// An index (in a match) that does not address an element of the array it refers to.
    #[error("{what}: index {index} out of range for length {len}")]
    IndexOutOfRange {
        /// Which index.
        what: &'static str,
        /// Its value.
        index: i64,
        /// The length of the array it indexes.
        len: usize,
    },
    /// The same query keypoint appears in more than one match, which `matches0` cannot express.
    #[error("keypoint {i0} of image 0 appears in more than one match")]
    DuplicateMatch {
        /// The repeated query index.
        i0: u32,
    },
    /// A parameter outside its valid range.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file was read but its content is malformed.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// The first index of a non-finite value, as an [`Error::NonFinite`] naming `what`.
pub(crate) fn check_finite_f32(values: &[f32], what: &'static str) -> Result<(), Error> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFinite { what, index }),
        None => Ok(()),
    }
}

/// Like [`check_finite_f32`] for points: the index reported is the point's.
pub(crate) fn check_finite_points(points: &[[f32; 2]], what: &'static str) -> Result<(), Error> {
    match points.iter().position(|p| !(p[0].is_finite() && p[1].is_finite())) {
        Some(index) => Err(Error::NonFinite { what, index }),
        None => Ok(()),
    }
}
