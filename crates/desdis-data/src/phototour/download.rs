//! Fetching the three PhotoTour archives, with md5 verification and an offline mode.

use crate::error::{DataError, Result};
use md5::{Digest, Md5};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// A downloadable PhotoTour data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// Data set name, also the folder it is extracted into.
    pub name: &'static str,
    /// Where the zip archive is published.
    pub url: &'static str,
    /// File name of the archive.
    pub archive: &'static str,
    /// md5 of the archive, lowercase hex.
    pub md5: &'static str,
    /// Patches it holds.
    pub num_patches: usize,
}

/// Statue of Liberty.
pub const LIBERTY: Source = Source {
    name: "liberty",
    url: "http://icvl.ee.ic.ac.uk/vbalnt/liberty.zip",
    archive: "liberty.zip",
    md5: "fdd9152f138ea5ef2091746689176414",
    num_patches: 450_092,
};

/// Notre Dame.
pub const NOTREDAME: Source = Source {
    name: "notredame",
    url: "http://icvl.ee.ic.ac.uk/vbalnt/notredame.zip",
    archive: "notredame.zip",
    md5: "509eda8535847b8c0a90bbb210c83484",
    num_patches: 468_159,
};

/// Half Dome, Yosemite.
pub const YOSEMITE: Source = Source {
    name: "yosemite",
    url: "http://icvl.ee.ic.ac.uk/vbalnt/yosemite.zip",
    archive: "yosemite.zip",
    md5: "533b2e8eb7ede31be40abc317b2fd4f0",
    num_patches: 633_587,
};

/// All known sources.
pub const SOURCES: [Source; 3] = [LIBERTY, NOTREDAME, YOSEMITE];

impl Source {
    /// The source called `name` (`liberty`, `notredame`, `yosemite`).
    pub fn by_name(name: &str) -> Option<Source> {
        SOURCES.into_iter().find(|s| s.name == name)
    }
}

/// Whether [`fetch`] may use the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Download the archive when it is not already there.
    Allowed,
    /// Only use an archive already in place.
    Offline,
}

impl Network {
    /// `Offline` when the environment variable `DESDIS_OFFLINE` is `1` or `true`.
    pub fn from_env() -> Network {
        match std::env::var("DESDIS_OFFLINE") {
            Ok(v) if v == "1" || v == "true" => Network::Offline,
            _ => Network::Allowed,
        }
    }
}

/// Makes `source` available under `root/<name>` and returns that folder.
///
/// An already extracted folder (holding `info.txt`) is used as is. Otherwise the archive
/// `root/<archive>` is downloaded unless present (or refused when offline), its md5 checked,
/// and it is extracted.
pub fn fetch(source: &Source, root: &Path, network: Network) -> Result<PathBuf> {
    let dir = root.join(source.name);
    if dir.join("info.txt").is_file() {
        return Ok(dir);
    }
    let archive = root.join(source.archive);
    if !archive.is_file() {
        download(source, &archive, network)?;
    }
    let actual = md5_hex(&archive)?;
    if actual != source.md5 {
        return Err(DataError::Checksum { path: archive, expected: source.md5.to_string(), actual });
    }
    extract(&archive, &dir)?;
    Ok(dir)
}

/// md5 of a file, lowercase hex.
pub fn md5_hex(path: &Path) -> Result<String> {
    let mut reader = BufReader::new(File::open(path).map_err(|e| DataError::io(path, e))?);
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn download_error(source: &Source, archive: &Path, reason: impl Into<String>) -> DataError {
    DataError::Download {
        url: source.url.to_string(),
        reason: reason.into(),
        file: archive.to_path_buf(),
        md5: source.md5.to_string(),
    }
}

/// Downloads to a `.part` file renamed on success, so an interrupted download is never mistaken
/// for a complete archive.
fn download(source: &Source, archive: &Path, network: Network) -> Result<()> {
    if network == Network::Offline {
        return Err(download_error(
            source,
            archive,
            "offline mode (DESDIS_OFFLINE) and the archive is not there",
        ));
    }
    if let Some(parent) = archive.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    tracing::info!("downloading {} to {}", source.url, archive.display());
    let response =
        ureq::get(source.url).call().map_err(|e| download_error(source, archive, e.to_string()))?;
    let part = archive.with_extension("zip.part");
    let mut file = File::create(&part).map_err(|e| DataError::io(&part, e))?;
    std::io::copy(&mut response.into_reader(), &mut file)
        .map_err(|e| download_error(source, archive, e.to_string()))?;
    std::fs::rename(&part, archive).map_err(|e| DataError::io(archive, e))
}

fn extract(archive: &Path, dir: &Path) -> Result<()> {
    let file = File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| DataError::invalid(archive, format!("not a zip archive: {e}")))?;
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    zip.extract(dir)
        .map_err(|e| DataError::invalid(archive, format!("cannot extract into {}: {e}", dir.display())))
}
