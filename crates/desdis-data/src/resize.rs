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

/// Why a batch of patches cannot be resized: the sizes, which come from a file, do not add up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResizeError {
    /// A patch side is zero.
    #[error("patches of {h}x{w} pixels are empty")]
    Empty { h: usize, w: usize },
    /// `n * h * w` (or the output size) does not fit in memory addresses.
    #[error("{n} patches of {h}x{w} pixels are more values than can be addressed")]
    Overflow { n: usize, h: usize, w: usize },
    /// The buffer does not hold `n` patches of `h x w`.
    #[error("{len} values do not make {n} patches of {h}x{w} pixels")]
    Length { len: usize, n: usize, h: usize, w: usize },
    /// The output buffer could not be allocated.
    #[error("cannot allocate {bytes} bytes for {n} resized patches")]
    Alloc { bytes: usize, n: usize },
}

/// Checks that `len` values are `n` patches of `h x w` and reserves the 32x32 output (`n * 1024`
/// values of `T`), with checked arithmetic: sizes read from a file are never trusted.
fn checked_output<T>(len: usize, n: usize, h: usize, w: usize) -> Result<Vec<T>, ResizeError> {
    if h == 0 || w == 0 {
        return Err(ResizeError::Empty { h, w });
    }
    let total = n.checked_mul(h).and_then(|v| v.checked_mul(w)).ok_or(ResizeError::Overflow { n, h, w })?;
    if total != len {
        return Err(ResizeError::Length { len, n, h, w });
    }
    let out_len = n.checked_mul(OUT_LEN).ok_or(ResizeError::Overflow { n, h, w })?;
    let mut out = Vec::new();
    // try_reserve turns an impossible allocation into an error instead of an abort.
    out.try_reserve_exact(out_len)
        .map_err(|_| ResizeError::Alloc { bytes: out_len.saturating_mul(std::mem::size_of::<T>()), n })?;
    Ok(out)
}

const OUT_SIDE: usize = 32;
const OUT_LEN: usize = OUT_SIDE * OUT_SIDE;

/// `n` 8-bit patches of `h x w` (row-major, one after the other) as 32x32 patches: unchanged at
/// 32x32, 2x2 area averaging at 64x64, bilinear ([`resize_bilinear_u8`]) otherwise.
pub fn patches_to_32_u8(src: &[u8], n: usize, h: usize, w: usize) -> Result<Vec<u8>, ResizeError> {
    let mut out = checked_output(src.len(), n, h, w)?;
    if (h, w) == (OUT_SIDE, OUT_SIDE) {
        out.extend_from_slice(src);
        return Ok(out);
    }
    let mut small = vec![0u8; OUT_LEN];
    for patch in src.chunks_exact(h * w) {
        if (h, w) == (2 * OUT_SIDE, 2 * OUT_SIDE) {
            downsample_area_2x(patch, h, &mut small);
            out.extend_from_slice(&small);
        } else {
            out.extend(resize_bilinear_u8(patch, w, h, OUT_SIDE, OUT_SIDE));
        }
    }
    Ok(out)
}

/// [`patches_to_32_u8`] for float patches (area averaging without rounding at 64x64).
pub fn patches_to_32_f32(src: &[f32], n: usize, h: usize, w: usize) -> Result<Vec<f32>, ResizeError> {
    let mut out = checked_output(src.len(), n, h, w)?;
    if (h, w) == (OUT_SIDE, OUT_SIDE) {
        out.extend_from_slice(src);
        return Ok(out);
    }
    for patch in src.chunks_exact(h * w) {
        if (h, w) == (2 * OUT_SIDE, 2 * OUT_SIDE) {
            out.extend(area_2x_f32(patch));
        } else {
            out.extend(resize_bilinear_f32(patch, w, h, OUT_SIDE, OUT_SIDE));
        }
    }
    Ok(out)
}

/// The mean of each 2x2 block of a 64x64 float patch.
fn area_2x_f32(patch: &[f32]) -> impl Iterator<Item = f32> + '_ {
    let side = 2 * OUT_SIDE;
    (0..OUT_LEN).map(move |i| {
        let (y, x) = (2 * (i / OUT_SIDE), 2 * (i % OUT_SIDE));
        (patch[y * side + x]
            + patch[y * side + x + 1]
            + patch[(y + 1) * side + x]
            + patch[(y + 1) * side + x + 1])
            / 4.0
    })
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

    #[test]
    fn batches_check_their_sizes() {
        assert_eq!(patches_to_32_u8(&[0; 10], 1, 0, 10), Err(ResizeError::Empty { h: 0, w: 10 }));
        assert!(matches!(patches_to_32_u8(&[0; 10], usize::MAX, 2, 2), Err(ResizeError::Overflow { .. })));
        // (2^20, 2^44 + 1, 1) wraps to 2^20 values in 64-bit arithmetic: refused, not indexed.
        let wrapped = vec![0f32; 1 << 20];
        let r = patches_to_32_f32(&wrapped, 1 << 20, (1 << 44) + 1, 1);
        assert!(matches!(r, Err(ResizeError::Overflow { .. })), "{r:?}");
        assert!(matches!(patches_to_32_f32(&[0.0; 7], 2, 2, 2), Err(ResizeError::Length { .. })));
        assert_eq!(patches_to_32_u8(&[9; 2 * 64 * 64], 2, 64, 64).unwrap(), vec![9; 2048]);
        assert_eq!(patches_to_32_f32(&[0.5; 3 * 5], 1, 3, 5).unwrap(), vec![0.5; 1024]);
        assert_eq!(patches_to_32_u8(&[1, 2], 2, 1, 1).unwrap().len(), 2048);
    }
}
