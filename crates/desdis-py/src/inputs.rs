//! Patches and images from numpy arrays, by the rules of `desdis describe` and of the image
//! loader: 32x32 float patches in 0..1, and gray planes in 0..1.

use desdis_data::resize::{patches_to_32_f32, patches_to_32_u8};
use desdis_detect::{Plane, MAX_SIDE};

use crate::arrays::{check_unit_floats, Owned, Values};
use crate::errors::{Failure, Result};

/// `(N,H,W)` or `(N,1,H,W)` patches (uint8 0..255 or float32 0..1) as `N * 1024` floats in
/// 0..1: patches that are not 32x32 are resized (64x64: 2x2 area average; others: bilinear as
/// OpenCV's INTER_LINEAR), as `desdis describe` resizes them.
pub fn patches_to_unit(array: Owned) -> Result<Vec<f32>> {
    let shape = &array.shape;
    let (n, h, w) = match shape[..] {
        [n, h, w] | [n, 1, h, w] => (n, h, w),
        _ => {
            return Err(Failure::value(format!(
                "patches must have shape (N,H,W) or (N,1,H,W), found {shape:?}"
            )))
        }
    };
    if n == 0 || h == 0 || w == 0 {
        return Err(Failure::value(format!("patches: contains no patches (shape {shape:?})")));
    }
    let resize_err = |e: desdis_data::resize::ResizeError| Failure::value(format!("patches: {e}"));
    match array.values {
        Values::U8(raw) => {
            let small = patches_to_32_u8(&raw, n, h, w).map_err(resize_err)?;
            Ok(small.iter().map(|&b| f32::from(b) / 255.0).collect())
        }
        Values::F32(values) => {
            check_unit_floats(&values, "patches")?;
            patches_to_32_f32(&values, n, h, w).map_err(resize_err)
        }
        Values::U16(_) => {
            Err(Failure::value("patches: dtype uint16 is not supported (expected uint8 or float32)"))
        }
    }
}

/// An `(H,W)` or `(H,W,C)` image (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) as the gray plane the
/// file loader would make of it: values scaled to 0..1 (uint8 / 255, uint16 / 65535, float32 as
/// they are), colour to gray with OpenCV's Rec. 601 weights, alpha ignored.
pub fn image_to_plane(array: Owned) -> Result<Plane> {
    let shape = array.shape.clone();
    let (height, width, channels) = match shape[..] {
        [h, w] => (h, w, 1),
        [h, w, c] if (1..=4).contains(&c) => (h, w, c),
        _ => {
            return Err(Failure::value(format!(
                "image must have shape (H,W) or (H,W,C) with C in 1..4, found {shape:?}"
            )))
        }
    };
    if width == 0 || height == 0 {
        return Err(Failure::value(format!("image: the image has no pixels ({width}x{height})")));
    }
    if width.max(height) > MAX_SIDE as usize {
        return Err(Failure::value(format!(
            "image: the image is {width}x{height}, larger than the limit of {MAX_SIDE} pixels per side; downscale it first"
        )));
    }
    let unit = to_unit(array.values)?;
    let data = match channels {
        1 | 2 => unit.chunks_exact(channels).map(|p| p[0]).collect(),
        _ => unit.chunks_exact(channels).map(|p| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]).collect(),
    };
    Ok(Plane { width, height, data })
}

/// Pixel values in 0..1, converted as the image decoder converts them.
fn to_unit(values: Values) -> Result<Vec<f32>> {
    Ok(match values {
        Values::U8(v) => v.iter().map(|&x| x as f32 / u8::MAX as f32).collect(),
        Values::U16(v) => v.iter().map(|&x| x as f32 / u16::MAX as f32).collect(),
        Values::F32(v) => {
            check_unit_floats(&v, "image")?;
            v
        }
    })
}
