//! Cutting corresponding patches out of a sequence: keypoints are detected in image 1, each
//! keypoint's square region is carried into image k through the Jacobian of `H_1_k` at the
//! (possibly jittered) region centre, and sampled bilinearly.

use super::detect::{detect, suppress_duplicates, DetectorConfig, Keypoint};
use super::jitter::Jitter;
use super::Sequence;
use crate::error::{DataError, Result};
use crate::geometry::{Homography, Mat2};
use crate::hpatches::{write_strip, STRIP_PATCH_SIDE};
use crate::imageops::{to_u8, FloatImage};
use crate::patch::{PatchSet, PATCH_SIDE};
use crate::resize::resize_bilinear_u8;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Patch cutting settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
// Omitted fields keep their defaults and misspelt ones are refused, as in every config table.
#[serde(default, deny_unknown_fields)]
pub struct CutConfig {
    /// Side of the output patches in pixels.
    pub patch_size: usize,
    /// Half-side of a keypoint's square region, in units of its scale (sigma).
    pub magnification: f64,
    /// Keypoints with a smaller scale are skipped (their regions would be tiny and blurry).
    pub min_sigma: f64,
    /// Keypoints with a larger scale are skipped.
    pub max_sigma: f64,
    /// Most keypoints kept (the strongest that fit in every image).
    pub max_keypoints: usize,
    /// Duplicate suppression radius, in units of the smaller sigma (0 disables).
    pub nms_radius: f64,
    /// Keypoint detector.
    pub detector: DetectorConfig,
    /// Perturbation of the frames in images 2..N (image 1's frames stay exact).
    pub jitter: Jitter,
}

impl Default for CutConfig {
    fn default() -> Self {
        CutConfig {
            patch_size: PATCH_SIDE,
            magnification: 5.0,
            min_sigma: 1.6,
            max_sigma: 40.0,
            max_keypoints: 1000,
            nms_radius: 1.0,
            // A low threshold, so that 1,000 keypoints that fit in every image exist on real
            // sequences (the strongest are kept; with SIFT's 0.01 only about 650 remain).
            detector: DetectorConfig { contrast_threshold: 0.002, ..DetectorConfig::default() },
            jitter: Jitter::None,
        }
    }
}

/// Patches cut from a sequence: for each image, one patch per kept keypoint, in keypoint order.
#[derive(Debug, Clone, PartialEq)]
pub struct CutSet {
    /// Side of each patch.
    pub patch_size: usize,
    /// Kept keypoints (in image 1).
    pub keypoints: Vec<Keypoint>,
    /// `views[k]`: the patches of image k+1, `keypoints.len() * patch_size^2` bytes.
    pub views: Vec<Vec<u8>>,
}

impl CutSet {
    /// Number of keypoints (3D points).
    pub fn num_points(&self) -> usize {
        self.keypoints.len()
    }

    /// Patch of keypoint `point` in image `view + 1`. Panics when out of range.
    pub fn patch(&self, view: usize, point: usize) -> &[u8] {
        let len = self.patch_size * self.patch_size;
        &self.views[view][point * len..(point + 1) * len]
    }

    /// All views as one 32x32 patch set, grouped by point (all views of point 0, then point 1...),
    /// point ids starting at `first_point_id`. Other sizes are resized bilinearly.
    pub fn to_patch_set(&self, first_point_id: u32) -> PatchSet {
        let mut set = PatchSet::default();
        for point in 0..self.num_points() {
            for view in 0..self.views.len() {
                let patch = self.patch(view, point);
                let small = if self.patch_size == PATCH_SIDE {
                    patch.to_vec()
                } else {
                    resize_bilinear_u8(patch, self.patch_size, self.patch_size, PATCH_SIDE, PATCH_SIDE)
                };
                set.patches.extend_from_slice(&small);
                set.point_ids.push(first_point_id + point as u32);
            }
        }
        set
    }
}

/// Where one patch is sampled: image points are `centre + linear * (u, v)` for `u, v` in `[-1, 1]`.
#[derive(Debug, Clone, Copy)]
struct Frame {
    centre: (f64, f64),
    linear: Mat2,
}

/// One patch to sample per keypoint: which image, and the frame perturbation to draw.
#[derive(Debug, Clone, Copy)]
struct ViewSpec {
    image: usize,
    jitter: Jitter,
}

/// Cuts one patch per kept keypoint from every image of `seq`.
///
/// Keypoints whose region leaves any image are dropped. `seed` drives the jitter; results are
/// the same for any number of threads.
pub fn cut_patches(seq: &Sequence, cfg: &CutConfig, seed: u64) -> Result<CutSet> {
    let (keypoints, views) = cut_views(seq, cfg, seed, &reference_and_jittered(seq, cfg))?;
    Ok(CutSet { patch_size: cfg.patch_size, keypoints, views })
}

/// HPatches-style strips cut from a sequence: `ref` from image 1 and `e<k>`, `h<k>`, `t<k>` from
/// image k+1 with easy, hard and tough jitter. `cfg.jitter` is ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct HPatchesCut {
    /// Side of each patch (65 for the HPatches format).
    pub patch_size: usize,
    /// Kept keypoints (in image 1).
    pub keypoints: Vec<Keypoint>,
    /// Strip name to patches.
    pub strips: BTreeMap<String, Vec<u8>>,
}

impl HPatchesCut {
    /// Writes `<name>.png` strips into `dir` (patch size must be 65).
    pub fn write(&self, dir: &Path) -> Result<()> {
        if self.patch_size != STRIP_PATCH_SIDE {
            return Err(DataError::Config(format!(
                "HPatches strips hold 65x65 patches, these are {0}x{0}",
                self.patch_size
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        self.strips
            .iter()
            .try_for_each(|(name, patches)| write_strip(&dir.join(format!("{name}.png")), patches))
    }
}

/// Cuts `ref`, `e*`, `h*`, `t*` strips (see [`HPatchesCut`]).
pub fn cut_hpatches(seq: &Sequence, cfg: &CutConfig, seed: u64) -> Result<HPatchesCut> {
    let mut specs = vec![ViewSpec { image: 0, jitter: Jitter::None }];
    let mut names = vec!["ref".to_string()];
    for (prefix, jitter) in [("e", Jitter::Easy), ("h", Jitter::Hard), ("t", Jitter::Tough)] {
        for image in 1..seq.images.len() {
            specs.push(ViewSpec { image, jitter });
            names.push(format!("{prefix}{image}"));
        }
    }
    let (keypoints, views) = cut_views(seq, cfg, seed, &specs)?;
    Ok(HPatchesCut { patch_size: cfg.patch_size, keypoints, strips: names.into_iter().zip(views).collect() })
}

/// The keypoints of image 1 that [`cut_patches`] starts from: detected, filtered by scale,
/// duplicates suppressed, strongest first.
pub fn candidate_keypoints(seq: &Sequence, cfg: &CutConfig) -> Vec<Keypoint> {
    let detected: Vec<Keypoint> = detect(&seq.images[0], &cfg.detector)
        .into_iter()
        .filter(|k| k.sigma >= cfg.min_sigma && k.sigma <= cfg.max_sigma)
        .collect();
    suppress_duplicates(&detected, cfg.nms_radius, usize::MAX)
}

/// Like [`cut_patches`], from given keypoints of image 1 instead of detected ones.
pub fn cut_at(seq: &Sequence, candidates: &[Keypoint], cfg: &CutConfig, seed: u64) -> Result<CutSet> {
    let (keypoints, views) = sample_views(seq, candidates, cfg, seed, &reference_and_jittered(seq, cfg))?;
    Ok(CutSet { patch_size: cfg.patch_size, keypoints, views })
}

fn reference_and_jittered(seq: &Sequence, cfg: &CutConfig) -> Vec<ViewSpec> {
    (0..seq.images.len())
        .map(|image| ViewSpec { image, jitter: if image == 0 { Jitter::None } else { cfg.jitter } })
        .collect()
}

/// Detects, frames and samples; returns the kept keypoints and one patch buffer per spec.
fn cut_views(
    seq: &Sequence,
    cfg: &CutConfig,
    seed: u64,
    specs: &[ViewSpec],
) -> Result<(Vec<Keypoint>, Vec<Vec<u8>>)> {
    check_config(cfg)?;
    sample_views(seq, &candidate_keypoints(seq, cfg), cfg, seed, specs)
}

/// Frames and samples the candidates; keeps those inside every image, up to `max_keypoints`.
fn sample_views(
    seq: &Sequence,
    candidates: &[Keypoint],
    cfg: &CutConfig,
    seed: u64,
    specs: &[ViewSpec],
) -> Result<(Vec<Keypoint>, Vec<Vec<u8>>)> {
    check_config(cfg)?;
    let images: Vec<FloatImage> = seq.images.par_iter().map(FloatImage::from_gray).collect();
    let cut: Vec<Option<Vec<Vec<u8>>>> = candidates
        .par_iter()
        .enumerate()
        .map(|(i, kp)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(i as u64);
            let frames =
                specs.iter().map(|s| frame_in(seq, kp, cfg, s, &mut rng)).collect::<Option<Vec<Frame>>>()?;
            let inside = frames.iter().zip(specs).all(|(f, s)| frame_inside(f, &images[s.image]));
            inside.then(|| {
                frames
                    .iter()
                    .zip(specs)
                    .map(|(f, s)| sample_patch(&images[s.image], f, cfg.patch_size))
                    .collect()
            })
        })
        .collect();
    let mut keypoints = Vec::new();
    let mut views = vec![Vec::new(); specs.len()];
    for (kp, patches) in candidates.iter().zip(cut) {
        let Some(patches) = patches else { continue };
        if keypoints.len() == cfg.max_keypoints {
            break;
        }
        keypoints.push(*kp);
        for (view, patch) in views.iter_mut().zip(patches) {
            view.extend_from_slice(&patch);
        }
    }
    Ok((keypoints, views))
}

fn check_config(cfg: &CutConfig) -> Result<()> {
    if cfg.patch_size < 2 || cfg.magnification <= 0.0 || cfg.min_sigma > cfg.max_sigma {
        return Err(DataError::Config(format!(
            "cut: patch_size {} must be >= 2, magnification {} > 0, min_sigma {} <= max_sigma {}",
            cfg.patch_size, cfg.magnification, cfg.min_sigma, cfg.max_sigma
        )));
    }
    Ok(())
}

/// The keypoint's frame in image `spec.image`, jittered in image 1 and carried over by the
/// Jacobian of the homography at the jittered centre. `None` when the homography degenerates there.
fn frame_in(
    seq: &Sequence,
    kp: &Keypoint,
    cfg: &CutConfig,
    spec: &ViewSpec,
    rng: &mut ChaCha8Rng,
) -> Option<Frame> {
    let half = cfg.magnification * kp.sigma;
    let (jitter, shift) = spec.jitter.range().sample(rng);
    let centre = (kp.x + half * shift.0, kp.y + half * shift.1);
    let linear = Mat2([[half, 0.0], [0.0, half]]).mul(&jitter);
    let h: Homography = seq.homography(spec.image);
    let projected = h.apply(centre.0, centre.1)?;
    let jacobian = h.jacobian(centre.0, centre.1)?;
    Some(Frame { centre: projected, linear: jacobian.mul(&linear) })
}

fn frame_inside(frame: &Frame, image: &FloatImage) -> bool {
    [(-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0), (1.0, 1.0)].iter().all(|&(u, v)| {
        let (dx, dy) = frame.linear.apply(u, v);
        image.contains(frame.centre.0 + dx, frame.centre.1 + dy)
    })
}

/// Samples a `size x size` patch over the frame, averaging `n x n` bilinear samples per pixel
/// when the frame is larger than the patch, so that shrinking does not alias.
fn sample_patch(image: &FloatImage, frame: &Frame, size: usize) -> Vec<u8> {
    let step = frame.linear.max_stretch() * 2.0 / size as f64;
    let n = step.ceil().clamp(1.0, 4.0) as usize;
    let mut out = Vec::with_capacity(size * size);
    for row in 0..size {
        for col in 0..size {
            let mut acc = 0.0;
            for sy in 0..n {
                for sx in 0..n {
                    // Unit coordinates of the sub-sample; pixel centres span (-1, 1).
                    let u = ((col as f64 + (sx as f64 + 0.5) / n as f64) / size as f64) * 2.0 - 1.0;
                    let v = ((row as f64 + (sy as f64 + 0.5) / n as f64) / size as f64) * 2.0 - 1.0;
                    let (dx, dy) = frame.linear.apply(u, v);
                    acc += image.sample(frame.centre.0 + dx, frame.centre.1 + dy);
                }
            }
            out.push(to_u8(acc / (n * n) as f32 * 255.0));
        }
    }
    out
}
