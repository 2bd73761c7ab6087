//! Scale-space extrema of the DoG, refined to sub-pixel and sub-scale position by a quadratic
//! fit, with low-contrast and edge responses rejected (Lowe 2004, section 4).

use rayon::prelude::*;

use crate::config::DetectConfig;
use crate::plane::Plane;
use crate::scale_space::{ScaleSpace, BORDER};

/// Refinement steps before a wandering extremum is given up.
const MAX_STEPS: usize = 5;

/// A refined extremum, in the coordinates of its octave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Extremum {
    /// Octave index.
    pub octave: usize,
    /// Scale index inside the octave (integer part of the refined scale).
    pub level: usize,
    /// Column, refined, in octave pixels.
    pub x: f32,
    /// Row, refined, in octave pixels.
    pub y: f32,
    /// Refined fractional scale index (`level` plus the sub-scale offset).
    pub scale_index: f32,
    /// |DoG| at the refined position.
    pub response: f32,
}

/// All refined extrema of the scale space.
pub fn find_extrema(space: &ScaleSpace, cfg: &DetectConfig) -> Vec<Extremum> {
    let s = space.scales;
    // OpenCV's prefilter: half the final contrast bound, before the costly neighbourhood test.
    let prefilter = 0.5 * cfg.contrast_threshold / s as f32;
    let mut out = Vec::new();
    for (o, octave) in space.octaves.iter().enumerate() {
        for level in 1..=s {
            let candidates = candidates(&octave.dogs, level, prefilter);
            out.par_extend(
                candidates.into_par_iter().filter_map(|(x, y)| refine(&octave.dogs, o, level, x, y, s, cfg)),
            );
        }
    }
    out
}

/// Pixels of DoG `level` above `threshold` in magnitude that are the maximum or the minimum
/// of their 26 neighbours across the adjacent levels.
fn candidates(dogs: &[Plane], level: usize, threshold: f32) -> Vec<(usize, usize)> {
    let planes = [&dogs[level - 1], &dogs[level], &dogs[level + 1]];
    let h = planes[1].height;
    (BORDER..h - BORDER).into_par_iter().flat_map_iter(|y| scan_row(planes, y, threshold)).collect()
}

/// The extrema of one row: a cheap vectorised test marks the candidates (most pixels fail it),
/// and only those get the full 26-neighbour test.
#[inline(never)]
fn scan_row(planes: [&Plane; 3], y: usize, threshold: f32) -> Vec<(usize, usize)> {
    let w = planes[1].width;
    let row = &planes[1].data[y * w..(y + 1) * w];
    let mut marks = vec![0u8; w];
    mark_row_candidates(row, threshold, &mut marks);
    let mut found = Vec::new();
    for x in BORDER..w - BORDER {
        if marks[x] != 0 && is_extremum(row[x], planes, x, y) {
            found.push((x, y));
        }
    }
    found
}

/// `marks[x] = 1` where `|row[x]| > threshold` and `row[x]` is beyond both of its row
/// neighbours on the same side (a necessary condition of an extremum).
fn mark_row_candidates(row: &[f32], threshold: f32, marks: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above; nothing else is required.
        unsafe { mark_avx2(row, threshold, marks) };
        return;
    }
    mark_body(row, threshold, marks);
}

/// The same loop compiled for AVX2, chosen at run time so the binary runs on older CPUs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn mark_avx2(row: &[f32], threshold: f32, marks: &mut [u8]) {
    mark_body(row, threshold, marks);
}

#[inline(always)]
fn mark_body(row: &[f32], threshold: f32, marks: &mut [u8]) {
    let n = row.len();
    if n < 3 {
        return;
    }
    let (left, centre, right) = (&row[..n - 2], &row[1..n - 1], &row[2..]);
    // Non-short-circuit `&` and `|` keep the loop branch-free, so it vectorises.
    for (((m, &l), &v), &r) in marks[1..n - 1].iter_mut().zip(left).zip(centre).zip(right) {
        let strong = v.abs() > threshold;
        let peak = (v > l) & (v > r) | (v < l) & (v < r);
        *m = u8::from(strong & peak);
    }
}

fn is_extremum(v: f32, planes: [&Plane; 3], x: usize, y: usize) -> bool {
    if v > 0.0 {
        beats_all(planes, x, y, |n| n < v)
    } else {
        beats_all(planes, x, y, |n| n > v)
    }
}

/// Whether `strictly_beaten(n)` holds for all 26 neighbours, the same level first: most
/// pixels fail against an immediate neighbour, so the early exit comes soon. Ties with a
/// neighbour do not count as extrema.
#[inline(always)]
fn beats_all(planes: [&Plane; 3], x: usize, y: usize, strictly_beaten: impl Fn(f32) -> bool) -> bool {
    let w = planes[1].width;
    let row = |p: &Plane, yy: usize| -> [f32; 3] {
        let i = yy * w + x;
        [p.data[i - 1], p.data[i], p.data[i + 1]]
    };
    let here = planes[1];
    let same = [row(here, y - 1), row(here, y + 1)];
    if !same.iter().flatten().all(|&n| strictly_beaten(n)) {
        return false;
    }
    let i = y * w + x;
    if !(strictly_beaten(here.data[i - 1]) && strictly_beaten(here.data[i + 1])) {
        return false;
    }
    [planes[0], planes[2]]
        .into_iter()
        .all(|p| (y - 1..=y + 1).all(|yy| row(p, yy).into_iter().all(&strictly_beaten)))
}

/// Newton steps on the quadratic fit of the DoG around `(x, y, level)`.
fn refine(
    dogs: &[Plane],
    octave: usize,
    level: usize,
    x: usize,
    y: usize,
    s: usize,
    cfg: &DetectConfig,
) -> Option<Extremum> {
    let (w, h) = (dogs[0].width, dogs[0].height);
    let (mut x, mut y, mut level) = (x, y, level);
    for _ in 0..MAX_STEPS {
        let fit = Fit::at(dogs, x, y, level);
        let offset = fit.offset()?;
        if offset.iter().all(|o| o.abs() < 0.5) {
            return accept(fit, offset, octave, level, x, y, s, cfg);
        }
        if offset.iter().any(|o| o.abs() > (w.max(h)) as f32) {
            return None;
        }
        let nx = x as isize + offset[0].round() as isize;
        let ny = y as isize + offset[1].round() as isize;
        let nl = level as isize + offset[2].round() as isize;
        let inside = |v: isize, lo: usize, hi: usize| v >= lo as isize && v < hi as isize;
        if !inside(nl, 1, s + 1) || !inside(nx, BORDER, w - BORDER) || !inside(ny, BORDER, h - BORDER) {
            return None;
        }
        (x, y, level) = (nx as usize, ny as usize, nl as usize);
    }
    None
}

fn accept(
    fit: Fit,
    offset: [f32; 3],
    octave: usize,
    level: usize,
    x: usize,
    y: usize,
    s: usize,
    cfg: &DetectConfig,
) -> Option<Extremum> {
    let contrast = fit.value
        + 0.5 * (fit.gradient[0] * offset[0] + fit.gradient[1] * offset[1] + fit.gradient[2] * offset[2]);
    if contrast.abs() * (s as f32) < cfg.contrast_threshold {
        return None;
    }
    // Edges have one large and one small principal curvature: tr^2 / det grows with their ratio.
    let [dxx, dyy, dxy] = [fit.hessian[0][0], fit.hessian[1][1], fit.hessian[0][1]];
    let (tr, det) = (dxx + dyy, dxx * dyy - dxy * dxy);
    let r = cfg.edge_ratio;
    if det <= 0.0 || tr * tr * r >= (r + 1.0) * (r + 1.0) * det {
        return None;
    }
    Some(Extremum {
        octave,
        level,
        x: x as f32 + offset[0],
        y: y as f32 + offset[1],
        scale_index: level as f32 + offset[2],
        response: contrast.abs(),
    })
}

/// Value, gradient and Hessian of the DoG at a sample, by central differences.
#[derive(Debug, Clone, Copy)]
struct Fit {
    value: f32,
    gradient: [f32; 3],
    hessian: [[f32; 3]; 3],
}

impl Fit {
    fn at(dogs: &[Plane], x: usize, y: usize, l: usize) -> Fit {
        let d = |dl: isize, dy: isize, dx: isize| {
            dogs[(l as isize + dl) as usize].at((x as isize + dx) as usize, (y as isize + dy) as usize)
        };
        let v = d(0, 0, 0);
        let gradient = [
            (d(0, 0, 1) - d(0, 0, -1)) * 0.5,
            (d(0, 1, 0) - d(0, -1, 0)) * 0.5,
            (d(1, 0, 0) - d(-1, 0, 0)) * 0.5,
        ];
        let dxx = d(0, 0, 1) + d(0, 0, -1) - 2.0 * v;
        let dyy = d(0, 1, 0) + d(0, -1, 0) - 2.0 * v;
        let dss = d(1, 0, 0) + d(-1, 0, 0) - 2.0 * v;
        let dxy = (d(0, 1, 1) - d(0, 1, -1) - d(0, -1, 1) + d(0, -1, -1)) * 0.25;
        let dxs = (d(1, 0, 1) - d(1, 0, -1) - d(-1, 0, 1) + d(-1, 0, -1)) * 0.25;
        let dys = (d(1, 1, 0) - d(1, -1, 0) - d(-1, 1, 0) + d(-1, -1, 0)) * 0.25;
        Fit { value: v, gradient, hessian: [[dxx, dxy, dxs], [dxy, dyy, dys], [dxs, dys, dss]] }
    }

    /// The step `-H^-1 g` to the fitted extremum; `None` when the Hessian is singular.
    fn offset(&self) -> Option<[f32; 3]> {
        let m = self.hessian;
        let cof = |r0: usize, r1: usize, c0: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
        let det = m[0][0] * cof(1, 2, 1, 2) - m[0][1] * cof(1, 2, 0, 2) + m[0][2] * cof(1, 2, 0, 1);
        if !det.is_finite() || det == 0.0 {
            return None;
        }
        // The Hessian is symmetric, so its adjugate is too.
        let inv = [
            [cof(1, 2, 1, 2), -cof(0, 2, 1, 2), cof(0, 1, 1, 2)],
            [-cof(1, 2, 0, 2), cof(0, 2, 0, 2), -cof(0, 1, 0, 2)],
            [cof(1, 2, 0, 1), -cof(0, 2, 0, 1), cof(0, 1, 0, 1)],
        ];
        let g = self.gradient;
        let step = |r: usize| -(inv[r][0] * g[0] + inv[r][1] * g[1] + inv[r][2] * g[2]) / det;
        let out = [step(0), step(1), step(2)];
        out.iter().all(|v| v.is_finite()).then_some(out)
    }
}
