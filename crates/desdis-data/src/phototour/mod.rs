//! UBC PhotoTour ("Multi-view Stereo Correspondence") patch data sets: reading, caching, writing.
//!
//! Layout of a data set folder:
//! - `patches0000.bmp`, `patches0001.bmp`, ...: 1024x1024 sheets of 16x16 patches of 64x64,
//!   row-major, sheets in file-name order, the last one partly filled;
//! - `info.txt`: one line per patch, the first column its 3D point id;
//! - `m50_<n>_<n>_0.txt`: evaluation pairs, `patch1 point1 _ patch2 point2 _` per line;
//! - `interest.txt` (optional): the interest point each patch was sampled around.
//!
//! Patches are kept as 32x32 (each 2x2 block of the 64x64 patch averaged). The first load writes
//! a binary cache; later loads read it unless a sheet, `info.txt` or `interest.txt` changed.

mod download;
mod sheets;
mod text;

pub use download::{fetch, md5_hex, Network, Source, LIBERTY, NOTREDAME, SOURCES, YOSEMITE};
pub use sheets::{sheet_name, PER_SHEET, SHEET_PATCH_SIDE, SHEET_SIDE};
pub use text::{read_info, read_interest, read_pairs, write_info, write_pairs, InterestPoint, Pair};

use crate::cache;
use crate::error::{DataError, Result};
use crate::hash::StableHasher;
use crate::patch::{Dataset, PatchSet, PATCH_LEN};
use std::path::{Path, PathBuf};

/// Name of the cache file written next to the data.
pub const CACHE_FILE_NAME: &str = "desdis-patches32.bin";

/// Where [`load`] keeps its binary cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CachePolicy {
    /// `<data dir>/desdis-patches32.bin`.
    NextToData,
    /// A file in this folder, named after the data folder.
    In(PathBuf),
    /// Always decode the sheets; write nothing.
    Off,
}

/// A loaded PhotoTour data set.
#[derive(Debug, Clone)]
pub struct PhotoTour {
    /// The data set folder.
    pub dir: PathBuf,
    /// Patches and their 3D point ids.
    pub set: PatchSet,
    /// Rows of `interest.txt`, when the file exists.
    pub interest: Option<Vec<InterestPoint>>,
    /// The `m50_*.txt` pair files found, sorted.
    pub pair_files: Vec<PathBuf>,
}

impl PhotoTour {
    /// Reads a pair file, checking its patch indices against this data set.
    pub fn read_pairs(&self, path: &Path) -> Result<Vec<Pair>> {
        read_pairs(path, Some(self.set.len()))
    }
}

impl Dataset for PhotoTour {
    fn len(&self) -> usize {
        self.set.len()
    }
    fn patch(&self, i: usize) -> &[u8; PATCH_LEN] {
        self.set.patch(i)
    }
    fn point_ids(&self) -> &[u32] {
        &self.set.point_ids
    }
}

/// Loads the PhotoTour data set in `dir`, from the cache when it is current.
pub fn load(dir: &Path, cache_policy: &CachePolicy) -> Result<PhotoTour> {
    let sheets = sheets::list_sheets(dir)?;
    let info = dir.join("info.txt");
    let interest_path = dir.join("interest.txt");
    let interest_exists = interest_path.is_file();
    let mut sources = sheets.clone();
    sources.push(info.clone());
    if interest_exists {
        sources.push(interest_path.clone());
    }
    let fingerprint = fingerprint(&sources)?;
    let cache_path = cache_path(dir, cache_policy);
    let set = match cached(cache_path.as_deref(), fingerprint) {
        Some(set) => set,
        None => {
            let set = decode(dir, &sheets, &info)?;
            store(cache_path.as_deref(), &set, fingerprint);
            set
        }
    };
    let interest = if interest_exists { Some(read_interest(&interest_path)?) } else { None };
    if let Some(rows) = &interest {
        if rows.len() != set.len() {
            let msg = format!("{} rows, but info.txt lists {} patches", rows.len(), set.len());
            return Err(DataError::invalid(&interest_path, msg));
        }
    }
    Ok(PhotoTour { dir: dir.to_path_buf(), set, interest, pair_files: list_pair_files(dir)? })
}

/// Decodes sheets and `info.txt` into a patch set, checking that their counts agree.
fn decode(dir: &Path, sheets: &[PathBuf], info: &Path) -> Result<PatchSet> {
    let point_ids = read_info(info)?;
    if point_ids.is_empty() {
        return Err(DataError::invalid(info, "no patches listed"));
    }
    let needed = point_ids.len().div_ceil(PER_SHEET);
    if sheets.len() < needed {
        let msg = format!(
            "lists {} patches, which need {needed} sheets, but {} holds {} (missing {})",
            point_ids.len(),
            dir.display(),
            sheets.len(),
            sheet_name(sheets.len())
        );
        return Err(DataError::invalid(info, msg));
    }
    if sheets.len() > needed {
        let msg = format!(
            "lists only {} patches, which fill {needed} sheets, but {} holds {} sheets",
            point_ids.len(),
            dir.display(),
            sheets.len()
        );
        return Err(DataError::invalid(info, msg));
    }
    let mut patches = vec![0u8; point_ids.len() * PATCH_LEN];
    sheets::decode_sheets(sheets, &mut patches)?;
    PatchSet::new(patches, point_ids)
}

/// Hash of the sources' names, sizes and modification times.
fn fingerprint(sources: &[PathBuf]) -> Result<u64> {
    let mut hasher = StableHasher::new();
    for path in sources {
        let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
        let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        hasher.str(&path.file_name().unwrap_or_default().to_string_lossy());
        hasher.u64(meta.len()).u64(modified.map_or(0, |d| d.as_nanos() as u64));
    }
    Ok(hasher.finish())
}

fn cache_path(dir: &Path, policy: &CachePolicy) -> Option<PathBuf> {
    match policy {
        CachePolicy::NextToData => Some(dir.join(CACHE_FILE_NAME)),
        CachePolicy::In(cache_dir) => {
            let absolute = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
            let key = StableHasher::new().str(&absolute.to_string_lossy()).finish();
            let name = dir.file_name().unwrap_or_default().to_string_lossy();
            Some(cache_dir.join(format!("phototour-{name}-{key:016x}.bin")))
        }
        CachePolicy::Off => None,
    }
}

/// The cached set if present and current; an unreadable cache only costs a re-decode.
fn cached(path: Option<&Path>, fingerprint: u64) -> Option<PatchSet> {
    let path = path?;
    match cache::read(path, fingerprint) {
        Ok(set) => set,
        Err(e) => {
            tracing::warn!("ignoring unreadable patch cache: {e}");
            None
        }
    }
}

/// Writes the cache; a read-only data folder must not make loading fail, so errors only warn.
fn store(path: Option<&Path>, set: &PatchSet, fingerprint: u64) {
    if let Some(path) = path {
        if let Err(e) = cache::write(path, set, fingerprint) {
            tracing::warn!("could not write the patch cache: {e}");
        }
    }
}

fn list_pair_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("m50_") && name.ends_with(".txt") {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Writes `set` in PhotoTour layout into `dir` (created if needed): sheets and `info.txt`.
///
/// Patches are stored 64x64 with each pixel doubled, so [`load`] returns exactly `set`. Sheets
/// left over from a larger set written there before are removed.
pub fn write(dir: &Path, set: &PatchSet) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    sheets::write_sheets(dir, &set.patches)?;
    sheets::remove_sheets_from(dir, set.len().div_ceil(PER_SHEET))?;
    write_info(&dir.join("info.txt"), &set.point_ids)
}
