//! Patch resampling: 2x2 area averaging (64 -> 32) and bilinear resizing with half-pixel centres.
//!
//! The bilinear convention is the one of OpenCV's `cv2.resize(..., interpolation=INTER_LINEAR)`:
//! destination pixel `d` samples the source at `(d + 0.5) * src/dst - 0.5`, clamped to the image,
//! so pixel centres (not corners) are aligned. [`resize_bilinear_u8`] also reproduces OpenCV's
//! 8-bit fixed-point arithmetic (11-bit weights, vectorised rounding) bit for bit, so HPatches
//! 65x65 patches resized here equal those resized by `cv2.resize` in the published evaluations.

/// Averages each 2x2 block of a `side x side` image into one pixel, rounding half up.
///
/// `side` must be even; the result is `(side/2) x (side/2)`.
pub fn downsample_area_2x(src: &[u8], side: usize, dst: &mut [u8]) {
    let half = side / 2;
    debug_assert_eq!(src.len(), side * side);
    debug_assert_eq!(dst.len(), half * half);
    for y in 0..half {
        let top = &src[2 * y * side..(2 * y + 1) * side];
        let bottom = &src[(2 * y + 1) * side..(2 * y + 2) * side];
        for x in 0..half {
            let sum =
                top[2 * x] as u32 + top[2 * x + 1] as u32 + bottom[2 * x] as u32 + bottom[2 * x + 1] as u32;
            dst[y * half + x] = ((sum + 2) / 4) as u8;
        }
    }
}

/// Repeats each pixel of a `side x side` image into a 2x2 block: the inverse of
/// [`downsample_area_2x`] for images written that way.
pub fn upsample_nearest_2x(src: &[u8], side: usize, dst: &mut [u8]) {
    let double = side * 2;
    debug_assert_eq!(dst.len(), double * double);
    for y in 0..double {
        for x in 0..double {
            dst[y * double + x] = src[(y / 2) * side + x / 2];
        }
    }
}

/// One destination coordinate's source taps: left index and weight of the right neighbour.
#[derive(Debug, Clone, Copy)]
struct Tap {
    index: usize,
    frac: f32,
}

/// Source taps for `dst_len` outputs over `src_len` inputs, half-pixel centres, clamped.
fn taps(src_len: usize, dst_len: usize) -> Vec<Tap> {
    let scale = src_len as f64 / dst_len as f64;
    (0..dst_len)
        .map(|d| {
            // OpenCV computes the position in double and rounds it to float.
            let pos = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let floor = pos.floor();
            if floor < 0.0 {
                Tap { index: 0, frac: 0.0 }
            } else if floor as usize >= src_len - 1 {
                Tap { index: src_len - 1, frac: 0.0 }
            } else {
                Tap { index: floor as usize, frac: pos - floor }
            }
        })
        .collect()
}

/// 11-bit fixed-point weights (left, right) of a tap, rounded like OpenCV's `saturate_cast<short>`.
fn fixed_weights(tap: Tap) -> (i32, i32) {
    const ONE: f32 = 2048.0;
    (((1.0 - tap.frac) * ONE).round() as i32, (tap.frac * ONE).round() as i32)
}

/// Bilinear resize of an 8-bit `w x h` image to `dw x dh`, bit-exact with OpenCV's `INTER_LINEAR`.
pub fn resize_bilinear_u8(src: &[u8], w: usize, h: usize, dw: usize, dh: usize) -> Vec<u8> {
    debug_assert_eq!(src.len(), w * h);
    let xs: Vec<(usize, usize, i32, i32)> = taps(w, dw)
        .into_iter()
        .map(|t| {
            let (a0, a1) = fixed_weights(t);
            (t.index, (t.index + 1).min(w - 1), a0, a1)
        })
        .collect();
    // Horizontal pass in i32 with weights summing to 2048 (scaled by 2^11).
    let rows: Vec<Vec<i32>> = (0..h)
        .map(|y| {
            let row = &src[y * w..(y + 1) * w];
            xs.iter().map(|&(x0, x1, a0, a1)| row[x0] as i32 * a0 + row[x1] as i32 * a1).collect()
        })
        .collect();
    let mut out = Vec::with_capacity(dw * dh);
    for t in taps(h, dh) {
        let (b0, b1) = fixed_weights(t);
        let r0 = &rows[t.index];
        let r1 = &rows[(t.index + 1).min(h - 1)];
        for x in 0..dw {
            out.push(vertical_fixed(r0[x], r1[x], b0, b1));
        }
    }
    out
}

/// OpenCV's vectorised vertical step: values drop 4 bits to fit 16-bit lanes, each product keeps
/// its high 16 bits, and the sum is rounded by the last 2 bits (22 fractional bits in all).
fn vertical_fixed(s0: i32, s1: i32, b0: i32, b1: i32) -> u8 {
    let mul_hi = |s: i32, b: i32| ((s >> 4) * b) >> 16;
    ((mul_hi(s0, b0) + mul_hi(s1, b1) + 2) >> 2).clamp(0, 255) as u8
}

/// Bilinear resize of an f32 `w x h` image to `dw x dh`, half-pixel centres, exact float weights.
pub fn resize_bilinear_f32(src: &[f32], w: usize, h: usize, dw: usize, dh: usize) -> Vec<f32> {
    debug_assert_eq!(src.len(), w * h);
    let xs = taps(w, dw);
    let mut out = Vec::with_capacity(dw * dh);
    for ty in taps(h, dh) {
        let y1 = (ty.index + 1).min(h - 1);
        for tx in &xs {
            let x1 = (tx.index + 1).min(w - 1);
            let at = |y: usize, x: usize| src[y * w + x];
            let top = at(ty.index, tx.index) * (1.0 - tx.frac) + at(ty.index, x1) * tx.frac;
            let bottom = at(y1, tx.index) * (1.0 - tx.frac) + at(y1, x1) * tx.frac;
            out.push(top * (1.0 - ty.frac) + bottom * ty.frac);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_then_nearest_round_trips() {
        let small: Vec<u8> = (0..16u8).map(|v| v * 15).collect();
        let mut big = vec![0u8; 64];
        upsample_nearest_2x(&small, 4, &mut big);
        let mut back = vec![0u8; 16];
        downsample_area_2x(&big, 8, &mut back);
        assert_eq!(back, small);
    }

    #[test]
    fn bilinear_of_constant_is_constant() {
        let src = vec![77u8; 65 * 65];
        assert!(resize_bilinear_u8(&src, 65, 65, 32, 32).iter().all(|&v| v == 77));
        let srcf = vec![0.25f32; 65 * 65];
        assert!(resize_bilinear_f32(&srcf, 65, 65, 32, 32).iter().all(|&v| (v - 0.25).abs() < 1e-6));
    }

    #[test]
    fn bilinear_u8_and_f32_agree_within_one_level() {
        let src: Vec<u8> = (0..65 * 65).map(|i| ((i * 37) % 251) as u8).collect();
        let srcf: Vec<f32> = src.iter().map(|&v| v as f32).collect();
        let a = resize_bilinear_u8(&src, 65, 65, 32, 32);
        let b = resize_bilinear_f32(&srcf, 65, 65, 32, 32);
        for (x, y) in a.iter().zip(&b) {
            assert!((*x as f32 - y).abs() <= 1.0, "{x} vs {y}");
        }
    }
}
