//! Homographies: the normalised direct linear transform and the transfer error.
//!
//! Convention: `p1 ~ H · p0`, i.e. `H` maps image-0 pixels to image-1 pixels.

use nalgebra::DMatrix;

use crate::error::Error;
use crate::linalg::{apply, fix_scale, hartley, mat_from_vec, null_vector, to_array};
use crate::Mat3;

/// The smallest number of correspondences a homography can be fitted to.
pub const MIN_POINTS: usize = 4;

/// Least-squares homography (algebraic error, Hartley-normalised DLT) through `n >= 4`
/// correspondences `pts0[i] -> pts1[i]`, scaled so that `H[2][2] = 1` where possible.
///
/// `Ok(None)` for fewer than 4 points or a degenerate configuration (e.g. all collinear).
/// Errors: the two slices differ in length, or a coordinate is not finite.
pub fn fit_homography(pts0: &[[f64; 2]], pts1: &[[f64; 2]]) -> Result<Option<Mat3>, Error> {
    check_pairs(pts0, pts1)?;
    Ok(fit_unchecked(pts0, pts1))
}

/// [`fit_homography`] on inputs already known to be finite and equally long.
pub(crate) fn fit_unchecked(pts0: &[[f64; 2]], pts1: &[[f64; 2]]) -> Option<Mat3> {
    if pts0.len() < MIN_POINTS {
        return None;
    }
    let (t0, n0) = hartley(pts0)?;
    let (t1, n1) = hartley(pts1)?;
    let mut a = DMatrix::<f64>::zeros(2 * n0.len(), 9);
    for (i, (p, q)) in n0.iter().zip(&n1).enumerate() {
        let ([x, y], [u, v]) = (*p, *q);
        let r = 2 * i;
        a.row_mut(r).copy_from_slice(&[0.0, 0.0, 0.0, -x, -y, -1.0, v * x, v * y, v]);
        a.row_mut(r + 1).copy_from_slice(&[x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, -u]);
    }
    let h_norm = mat_from_vec(&null_vector(a)?);
    // Undo the normalisations: p1 = T1⁻¹ Ĥ T0 p0.
    let h = t1.try_inverse()? * h_norm * t0;
    // A singular H maps the plane onto a line or point: not a usable model.
    let scaled = fix_scale(h)?;
    if scaled.determinant().abs() <= 1e-12 * scaled.norm().powi(3) {
        return None;
    }
    Some(to_array(&scaled))
}

/// `H · (x, y, 1)` dehomogenised, or `None` when the point maps to infinity (or overflows).
pub fn project(h: &Mat3, x: f64, y: f64) -> Option<[f64; 2]> {
    let [u, v, w] = apply(h, x, y);
    let scale = h[2][0].abs() * x.abs() + h[2][1].abs() * y.abs() + h[2][2].abs();
    if w.abs() <= f64::EPSILON * scale || w == 0.0 {
        return None;
    }
    let out = [u / w, v / w];
    (out[0].is_finite() && out[1].is_finite()).then_some(out)
}

/// One-way (forward) transfer error `|H · p0 - p1|` in image-1 pixels, the error OpenCV's
/// `findHomography` thresholds in RANSAC. Infinite when `p0` maps to infinity.
pub fn transfer_error(h: &Mat3, p0: [f64; 2], p1: [f64; 2]) -> f64 {
    match project(h, p0[0], p0[1]) {
        Some([u, v]) => (u - p1[0]).hypot(v - p1[1]),
        None => f64::INFINITY,
    }
}

/// Whether any three of the (few) sample points are collinear or two coincide, in which
/// case no homography is determined by them.
pub(crate) fn has_collinear_triple(pts: &[[f64; 2]]) -> bool {
    // Relative to the side lengths, so the test does not depend on the image scale; the
    // tolerance is a sine of the angle between the two sides.
    const SIN_TOL: f64 = 1e-6;
    let n = pts.len();
    for i in 0..n {
        for j in i + 1..n {
            for k in j + 1..n {
                let (d1, d2) = (sub(pts[j], pts[i]), sub(pts[k], pts[i]));
                let cross = d1[0] * d2[1] - d1[1] * d2[0];
                if cross.abs() <= SIN_TOL * d1[0].hypot(d1[1]) * d2[0].hypot(d2[1]) {
                    return true;
                }
            }
        }
    }
    false
}

fn sub(a: [f64; 2], b: [f64; 2]) -> [f64; 2] {
    [a[0] - b[0], a[1] - b[1]]
}

/// Shared input check of the public fits: same length, finite coordinates.
pub(crate) fn check_pairs(pts0: &[[f64; 2]], pts1: &[[f64; 2]]) -> Result<(), Error> {
    if pts0.len() != pts1.len() {
        return Err(Error::LengthMismatch { what: "pts0 and pts1", left: pts0.len(), right: pts1.len() });
    }
    for (what, pts) in [("pts0", pts0), ("pts1", pts1)] {
        if let Some(index) = pts.iter().position(|p| !(p[0].is_finite() && p[1].is_finite())) {
            return Err(Error::NonFinite { what, index });
        }
    }
    Ok(())
}
