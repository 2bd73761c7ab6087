//! Detector and patch settings, with the defaults the project measured (docs/pipeline.md).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How keypoints are detected and their patches cut.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
// Omitted fields keep their defaults and misspelt ones are refused, as in every config table.
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    /// Keypoints kept at most, the strongest, spread over the image (0: all that pass).
    pub max_keypoints: usize,
    /// Octaves at most (each halves the resolution; fewer when the image gets too small).
    pub octaves: usize,
    /// Resolution of the first octave: 0 starts at the image's own pixels, -1 at twice its
    /// resolution (SIFT's doubled image: more small keypoints, finer positions, slower).
    pub first_octave: i32,
    /// Scales sampled per octave.
    pub scales_per_octave: usize,
    /// Blur of each octave's first scale, in pixels of that octave.
    pub sigma0: f32,
    /// Least `|DoG| * scales_per_octave` (images in 0..1) of a kept extremum, as OpenCV's SIFT
    /// `contrastThreshold`.
    pub contrast_threshold: f32,
    /// Largest ratio of principal curvatures; higher keeps more edge-like points (SIFT's 10
    /// is stricter than what measured best here, docs/pipeline.md).
    pub edge_ratio: f32,
    /// Skip the dominant orientation: every patch is cut upright.
    pub upright: bool,
    /// Orientations per keypoint at most: besides the highest peak of the gradient histogram,
    /// SIFT keeps every peak within 80% of it as another keypoint.
    pub max_orientations: usize,
    /// Half the side of a keypoint's patch, in units of its scale: the patch spans
    /// `2 * magnification * scale` pixels (6 is the 12-sigma support of HardNet's DoG
    /// pipelines; the default 8 was measured best for the shipped student, docs/pipeline.md).
    pub magnification: f32,
    /// Side of the patches handed to the net.
    pub patch_size: usize,
    /// Cells per image side used to spread the kept keypoints.
    pub spread_grid: usize,
    /// Each cell keeps at most `spread_cap` times its even share of `max_keypoints` before the
    /// remaining places go to the strongest points anywhere.
    pub spread_cap: f32,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            max_keypoints: 2000,
            octaves: 8,
            first_octave: -1,
            scales_per_octave: 3,
            sigma0: 1.6,
            contrast_threshold: 0.02,
            edge_ratio: 30.0,
            upright: false,
            max_orientations: 2,
            magnification: 8.0,
            patch_size: 32,
            spread_grid: 8,
            spread_cap: 4.0,
        }
    }
}

impl DetectConfig {
    /// Refuses settings that cannot work, naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Config(what));
        if !(1..=12).contains(&self.octaves) {
            return bad(format!("octaves {} must be in 1..=12", self.octaves));
        }
        if !(-1..=0).contains(&self.first_octave) {
            return bad(format!("first_octave {} must be -1 or 0", self.first_octave));
        }
        if !(1..=8).contains(&self.scales_per_octave) {
            return bad(format!("scales_per_octave {} must be in 1..=8", self.scales_per_octave));
        }
        let positive = [
            ("sigma0", self.sigma0),
            ("magnification", self.magnification),
            ("edge_ratio", self.edge_ratio),
            ("spread_cap", self.spread_cap),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{name} {v} must be a positive number"));
            }
        }
        if !(self.contrast_threshold.is_finite() && self.contrast_threshold >= 0.0) {
            return bad(format!("contrast_threshold {} must be >= 0", self.contrast_threshold));
        }
        if !(1..=4).contains(&self.max_orientations) {
            return bad(format!("max_orientations {} must be in 1..=4", self.max_orientations));
        }
        if !(2..=256).contains(&self.patch_size) {
            return bad(format!("patch_size {} must be in 2..=256", self.patch_size));
        }
        if !(1..=256).contains(&self.spread_grid) {
            return bad(format!("spread_grid {} must be in 1..=256", self.spread_grid));
        }
        Ok(())
    }
}
