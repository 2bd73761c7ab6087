//! Small linear-algebra helpers shared by the homography and fundamental-matrix fits.

use nalgebra::{DMatrix, Matrix3, SVector};

use crate::Mat3;

/// Relative size below which a singular value counts as zero: a second (near-)null direction
/// means the correspondences do not pin the model down.
const RANK_TOL: f64 = 1e-9;

/// Hartley's normalisation: the similarity that moves the centroid to the origin and makes
/// the mean distance from it `sqrt(2)`, and the transformed points. `None` when all points
/// coincide (no scale to normalise by).
pub(crate) fn hartley(points: &[[f64; 2]]) -> Option<(Matrix3<f64>, Vec<[f64; 2]>)> {
    let n = points.len() as f64;
    if points.is_empty() {
        return None;
    }
    let (cx, cy) = points.iter().fold((0.0, 0.0), |(x, y), p| (x + p[0], y + p[1]));
    let (cx, cy) = (cx / n, cy / n);
    let mean_dist = points.iter().map(|p| (p[0] - cx).hypot(p[1] - cy)).sum::<f64>() / n;
    if !(mean_dist.is_finite() && mean_dist > f64::EPSILON * (1.0 + cx.abs() + cy.abs())) {
        return None;
    }
    let s = std::f64::consts::SQRT_2 / mean_dist;
    let t = Matrix3::new(s, 0.0, -s * cx, 0.0, s, -s * cy, 0.0, 0.0, 1.0);
    let normed = points.iter().map(|p| [s * (p[0] - cx), s * (p[1] - cy)]).collect();
    Some((t, normed))
}

/// The unit vector spanning the null space of `a` (rows are equations), or `None` when that
/// null space is more than one-dimensional or the decomposition fails.
pub(crate) fn null_vector(mut a: DMatrix<f64>) -> Option<SVector<f64, 9>> {
    // A thin SVD of a matrix with fewer rows than columns drops the null directions, so pad
    // with zero rows: they change nothing in the solution.
    if a.nrows() < 9 {
        a = a.resize_vertically(9, 0.0);
    }
    let svd = a.try_svd(false, true, f64::EPSILON, 1000)?;
    let v_t = svd.v_t?;
    let sv = &svd.singular_values;
    let mut order: Vec<usize> = (0..sv.len()).collect();
    order.sort_by(|&i, &j| sv[i].total_cmp(&sv[j]));
    let (smallest, second) = (order[0], order[1]);
    let largest = sv[order[order.len() - 1]];
    if !(largest.is_finite() && largest > 0.0) || sv[second] <= RANK_TOL * largest {
        return None;
    }
    let v = v_t.row(smallest).transpose();
    Some(SVector::<f64, 9>::from_iterator(v.iter().copied()))
}

/// A 9-vector read row by row as a 3x3 matrix.
pub(crate) fn mat_from_vec(v: &SVector<f64, 9>) -> Matrix3<f64> {
    Matrix3::from_row_slice(v.as_slice())
}

/// Scales `m` so that `m[2][2] == 1` (OpenCV's convention for H and F) when that entry is not
/// negligible, else to unit Frobenius norm. `None` for a zero or non-finite matrix.
pub(crate) fn fix_scale(m: Matrix3<f64>) -> Option<Matrix3<f64>> {
    let norm = m.norm();
    if !(norm.is_finite() && norm > 0.0) {
        return None;
    }
    let m22 = m[(2, 2)];
    let out = if m22.abs() > 1e-12 * norm { m / m22 } else { m / norm };
    out.iter().all(|v| v.is_finite()).then_some(out)
}

/// nalgebra matrix to the crate's row-major array.
pub(crate) fn to_array(m: &Matrix3<f64>) -> Mat3 {
    let mut out = [[0.0; 3]; 3];
    for (r, row) in out.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = m[(r, c)];
        }
    }
    out
}

/// `m · (x, y, 1)`.
pub(crate) fn apply(m: &Mat3, x: f64, y: f64) -> [f64; 3] {
    let row = |r: usize| m[r][0] * x + m[r][1] * y + m[r][2];
    [row(0), row(1), row(2)]
}

/// `mᵀ · (x, y, 1)`.
pub(crate) fn apply_transposed(m: &Mat3, x: f64, y: f64) -> [f64; 3] {
    let col = |c: usize| m[0][c] * x + m[1][c] * y + m[2][c];
    [col(0), col(1), col(2)]
}
