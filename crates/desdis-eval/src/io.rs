//! Atomic file writes: a reader (or a crash) never sees a half-written results file.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically: a temporary sibling file, fsync, rename over `path`,
/// fsync of the directory. Creates missing parent directories.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let tmp = parent.join(temporary_name(path));
    let written =
        write_synced(&tmp, bytes).and_then(|()| fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if written.is_err() {
        // Best effort: the original error is what matters to the caller.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_dir(parent)
}

/// Writes `value` as pretty JSON (with a final newline) to `path`, atomically.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// A hidden name unique to this process and call, so that concurrent writers (threads writing
/// many CSV files, or two processes) never share a temporary file.
fn temporary_name(path: &Path) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{file_name}.{}.{n}.tmp", std::process::id())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = fs::File::create(path).map_err(|e| Error::io(path, e))?;
    file.write_all(bytes).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    // The rename is durable only once the directory entry is; on Unix a directory opened
    // read-only can be fsynced.
    #[cfg(unix)]
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
