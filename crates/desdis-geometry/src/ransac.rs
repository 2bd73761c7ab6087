//! Seeded RANSAC verification of correspondences with a homography or fundamental matrix.
//!
//! Each iteration fits the model to a minimal random sample (4 points for `H`, 8 for `F`),
//! counts the correspondences within the pixel threshold, and the iteration budget shrinks
//! with the best inlier ratio seen so far. The winner is refitted by least squares on its
//! inliers and the correspondences are classified again with the refitted model.

use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{check_finite_points, Error};
use crate::{fundamental, homography, Mat3};

/// Which model to verify with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelKind {
    /// A plane-induced homography; error: one-way transfer error in image 1.
    Homography,
    /// Epipolar geometry; error: Sampson distance.
    Fundamental,
}

impl ModelKind {
    /// Correspondences in a minimal sample.
    pub fn sample_size(self) -> usize {
        match self {
            ModelKind::Homography => homography::MIN_POINTS,
            ModelKind::Fundamental => fundamental::MIN_POINTS,
        }
    }
}

/// A fitted model, row-major, mapping image 0 to image 1 (see [`crate::homography`] and
/// [`crate::fundamental`] for the conventions).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Model {
    /// `p1 ~ H p0`.
    Homography(Mat3),
    /// `x1ᵀ F x0 = 0`.
    Fundamental(Mat3),
}

impl Model {
    /// The 3x3 matrix, whichever the kind.
    pub fn matrix(&self) -> &Mat3 {
        match self {
            Model::Homography(m) | Model::Fundamental(m) => m,
        }
    }

    /// The model's error for one correspondence in pixels: the forward transfer error for a
    /// homography, the Sampson distance for a fundamental matrix.
    pub fn error(&self, p0: [f64; 2], p1: [f64; 2]) -> f64 {
        match self {
            Model::Homography(h) => homography::transfer_error(h, p0, p1),
            Model::Fundamental(f) => fundamental::sampson_distance(f, p0, p1),
        }
    }
}

/// RANSAC's stopping rule and random source.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RansacConfig {
    /// Desired probability, in `(0, 1)`, that at least one sample was all inliers.
    pub confidence: f64,
    /// Upper bound on the number of iterations (samples fitted).
    pub max_iterations: usize,
    /// Seed of the sampler: the same inputs and seed give the same result.
    pub seed: u64,
}

impl Default for RansacConfig {
    fn default() -> Self {
        Self { confidence: 0.999, max_iterations: 10_000, seed: 0 }
    }
}

/// The result of a successful verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// The model refitted on the inliers.
    pub model: Model,
    /// Per correspondence: within the threshold of `model`.
    pub inliers: Vec<bool>,
    /// RANSAC iterations run (samples drawn and fitted).
    pub iterations: usize,
}

impl Verification {
    /// How many correspondences are inliers.
    pub fn num_inliers(&self) -> usize {
        self.inliers.iter().filter(|&&b| b).count()
    }
}

/// Attempts at drawing a non-degenerate sample before the search gives up (as OpenCV does):
/// with that many failures in a row the data are degenerate as a whole.
const SAMPLE_ATTEMPTS: usize = 100;

/// Robustly fits `kind` to the correspondences `pts0[i] -> pts1[i]`, counting as inliers
/// those whose error (see [`Model::error`]) is at most `threshold_px`.
///
/// `Ok(None)` when there are fewer correspondences than a minimal sample, when no
/// non-degenerate sample can be drawn, or when the best model has fewer inliers than a
/// minimal sample. Errors: lengths differ, a non-finite coordinate, a threshold that is not
/// positive and finite, a confidence outside `(0, 1)`.
pub fn verify(
    pts0: &[[f32; 2]],
    pts1: &[[f32; 2]],
    kind: ModelKind,
    threshold_px: f64,
    cfg: &RansacConfig,
) -> Result<Option<Verification>, Error> {
    validate(pts0, pts1, threshold_px, cfg)?;
    let p0: Vec<[f64; 2]> = pts0.iter().map(|p| [f64::from(p[0]), f64::from(p[1])]).collect();
    let p1: Vec<[f64; 2]> = pts1.iter().map(|p| [f64::from(p[0]), f64::from(p[1])]).collect();
    let s = kind.sample_size();
    if p0.len() < s {
        return Ok(None);
    }
    let Some((best, iterations)) = search(&p0, &p1, kind, threshold_px, cfg) else {
        return Ok(None);
    };
    let (model, inliers) = refine(&p0, &p1, kind, threshold_px, best);
    if inliers.count < s {
        return Ok(None);
    }
    Ok(Some(Verification { model, inliers: inliers.mask, iterations }))
}

fn validate(
    pts0: &[[f32; 2]],
    pts1: &[[f32; 2]],
    threshold_px: f64,
    cfg: &RansacConfig,
) -> Result<(), Error> {
    if pts0.len() != pts1.len() {
        return Err(Error::LengthMismatch { what: "pts0 and pts1", left: pts0.len(), right: pts1.len() });
    }
    check_finite_points(pts0, "pts0")?;
    check_finite_points(pts1, "pts1")?;
    if !(threshold_px.is_finite() && threshold_px > 0.0) {
        return Err(Error::InvalidParameter(format!(
            "threshold must be positive and finite, got {threshold_px}"
        )));
    }
    if !(cfg.confidence > 0.0 && cfg.confidence < 1.0) {
        return Err(Error::InvalidParameter(format!("confidence must be in (0, 1), got {}", cfg.confidence)));
    }
    Ok(())
}

/// An inlier classification and its score.
#[derive(Debug, Clone)]
struct Inliers {
    mask: Vec<bool>,
    count: usize,
    /// Sum of the inliers' errors: breaks ties between equally large consensus sets.
    error_sum: f64,
}

impl Inliers {
    fn better_than(&self, other: &Inliers) -> bool {
        self.count > other.count || (self.count == other.count && self.error_sum < other.error_sum)
    }
}

fn classify(p0: &[[f64; 2]], p1: &[[f64; 2]], model: &Model, threshold: f64) -> Inliers {
    let mut out = Inliers { mask: Vec::with_capacity(p0.len()), count: 0, error_sum: 0.0 };
    for (a, b) in p0.iter().zip(p1) {
        let e = model.error(*a, *b);
        let inlier = e <= threshold;
        if inlier {
            out.count += 1;
            out.error_sum += e;
        }
        out.mask.push(inlier);
    }
    out
}

fn fit(p0: &[[f64; 2]], p1: &[[f64; 2]], kind: ModelKind) -> Option<Model> {
    match kind {
        ModelKind::Homography => homography::fit_unchecked(p0, p1).map(Model::Homography),
        ModelKind::Fundamental => fundamental::fit_unchecked(p0, p1).map(Model::Fundamental),
    }
}

/// A sample's points in image 0 and image 1.
type Sample = (Vec<[f64; 2]>, Vec<[f64; 2]>);

/// Draws a sample whose points are in general position, or `None` after
/// [`SAMPLE_ATTEMPTS`] failures.
fn draw_sample(rng: &mut ChaCha8Rng, p0: &[[f64; 2]], p1: &[[f64; 2]], kind: ModelKind) -> Option<Sample> {
    for _ in 0..SAMPLE_ATTEMPTS {
        let idx = sample(rng, p0.len(), kind.sample_size());
        let s0: Vec<[f64; 2]> = idx.iter().map(|i| p0[i]).collect();
        let s1: Vec<[f64; 2]> = idx.iter().map(|i| p1[i]).collect();
        // Only a homography's 4-point sample is checked here; for 8 points the fit itself
        // reports a rank-deficient system.
        let degenerate = kind == ModelKind::Homography
            && (homography::has_collinear_triple(&s0) || homography::has_collinear_triple(&s1));
        if !degenerate {
            return Some((s0, s1));
        }
    }
    None
}

/// The main loop: the best minimal-sample model and its inliers, plus the iteration count.
fn search(
    p0: &[[f64; 2]],
    p1: &[[f64; 2]],
    kind: ModelKind,
    threshold: f64,
    cfg: &RansacConfig,
) -> Option<((Model, Inliers), usize)> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut best: Option<(Model, Inliers)> = None;
    let mut needed = cfg.max_iterations;
    let mut iterations = 0;
    while iterations < needed {
        let Some((s0, s1)) = draw_sample(&mut rng, p0, p1, kind) else { break };
        iterations += 1;
        let Some(model) = fit(&s0, &s1, kind) else { continue };
        let inliers = classify(p0, p1, &model, threshold);
        if best.as_ref().is_none_or(|(_, b)| inliers.better_than(b)) {
            let ratio = inliers.count as f64 / p0.len() as f64;
            needed = needed.min(required_iterations(ratio, kind.sample_size(), cfg.confidence));
            best = Some((model, inliers));
        }
    }
    best.map(|b| (b, iterations))
}

/// Iterations after which an all-inlier sample has been drawn with probability
/// `confidence`, for inlier ratio `ratio`: `log(1 - confidence) / log(1 - ratio^s)`.
pub fn required_iterations(ratio: f64, sample_size: usize, confidence: f64) -> usize {
    let p_good = ratio.clamp(0.0, 1.0).powi(sample_size as i32);
    if p_good <= 0.0 {
        return usize::MAX;
    }
    if p_good >= 1.0 {
        return 1;
    }
    let n = (1.0 - confidence).ln() / (1.0 - p_good).ln();
    // `1 - p_good` can round to 1 for tiny ratios, making `n` infinite: saturate.
    if n.is_finite() {
        n.ceil().max(1.0) as usize
    } else {
        usize::MAX
    }
}

/// Least-squares refits on the inliers, keeping a refit only while it does not lose
/// inliers; a few rounds because each refit can admit points the sample model missed.
fn refine(
    p0: &[[f64; 2]],
    p1: &[[f64; 2]],
    kind: ModelKind,
    threshold: f64,
    best: (Model, Inliers),
) -> (Model, Inliers) {
    const ROUNDS: usize = 3;
    let (mut model, mut inliers) = best;
    for _ in 0..ROUNDS {
        let (s0, s1): (Vec<_>, Vec<_>) =
            p0.iter().zip(p1).zip(&inliers.mask).filter(|(_, &m)| m).map(|((a, b), _)| (*a, *b)).unzip();
        let Some(refit) = fit(&s0, &s1, kind) else { break };
        let next = classify(p0, p1, &refit, threshold);
        if next.count < inliers.count {
            break;
        }
        let unchanged = next.mask == inliers.mask;
        (model, inliers) = (refit, next);
        if unchanged {
            break;
        }
    }
    (model, inliers)
}
