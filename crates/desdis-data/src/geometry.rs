//! Plane geometry: homographies (read/written as HPatches `H_1_k` files) and 2x2 linear maps.

use crate::error::{DataError, Result};
use std::path::Path;

/// A 2x2 matrix, row-major: `[[a, b], [c, d]]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mat2(pub [[f64; 2]; 2]);

impl Mat2 {
    /// The identity.
    pub const IDENTITY: Mat2 = Mat2([[1.0, 0.0], [0.0, 1.0]]);

    /// `self * other`.
    pub fn mul(&self, o: &Mat2) -> Mat2 {
        let a = &self.0;
        let b = &o.0;
        Mat2([
            [a[0][0] * b[0][0] + a[0][1] * b[1][0], a[0][0] * b[0][1] + a[0][1] * b[1][1]],
            [a[1][0] * b[0][0] + a[1][1] * b[1][0], a[1][0] * b[0][1] + a[1][1] * b[1][1]],
        ])
    }

    /// `self * (x, y)`.
    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        (self.0[0][0] * x + self.0[0][1] * y, self.0[1][0] * x + self.0[1][1] * y)
    }

    /// Determinant.
    pub fn det(&self) -> f64 {
        self.0[0][0] * self.0[1][1] - self.0[0][1] * self.0[1][0]
    }

    /// Counter-clockwise rotation by `angle` radians (in image coordinates, y down, it turns clockwise).
    pub fn rotation(angle: f64) -> Mat2 {
        let (s, c) = angle.sin_cos();
        Mat2([[c, -s], [s, c]])
    }

    /// Largest factor by which the map stretches a length (the top singular value).
    pub fn max_stretch(&self) -> f64 {
        let [[a, b], [c, d]] = self.0;
        let s = a * a + b * b + c * c + d * d;
        let det = self.det();
        ((s + (s * s - 4.0 * det * det).max(0.0).sqrt()) / 2.0).sqrt()
    }
}

/// A 3x3 homography mapping pixel coordinates of one image to another, row-major.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Homography(pub [[f64; 3]; 3]);

impl Homography {
    /// The identity.
    pub const IDENTITY: Homography = Homography([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);

    /// Reads a text file holding exactly 9 numbers (3 rows of 3), as HPatches' `H_1_k`.
    pub fn read(path: &Path) -> Result<Homography> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let mut values = Vec::with_capacity(9);
        for (i, line) in text.lines().enumerate() {
            for token in line.split_whitespace() {
                let v: f64 = token
                    .parse()
                    .map_err(|_| DataError::parse(path, i + 1, format!("`{token}` is not a number")))?;
                values.push(v);
            }
        }
        if values.len() != 9 {
            return Err(DataError::invalid(
                path,
                format!("a homography needs 9 numbers (3x3), found {}", values.len()),
            ));
        }
        let h = Homography([
            [values[0], values[1], values[2]],
            [values[3], values[4], values[5]],
            [values[6], values[7], values[8]],
        ]);
        if h.det().abs() < 1e-12 {
            return Err(DataError::invalid(path, "the homography is singular"));
        }
        Ok(h)
    }

    /// Writes the 3 rows as text.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text: String = self.0.iter().map(|r| format!("{:e} {:e} {:e}\n", r[0], r[1], r[2])).collect();
        std::fs::write(path, text).map_err(|e| DataError::io(path, e))
    }

    /// Maps a point; `None` when it goes to infinity.
    pub fn apply(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let m = &self.0;
        let w = m[2][0] * x + m[2][1] * y + m[2][2];
        if w.abs() < 1e-12 {
            return None;
        }
        Some(((m[0][0] * x + m[0][1] * y + m[0][2]) / w, (m[1][0] * x + m[1][1] * y + m[1][2]) / w))
    }

    /// The Jacobian (local linear map) of the homography at `(x, y)`.
    pub fn jacobian(&self, x: f64, y: f64) -> Option<Mat2> {
        let m = &self.0;
        let w = m[2][0] * x + m[2][1] * y + m[2][2];
        if w.abs() < 1e-12 {
            return None;
        }
        let u = (m[0][0] * x + m[0][1] * y + m[0][2]) / w;
        let v = (m[1][0] * x + m[1][1] * y + m[1][2]) / w;
        // d(u)/dx = (h00 - u h20) / w, and so on.
        Some(Mat2([
            [(m[0][0] - u * m[2][0]) / w, (m[0][1] - u * m[2][1]) / w],
            [(m[1][0] - v * m[2][0]) / w, (m[1][1] - v * m[2][1]) / w],
        ]))
    }

    /// `self ∘ other`: first `other`, then `self`.
    pub fn compose(&self, other: &Homography) -> Homography {
        let (a, b) = (&self.0, &other.0);
        let mut out = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                out[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
            }
        }
        Homography(out)
    }

    /// Determinant.
    pub fn det(&self) -> f64 {
        let m = &self.0;
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    }

    /// The inverse; `None` when singular.
    pub fn inverse(&self) -> Option<Homography> {
        let det = self.det();
        if det.abs() < 1e-15 {
            return None;
        }
        let m = &self.0;
        let cof = |r0: usize, r1: usize, c0: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
        // Adjugate (transposed cofactors) over the determinant.
        Some(Homography([
            [cof(1, 2, 1, 2) / det, -cof(0, 2, 1, 2) / det, cof(0, 1, 1, 2) / det],
            [-cof(1, 2, 0, 2) / det, cof(0, 2, 0, 2) / det, -cof(0, 1, 0, 2) / det],
            [cof(1, 2, 0, 1) / det, -cof(0, 2, 0, 1) / det, cof(0, 1, 0, 1) / det],
        ]))
    }

    /// Translation by `(tx, ty)`.
    pub fn translation(tx: f64, ty: f64) -> Homography {
        Homography([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])
    }

    /// The linear map `m` as a homography (no translation).
    pub fn linear(m: &Mat2) -> Homography {
        Homography([[m.0[0][0], m.0[0][1], 0.0], [m.0[1][0], m.0[1][1], 0.0], [0.0, 0.0, 1.0]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_composes_to_identity_and_jacobian_matches_differences() {
        let h = Homography([[1.2, 0.1, 5.0], [-0.05, 0.9, 3.0], [1e-4, -2e-4, 1.0]]);
        let id = h.compose(&h.inverse().unwrap());
        for i in 0..3 {
            for j in 0..3 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((id.0[i][j] / id.0[2][2] - want).abs() < 1e-9);
            }
        }
        let (x, y, e) = (120.0, 80.0, 1e-4);
        let j = h.jacobian(x, y).unwrap();
        let (u0, v0) = h.apply(x, y).unwrap();
        let (u1, v1) = h.apply(x + e, y).unwrap();
        assert!(((u1 - u0) / e - j.0[0][0]).abs() < 1e-5);
        assert!(((v1 - v0) / e - j.0[1][0]).abs() < 1e-5);
        assert!((Mat2::rotation(0.3).max_stretch() - 1.0).abs() < 1e-12);
    }
}
