//! The HPatches image-matching protocol (as evaluated by D2-Net): each match of image 1 to
//! image k is projected with the ground-truth homography `H_1_k`, and the mean matching
//! accuracy (MMA) at a threshold is the fraction of matches whose projection error is at most
//! that many pixels.
//!
//! Coordinates: `H_1_k` maps image-1 pixel coordinates to image-k pixel coordinates, both
//! with `(0, 0)` at the centre of the top-left pixel; keypoints must be given in that
//! convention (a detector that puts `(0, 0)` at the top-left corner needs `-0.5` first).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{check_finite_points, Error};
use crate::homography::transfer_error;
use crate::Mat3;

/// The thresholds of the usual MMA curve: 1 to 10 pixels.
pub const DEFAULT_THRESHOLDS: [f64; 10] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];

/// Matching accuracy at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MmaAtThreshold {
    /// The threshold in pixels.
    pub threshold: f64,
    /// Matches with error `<= threshold`.
    pub correct: usize,
    /// `correct / matches`; 0 when there are no matches, so that an image pair without
    /// matches counts as a failure when fractions are averaged over pairs.
    pub fraction: f64,
}

/// The projection error of each match `(i1, ik)`: `|H_1_k · kpts1[i1] - kptsk[ik]|` in
/// image-k pixels (infinite for a keypoint that `h` maps to infinity).
///
/// Errors: a match index out of range, a non-finite keypoint.
pub fn projection_errors(
    kpts1: &[[f32; 2]],
    kptsk: &[[f32; 2]],
    matches: &[(u32, u32)],
    h_1_k: &Mat3,
) -> Result<Vec<f64>, Error> {
    check_finite_points(kpts1, "kpts1")?;
    check_finite_points(kptsk, "kptsk")?;
    matches
        .iter()
        .map(|&(i1, ik)| {
            let a = lookup(kpts1, i1, "match index into kpts1")?;
            let b = lookup(kptsk, ik, "match index into kptsk")?;
            Ok(transfer_error(h_1_k, a, b))
        })
        .collect()
}

fn lookup(kpts: &[[f32; 2]], i: u32, what: &'static str) -> Result<[f64; 2], Error> {
    let p =
        kpts.get(i as usize).ok_or(Error::IndexOutOfRange { what, index: i64::from(i), len: kpts.len() })?;
    Ok([f64::from(p[0]), f64::from(p[1])])
}

/// Matching accuracy of one image pair at each of `thresholds` (see [`DEFAULT_THRESHOLDS`]).
/// A NaN error counts as incorrect.
pub fn mma(errors: &[f64], thresholds: &[f64]) -> Vec<MmaAtThreshold> {
    thresholds
        .iter()
        .map(|&threshold| {
            let correct = errors.iter().filter(|&&e| e <= threshold).count();
            let fraction = if errors.is_empty() { 0.0 } else { correct as f64 / errors.len() as f64 };
            MmaAtThreshold { threshold, correct, fraction }
        })
        .collect()
}

/// Reads an HPatches `H_1_k` file: 3 lines of 3 whitespace-separated numbers.
pub fn load_homography(path: impl AsRef<Path>) -> Result<Mat3, Error> {
    let path = path.as_ref();
    let text =
        std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    parse_homography(&text, path)
}

/// Parses the text of an HPatches `H_1_k` file; `path` only names the source in errors.
/// Blank lines are ignored; anything but 3 rows of 3 finite numbers is an error.
pub fn parse_homography(text: &str, path: impl AsRef<Path>) -> Result<Mat3, Error> {
    let fail = |message: String| Error::Parse { path: PathBuf::from(path.as_ref()), message };
    let rows: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if rows.len() != 3 {
        return Err(fail(format!("expected 3 rows of 3 numbers, found {} non-empty rows", rows.len())));
    }
    let mut h = [[0.0; 3]; 3];
    for (r, line) in rows.iter().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 3 {
            return Err(fail(format!("row {} has {} values, expected 3", r + 1, fields.len())));
        }
        for (c, field) in fields.iter().enumerate() {
            let v: f64 =
                field.parse().map_err(|_| fail(format!("row {}: `{field}` is not a number", r + 1)))?;
            if !v.is_finite() {
                return Err(fail(format!("row {}: `{field}` is not finite", r + 1)));
            }
            h[r][c] = v;
        }
    }
    Ok(h)
}
