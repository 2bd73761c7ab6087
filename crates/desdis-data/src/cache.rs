//! Binary cache of a [`PatchSet`]: a 32-byte header, the point ids (u32 LE), then the patches.
//!
//! Header: magic `DDPATCH\0`, format version (u32 LE), patch side (u32 LE), patch count (u64 LE),
//! fingerprint of the sources (u64 LE). A cache whose fingerprint differs from the expected one
//! is stale and ignored, so changed sources are never served from an old cache.

use crate::error::{DataError, Result};
use crate::patch::{PatchSet, PATCH_LEN, PATCH_SIDE};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"DDPATCH\0";
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 32;

/// Reads the cache at `path` if it exists and was made from sources with `fingerprint`.
///
/// Returns `Ok(None)` for a missing or stale cache; a truncated or foreign file is an error.
pub fn read(path: &Path, fingerprint: u64) -> Result<Option<PatchSet>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DataError::io(path, e)),
    };
    let mut header = [0u8; HEADER_LEN];
    file.read_exact(&mut header).map_err(|e| DataError::io(path, e))?;
    let count = parse_header(path, &header)?;
    if u64::from_le_bytes(header[24..32].try_into().expect("8 bytes")) != fingerprint {
        return Ok(None);
    }
    let mut ids = vec![0u8; count * 4];
    file.read_exact(&mut ids).map_err(|e| DataError::io(path, e))?;
    let mut patches = vec![0u8; count * PATCH_LEN];
    file.read_exact(&mut patches).map_err(|e| DataError::io(path, e))?;
    let point_ids = ids.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
    PatchSet::new(patches, point_ids).map(Some)
}

/// Checks magic, version and patch side; returns the patch count.
fn parse_header(path: &Path, header: &[u8; HEADER_LEN]) -> Result<usize> {
    if &header[0..8] != MAGIC {
        return Err(DataError::invalid(path, "not a desdis patch cache (bad magic)"));
    }
    let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    let side = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION || side as usize != PATCH_SIDE {
        return Err(DataError::invalid(
            path,
            format!("cache format {version} with {side}px patches, expected format {FORMAT_VERSION} with {PATCH_SIDE}px"),
        ));
    }
    let count = u64::from_le_bytes(header[16..24].try_into().expect("8 bytes"));
    usize::try_from(count).map_err(|_| DataError::invalid(path, format!("patch count {count} too large")))
}

/// Writes `set` to `path` atomically (a temporary file renamed into place), creating the folder.
pub fn write(path: &Path, set: &PatchSet, fingerprint: u64) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    }
    // Unique per process *and* per call: two threads of one process (parallel tests) writing the
    // same cache must not share a temporary file, or one rename finds it already gone.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{unique}", std::process::id()));
    write_unchecked(&tmp, set, fingerprint).map_err(|e| DataError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
}

fn write_unchecked(path: &Path, set: &PatchSet, fingerprint: u64) -> std::io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    out.write_all(MAGIC)?;
    out.write_all(&FORMAT_VERSION.to_le_bytes())?;
    out.write_all(&(PATCH_SIDE as u32).to_le_bytes())?;
    out.write_all(&(set.point_ids.len() as u64).to_le_bytes())?;
    out.write_all(&fingerprint.to_le_bytes())?;
    for id in &set.point_ids {
        out.write_all(&id.to_le_bytes())?;
    }
    out.write_all(&set.patches)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_staleness() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.bin");
        let set = PatchSet::new((0..2 * PATCH_LEN).map(|i| i as u8).collect(), vec![7, 9]).unwrap();
        assert!(read(&path, 1).unwrap().is_none());
        write(&path, &set, 1).unwrap();
        assert_eq!(read(&path, 1).unwrap(), Some(set));
        assert!(read(&path, 2).unwrap().is_none());
        std::fs::write(&path, b"garbage that is long enough to hold a header....").unwrap();
        assert!(read(&path, 1).unwrap_err().to_string().contains("bad magic"));
    }
}
