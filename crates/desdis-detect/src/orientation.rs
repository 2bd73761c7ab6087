//! Dominant gradient orientations (Lowe 2004, section 5): a 36-bin histogram of gradient
//! directions around the keypoint, weighted by magnitude and a Gaussian of 1.5 times its scale;
//! every peak within 80% of the highest gives an orientation.
//!
//! Angles are in degrees in image coordinates (x right, y down): 0 points along +x, 90 along
//! +y. The patch is cut with its x axis along the orientation.

use crate::plane::Plane;

const BINS: usize = 36;
const PEAK_RATIO: f32 = 0.8;
const WINDOW_FACTOR: f32 = 1.5;
const RADIUS_FACTOR: f32 = 3.0;

/// Orientations (degrees, 0..360) at `(x, y)` of `image`, for a keypoint of blur `sigma`
/// (all in pixels of `image`), the strongest first, at most `max` of them.
pub fn orientations(image: &Plane, x: f32, y: f32, sigma: f32, max: usize) -> Vec<f32> {
    let hist = smooth(&histogram(image, x, y, sigma));
    let highest = hist.iter().copied().fold(0.0f32, f32::max);
    if highest <= 0.0 {
        return vec![0.0];
    }
    let mut peaks: Vec<(f32, f32)> = (0..BINS)
        .filter_map(|i| {
            let (l, r) = (hist[(i + BINS - 1) % BINS], hist[(i + 1) % BINS]);
            let c = hist[i];
            if !(c > l && c > r && c >= PEAK_RATIO * highest) {
                return None;
            }
            // Vertex of the parabola through the peak and its two neighbours.
            let bin = i as f32 + 0.5 * (l - r) / (l - 2.0 * c + r);
            Some((c, (bin * 360.0 / BINS as f32).rem_euclid(360.0)))
        })
        .collect();
    peaks.sort_by(|a, b| b.0.total_cmp(&a.0));
    peaks.into_iter().take(max.max(1)).map(|(_, angle)| angle).collect()
}

fn histogram(image: &Plane, x: f32, y: f32, sigma: f32) -> [f32; BINS] {
    let mut hist = [0.0f32; BINS];
    let window = WINDOW_FACTOR * sigma;
    let radius = (RADIUS_FACTOR * window).round() as isize;
    let (cx, cy) = (x.round() as isize, y.round() as isize);
    let (w, h) = (image.width as isize, image.height as isize);
    // The Gaussian window is separable: one weight per offset, multiplied per pixel.
    let denom = -1.0 / (2.0 * window * window);
    let weights: Vec<f32> = (-radius..=radius).map(|d| ((d * d) as f32 * denom).exp()).collect();
    let (x0, x1) = ((cx - radius).max(1), (cx + radius).min(w - 2));
    let (y0, y1) = ((cy - radius).max(1), (cy + radius).min(h - 2));
    let w = image.width;
    let bin_scale = BINS as f32 / std::f32::consts::TAU;
    for py in y0..=y1 {
        let wy = weights[(py - cy + radius) as usize];
        let uy = py as usize;
        let (above, row, below) = (
            &image.data[(uy - 1) * w..uy * w],
            &image.data[uy * w..(uy + 1) * w],
            &image.data[(uy + 1) * w..(uy + 2) * w],
        );
        for px in x0..=x1 {
            let ux = px as usize;
            let gx = row[ux + 1] - row[ux - 1];
            let gy = below[ux] - above[ux];
            let weight = wy * weights[(px - cx + radius) as usize];
            // Angle in bins, shifted positive so that truncation rounds to the nearest bin.
            let bin = (fast_atan2(gy, gx) * bin_scale + (BINS as f32 + 0.5)) as usize % BINS;
            hist[bin] += weight * (gx * gx + gy * gy).sqrt();
        }
    }
    hist
}

/// `atan2(y, x)` to within about 0.005 rad (a fraction of a 10-degree bin), several times
/// cheaper than the exact one; the histogram needs one per pixel of every keypoint's window.
fn fast_atan2(y: f32, x: f32) -> f32 {
    let (ax, ay) = (x.abs(), y.abs());
    if ax == 0.0 && ay == 0.0 {
        return 0.0;
    }
    let (a, swapped) = if ay > ax { (ax / ay, true) } else { (ay / ax, false) };
    // Minimax polynomial for atan on [0, 1].
    let s = a * a;
    let mut r = ((-0.046_496_473 * s + 0.159_314_22) * s - 0.327_622_77) * s * a + a;
    if swapped {
        r = std::f32::consts::FRAC_PI_2 - r;
    }
    if x < 0.0 {
        r = std::f32::consts::PI - r;
    }
    if y < 0.0 {
        -r
    } else {
        r
    }
}

/// OpenCV's circular [1 4 6 4 1] / 16 smoothing of the histogram.
fn smooth(hist: &[f32; BINS]) -> [f32; BINS] {
    let at = |i: isize| hist[i.rem_euclid(BINS as isize) as usize];
    let mut out = [0.0; BINS];
    for (i, o) in out.iter_mut().enumerate() {
        let i = i as isize;
        *o = (at(i - 2) + at(i + 2)) / 16.0 + (at(i - 1) + at(i + 1)) * 4.0 / 16.0 + at(i) * 6.0 / 16.0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ramp rising along `angle`: the gradient, and so the orientation, points that way.
    fn ramp(angle: f32) -> Plane {
        let (c, s) = (angle.to_radians().cos(), angle.to_radians().sin());
        let mut p = Plane::zeros(41, 41);
        for y in 0..41 {
            for x in 0..41 {
                p.data[y * 41 + x] = 0.5 + 0.01 * ((x as f32 - 20.0) * c + (y as f32 - 20.0) * s);
            }
        }
        p
    }

    #[test]
    fn a_ramp_gives_its_direction() {
        for angle in [0.0f32, 30.0, 95.0, 200.0, 333.0] {
            let found = orientations(&ramp(angle), 20.0, 20.0, 3.0, 2);
            assert_eq!(found.len(), 1, "{angle}: {found:?}");
            let diff = (found[0] - angle + 540.0).rem_euclid(360.0) - 180.0;
            // The histogram's bins are 10 degrees wide; a ramp fills one bin, so the peak is its centre.
            assert!(diff.abs() <= 5.0, "{angle}: {found:?}");
        }
    }

    #[test]
    fn fast_atan2_is_close_to_the_exact_one() {
        for i in 0..720 {
            let t = (i as f32 * 0.5).to_radians() - std::f32::consts::PI;
            let (y, x) = (t.sin() * 3.0, t.cos() * 3.0);
            let d = (fast_atan2(y, x) - y.atan2(x) + 3.0 * std::f32::consts::PI)
                .rem_euclid(std::f32::consts::TAU)
                - std::f32::consts::PI;
            assert!(d.abs() < 0.006, "{t}: {d}");
        }
    }

    #[test]
    fn a_flat_patch_gives_zero() {
        assert_eq!(orientations(&Plane::zeros(20, 20), 10.0, 10.0, 2.0, 2), vec![0.0]);
    }
}
