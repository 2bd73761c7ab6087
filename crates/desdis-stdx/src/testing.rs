//! Test support shared by the workspace's crates: where the read-only shared data lives.

use std::path::{Path, PathBuf};

/// Root of the shared, read-only data: `$DESDIS_SHARED_DATA`, else `../shared/data` beside the workspace.
pub fn shared_data_root() -> PathBuf {
    match std::env::var_os("DESDIS_SHARED_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    }
}

/// `shared_data_root()/rel` if it exists. When it is absent, tests skip with a message on a
/// developer machine and fail under CI (`CI=true`), so a missing file can never pass silently there.
pub fn shared_data(rel: &str) -> Option<PathBuf> {
    let path = shared_data_root().join(rel);
    if path.exists() {
        return Some(path);
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(!in_ci, "CI=true but the shared data file {} is missing", path.display());
    eprintln!("skipping: shared data {} not found", path.display());
    None
}
