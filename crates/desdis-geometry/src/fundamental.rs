//! Fundamental matrices: the normalised 8-point algorithm and epipolar error measures.
//!
//! Convention: `x1ᵀ · F · x0 = 0` for homogeneous pixels `x0` of image 0 and `x1` of
//! image 1 (OpenCV's `findFundamentalMat(points0, points1)`).

use nalgebra::{DMatrix, Matrix3};

use crate::error::Error;
use crate::homography::check_pairs;
use crate::linalg::{apply, apply_transposed, fix_scale, hartley, mat_from_vec, null_vector, to_array};
use crate::Mat3;

/// The smallest number of correspondences the 8-point algorithm takes.
pub const MIN_POINTS: usize = 8;

/// Least-squares fundamental matrix (Hartley-normalised 8-point) through `n >= 8`
/// correspondences, made rank 2 by zeroing its smallest singular value, scaled so that
/// `F[2][2] = 1` where possible.
///
/// `Ok(None)` for fewer than 8 points or a degenerate configuration. Errors: the two slices
/// differ in length, or a coordinate is not finite.
pub fn fit_fundamental(pts0: &[[f64; 2]], pts1: &[[f64; 2]]) -> Result<Option<Mat3>, Error> {
    check_pairs(pts0, pts1)?;
    Ok(fit_unchecked(pts0, pts1))
}

/// [`fit_fundamental`] on inputs already known to be finite and equally long.
pub(crate) fn fit_unchecked(pts0: &[[f64; 2]], pts1: &[[f64; 2]]) -> Option<Mat3> {
    if pts0.len() < MIN_POINTS {
        return None;
    }
    let (t0, n0) = hartley(pts0)?;
    let (t1, n1) = hartley(pts1)?;
    let mut a = DMatrix::<f64>::zeros(n0.len(), 9);
    for (i, (p, q)) in n0.iter().zip(&n1).enumerate() {
        let ([x, y], [u, v]) = (*p, *q);
        a.row_mut(i).copy_from_slice(&[u * x, u * y, u, v * x, v * y, v, x, y, 1.0]);
    }
    let f_norm = enforce_rank2(mat_from_vec(&null_vector(a)?))?;
    // Undo the normalisations: x1ᵀ T1ᵀ F̂ T0 x0 = 0.
    let f = fix_scale(t1.transpose() * f_norm * t0)?;
    Some(to_array(&f))
}

/// The closest rank-2 matrix in Frobenius norm (smallest singular value set to zero).
fn enforce_rank2(f: Matrix3<f64>) -> Option<Matrix3<f64>> {
    let svd = f.try_svd(true, true, f64::EPSILON, 1000)?;
    let (u, v_t) = (svd.u?, svd.v_t?);
    let mut s = svd.singular_values;
    let smallest = s.imin();
    s[smallest] = 0.0;
    Some(u * Matrix3::from_diagonal(&s) * v_t)
}

/// The Sampson distance in pixels: the square root of the first-order approximation of the
/// squared geometric (reprojection) error, `r² / (|F x0|²₁₂ + |Fᵀ x1|²₁₂)` with
/// `r = x1ᵀ F x0` and `|·|²₁₂` the squared norm of a line's first two coordinates.
///
/// RANSAC compares it to the pixel threshold, which is what OpenCV's USAC estimators do
/// (squared error against squared threshold). Infinite at a point where both epipolar lines
/// degenerate and the constraint is violated.
pub fn sampson_distance(f: &Mat3, p0: [f64; 2], p1: [f64; 2]) -> f64 {
    let l1 = apply(f, p0[0], p0[1]);
    let l0 = apply_transposed(f, p1[0], p1[1]);
    let r = p1[0] * l1[0] + p1[1] * l1[1] + l1[2];
    let denom = l1[0] * l1[0] + l1[1] * l1[1] + l0[0] * l0[0] + l0[1] * l0[1];
    if denom > 0.0 {
        (r * r / denom).sqrt()
    } else if r == 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// The larger of the two point-to-epipolar-line distances (`p1` to `F p0`, `p0` to
/// `Fᵀ p1`) in pixels: the error OpenCV's classic `FM_RANSAC` thresholds. Roughly
/// `sqrt(2)` times the Sampson distance when both are equal; provided for comparison.
pub fn max_epipolar_distance(f: &Mat3, p0: [f64; 2], p1: [f64; 2]) -> f64 {
    let l1 = apply(f, p0[0], p0[1]);
    let l0 = apply_transposed(f, p1[0], p1[1]);
    let line_dist = |l: [f64; 3], p: [f64; 2]| {
        let n = l[0].hypot(l[1]);
        let r = (l[0] * p[0] + l[1] * p[1] + l[2]).abs();
        if n > 0.0 {
            r / n
        } else if r == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    };
    line_dist(l1, p1).max(line_dist(l0, p0))
}
