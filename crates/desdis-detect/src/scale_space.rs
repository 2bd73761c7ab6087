//! The Gaussian and difference-of-Gaussian scale space, octave by octave (Lowe's construction).

use rayon::prelude::*;

use crate::config::DetectConfig;
use crate::plane::Plane;

/// Pixels kept free at each border: extrema closer to it cannot be refined reliably.
pub const BORDER: usize = 5;

/// One octave: `s + 3` Gaussian images and their `s + 2` differences.
#[derive(Debug, Clone)]
pub struct Octave {
    /// Input pixels per pixel of this octave (`2^octave`, 0.5 for a doubled first octave).
    pub step: f32,
    /// Gaussian images, blurred from `sigma0` to `4 * sigma0` (in this octave's pixels).
    pub gaussians: Vec<Plane>,
    /// `gaussians[i + 1] - gaussians[i]`.
    pub dogs: Vec<Plane>,
}

/// The scale space of one image.
#[derive(Debug, Clone)]
pub struct ScaleSpace {
    /// Octaves, finest first.
    pub octaves: Vec<Octave>,
    /// Scales per octave.
    pub scales: usize,
    /// Blur of each octave's first image.
    pub sigma0: f32,
}

impl ScaleSpace {
    /// Builds the octaves of `image`, assumed to carry the 0.5-pixel blur of sampling already.
    pub fn build(image: &Plane, cfg: &DetectConfig) -> ScaleSpace {
        let s = cfg.scales_per_octave;
        // Doubling the resolution doubles the sampling blur too, in the new pixels.
        let (start, assumed_blur, first_step) =
            if cfg.first_octave < 0 { (image.upsample(), 1.0f32, 0.5f32) } else { (image.clone(), 0.5, 1.0) };
        let mut base = start.blur((cfg.sigma0 * cfg.sigma0 - assumed_blur * assumed_blur).max(0.0).sqrt());
        drop(start);
        let mut octaves = Vec::new();
        for o in 0..cfg.octaves {
            if base.width.min(base.height) < 2 * BORDER + 3 {
                break;
            }
            let gaussians = octave_gaussians(base, cfg.sigma0, s);
            let dogs = gaussians.par_windows(2).map(|p| p[1].minus(&p[0])).collect();
            base = gaussians[s].subsample();
            octaves.push(Octave { step: first_step * (1u32 << o) as f32, gaussians, dogs });
        }
        ScaleSpace { octaves, scales: s, sigma0: cfg.sigma0 }
    }

    /// Blur (sigma, in pixels of its octave) of scale index `level`, fractional allowed.
    pub fn octave_sigma(&self, level: f32) -> f32 {
        self.sigma0 * 2f32.powf(level / self.scales as f32)
    }
}

/// Each image blurs the previous one by what takes it to the next scale: blurs add in variance.
fn octave_gaussians(base: Plane, sigma0: f32, s: usize) -> Vec<Plane> {
    let k = 2f32.powf(1.0 / s as f32);
    let mut out = Vec::with_capacity(s + 3);
    out.push(base);
    for i in 1..s + 3 {
        let previous = sigma0 * k.powi(i as i32 - 1);
        let total = previous * k;
        let step = (total * total - previous * previous).sqrt();
        let next = out[i - 1].blur(step);
        out.push(next);
    }
    out
}
