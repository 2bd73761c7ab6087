//! Match visualisation: two images side by side with a line per match.

use image::{DynamicImage, GenericImage, Rgb, RgbImage};
use serde::{Deserialize, Serialize};

use crate::error::{check_finite_points, Error};

/// Colour of accepted matches (and of all matches when no inlier mask is given).
pub const INLIER_COLOR: Rgb<u8> = Rgb([0, 255, 0]);
/// Colour of matches the verification rejected.
pub const OUTLIER_COLOR: Rgb<u8> = Rgb([255, 0, 0]);

/// Drawing options.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DrawConfig {
    /// Radius of the circle drawn around both keypoints of each match; `None` draws none.
    pub keypoint_radius: Option<u32>,
    /// Whether rejected matches are drawn at all.
    pub draw_outliers: bool,
}

impl Default for DrawConfig {
    fn default() -> Self {
        Self { keypoint_radius: Some(2), draw_outliers: true }
    }
}

/// `img0` and `img1` side by side (image 1 to the right, the shorter one padded with black
/// below), with a line from `kpts0[i0]` to `kpts1[i1]` per match: [`INLIER_COLOR`] where
/// `inliers[k]` is true or no mask is given, [`OUTLIER_COLOR`] otherwise. Inliers are drawn
/// last so they stay visible where lines cross. The result is `(w0 + w1, max(h0, h1))`.
///
/// Errors: a match index out of range, a mask whose length differs from the matches', a
/// non-finite keypoint.
pub fn draw_matches(
    img0: &DynamicImage,
    img1: &DynamicImage,
    kpts0: &[[f32; 2]],
    kpts1: &[[f32; 2]],
    matches: &[(u32, u32)],
    inliers: Option<&[bool]>,
    cfg: &DrawConfig,
) -> Result<RgbImage, Error> {
    check_finite_points(kpts0, "kpts0")?;
    check_finite_points(kpts1, "kpts1")?;
    if let Some(mask) = inliers {
        if mask.len() != matches.len() {
            return Err(Error::LengthMismatch {
                what: "inlier mask and matches",
                left: mask.len(),
                right: matches.len(),
            });
        }
    }
    let segments = segments(kpts0, kpts1, matches, f64::from(img0.width()))?;
    let mut canvas = side_by_side(img0, img1)?;
    let is_inlier = |k: usize| inliers.is_none_or(|m| m[k]);
    let outliers = segments.iter().enumerate().filter(|(k, _)| !is_inlier(*k));
    let accepted = segments.iter().enumerate().filter(|(k, _)| is_inlier(*k));
    if cfg.draw_outliers {
        for (_, seg) in outliers {
            draw_segment(&mut canvas, seg, OUTLIER_COLOR, cfg.keypoint_radius);
        }
    }
    for (_, seg) in accepted {
        draw_segment(&mut canvas, seg, INLIER_COLOR, cfg.keypoint_radius);
    }
    Ok(canvas)
}

/// A match's end points on the canvas: `[x0, y0, x1, y1]`.
type Segment = [f64; 4];

fn segments(
    kpts0: &[[f32; 2]],
    kpts1: &[[f32; 2]],
    matches: &[(u32, u32)],
    offset: f64,
) -> Result<Vec<Segment>, Error> {
    let get = |kpts: &[[f32; 2]], i: u32, what: &'static str| {
        kpts.get(i as usize).copied().ok_or(Error::IndexOutOfRange {
            what,
            index: i64::from(i),
            len: kpts.len(),
        })
    };
    matches
        .iter()
        .map(|&(i0, i1)| {
            let a = get(kpts0, i0, "match index into kpts0")?;
            let b = get(kpts1, i1, "match index into kpts1")?;
            Ok([f64::from(a[0]), f64::from(a[1]), f64::from(b[0]) + offset, f64::from(b[1])])
        })
        .collect()
}

fn side_by_side(img0: &DynamicImage, img1: &DynamicImage) -> Result<RgbImage, Error> {
    let (w0, h0, w1, h1) = (img0.width(), img0.height(), img1.width(), img1.height());
    let width =
        w0.checked_add(w1).ok_or_else(|| Error::InvalidParameter("combined width overflows".into()))?;
    let mut canvas = RgbImage::new(width, h0.max(h1));
    let bad_copy = |e: image::ImageError| Error::InvalidParameter(format!("cannot compose images: {e}"));
    canvas.copy_from(&img0.to_rgb8(), 0, 0).map_err(bad_copy)?;
    canvas.copy_from(&img1.to_rgb8(), w0, 0).map_err(bad_copy)?;
    Ok(canvas)
}

fn draw_segment(canvas: &mut RgbImage, seg: &Segment, color: Rgb<u8>, radius: Option<u32>) {
    draw_line(canvas, seg, color);
    if let Some(r) = radius {
        draw_circle(canvas, seg[0], seg[1], r, color);
        draw_circle(canvas, seg[2], seg[3], r, color);
    }
}

fn put(canvas: &mut RgbImage, x: i64, y: i64, color: Rgb<u8>) {
    if x >= 0 && y >= 0 && x < i64::from(canvas.width()) && y < i64::from(canvas.height()) {
        canvas.put_pixel(x as u32, y as u32, color);
    }
}

/// A one-pixel Bresenham line, clipped to the canvas first so that far-away end points do
/// not make it walk millions of invisible pixels.
fn draw_line(canvas: &mut RgbImage, seg: &Segment, color: Rgb<u8>) {
    let bounds = [f64::from(canvas.width()) - 1.0, f64::from(canvas.height()) - 1.0];
    let Some([x0, y0, x1, y1]) = clip(seg, bounds) else { return };
    let (mut x, mut y) = (x0.round() as i64, y0.round() as i64);
    let (xe, ye) = (x1.round() as i64, y1.round() as i64);
    let (dx, dy) = ((xe - x).abs(), -(ye - y).abs());
    let (sx, sy) = (if x < xe { 1 } else { -1 }, if y < ye { 1 } else { -1 });
    let mut err = dx + dy;
    loop {
        put(canvas, x, y, color);
        if x == xe && y == ye {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

/// Liang–Barsky clipping of a segment to `[0, bx] x [0, by]`; `None` when it misses.
fn clip(seg: &Segment, [bx, by]: [f64; 2]) -> Option<Segment> {
    let [x0, y0, x1, y1] = *seg;
    let (dx, dy) = (x1 - x0, y1 - y0);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [(-dx, x0), (dx, bx - x0), (-dy, y0), (dy, by - y0)] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
        }
    }
    // The clamp guards against rounding with huge coordinates, where `x0 + t * dx` can land
    // far outside the canvas; it keeps the pixel walk bounded by the canvas size.
    let at = |t: f64| [(x0 + t * dx).clamp(0.0, bx), (y0 + t * dy).clamp(0.0, by)];
    (t0 <= t1).then(|| {
        let ([xa, ya], [xb, yb]) = (at(t0), at(t1));
        [xa, ya, xb, yb]
    })
}

/// A midpoint circle outline of radius `r` around `(cx, cy)`.
fn draw_circle(canvas: &mut RgbImage, cx: f64, cy: f64, r: u32, color: Rgb<u8>) {
    let limit = f64::from(canvas.width().max(canvas.height())) + f64::from(r);
    if !(cx.abs() <= limit && cy.abs() <= limit) {
        return;
    }
    let (cx, cy, r) = (cx.round() as i64, cy.round() as i64, i64::from(r));
    let (mut x, mut y, mut d) = (r, 0i64, 1 - r);
    while x >= y {
        for (px, py) in [(x, y), (y, x), (-y, x), (-x, y), (-x, -y), (-y, -x), (y, -x), (x, -y)] {
            put(canvas, cx + px, cy + py, color);
        }
        y += 1;
        if d < 0 {
            d += 2 * y + 1;
        } else {
            x -= 1;
            d += 2 * (y - x) + 1;
        }
    }
}
