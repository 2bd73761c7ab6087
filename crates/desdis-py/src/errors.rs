//! Errors crossing into Python: each Rust error becomes one exception whose message is the
//! CLI's one-line message, and whose class says what kind of failure it was.

use std::error::Error as StdError;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyType;

/// Which Python exception a failure becomes (the classes live in `desdis._errors`, all derived
/// from `desdis.DesdisError` and from the matching built-in exception).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad arrays, arguments, or file contents (`ValueError`).
    Value,
    /// An argument of the wrong Python type (`TypeError`).
    Type,
    /// A file that does not exist (`FileNotFoundError`).
    NotFound,
    /// Any other I/O failure (`OSError`).
    Os,
    /// The computation itself failed (`RuntimeError`).
    Runtime,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Kind::Value => "DesdisValueError",
            Kind::Type => "DesdisTypeError",
            Kind::NotFound => "DesdisFileNotFoundError",
            Kind::Os => "DesdisOSError",
            Kind::Runtime => "DesdisRuntimeError",
        }
    }
}

/// A failure computed without the GIL, turned into a Python exception once it is held again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The exception class.
    pub kind: Kind,
    /// The message, as the CLI prints it after `error: `.
    pub message: String,
}

/// Results of this crate's Rust side.
pub type Result<T, E = Failure> = std::result::Result<T, E>;

impl Failure {
    /// A `ValueError` with `message`.
    pub fn value(message: impl Into<String>) -> Self {
        Failure { kind: Kind::Value, message: message.into() }
    }

    /// A `TypeError` with `message`.
    pub fn type_error(message: impl Into<String>) -> Self {
        Failure { kind: Kind::Type, message: message.into() }
    }

    /// A failure from any library error: I/O failures anywhere in its chain make it an
    /// `OSError` (`FileNotFoundError` for a missing file), `runtime` ones a `RuntimeError`,
    /// everything else a `ValueError`.
    pub fn from_error(err: &(dyn StdError + 'static), runtime: bool) -> Self {
        let kind = match io_kind(err) {
            Some(std::io::ErrorKind::NotFound) => Kind::NotFound,
            Some(_) => Kind::Os,
            None if runtime => Kind::Runtime,
            None => Kind::Value,
        };
        Failure { kind, message: error_chain(err) }
    }

    /// The Python exception (the GIL is held).
    pub fn into_py_err(self, py: Python<'_>) -> PyErr {
        match exception_class(py, self.kind) {
            Ok(class) => PyErr::from_type(class, self.message),
            // The classes ship with the package; this only happens when its Python part is
            // missing, and a built-in exception still carries the message.
            Err(_) => builtin(self.kind, self.message),
        }
    }
}

fn exception_class(py: Python<'_>, kind: Kind) -> PyResult<Bound<'_, PyType>> {
    let module = py.import("desdis._errors")?;
    Ok(module.getattr(kind.class_name())?.cast_into::<PyType>()?)
}

fn builtin(kind: Kind, message: String) -> PyErr {
    match kind {
        Kind::Value => PyValueError::new_err(message),
        Kind::Type => PyTypeError::new_err(message),
        Kind::NotFound => pyo3::exceptions::PyFileNotFoundError::new_err(message),
        Kind::Os => PyOSError::new_err(message),
        Kind::Runtime => PyRuntimeError::new_err(message),
    }
}

/// The kind of the first I/O error in `err`'s chain.
fn io_kind(err: &(dyn StdError + 'static)) -> Option<std::io::ErrorKind> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cause = e.source();
    }
    None
}

/// The error and its causes on one line, each cause once (as the CLI prints them): many errors
/// already include their source in their own message.
fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut line = String::new();
    let mut cause = Some(err);
    while let Some(e) = cause {
        let text = e.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        cause = e.source();
    }
    line
}

impl From<desdis_pipeline::Error> for Failure {
    fn from(e: desdis_pipeline::Error) -> Self {
        let runtime = matches!(e, desdis_pipeline::Error::NonFinite(_));
        Failure::from_error(&e, runtime)
    }
}

impl From<desdis_models::Error> for Failure {
    fn from(e: desdis_models::Error) -> Self {
        let runtime = matches!(
            e,
            desdis_models::Error::Candle(_)
                | desdis_models::Error::Checkpoint(desdis_checkpoint::Error::Candle(_))
        );
        Failure::from_error(&e, runtime)
    }
}

impl From<desdis_detect::Error> for Failure {
    fn from(e: desdis_detect::Error) -> Self {
        Failure::from_error(&e, false)
    }
}

impl From<desdis_eval::Error> for Failure {
    fn from(e: desdis_eval::Error) -> Self {
        let runtime = matches!(e, desdis_eval::Error::Model(_));
        Failure::from_error(&e, runtime)
    }
}

impl From<desdis_geometry::Error> for Failure {
    fn from(e: desdis_geometry::Error) -> Self {
        Failure::from_error(&e, false)
    }
}

/// Python-side errors raised while reading arguments (already exceptions) pass through as they
/// are; this lets `?` mix both in functions that hold the GIL.
pub trait IntoPyResult<T> {
    /// The result with a [`Failure`] turned into its exception.
    fn py(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T> {
    fn py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|f| f.into_py_err(py))
    }
}
