//! Atomic file writes: a reader (or a crash) never sees a half-written results file.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically (see [`desdis_stdx::write_atomic`]); creates missing
/// parent directories.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    desdis_stdx::write_atomic(path, bytes).map_err(|e| Error::io(path, e))
}

/// Writes `value` as pretty JSON (with a final newline) to `path`, atomically.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}
