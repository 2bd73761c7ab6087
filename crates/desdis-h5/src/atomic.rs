//! Atomic file replacement: a reader (or a crash) sees either the old file or the whole new one,
//! never a half-written file under the final name.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Error;

/// Distinguishes temporary files of concurrent writes from one process (same pid).
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically: to `.<name>.tmp-<pid>-<n>` in the same folder (a rename
/// is only atomic within one file system), fsync, rename over `path`, fsync the folder. On any
/// failure the temporary file is removed and `path` is left as it was.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = temp_path(path)?;
    let result = write_and_rename(&tmp, path, bytes);
    if result.is_err() {
        // Best effort: the error that matters is the one being returned.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The temporary file's path beside `path`.
fn temp_path(path: &Path) -> Result<PathBuf, Error> {
    let name = path.file_name().ok_or_else(|| Error::invalid(path, "path", "has no file name"))?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp_name = format!(".{}.tmp-{}-{n}", name.to_string_lossy(), std::process::id());
    Ok(path.with_file_name(tmp_name))
}

fn write_and_rename(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file =
        fs::OpenOptions::new().write(true).create_new(true).open(tmp).map_err(|e| Error::io(tmp, e))?;
    file.write_all(bytes).map_err(|e| Error::io(tmp, e))?;
    file.sync_all().map_err(|e| Error::io(tmp, e))?;
    drop(file);
    fs::rename(tmp, path).map_err(|e| Error::io(path, e))?;
    sync_parent(path);
    Ok(())
}

/// Makes the rename itself durable. Best effort: not every platform lets a folder be opened
/// and synced, and the data is already safe under one of the two names.
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = fs::File::open(parent) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.h5");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the target remains: {names:?}");
    }

    #[test]
    fn failure_keeps_the_old_file_and_removes_the_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.h5");
        write_atomic(&path, b"old").unwrap();
        // Renaming a file over a non-empty folder fails on every platform.
        let blocker = dir.path().join("blocked");
        fs::create_dir(&blocker).unwrap();
        fs::write(blocker.join("inside"), b"").unwrap();
        assert!(write_atomic(&blocker, b"new").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no temporary left: {names:?}");
    }
}
