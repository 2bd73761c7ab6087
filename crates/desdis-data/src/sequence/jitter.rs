//! Random perturbations of a patch's frame, as in HPatches' easy / hard / tough variants.
//!
//! HPatches perturbs each detected region before projecting it into the other images, so that
//! the patches of one point do not align perfectly, in three strengths. The ranges below are
//! this crate's own choice of three increasing strengths in that spirit.

use crate::geometry::Mat2;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Uniform ranges (each sampled in `[-x, x]`) of the frame perturbations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct JitterRange {
    /// Rotation, degrees.
    pub rotation_deg: f64,
    /// Natural log of the isotropic scale factor.
    pub log_scale: f64,
    /// Natural log of the aspect-ratio change.
    pub log_anisotropy: f64,
    /// Shear (off-diagonal term).
    pub shear: f64,
    /// Shift of the centre, as a fraction of the region's half-side, per axis.
    pub shift: f64,
}

/// How strongly frames are perturbed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub enum Jitter {
    /// No perturbation.
    #[default]
    None,
    /// Slight.
    Easy,
    /// Medium.
    Hard,
    /// Strong.
    Tough,
    /// Explicit ranges.
    Custom(JitterRange),
}

impl Jitter {
    /// The ranges of this strength.
    pub fn range(&self) -> JitterRange {
        let level = |rotation_deg, log_scale, log_anisotropy, shear, shift| JitterRange {
            rotation_deg,
            log_scale,
            log_anisotropy,
            shear,
            shift,
        };
        match self {
            Jitter::None => level(0.0, 0.0, 0.0, 0.0, 0.0),
            Jitter::Easy => level(5.0, 0.05, 0.03, 0.03, 0.04),
            Jitter::Hard => level(12.0, 0.12, 0.07, 0.07, 0.08),
            Jitter::Tough => level(20.0, 0.2, 0.12, 0.12, 0.12),
            Jitter::Custom(r) => *r,
        }
    }
}

impl JitterRange {
    /// Draws a perturbation: a linear map (applied in the frame's unit coordinates) and a shift
    /// in units of the half-side. Always draws the same number of values, so streams stay aligned.
    pub fn sample<R: Rng>(&self, rng: &mut R) -> (Mat2, (f64, f64)) {
        let mut uniform = |range: f64| range * (2.0 * rng.random::<f64>() - 1.0);
        let angle = uniform(self.rotation_deg).to_radians();
        let scale = uniform(self.log_scale).exp();
        let aspect = uniform(self.log_anisotropy).exp();
        let shear = uniform(self.shear);
        let shift = (uniform(self.shift), uniform(self.shift));
        let shape = Mat2([[scale * aspect, shear * scale], [0.0, scale / aspect]]);
        (Mat2::rotation(angle).mul(&shape), shift)
    }
}
