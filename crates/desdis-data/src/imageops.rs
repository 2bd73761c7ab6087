//! Float images and the few operations the detector, the patch cutter and the generator need.
//!
//! Coordinates follow the usual pixel-centre convention: pixel `(i, j)` covers
//! `[i - 0.5, i + 0.5] x [j - 0.5, j + 0.5]`, so an integer coordinate is a pixel centre. This is
//! the convention of HPatches' homographies (and of OpenCV's warps).

use image::GrayImage;
use rayon::prelude::*;

/// A single-channel f32 image, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` values.
    pub data: Vec<f32>,
}

impl FloatImage {
    /// A zero image.
    pub fn zeros(width: usize, height: usize) -> Self {
        FloatImage { width, height, data: vec![0.0; width * height] }
    }

    /// From an 8-bit image, scaled to 0..1.
    pub fn from_gray(image: &GrayImage) -> Self {
        let data = image.as_raw().iter().map(|&v| v as f32 / 255.0).collect();
        FloatImage { width: image.width() as usize, height: image.height() as usize, data }
    }

    /// To an 8-bit image, from 0..1, rounded and clamped.
    pub fn to_gray(&self) -> GrayImage {
        let bytes = self.data.iter().map(|&v| to_u8(v * 255.0)).collect();
        GrayImage::from_raw(self.width as u32, self.height as u32, bytes).expect("buffer matches the size")
    }

    /// Value at integer `(x, y)`, coordinates clamped to the image (edge replication).
    #[inline]
    pub fn at_clamped(&self, x: isize, y: isize) -> f32 {
        let x = x.clamp(0, self.width as isize - 1) as usize;
        let y = y.clamp(0, self.height as isize - 1) as usize;
        self.data[y * self.width + x]
    }

    /// Bilinear sample at `(x, y)`; outside the image the border pixels are replicated.
    #[inline]
    pub fn sample(&self, x: f64, y: f64) -> f32 {
        let (fx, fy) = (x.floor(), y.floor());
        let (ax, ay) = ((x - fx) as f32, (y - fy) as f32);
        let (ix, iy) = (fx as isize, fy as isize);
        let top = self.at_clamped(ix, iy) * (1.0 - ax) + self.at_clamped(ix + 1, iy) * ax;
        let bottom = self.at_clamped(ix, iy + 1) * (1.0 - ax) + self.at_clamped(ix + 1, iy + 1) * ax;
        top * (1.0 - ay) + bottom * ay
    }

    /// True when `(x, y)` lies within the pixel centres' hull.
    pub fn contains(&self, x: f64, y: f64) -> bool {
        x >= 0.0 && y >= 0.0 && x <= (self.width - 1) as f64 && y <= (self.height - 1) as f64
    }

    /// Separable Gaussian blur with standard deviation `sigma` (edge replication); `sigma <= 0`
    /// copies.
    pub fn blur(&self, sigma: f64) -> FloatImage {
        if sigma <= 0.0 {
            return self.clone();
        }
        let kernel = gaussian_kernel(sigma);
        let horizontal = self.convolve_rows(&kernel);
        horizontal.transpose().convolve_rows(&kernel).transpose()
    }

    fn convolve_rows(&self, kernel: &[f32]) -> FloatImage {
        let radius = kernel.len() / 2;
        let w = self.width;
        let mut out = vec![0.0f32; self.data.len()];
        out.par_chunks_mut(w).zip(self.data.par_chunks(w)).for_each_init(
            || vec![0.0f32; w + 2 * radius],
            |padded, (dst, row)| {
                // Replicating the edges into a padded copy keeps the inner loop free of bounds logic.
                padded[..radius].fill(row[0]);
                padded[radius..radius + w].copy_from_slice(row);
                padded[radius + w..].fill(row[w - 1]);
                for (x, d) in dst.iter_mut().enumerate() {
                    *d = padded[x..x + kernel.len()].iter().zip(kernel).map(|(a, b)| a * b).sum();
                }
            },
        );
        FloatImage { width: w, height: self.height, data: out }
    }

    fn transpose(&self) -> FloatImage {
        let (w, h) = (self.width, self.height);
        let mut data = vec![0.0f32; w * h];
        for y in 0..h {
            for x in 0..w {
                data[x * h + y] = self.data[y * w + x];
            }
        }
        FloatImage { width: h, height: w, data }
    }

    /// Every other pixel in both directions (the caller blurs first).
    pub fn decimate(&self) -> FloatImage {
        let (w, h) = (self.width.div_ceil(2), self.height.div_ceil(2));
        let mut data = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                data.push(self.data[2 * y * self.width + 2 * x]);
            }
        }
        FloatImage { width: w, height: h, data }
    }
}

/// Normalised Gaussian taps out to 3 sigma.
fn gaussian_kernel(sigma: f64) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil().max(1.0) as isize;
    let taps: Vec<f64> =
        (-radius..=radius).map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp()).collect();
    let sum: f64 = taps.iter().sum();
    taps.iter().map(|t| (t / sum) as f32).collect()
}

/// Rounds and clamps to 0..255.
#[inline]
pub fn to_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_keeps_mean_and_smooths() {
        let mut img = FloatImage::zeros(21, 15);
        img.data[7 * 21 + 10] = 1.0;
        let b = img.blur(1.5);
        let sum: f32 = b.data.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4);
        assert!(b.data[7 * 21 + 10] < 0.2 && b.data[7 * 21 + 11] > 0.0);
    }

    #[test]
    fn bilinear_sample_interpolates_between_centres() {
        let img = FloatImage { width: 2, height: 1, data: vec![0.0, 1.0] };
        assert!((img.sample(0.25, 0.0) - 0.25).abs() < 1e-6);
        assert!((img.sample(-3.0, 0.0) - 0.0).abs() < 1e-6);
        assert!(img.contains(1.0, 0.0) && !img.contains(1.01, 0.0));
    }
}
