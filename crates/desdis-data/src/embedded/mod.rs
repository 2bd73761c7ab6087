//! The embedded default training set, generated deterministically from the bundled photos.
//!
//! Each training photo is seen in several synthetic sequences: image 1 is the photo under a random
//! "base" homography, images 2.. are random homographies of image 1 with photometric changes
//! (see [`synth`]). Keypoints are detected in image 1 and cut from every image with frame jitter
//! ([`crate::sequence::cut_at`]); each keypoint becomes a 3D point with one patch per image.
//! Keypoints whose source location was already used by an earlier sequence of the same photo
//! are skipped, so two point ids never show the same spot.
//!
//! The result is cached under a data folder, keyed by a hash of the configuration, the photos and
//! [`GENERATOR_VERSION`]; a cached set is never regenerated.

mod photos;
pub mod synth;

pub use photos::{photo, Photo, HELD_OUT_PHOTOS, TRAINING_PHOTOS};
pub use synth::{
    generate_sequence, random_homography, render_sequence, PhotometricRange, SequenceConfig, WarpRange,
};

use crate::cache;
use crate::error::{DataError, Result};
use crate::geometry::Homography;
use crate::hash::StableHasher;
use crate::mining::sample_eval_pairs;
use crate::patch::PatchSet;
use crate::phototour;
use crate::sequence::{
    candidate_keypoints, cut_at, CutConfig, CutSet, DetectorConfig, Jitter, Keypoint, Sequence,
};
use image::GrayImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Bump whenever the generator's output for a given configuration changes.
pub const GENERATOR_VERSION: u32 = 2;

/// Settings of the embedded set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
// Omitted fields keep their defaults and misspelt ones are refused, as in every config table.
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Master seed.
    pub seed: u64,
    /// Synthetic sequences per photo.
    pub sequences_per_photo: usize,
    /// Each sequence; `sequence.images` is the number of patches per 3D point.
    pub sequence: SequenceConfig,
    /// Range of the homography that makes image 1 from the photo (varies scale and rotation
    /// between sequences).
    pub base_warp: WarpRange,
    /// Keypoints and patches; `cut.max_keypoints` bounds the points per sequence.
    pub cut: CutConfig,
    /// Use the validation photo (held out from training, and not the one
    /// [`held_out_sequence`] uses) instead of the training photos.
    pub held_out: bool,
    /// Cycle the frame jitter of successive sequences through easy, hard and tough (instead of
    /// `cut.jitter` for all), so training sees every level the HPatches tasks are scored on.
    pub jitter_mix: bool,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            seed: 0xde5d15,
            sequences_per_photo: 18,
            sequence: SequenceConfig { images: 6, photometric_reference: true, ..SequenceConfig::default() },
            base_warp: WarpRange { rotation_deg: 180.0, log_scale: 0.6, ..WarpRange::default() },
            cut: CutConfig {
                max_keypoints: 1000,
                min_sigma: 1.6,
                jitter: Jitter::Easy,
                detector: DetectorConfig { contrast_threshold: 0.005, ..DetectorConfig::default() },
                ..CutConfig::default()
            },
            held_out: false,
            jitter_mix: true,
        }
    }
}

impl EmbeddedConfig {
    /// The same generator on the validation photo, with another seed and tough frame jitter: a
    /// validation set that shares no photo with the training set nor with [`held_out_sequence`].
    /// The jitter is tougher than training's because with easy frames even a net after a few
    /// dozen steps reaches FPR95 = 0 on it, and a validation score that never moves says nothing.
    pub fn validation(&self) -> EmbeddedConfig {
        let cut = CutConfig { jitter: Jitter::Tough, ..self.cut };
        EmbeddedConfig { seed: self.seed ^ 0x5eed_0f7a_11ed, held_out: true, cut, jitter_mix: false, ..*self }
    }

    /// The cut settings of sequence `s` of a photo: `cut`, with the jitter level cycled when
    /// `jitter_mix` is set.
    pub fn cut_of_sequence(&self, s: usize) -> CutConfig {
        if !self.jitter_mix {
            return self.cut;
        }
        let jitter = [Jitter::Easy, Jitter::Hard, Jitter::Tough][s % 3];
        CutConfig { jitter, ..self.cut }
    }

    /// The photos this configuration draws from.
    pub fn photos(&self) -> &'static [Photo] {
        if self.held_out {
            &HELD_OUT_PHOTOS[1..]
        } else {
            &TRAINING_PHOTOS
        }
    }

    /// Cache key: generator version, configuration and photo contents.
    pub fn cache_key(&self) -> u64 {
        let mut hasher = StableHasher::new();
        hasher.u64(GENERATOR_VERSION as u64);
        hasher.str(&serde_json::to_string(self).unwrap_or_default());
        for photo in self.photos() {
            hasher.str(photo.name).bytes(photo.png);
        }
        hasher.finish()
    }

    fn check(&self) -> Result<()> {
        if self.sequence.images < 2 || self.sequences_per_photo == 0 {
            return Err(DataError::Config(format!(
                "embedded set: sequence.images ({}) must be >= 2 and sequences_per_photo ({}) >= 1",
                self.sequence.images, self.sequences_per_photo
            )));
        }
        Ok(())
    }
}

/// Where the cache lives by default: `$DESDIS_CACHE_DIR`, else `$CARGO_TARGET_DIR/desdis-data`,
/// else `target/desdis-data` under the current folder.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DESDIS_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    target.join("desdis-data")
}

/// The cache file of `cfg` in `cache_dir`.
pub fn cache_file(cache_dir: &Path, cfg: &EmbeddedConfig) -> PathBuf {
    cache_dir.join(format!("embedded-{:016x}.bin", cfg.cache_key()))
}

/// The set of `cfg`, read from `cache_dir` or generated and cached there.
pub fn load_or_generate(cache_dir: &Path, cfg: &EmbeddedConfig) -> Result<PatchSet> {
    let path = cache_file(cache_dir, cfg);
    let key = cfg.cache_key();
    match cache::read(&path, key) {
        Ok(Some(set)) => return Ok(set),
        Ok(None) => {}
        Err(e) => tracing::warn!("regenerating the embedded set: {e}"),
    }
    let set = generate(cfg)?;
    cache::write(&path, &set, key)?;
    Ok(set)
}

/// Generates the set of `cfg` (no cache). Deterministic, whatever the thread count.
pub fn generate(cfg: &EmbeddedConfig) -> Result<PatchSet> {
    cfg.check()?;
    let per_photo: Vec<Vec<CutSet>> = cfg
        .photos()
        .par_iter()
        .enumerate()
        .map(|(index, photo)| photo_cuts(&photo.decode()?, index as u64, cfg))
        .collect::<Result<_>>()?;
    let mut set = PatchSet::default();
    let mut next_point_id = 0u32;
    for cut in per_photo.iter().flatten() {
        set.extend(&cut.to_patch_set(next_point_id));
        next_point_id += cut.num_points() as u32;
    }
    Ok(set)
}

/// The sequences of one photo, each cut at keypoints not used by an earlier one.
fn photo_cuts(photo: &GrayImage, photo_index: u64, cfg: &EmbeddedConfig) -> Result<Vec<CutSet>> {
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    let mut used: Vec<Keypoint> = Vec::new();
    let mut cuts = Vec::with_capacity(cfg.sequences_per_photo);
    for s in 0..cfg.sequences_per_photo as u64 {
        let seed = StableHasher::new().u64(cfg.seed).u64(photo_index).u64(s).finish();
        let mut rng = crate::mining::batch_rng(seed, 0);
        let base =
            if s == 0 { Homography::IDENTITY } else { random_homography(&cfg.base_warp, w, h, &mut rng) };
        let (images, homographies) = render_sequence(photo, &base, &cfg.sequence, seed);
        let seq = Sequence::new(images, homographies)?;
        let Some(to_photo) = base.inverse() else { continue };
        let cut_cfg = cfg.cut_of_sequence(s as usize);
        let fresh: Vec<Keypoint> = candidate_keypoints(&seq, &cut_cfg)
            .into_iter()
            .filter(|kp| region_in_photo(kp, &to_photo, &cut_cfg, w, h))
            .filter(|kp| !clashes(&in_photo(kp, &to_photo), &used))
            .collect();
        let cut = cut_at(&seq, &fresh, &cut_cfg, seed)?;
        used.extend(cut.keypoints.iter().map(|kp| in_photo(kp, &to_photo)));
        cuts.push(cut);
    }
    Ok(cuts)
}

/// The keypoint in photo coordinates (scale carried by the local area change).
fn in_photo(kp: &Keypoint, to_photo: &Homography) -> Keypoint {
    let (x, y) = to_photo.apply(kp.x, kp.y).unwrap_or((f64::NAN, f64::NAN));
    let stretch = to_photo.jacobian(kp.x, kp.y).map_or(f64::NAN, |j| j.det().abs().sqrt());
    Keypoint { x, y, sigma: kp.sigma * stretch, ..*kp }
}

/// Every image of a sequence shows photo content at a point exactly where image 1 does, so a
/// region (with room for jitter) inside the photo in image 1 is free of black fill everywhere.
fn region_in_photo(kp: &Keypoint, to_photo: &Homography, cut: &CutConfig, w: usize, h: usize) -> bool {
    let r = cut.jitter.range();
    let margin = (1.0 + r.shift)
        * r.log_scale.exp()
        * (1.0 + r.shear)
        * r.log_anisotropy.exp()
        * std::f64::consts::SQRT_2;
    let half = cut.magnification * kp.sigma * margin;
    [(-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0), (1.0, 1.0)].iter().all(|&(u, v)| {
        to_photo
            .apply(kp.x + u * half, kp.y + v * half)
            .is_some_and(|(x, y)| x >= 0.0 && y >= 0.0 && x <= (w - 1) as f64 && y <= (h - 1) as f64)
    })
}

/// True when a used keypoint lies within one sigma and a scale factor of 1.5 of `kp`.
fn clashes(kp: &Keypoint, used: &[Keypoint]) -> bool {
    used.iter().any(|u| {
        let ratio = u.sigma.max(kp.sigma) / u.sigma.min(kp.sigma);
        let reach = u.sigma.min(kp.sigma);
        ratio < 1.5 && (u.x - kp.x).powi(2) + (u.y - kp.y).powi(2) < reach * reach
    })
}

/// A test sequence in HPatches layout from the first held-out photo, for when real sequences
/// are absent.
pub fn held_out_sequence(seed: u64) -> Result<Sequence> {
    let (images, homographies) = generate_sequence(&HELD_OUT_PHOTOS[0].decode()?, seed);
    Sequence::new(images, homographies)
}

/// Writes `set` in PhotoTour layout into `dir` with an m50-style file of `num_pairs` evaluation
/// pairs (half matching), `m50_<n>_<n>_0.txt`. Returns the pair file's path.
pub fn write_phototour(dir: &Path, set: &PatchSet, num_pairs: usize, seed: u64) -> Result<PathBuf> {
    phototour::write(dir, set)?;
    let pairs = sample_eval_pairs(&set.point_ids, num_pairs, seed)?;
    let path = dir.join(format!("m50_{num_pairs}_{num_pairs}_0.txt"));
    phototour::write_pairs(&path, &pairs, &set.point_ids)?;
    Ok(path)
}
