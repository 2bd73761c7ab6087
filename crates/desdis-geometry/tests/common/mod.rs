//! Helpers shared by the verification tests: synthetic data and the OpenCV fixture.

#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

pub type Mat3 = [[f64; 3]; 3];

/// One case of `fixtures/opencv_parity.json` (written by `fixtures/make_fixtures.py`).
#[derive(Debug, Deserialize)]
pub struct ParityCase {
    pub pts0: Vec<[f32; 2]>,
    pub pts1: Vec<[f32; 2]>,
    pub threshold: f64,
    pub true_model: Mat3,
    pub true_inliers: Vec<bool>,
    pub opencv_model: Mat3,
    pub opencv_inliers: Vec<bool>,
}

#[derive(Debug, Deserialize)]
pub struct Fixture {
    pub opencv_version: String,
    pub homography: ParityCase,
    pub fundamental: ParityCase,
}

pub fn fixture() -> Fixture {
    let text = include_str!("../fixtures/opencv_parity.json");
    serde_json::from_str(text).expect("fixture parses")
}

/// `|A ∩ B| / |A ∪ B|` of two masks.
pub fn jaccard(a: &[bool], b: &[bool]) -> f64 {
    assert_eq!(a.len(), b.len());
    let both = a.iter().zip(b).filter(|(x, y)| **x && **y).count();
    let either = a.iter().zip(b).filter(|(x, y)| **x || **y).count();
    both as f64 / either.max(1) as f64
}

pub fn mismatches(a: &[bool], b: &[bool]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A standard normal sample (Box–Muller), to avoid another dependency.
pub fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

pub fn uniform_point(rng: &mut ChaCha8Rng, w: f64, h: f64) -> [f64; 2] {
    [rng.random_range(0.0..w), rng.random_range(0.0..h)]
}

pub fn to_f32(p: [f64; 2]) -> [f32; 2] {
    [p[0] as f32, p[1] as f32]
}

pub fn to_f64(p: [f32; 2]) -> [f64; 2] {
    [f64::from(p[0]), f64::from(p[1])]
}

pub fn mat_mul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut out = [[0.0; 3]; 3];
    for r in 0..3 {
        for c in 0..3 {
            out[r][c] = (0..3).map(|k| a[r][k] * b[k][c]).sum();
        }
    }
    out
}

pub fn transpose(a: &Mat3) -> Mat3 {
    let mut out = [[0.0; 3]; 3];
    for r in 0..3 {
        for c in 0..3 {
            out[r][c] = a[c][r];
        }
    }
    out
}

pub fn det(m: &Mat3) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// Rotation about `axis` by `angle` (Rodrigues).
pub fn rotation(axis: [f64; 3], angle: f64) -> Mat3 {
    let n = (axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2]).sqrt();
    let [x, y, z] = [axis[0] / n, axis[1] / n, axis[2] / n];
    let (s, c) = angle.sin_cos();
    let t = 1.0 - c;
    [
        [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
        [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
        [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
    ]
}

/// A pinhole camera `K [R | t]`.
pub struct Camera {
    pub k: Mat3,
    pub r: Mat3,
    pub t: [f64; 3],
}

impl Camera {
    pub fn project(&self, x: [f64; 3]) -> [f64; 2] {
        let cam: Vec<f64> =
            (0..3).map(|i| (0..3).map(|j| self.r[i][j] * x[j]).sum::<f64>() + self.t[i]).collect();
        let pix: Vec<f64> = (0..3).map(|i| (0..3).map(|j| self.k[i][j] * cam[j]).sum::<f64>()).collect();
        [pix[0] / pix[2], pix[1] / pix[2]]
    }
}

/// The intrinsics used by the synthetic scenes (640 x 480, focal 500).
pub fn intrinsics() -> Mat3 {
    [[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]]
}

/// `F = K⁻ᵀ [t]ₓ R K⁻¹` for camera 0 at the origin and camera 1 at `(R, t)`.
pub fn true_fundamental(k: &Mat3, r: &Mat3, t: [f64; 3]) -> Mat3 {
    let tx = [[0.0, -t[2], t[1]], [t[2], 0.0, -t[0]], [-t[1], t[0], 0.0]];
    // K is upper triangular with this simple form: invert it by hand.
    let (f, cx, cy) = (k[0][0], k[0][2], k[1][2]);
    let kinv = [[1.0 / f, 0.0, -cx / f], [0.0, 1.0 / f, -cy / f], [0.0, 0.0, 1.0]];
    mat_mul(&transpose(&kinv), &mat_mul(&mat_mul(&tx, r), &kinv))
}
