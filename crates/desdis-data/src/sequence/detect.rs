//! A compact Difference-of-Gaussians keypoint detector (scale-space extrema, Lowe-style).

use crate::imageops::FloatImage;
use image::GrayImage;

/// Detector settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
// Omitted fields keep their defaults and misspelt ones are refused, as in every config table.
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// Octaves at most (each halves the resolution).
    pub octaves: usize,
    /// Scales sampled per octave.
    pub scales_per_octave: usize,
    /// Blur of the first scale, in pixels of its octave.
    pub sigma0: f64,
    /// Minimum |DoG| (images scaled to 0..1) of a kept extremum.
    pub contrast_threshold: f32,
    /// Largest ratio of principal curvatures; higher values keep more edge-like points.
    pub edge_ratio: f32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            octaves: 4,
            scales_per_octave: 3,
            sigma0: 1.6,
            contrast_threshold: 0.01,
            edge_ratio: 10.0,
        }
    }
}

/// A detected keypoint in pixel coordinates of the input image.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Keypoint {
    /// Column.
    pub x: f64,
    /// Row.
    pub y: f64,
    /// Scale (Gaussian sigma) in input pixels.
    pub sigma: f64,
    /// |DoG| at the refined extremum; larger is stronger.
    pub response: f32,
}

/// Extrema of the DoG scale space of `image`, strongest first.
pub fn detect(image: &GrayImage, cfg: &DetectorConfig) -> Vec<Keypoint> {
    let s = cfg.scales_per_octave.max(1);
    // The input is assumed to carry a blur of 0.5 pixel already (sampling).
    let mut base = FloatImage::from_gray(image).blur((cfg.sigma0 * cfg.sigma0 - 0.25).max(0.0).sqrt());
    let mut keypoints = Vec::new();
    for octave in 0..cfg.octaves {
        if base.width < 16 || base.height < 16 {
            break;
        }
        let gaussians = octave_gaussians(&base, cfg.sigma0, s);
        let dogs: Vec<FloatImage> = gaussians.windows(2).map(|p| difference(&p[1], &p[0])).collect();
        for level in 1..=s {
            find_extrema(&dogs, level, octave, s, cfg, &mut keypoints);
        }
        base = gaussians[s].decimate();
    }
    keypoints.sort_by(|a, b| b.response.total_cmp(&a.response));
    keypoints
}

/// `s + 3` images of one octave, blurred from `sigma0` up to `4 * sigma0`.
fn octave_gaussians(base: &FloatImage, sigma0: f64, s: usize) -> Vec<FloatImage> {
    let k = 2f64.powf(1.0 / s as f64);
    let mut images = vec![base.clone()];
    for i in 1..s + 3 {
        let previous = sigma0 * k.powi(i as i32 - 1);
        let increment = ((previous * k).powi(2) - previous.powi(2)).sqrt();
        let next = images[i - 1].blur(increment);
        images.push(next);
    }
    images
}

fn difference(a: &FloatImage, b: &FloatImage) -> FloatImage {
    let data = a.data.iter().zip(&b.data).map(|(x, y)| x - y).collect();
    FloatImage { width: a.width, height: a.height, data }
}

/// Adds the accepted extrema of DoG level `level` to `out`.
fn find_extrema(
    dogs: &[FloatImage],
    level: usize,
    octave: usize,
    s: usize,
    cfg: &DetectorConfig,
    out: &mut Vec<Keypoint>,
) {
    let (w, h) = (dogs[level].width, dogs[level].height);
    const BORDER: usize = 5;
    if w <= 2 * BORDER || h <= 2 * BORDER {
        return;
    }
    let prefilter = 0.5 * cfg.contrast_threshold;
    for y in BORDER..h - BORDER {
        for x in BORDER..w - BORDER {
            let v = dogs[level].data[y * w + x];
            if v.abs() < prefilter || !is_extremum(dogs, level, x, y, v) {
                continue;
            }
            if let Some(kp) = refine(dogs, level, x, y, octave, s, cfg) {
                out.push(kp);
            }
        }
    }
}

fn is_extremum(dogs: &[FloatImage], level: usize, x: usize, y: usize, v: f32) -> bool {
    let w = dogs[level].width;
    for d in &dogs[level - 1..=level + 1] {
        for yy in y - 1..=y + 1 {
            for xx in x - 1..=x + 1 {
                let n = d.data[yy * w + xx];
                let same = std::ptr::eq(d, &dogs[level]) && xx == x && yy == y;
                if !same && ((v > 0.0 && n >= v) || (v < 0.0 && n <= v)) {
                    return false;
                }
            }
        }
    }
    true
}

/// One quadratic fit step in (x, y, scale); rejects weak, edge-like or unstable extrema.
fn refine(
    dogs: &[FloatImage],
    level: usize,
    x: usize,
    y: usize,
    octave: usize,
    s: usize,
    cfg: &DetectorConfig,
) -> Option<Keypoint> {
    let w = dogs[level].width;
    let at = |l: usize, dx: isize, dy: isize| {
        dogs[l].data[(y as isize + dy) as usize * w + (x as isize + dx) as usize]
    };
    let v = at(level, 0, 0);
    let dxx = at(level, 1, 0) + at(level, -1, 0) - 2.0 * v;
    let dyy = at(level, 0, 1) + at(level, 0, -1) - 2.0 * v;
    let dxy = (at(level, 1, 1) - at(level, 1, -1) - at(level, -1, 1) + at(level, -1, -1)) / 4.0;
    let (tr, det) = (dxx + dyy, dxx * dyy - dxy * dxy);
    let r = cfg.edge_ratio;
    if det <= 0.0 || tr * tr * r >= (r + 1.0) * (r + 1.0) * det {
        return None;
    }
    let dss = at(level + 1, 0, 0) + at(level - 1, 0, 0) - 2.0 * v;
    let dxs = (at(level + 1, 1, 0) - at(level + 1, -1, 0) - at(level - 1, 1, 0) + at(level - 1, -1, 0)) / 4.0;
    let dys = (at(level + 1, 0, 1) - at(level + 1, 0, -1) - at(level - 1, 0, 1) + at(level - 1, 0, -1)) / 4.0;
    let g = [
        (at(level, 1, 0) - at(level, -1, 0)) / 2.0,
        (at(level, 0, 1) - at(level, 0, -1)) / 2.0,
        (at(level + 1, 0, 0) - at(level - 1, 0, 0)) / 2.0,
    ];
    let hessian = [[dxx, dxy, dxs], [dxy, dyy, dys], [dxs, dys, dss]];
    let offset = solve3(hessian, [-g[0], -g[1], -g[2]])?;
    if offset.iter().any(|o| o.abs() > 0.6) {
        return None;
    }
    let response = (v + 0.5 * (g[0] * offset[0] + g[1] * offset[1] + g[2] * offset[2])).abs();
    if response < cfg.contrast_threshold {
        return None;
    }
    let scale = 2f64.powi(octave as i32);
    Some(Keypoint {
        x: (x as f64 + offset[0] as f64) * scale,
        y: (y as f64 + offset[1] as f64) * scale,
        sigma: cfg.sigma0 * 2f64.powf((level as f64 + offset[2] as f64) / s as f64) * scale,
        response,
    })
}

/// Solves a 3x3 linear system by Cramer's rule; `None` when singular.
fn solve3(m: [[f32; 3]; 3], b: [f32; 3]) -> Option<[f32; 3]> {
    let det3 = |m: &[[f32; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det3(&m);
    if d.abs() < 1e-12 {
        return None;
    }
    let mut out = [0.0; 3];
    for (col, o) in out.iter_mut().enumerate() {
        let mut mc = m;
        for row in 0..3 {
            mc[row][col] = b[row];
        }
        *o = det3(&mc) / d;
    }
    Some(out)
}

/// Keeps the strongest keypoints, dropping any whose centre lies within `radius * sigma` of a
/// stronger kept one of similar scale (within a factor `1.5`), then truncates to `max`.
pub fn suppress_duplicates(keypoints: &[Keypoint], radius: f64, max: usize) -> Vec<Keypoint> {
    let mut kept: Vec<Keypoint> = Vec::new();
    for kp in keypoints {
        if kept.len() >= max {
            break;
        }
        let clash = kept.iter().any(|k| {
            let ratio = k.sigma.max(kp.sigma) / k.sigma.min(kp.sigma);
            let reach = radius * k.sigma.min(kp.sigma);
            ratio < 1.5 && (k.x - kp.x).powi(2) + (k.y - kp.y).powi(2) < reach * reach
        });
        if !clash {
            kept.push(*kp);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_blob_at_its_centre_and_scale() {
        // A bright Gaussian blob of sigma 4 centred at (40, 30): its DoG extremum is there.
        let img = GrayImage::from_fn(80, 64, |x, y| {
            let d2 = (x as f64 - 40.0).powi(2) + (y as f64 - 30.0).powi(2);
            image::Luma([(40.0 + 200.0 * (-d2 / 32.0).exp()) as u8])
        });
        let kps = detect(&img, &DetectorConfig::default());
        let best = kps.first().expect("one keypoint");
        assert!((best.x - 40.0).abs() < 1.0 && (best.y - 30.0).abs() < 1.0, "{best:?}");
        // A blob of sigma s is found at scale about s (DoG extremum at sigma ~ s).
        assert!(best.sigma > 2.5 && best.sigma < 6.5, "{best:?}");
    }

    #[test]
    fn duplicates_are_suppressed() {
        let a = Keypoint { x: 10.0, y: 10.0, sigma: 2.0, response: 1.0 };
        let b = Keypoint { x: 10.5, y: 10.0, sigma: 2.1, response: 0.5 };
        let c = Keypoint { x: 30.0, y: 10.0, sigma: 2.0, response: 0.4 };
        assert_eq!(suppress_duplicates(&[a, b, c], 1.0, 10), vec![a, c]);
        assert_eq!(suppress_duplicates(&[a, b, c], 1.0, 1), vec![a]);
    }
}
