//! Atomic file replacement (see [`desdis_stdx::write_atomic`]), with this crate's error.

use std::path::Path;

use crate::Error;

/// Writes `bytes` to `path` atomically; on failure `path` is left as it was.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    desdis_stdx::write_atomic(path, bytes).map_err(|e| Error::io(path, e))
}
