//! Two images' features to matches: nearest neighbours in descriptor space, then (optionally)
//! the RANSAC inliers of a homography or a fundamental matrix.

use desdis_geometry::{match_descriptors, verify, Match, MatchConfig, Model, ModelKind, RansacConfig};
use desdis_h5::ImageFeatures;

use crate::error::{Error, Result};

/// Which geometric model the matches must agree with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Keep every descriptor match.
    None,
    /// A plane or a camera that only rotates: inliers of a homography.
    Homography,
    /// A general 3D scene: inliers of the epipolar geometry.
    Fundamental,
}

impl std::str::FromStr for Verify {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Verify::None),
            "homography" => Ok(Verify::Homography),
            "fundamental" => Ok(Verify::Fundamental),
            other => {
                Err(Error::Invalid(format!("unknown verification `{other}` (none, homography, fundamental)")))
            }
        }
    }
}

/// How a pair is matched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairConfig {
    /// Descriptor matching (mutual check, ratio test).
    pub matching: MatchConfig,
    /// Geometric verification.
    pub verify: Verify,
    /// Inlier threshold in pixels (transfer error for a homography, Sampson distance for a
    /// fundamental matrix).
    pub threshold: f64,
    /// RANSAC settings (seeded: the same files give the same matches).
    pub ransac: RansacConfig,
}

impl Default for PairConfig {
    fn default() -> Self {
        PairConfig {
            matching: MatchConfig::default(),
            verify: Verify::None,
            threshold: 3.0,
            ransac: RansacConfig::default(),
        }
    }
}

/// The matches of a pair: all descriptor matches, and which survived verification.
#[derive(Debug, Clone, PartialEq)]
pub struct PairResult {
    /// Descriptor matches, sorted by index in image 0.
    pub matches: Vec<Match>,
    /// Per match, whether it is a verified inlier (all true without verification).
    pub inliers: Vec<bool>,
    /// The fitted model, when verification ran and found one.
    pub model: Option<Model>,
}

impl PairResult {
    /// The matches that passed verification.
    pub fn verified(&self) -> Vec<Match> {
        self.matches.iter().zip(&self.inliers).filter_map(|(m, &ok)| ok.then_some(*m)).collect()
    }
}

/// Matches image 0's features to image 1's. With verification but too few matches for a model
/// (or no consistent model), every match is rejected: unverified matches are not passed off
/// as verified ones.
pub fn match_pair(f0: &ImageFeatures, f1: &ImageFeatures, cfg: &PairConfig) -> Result<PairResult> {
    if f0.dim != f1.dim && !f0.keypoints.is_empty() && !f1.keypoints.is_empty() {
        return Err(Error::Invalid(format!(
            "descriptors of dimension {} and {} cannot be matched (features from different nets?)",
            f0.dim, f1.dim
        )));
    }
    let dim = f0.dim.max(1);
    let matches = match_descriptors(&f0.descriptors, &f1.descriptors, dim, &cfg.matching)?;
    let kind = match cfg.verify {
        Verify::None => {
            let inliers = vec![true; matches.len()];
            return Ok(PairResult { matches, inliers, model: None });
        }
        Verify::Homography => ModelKind::Homography,
        Verify::Fundamental => ModelKind::Fundamental,
    };
    let pts0: Vec<[f32; 2]> = matches.iter().map(|m| f0.keypoints[m.i0 as usize]).collect();
    let pts1: Vec<[f32; 2]> = matches.iter().map(|m| f1.keypoints[m.i1 as usize]).collect();
    let fit = verify(&pts0, &pts1, kind, cfg.threshold, &cfg.ransac)?;
    let (inliers, model) = match fit {
        Some(v) => (v.inliers, Some(v.model)),
        None => (vec![false; matches.len()], None),
    };
    Ok(PairResult { matches, inliers, model })
}
