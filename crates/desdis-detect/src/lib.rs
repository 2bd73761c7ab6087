//! Keypoints on whole images, and the patches the descriptor nets read around them.
//!
//! - [`load_image`]: JPEG, PNG (8/16 bit), BMP, PNM files to a gray [`Plane`] in 0..1, EXIF
//!   orientation applied, hostile headers refused before any allocation.
//! - [`detect`]: a difference-of-Gaussians scale-space detector (Lowe's SIFT detector) with
//!   sub-pixel and sub-scale refinement, edge rejection and dominant orientations, keeping the
//!   strongest keypoints spread over the image.
//! - [`cut_patches`]: anti-aliased patches over each keypoint's support, rotated to its
//!   orientation.
//!
//! Coordinates: pixel centres at integers, (0, 0) the centre of the top-left pixel; scales are
//! Gaussian sigmas in pixels; orientations in degrees, measured from +x towards +y (down).
//!
//! ```
//! use desdis_detect::{detect, DetectConfig, Plane};
//! // A bright blob of sigma 4 on a dark background is found at its centre.
//! let mut image = Plane::zeros(64, 64);
//! for y in 0..64 {
//!     for x in 0..64 {
//!         let r2 = ((x as f32 - 30.0).powi(2) + (y as f32 - 34.0).powi(2)) / 32.0;
//!         image.data[y * 64 + x] = (-r2).exp();
//!     }
//! }
//! let keypoints = detect(&image, &DetectConfig::default())?;
//! assert!((keypoints[0].x - 30.0).abs() < 0.5 && (keypoints[0].y - 34.0).abs() < 0.5);
//! # Ok::<(), desdis_detect::Error>(())
//! ```

mod config;
mod error;
mod extrema;
mod load;
mod orientation;
mod patches;
mod plane;
mod scale_space;
mod select;

use rayon::prelude::*;

pub use config::DetectConfig;
pub use error::{Error, Result};
pub use load::{load_image, LoadedImage, MAX_SIDE};
pub use patches::{cut_patches, PatchPyramid};
pub use plane::Plane;

use extrema::{find_extrema, Extremum};
use scale_space::ScaleSpace;

/// Extrema kept for orientation assignment, as a multiple of `max_keypoints`: the spread
/// selection then has room to prefer empty parts of the image.
const SHORTLIST_FACTOR: usize = 2;

/// A keypoint in pixel coordinates of the image it was detected in.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Keypoint {
    /// Column; 0 is the centre of the first column.
    pub x: f32,
    /// Row; 0 is the centre of the first row.
    pub y: f32,
    /// Detection scale: the Gaussian sigma of the extremum, in pixels.
    pub scale: f32,
    /// Dominant orientation in degrees, 0..360, from +x towards +y (0 when upright).
    pub ori: f32,
    /// |DoG| at the refined extremum: larger is stronger.
    pub score: f32,
}

/// Keypoints of `image` (values 0..1), strongest first, at most `cfg.max_keypoints` of them.
pub fn detect(image: &Plane, cfg: &DetectConfig) -> Result<Vec<Keypoint>> {
    cfg.validate()?;
    if image.data.iter().any(|v| !v.is_finite()) {
        return Err(Error::NonFinite);
    }
    let space = ScaleSpace::build(image, cfg);
    let mut extrema = find_extrema(&space, cfg);
    // Orientations cost a histogram each: only the strongest candidates can make the cut.
    let shortlist = cfg.max_keypoints.saturating_mul(SHORTLIST_FACTOR);
    if cfg.max_keypoints > 0 && extrema.len() > shortlist {
        extrema.select_nth_unstable_by(shortlist, |a, b| b.response.total_cmp(&a.response));
        extrema.truncate(shortlist);
    }
    let keypoints: Vec<Keypoint> = extrema.par_iter().flat_map_iter(|e| oriented(&space, e, cfg)).collect();
    Ok(select::spread(
        keypoints,
        cfg.max_keypoints,
        image.width,
        image.height,
        cfg.spread_grid,
        cfg.spread_cap,
    ))
}

/// The extremum as keypoints in input pixels, one per dominant orientation.
fn oriented(space: &ScaleSpace, e: &Extremum, cfg: &DetectConfig) -> Vec<Keypoint> {
    let octave = &space.octaves[e.octave];
    let sigma = space.octave_sigma(e.scale_index);
    let base = Keypoint {
        x: e.x * octave.step,
        y: e.y * octave.step,
        scale: sigma * octave.step,
        ori: 0.0,
        score: e.response,
    };
    if cfg.upright {
        return vec![base];
    }
    let angles = orientation::orientations(&octave.gaussians[e.level], e.x, e.y, sigma, cfg.max_orientations);
    angles.into_iter().map(|ori| Keypoint { ori, ..base }).collect()
}

/// Keypoints and their patches (`keypoints.len() * patch_size^2` values in 0..1).
pub fn detect_and_cut(image: &Plane, cfg: &DetectConfig) -> Result<(Vec<Keypoint>, Vec<f32>)> {
    let keypoints = detect(image, cfg)?;
    let pyramid = PatchPyramid::new(image);
    let patches = cut_patches(&pyramid, &keypoints, cfg.magnification, cfg.patch_size);
    Ok((keypoints, patches))
}
