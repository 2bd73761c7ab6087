//! Synthetic image sequences: a photo seen under random homographies and photometric changes
//! (gain, gamma, bias, blur, noise), with exact ground-truth homographies.

use crate::geometry::{Homography, Mat2};
use crate::imageops::FloatImage;
use image::GrayImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Ranges (sampled uniformly in `[-x, x]`) of the random homographies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
// Omitted fields keep their defaults and misspelt ones are refused, as in every config table.
#[serde(default, deny_unknown_fields)]
pub struct WarpRange {
    /// Rotation about the image centre, degrees.
    pub rotation_deg: f64,
    /// Natural log of the scale.
    pub log_scale: f64,
    /// Natural log of the aspect-ratio change.
    pub log_anisotropy: f64,
    /// Shear.
    pub shear: f64,
    /// Perspective terms, times the larger image side.
    pub perspective: f64,
    /// Shift of the centre, as a fraction of the image size.
    pub shift: f64,
}

impl Default for WarpRange {
    fn default() -> Self {
        WarpRange {
            rotation_deg: 25.0,
            log_scale: 0.3,
            log_anisotropy: 0.12,
            shear: 0.12,
            perspective: 0.3,
            shift: 0.08,
        }
    }
}

/// Ranges of the photometric changes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
// Omitted fields keep their defaults and misspelt ones are refused, as in every config table.
#[serde(default, deny_unknown_fields)]
pub struct PhotometricRange {
    /// Natural log of the gain.
    pub log_gain: f64,
    /// Natural log of the gamma.
    pub log_gamma: f64,
    /// Additive bias (intensities in 0..1).
    pub bias: f64,
    /// Largest Gaussian blur sigma, pixels (drawn in `[0, max]`).
    pub max_blur: f64,
    /// Largest noise standard deviation (intensities in 0..1, drawn in `[0, max]`).
    pub max_noise: f64,
}

impl Default for PhotometricRange {
    fn default() -> Self {
        PhotometricRange { log_gain: 0.3, log_gamma: 0.3, bias: 0.05, max_blur: 1.0, max_noise: 0.015 }
    }
}

/// Settings of a synthetic sequence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
// Omitted fields keep their defaults and misspelt ones are refused, as in every config table.
#[serde(default, deny_unknown_fields)]
pub struct SequenceConfig {
    /// Images in the sequence, the reference included.
    pub images: usize,
    /// Geometric changes from image 1 to each other image.
    pub warp: WarpRange,
    /// Photometric changes of each image.
    pub photometric: PhotometricRange,
    /// Also change the reference image's photometry (else it is the photo, warped by `base`).
    pub photometric_reference: bool,
}

impl Default for SequenceConfig {
    fn default() -> Self {
        SequenceConfig {
            images: 6,
            warp: WarpRange::default(),
            photometric: PhotometricRange::default(),
            photometric_reference: false,
        }
    }
}

/// Six images in HPatches layout (image 1 is the photo itself) and `H_1_k` for k = 2..6.
pub fn generate_sequence(image: &GrayImage, seed: u64) -> (Vec<GrayImage>, Vec<Homography>) {
    render_sequence(image, &Homography::IDENTITY, &SequenceConfig::default(), seed)
}

/// A sequence whose image 1 is `photo` warped by `base`, and images 2.. random homographies of it.
pub fn render_sequence(
    photo: &GrayImage,
    base: &Homography,
    cfg: &SequenceConfig,
    seed: u64,
) -> (Vec<GrayImage>, Vec<Homography>) {
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut homographies = Vec::with_capacity(cfg.images.saturating_sub(1));
    let mut jobs = Vec::with_capacity(cfg.images);
    for k in 0..cfg.images.max(1) {
        let h_1k = if k == 0 { Homography::IDENTITY } else { random_homography(&cfg.warp, w, h, &mut rng) };
        if k > 0 {
            homographies.push(h_1k);
        }
        let change =
            (k > 0 || cfg.photometric_reference).then(|| Photometric::random(&cfg.photometric, &mut rng));
        jobs.push((h_1k.compose(base), change, rng.random::<u64>()));
    }
    let source = FloatImage::from_gray(photo);
    let images = jobs
        .par_iter()
        .map(|(map, change, noise_seed)| render(&source, map, change.as_ref(), *noise_seed))
        .collect();
    (images, homographies)
}

/// A homography about the image centre: rotation, scale, anisotropy, shear, perspective, shift.
pub fn random_homography<R: Rng>(range: &WarpRange, w: usize, h: usize, rng: &mut R) -> Homography {
    let mut uniform = |x: f64| x * (2.0 * rng.random::<f64>() - 1.0);
    let angle = uniform(range.rotation_deg).to_radians();
    let scale = uniform(range.log_scale).exp();
    let aspect = uniform(range.log_anisotropy).exp();
    let shear = uniform(range.shear);
    let side = w.max(h) as f64;
    let (px, py) = (uniform(range.perspective) / side, uniform(range.perspective) / side);
    let (tx, ty) = (uniform(range.shift) * w as f64, uniform(range.shift) * h as f64);
    let linear = Mat2::rotation(angle).mul(&Mat2([[scale * aspect, shear * scale], [0.0, scale / aspect]]));
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let perspective = Homography([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [px, py, 1.0]]);
    Homography::translation(cx + tx, cy + ty)
        .compose(&Homography::linear(&linear))
        .compose(&perspective)
        .compose(&Homography::translation(-cx, -cy))
}

/// One image's photometric change.
#[derive(Debug, Clone, Copy)]
struct Photometric {
    gain: f32,
    gamma: f32,
    bias: f32,
    blur: f64,
    noise: f32,
}

impl Photometric {
    fn random<R: Rng>(range: &PhotometricRange, rng: &mut R) -> Photometric {
        let mut uniform = |x: f64| x * (2.0 * rng.random::<f64>() - 1.0);
        let gain = uniform(range.log_gain).exp() as f32;
        let gamma = uniform(range.log_gamma).exp() as f32;
        let bias = uniform(range.bias) as f32;
        let blur = range.max_blur * rng.random::<f64>();
        let noise = (range.max_noise * rng.random::<f64>()) as f32;
        Photometric { gain, gamma, bias, blur, noise }
    }
}

/// Renders the image whose pixel `p` shows `source` at `map^-1(p)`; outside the source is black.
fn render(source: &FloatImage, map: &Homography, change: Option<&Photometric>, noise_seed: u64) -> GrayImage {
    let (w, h) = (source.width, source.height);
    let Some(inverse) = map.inverse() else { return GrayImage::new(w as u32, h as u32) };
    let centre = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    // Shrinking aliases: pre-blur by the amount the map shrinks around the centre.
    let shrink = inverse.jacobian(centre.0, centre.1).map_or(1.0, |j| j.det().abs().sqrt());
    let prepared = source.blur(if shrink > 1.0 { 0.5 * (shrink * shrink - 1.0).sqrt() } else { 0.0 });
    let mut out = FloatImage::zeros(w, h);
    out.data.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, v) in row.iter_mut().enumerate() {
            *v = match inverse.apply(x as f64, y as f64) {
                Some((sx, sy)) if prepared.contains(sx, sy) => prepared.sample(sx, sy),
                _ => 0.0,
            };
        }
    });
    match change {
        Some(change) => apply_photometric(out, change, noise_seed).to_gray(),
        None => out.to_gray(),
    }
}

fn apply_photometric(mut image: FloatImage, p: &Photometric, noise_seed: u64) -> FloatImage {
    for v in &mut image.data {
        *v = (p.gain * v.max(0.0).powf(p.gamma) + p.bias).clamp(0.0, 1.0);
    }
    let mut image = image.blur(p.blur);
    let mut rng = ChaCha8Rng::seed_from_u64(noise_seed);
    for v in &mut image.data {
        *v += p.noise * standard_normal(&mut rng);
    }
    image
}

/// A standard normal draw (Box-Muller).
fn standard_normal<R: Rng>(rng: &mut R) -> f32 {
    let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}
