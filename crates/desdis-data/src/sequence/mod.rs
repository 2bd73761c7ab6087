//! Image sequences with ground-truth homographies (HPatches layout: `1..N.png` or `.ppm`, and
//! `H_1_k`, the 3x3 map from image 1 to image k), and patches cut from them.

mod cut;
mod detect;
mod jitter;

pub use cut::{candidate_keypoints, cut_at, cut_hpatches, cut_patches, CutConfig, CutSet, HPatchesCut};
pub use detect::{detect, suppress_duplicates, DetectorConfig, Keypoint};
pub use jitter::{Jitter, JitterRange};

use crate::error::{DataError, Result};
use crate::geometry::Homography;
use image::GrayImage;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Images of one scene and the homographies from the first image to each other one.
#[derive(Debug, Clone)]
pub struct Sequence {
    /// Images 1..N (index 0 is image 1), grayscale.
    pub images: Vec<GrayImage>,
    /// `H_1_k` for k = 2..=N (index 0 is `H_1_2`).
    pub homographies: Vec<Homography>,
}

impl Sequence {
    /// A sequence from images and the `images.len() - 1` homographies from image 1.
    pub fn new(images: Vec<GrayImage>, homographies: Vec<Homography>) -> Result<Sequence> {
        if images.is_empty() || homographies.len() + 1 != images.len() {
            return Err(DataError::Config(format!(
                "a sequence of {} images needs {} homographies, got {}",
                images.len(),
                images.len().saturating_sub(1),
                homographies.len()
            )));
        }
        Ok(Sequence { images, homographies })
    }

    /// The homography from image 1 to image `index + 1` (identity for index 0).
    pub fn homography(&self, index: usize) -> Homography {
        if index == 0 {
            Homography::IDENTITY
        } else {
            self.homographies[index - 1]
        }
    }

    /// Loads `dir`: images `1.png`/`1.ppm` .. `N` numbered without gaps, and `H_1_k` for each k >= 2.
    pub fn load(dir: &Path) -> Result<Sequence> {
        let (images, homography_numbers) = scan(dir)?;
        let count = images.len();
        if count < 2 {
            return Err(DataError::invalid(
                dir,
                format!("a sequence needs at least images 1 and 2, found {count}"),
            ));
        }
        for (expected, (&number, path)) in (1..).zip(&images) {
            if number != expected {
                let msg = format!("missing image {expected} (found {})", path.display());
                return Err(DataError::invalid(&dir.join(format!("{expected}.png")), msg));
            }
        }
        if let Some(k) = homography_numbers.iter().find(|&&k| k > count) {
            return Err(DataError::invalid(
                &dir.join(format!("{k}.png")),
                format!("missing image: H_1_{k} exists"),
            ));
        }
        let mut homographies = Vec::with_capacity(count - 1);
        for k in 2..=count {
            let path = dir.join(format!("H_1_{k}"));
            if !path.is_file() {
                return Err(DataError::invalid(
                    &path,
                    format!("missing homography from image 1 to image {k}"),
                ));
            }
            homographies.push(Homography::read(&path)?);
        }
        let loaded = images.values().map(|p| read_gray(p)).collect::<Result<Vec<_>>>()?;
        Sequence::new(loaded, homographies)
    }

    /// Writes the sequence in HPatches layout (`1.png` .. `N.png`, `H_1_2` .. `H_1_N`).
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        for (i, image) in self.images.iter().enumerate() {
            let path = dir.join(format!("{}.png", i + 1));
            image.save(&path).map_err(|e| DataError::image(&path, e))?;
        }
        for (i, h) in self.homographies.iter().enumerate() {
            h.write(&dir.join(format!("H_1_{}", i + 2)))?;
        }
        Ok(())
    }
}

/// Image files by number, and the numbers k of the `H_1_k` files.
fn scan(dir: &Path) -> Result<(BTreeMap<usize, PathBuf>, Vec<usize>)> {
    let mut images = BTreeMap::new();
    let mut homographies = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(k) = name.strip_prefix("H_1_").and_then(|k| k.parse::<usize>().ok()) {
            homographies.push(k);
        } else if let Some((stem, ext)) = name.rsplit_once('.') {
            if matches!(ext, "png" | "ppm") {
                if let Ok(number) = stem.parse::<usize>() {
                    images.insert(number, entry.path());
                }
            }
        }
    }
    Ok((images, homographies))
}

/// Reads any supported image as 8-bit grayscale.
pub fn read_gray(path: &Path) -> Result<GrayImage> {
    Ok(image::open(path).map_err(|e| DataError::image(path, e))?.into_luma8())
}
