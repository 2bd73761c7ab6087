//! Reading patches for `desdis describe`: `.npy` arrays, HPatches strip PNGs, PhotoTour folders.
//!
//! Everything becomes 32x32 floats in 0..1. Patches of another size are resized: 64x64 by 2x2 area
//! averaging (as the PhotoTour sheets are reduced), 65x65 and any other size by bilinear
//! interpolation with OpenCV's `INTER_LINEAR` sampling (pixel centres aligned), which is how the
//! HPatches reference patches were reduced.

use std::path::Path;

use anyhow::{bail, Context, Result};
use desdis_data::hpatches::{read_strip, Resize};
use desdis_data::phototour::{self, CachePolicy};
use desdis_data::resize::{downsample_area_2x, resize_bilinear_f32, resize_bilinear_u8};
use desdis_data::{PATCH_LEN, PATCH_SIDE};

/// Reads the patches of `path` as `N * 1024` floats in 0..1.
pub fn read_patches(path: &Path) -> Result<Vec<f32>> {
    let patches = if path.is_dir() {
        let tour = phototour::load(path, &CachePolicy::Off)
            .with_context(|| format!("{}: cannot read as a PhotoTour folder", path.display()))?;
        to_unit(&tour.set.patches)
    } else {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("npy") => read_npy(path)?,
            Some("png") => {
                let strip = read_strip(path)?;
                to_unit(&strip.to_32(Resize::Bilinear))
            }
            _ => bail!(
                "{}: unsupported input (expected a .npy, an HPatches strip .png or a PhotoTour folder)",
                path.display()
            ),
        }
    };
    if patches.is_empty() {
        bail!("{}: contains no patches", path.display());
    }
    Ok(patches)
}

fn to_unit(bytes: &[u8]) -> Vec<f32> {
    bytes.iter().map(|&b| f32::from(b) / 255.0).collect()
}

/// A `.npy` of shape `(N, H, W)` or `(N, 1, H, W)`: uint8 (0..255) or float32 (0..1).
fn read_npy(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let npy = npyz::NpyFile::new(&bytes[..])
        .with_context(|| format!("{}: not a valid .npy file", path.display()))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let (n, h, w) = match shape[..] {
        [n, h, w] | [n, 1, h, w] => (n, h, w),
        _ => bail!("{}: patches must have shape (N,H,W) or (N,1,H,W), found {shape:?}", path.display()),
    };
    if n == 0 || h == 0 || w == 0 {
        bail!("{}: contains no patches (shape {shape:?})", path.display());
    }
    let fortran = npy.order() == npyz::Order::Fortran;
    let descr = npy.dtype().descr().replace(['\'', '"'], "");
    let values: Vec<f32> = match descr.as_str() {
        "|u1" => {
            let raw: Vec<u8> = npy.into_vec()?;
            let raw = if fortran { to_c_order(&raw, &shape) } else { raw };
            return Ok(resize_u8(&raw, n, h, w));
        }
        "<f4" => npy.into_vec()?,
        other => {
            bail!("{}: dtype {other} is not supported (use uint8 0..255 or float32 0..1)", path.display())
        }
    };
    let values = if fortran { to_c_order(&values, &shape) } else { values };
    if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
        bail!("{}: value {bad} is not finite", path.display());
    }
    // Float patches are 0..1 by convention; 0..255 floats would silently give wrong descriptors
    // for nets that normalise by a fixed range, so they are refused rather than guessed.
    if values.iter().any(|&v| !(-0.01..=1.01).contains(&v)) {
        bail!(
            "{}: float32 patches must be in 0..1 (found values outside); divide by 255 or pass uint8",
            path.display()
        );
    }
    Ok(resize_f32(&values, n, h, w))
}

/// Reorders a column-major array of `shape` into row-major order.
fn to_c_order<T: Copy + Default>(values: &[T], shape: &[usize]) -> Vec<T> {
    let mut out = vec![T::default(); values.len()];
    let mut index = vec![0usize; shape.len()];
    for value in values {
        // Column-major: the first axis varies fastest.
        let flat = index.iter().zip(shape).fold(0, |acc, (&i, &d)| acc * d + i);
        out[flat] = *value;
        for (i, &d) in index.iter_mut().zip(shape) {
            *i += 1;
            if *i < d {
                break;
            }
            *i = 0;
        }
    }
    out
}

fn resize_u8(raw: &[u8], n: usize, h: usize, w: usize) -> Vec<f32> {
    if (h, w) == (PATCH_SIDE, PATCH_SIDE) {
        return to_unit(raw);
    }
    let mut out = Vec::with_capacity(n * PATCH_LEN);
    for patch in raw.chunks(h * w) {
        if (h, w) == (2 * PATCH_SIDE, 2 * PATCH_SIDE) {
            let mut small = vec![0u8; PATCH_LEN];
            downsample_area_2x(patch, h, &mut small);
            out.extend(to_unit(&small));
        } else {
            out.extend(to_unit(&resize_bilinear_u8(patch, w, h, PATCH_SIDE, PATCH_SIDE)));
        }
    }
    out
}

fn resize_f32(values: &[f32], n: usize, h: usize, w: usize) -> Vec<f32> {
    if (h, w) == (PATCH_SIDE, PATCH_SIDE) {
        return values.to_vec();
    }
    let mut out = Vec::with_capacity(n * PATCH_LEN);
    for patch in values.chunks(h * w) {
        if (h, w) == (2 * PATCH_SIDE, 2 * PATCH_SIDE) {
            out.extend(area_2x_f32(patch));
        } else {
            out.extend(resize_bilinear_f32(patch, w, h, PATCH_SIDE, PATCH_SIDE));
        }
    }
    out
}

fn area_2x_f32(patch: &[f32]) -> Vec<f32> {
    let side = 2 * PATCH_SIDE;
    (0..PATCH_LEN)
        .map(|i| {
            let (y, x) = (2 * (i / PATCH_SIDE), 2 * (i % PATCH_SIDE));
            (patch[y * side + x]
                + patch[y * side + x + 1]
                + patch[(y + 1) * side + x]
                + patch[(y + 1) * side + x + 1])
                / 4.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_order_is_transposed() {
        // A 2x3 array [[0,1,2],[3,4,5]] stored column-major is 0,3,1,4,2,5.
        assert_eq!(to_c_order(&[0, 3, 1, 4, 2, 5], &[2, 3]), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn area_of_constant_patch_is_constant() {
        assert!(area_2x_f32(&vec![0.25; 4 * PATCH_LEN]).iter().all(|&v| v == 0.25));
    }
}
