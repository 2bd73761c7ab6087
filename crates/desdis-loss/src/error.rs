//! The one error type of this crate.

/// Errors from building or evaluating a loss.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Descriptors with the wrong rank, mismatched shapes, dtypes or devices, too small a batch,
    /// or a missing input a loss needs (raw descriptors for HyNet).
    #[error("invalid input: {0}")]
    Input(String),
    /// A configuration value outside its valid range (negative margin, `k = 0`, NaN weight...).
    #[error("invalid config: {0}")]
    Config(String),
    /// A loss name that no recipe matches.
    #[error("unknown loss `{0}` (known: hardnet, l2net, sosnet, hynet, tfeat)")]
    UnknownLoss(String),
    /// An error from the tensor library.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// An [`Error::Input`] from anything printable.
pub(crate) fn input(msg: impl Into<String>) -> Error {
    Error::Input(msg.into())
}

/// An [`Error::Config`] from anything printable.
pub(crate) fn config(msg: impl Into<String>) -> Error {
    Error::Config(msg.into())
}

/// Checks that `value` is finite and at least `min`, naming `what` otherwise.
pub(crate) fn check_at_least(what: &str, value: f64, min: f64) -> Result<()> {
    if value.is_finite() && value >= min {
        Ok(())
    } else {
        Err(config(format!("{what} must be a finite number >= {min}, got {value}")))
    }
}
