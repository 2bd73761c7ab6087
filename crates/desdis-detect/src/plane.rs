//! A single-channel `f32` image and the filters the scale space needs.
//!
//! Pixel `(i, j)` is centred at coordinates `(i, j)`: (0, 0) is the centre of the top-left pixel,
//! the convention of the feature files this crate's callers write.

use rayon::prelude::*;

/// A row-major single-channel image of `f32` values (0..1 for loaded images).
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` values, row after row.
    pub data: Vec<f32>,
}

impl Plane {
    /// A plane of zeros.
    pub fn zeros(width: usize, height: usize) -> Self {
        Plane { width, height, data: vec![0.0; width * height] }
    }

    /// Value at integer coordinates, clamped to the image (edge replication).
    #[inline]
    pub fn at_clamped(&self, x: isize, y: isize) -> f32 {
        let x = x.clamp(0, self.width as isize - 1) as usize;
        let y = y.clamp(0, self.height as isize - 1) as usize;
        self.data[y * self.width + x]
    }

    /// Value at integer coordinates that are known to lie inside.
    #[inline]
    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }

    /// Bilinear sample at real coordinates, edges replicated.
    #[inline(always)]
    pub fn sample(&self, x: f32, y: f32) -> f32 {
        let (x0, y0) = (fast_floor(x), fast_floor(y));
        let (ax, ay) = (x - x0 as f32, y - y0 as f32);
        let (x0, y0) = (x0 as isize, y0 as isize);
        let top = self.at_clamped(x0, y0) * (1.0 - ax) + self.at_clamped(x0 + 1, y0) * ax;
        let bottom = self.at_clamped(x0, y0 + 1) * (1.0 - ax) + self.at_clamped(x0 + 1, y0 + 1) * ax;
        top * (1.0 - ay) + bottom * ay
    }

    /// Bilinear sample at coordinates known to lie in `[0, width - 2] x [0, height - 2]`, where
    /// no clamping is needed (checked in debug builds; out of range it may panic, never read
    /// outside the buffer).
    #[inline(always)]
    pub fn sample_inside(&self, x: f32, y: f32) -> f32 {
        debug_assert!(x >= 0.0 && y >= 0.0 && x <= (self.width - 2) as f32 && y <= (self.height - 2) as f32);
        let (x0, y0) = (x as usize, y as usize);
        let (ax, ay) = (x - x0 as f32, y - y0 as f32);
        let i = y0 * self.width + x0;
        let (top, bottom) = (&self.data[i..i + 2], &self.data[i + self.width..i + self.width + 2]);
        let t = top[0] + (top[1] - top[0]) * ax;
        let b = bottom[0] + (bottom[1] - bottom[0]) * ax;
        t + (b - t) * ay
    }

    /// Separable Gaussian blur of standard deviation `sigma` pixels (edges replicated).
    pub fn blur(&self, sigma: f32) -> Plane {
        if sigma <= 0.0 || self.data.is_empty() {
            return self.clone();
        }
        let kernel = gaussian_kernel(sigma);
        let rows = self.blur_rows(&kernel);
        rows.blur_columns(&kernel)
    }

    fn blur_rows(&self, kernel: &[f32]) -> Plane {
        let r = kernel.len() / 2;
        let w = self.width;
        let mut out = Plane::zeros(w, self.height);
        out.data.par_chunks_mut(w).zip(self.data.par_chunks(w)).for_each_init(
            || vec![0.0f32; w + 2 * r],
            |padded, (dst, src)| {
                padded[..r].fill(src[0]);
                padded[r..r + w].copy_from_slice(src);
                padded[r + w..].fill(src[w - 1]);
                let taps = |k: usize| (&padded[r - k..r - k + w], &padded[r + k..r + k + w]);
                convolve(dst, kernel, taps);
            },
        );
        out
    }

    fn blur_columns(&self, kernel: &[f32]) -> Plane {
        let (w, h) = (self.width, self.height);
        let mut out = Plane::zeros(w, h);
        out.data.par_chunks_mut(w).enumerate().for_each(|(y, dst)| {
            let row = |yy: isize| {
                let yy = yy.clamp(0, h as isize - 1) as usize;
                &self.data[yy * w..(yy + 1) * w]
            };
            let taps = |k: usize| (row(y as isize - k as isize), row(y as isize + k as isize));
            convolve(dst, kernel, taps);
        });
        out
    }

    /// Every second pixel in both directions: pixel `(i, j)` of the result is pixel `(2i, 2j)`,
    /// so its centre keeps the coordinates `2 * (i, j)` of this plane. Blur first (SIFT's octave
    /// step samples the image blurred to twice the octave's base scale).
    pub fn subsample(&self) -> Plane {
        let (w, h) = (self.width.div_ceil(2), self.height.div_ceil(2));
        let mut out = Plane::zeros(w, h);
        out.data.par_chunks_mut(w.max(1)).enumerate().for_each(|(y, dst)| {
            let src = &self.data[2 * y * self.width..(2 * y + 1) * self.width];
            for (x, d) in dst.iter_mut().enumerate() {
                *d = src[2 * x];
            }
        });
        out
    }

    /// Twice the resolution, bilinear: pixel `j` of the result samples this plane at `j / 2`,
    /// so coordinates halve exactly back (no quarter-pixel shift). Even pixels copy, odd ones
    /// average their two (or four) neighbours; the last row and column replicate the edge.
    pub fn upsample(&self) -> Plane {
        let (w, h) = (2 * self.width, 2 * self.height);
        let mut out = Plane::zeros(w, h);
        let sw = self.width;
        out.data.par_chunks_mut(2 * w).enumerate().for_each(|(y, rows)| {
            let next = (y + 1).min(self.height - 1);
            let (top, bottom) = (&self.data[y * sw..(y + 1) * sw], &self.data[next * sw..(next + 1) * sw]);
            let (even, odd) = rows.split_at_mut(w);
            upsample_row(top, even);
            upsample_row(bottom, odd);
            for (o, &e) in odd.iter_mut().zip(even.iter()) {
                *o = 0.5 * (*o + e);
            }
        });
        out
    }

    /// Means of 2x2 blocks (the last row or column repeated when the size is odd): pixel `(i, j)`
    /// of the result covers pixels `2i..2i+2` of this plane, so its centre is at `2i + 0.5`.
    pub fn halve(&self) -> Plane {
        let (w, h) = (self.width.div_ceil(2), self.height.div_ceil(2));
        let mut out = Plane::zeros(w, h);
        out.data.par_chunks_mut(w.max(1)).enumerate().for_each(|(y, dst)| {
            let (y0, y1) = (2 * y, (2 * y + 1).min(self.height - 1));
            for (x, d) in dst.iter_mut().enumerate() {
                let (x0, x1) = (2 * x, (2 * x + 1).min(self.width - 1));
                *d = 0.25 * (self.at(x0, y0) + self.at(x1, y0) + self.at(x0, y1) + self.at(x1, y1));
            }
        });
        out
    }

    /// `self - other`, pixel by pixel (same size).
    pub fn minus(&self, other: &Plane) -> Plane {
        let data = self.data.par_iter().zip(&other.data).map(|(a, b)| a - b).collect();
        Plane { width: self.width, height: self.height, data }
    }
}

/// One row at twice the resolution: `dst[2i] = src[i]`, `dst[2i+1]` the mean of `src[i]` and
/// `src[i+1]` (the edge value past the end).
fn upsample_row(src: &[f32], dst: &mut [f32]) {
    let n = src.len();
    for i in 0..n {
        let next = src[(i + 1).min(n - 1)];
        dst[2 * i] = src[i];
        dst[2 * i + 1] = 0.5 * (src[i] + next);
    }
}

/// `floor` without a call into libm (the baseline x86-64 target has no rounding instruction):
/// truncation, corrected for negative values. Exact for |x| < 2^31.
#[inline(always)]
fn fast_floor(x: f32) -> i32 {
    let t = x as i32;
    t - i32::from((t as f32) > x)
}

/// `dst = kernel[r] * centre + sum_k kernel[r + k] * (before_k + after_k)` for a symmetric
/// kernel of `2r + 1` taps, where `taps(k)` gives the two rows `k` before and after. Tap-outer,
/// pixel-inner: each tap is one vectorisable pass over the row.
fn convolve<'a>(dst: &mut [f32], kernel: &[f32], taps: impl Fn(usize) -> (&'a [f32], &'a [f32])) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above; nothing else is required.
        unsafe { convolve_avx2(dst, kernel, taps) };
        return;
    }
    convolve_body(dst, kernel, taps);
}

/// The same loops compiled for AVX2 (8 lanes instead of SSE2's 4), chosen at run time so the
/// binary still runs on older CPUs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn convolve_avx2<'a>(dst: &mut [f32], kernel: &[f32], taps: impl Fn(usize) -> (&'a [f32], &'a [f32])) {
    convolve_body(dst, kernel, taps);
}

#[inline(always)]
fn convolve_body<'a>(dst: &mut [f32], kernel: &[f32], taps: impl Fn(usize) -> (&'a [f32], &'a [f32])) {
    let r = kernel.len() / 2;
    let (centre, _) = taps(0);
    let wc = kernel[r];
    for (d, &c) in dst.iter_mut().zip(centre) {
        *d = wc * c;
    }
    for k in 1..=r {
        let weight = kernel[r + k];
        let (before, after) = taps(k);
        for ((d, &a), &b) in dst.iter_mut().zip(before).zip(after) {
            *d += weight * (a + b);
        }
    }
}

/// Normalised Gaussian taps over `-r..=r`, `r = ceil(3 sigma)` (at least 1).
fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let r = (3.0 * sigma).ceil().max(1.0) as isize;
    let taps: Vec<f32> = (-r..=r).map(|i| (-((i * i) as f32) / (2.0 * sigma * sigma)).exp()).collect();
    let sum: f32 = taps.iter().sum();
    taps.into_iter().map(|t| t / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Plane {
        let data = (0..w * h).map(|i| ((i % w) as f32 * 0.01) + (i / w) as f32 * 0.02).collect();
        Plane { width: w, height: h, data }
    }

    #[test]
    fn blur_keeps_a_constant_and_a_ramp_inside() {
        let flat = Plane { width: 9, height: 7, data: vec![0.5; 63] };
        assert!(flat.blur(1.5).data.iter().all(|v| (v - 0.5).abs() < 1e-6));
        // A linear ramp is unchanged by a symmetric kernel away from the replicated edges.
        let r = ramp(40, 30);
        let b = r.blur(1.0);
        assert!((b.at(20, 15) - r.at(20, 15)).abs() < 1e-5);
    }

    #[test]
    fn blur_spreads_an_impulse_like_a_gaussian() {
        let mut p = Plane::zeros(31, 31);
        p.data[15 * 31 + 15] = 1.0;
        let b = p.blur(2.0);
        let total: f32 = b.data.iter().sum();
        assert!((total - 1.0).abs() < 1e-5);
        // Variance along x of the blurred impulse is sigma^2.
        let var: f32 =
            (0..31).map(|x| (x as f32 - 15.0).powi(2) * (0..31).map(|y| b.at(x, y)).sum::<f32>()).sum();
        assert!((var - 4.0).abs() < 0.1, "{var}");
    }

    #[test]
    fn subsample_and_halve_sizes_and_values() {
        let r = ramp(5, 3);
        let s = r.subsample();
        assert_eq!((s.width, s.height), (3, 2));
        assert_eq!(s.at(1, 1), r.at(2, 2));
        let h = r.halve();
        assert_eq!((h.width, h.height), (3, 2));
        let expect = 0.25 * (r.at(0, 0) + r.at(1, 0) + r.at(0, 1) + r.at(1, 1));
        assert!((h.at(0, 0) - expect).abs() < 1e-7);
    }

    #[test]
    fn upsample_samples_at_half_coordinates() {
        let r = ramp(5, 3);
        let u = r.upsample();
        assert_eq!((u.width, u.height), (10, 6));
        for (x, y) in [(0, 0), (3, 2), (7, 3), (9, 5), (4, 1)] {
            let expect = r.sample(x as f32 * 0.5, y as f32 * 0.5);
            assert!((u.at(x, y) - expect).abs() < 1e-6, "({x}, {y}): {} vs {expect}", u.at(x, y));
        }
    }

    #[test]
    fn fast_floor_matches_floor() {
        for v in [-2.5f32, -2.0, -0.3, 0.0, 0.7, 3.0, 1e6 + 0.5] {
            assert_eq!(fast_floor(v), v.floor() as i32, "{v}");
        }
    }

    #[test]
    fn sample_interpolates_between_centres() {
        let r = ramp(4, 4);
        assert!((r.sample(1.5, 2.0) - 0.5 * (r.at(1, 2) + r.at(2, 2))).abs() < 1e-7);
        assert_eq!(r.sample(-3.0, 0.0), r.at(0, 0));
    }
}
