//! Reading patches for `desdis describe`: `.npy` arrays, HPatches strip PNGs, PhotoTour folders.
//!
//! Everything becomes 32x32 floats in 0..1. Patches of another size are resized: 64x64 by 2x2 area
//! averaging (as the PhotoTour sheets are reduced), 65x65 and any other size by bilinear
//! interpolation with OpenCV's `INTER_LINEAR` sampling (pixel centres aligned), which is how the
//! HPatches reference patches were reduced.

use std::path::Path;

use anyhow::{bail, Context, Result};
use desdis_data::hpatches::{read_strip, Resize};
use desdis_data::npy::{self, NpyData};
use desdis_data::phototour::{self, CachePolicy};
use desdis_data::resize::{patches_to_32_f32, patches_to_32_u8, ResizeError};

/// Reads the patches of `path` as `N * 1024` floats in 0..1.
pub fn read_patches(path: &Path) -> Result<Vec<f32>> {
    let patches = if path.is_dir() {
        let tour = phototour::load(path, &CachePolicy::Off)
            .with_context(|| format!("{}: cannot read as a PhotoTour folder", path.display()))?;
        to_unit(&tour.set.patches)
    } else {
        ensure_regular_file(path)?;
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

/// A FIFO or a device node could be read forever (or block), so only regular files (or links to
/// them) are read as patch files.
fn ensure_regular_file(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if !meta.is_file() {
        bail!("{}: not a regular file", path.display());
    }
    Ok(())
}

fn to_unit(bytes: &[u8]) -> Vec<f32> {
    bytes.iter().map(|&b| f32::from(b) / 255.0).collect()
}

/// A `.npy` of shape `(N, H, W)` or `(N, 1, H, W)`: uint8 (0..255) or float32 (0..1). The header's
/// sizes are checked against the file before anything is allocated (see `desdis_data::npy`).
fn read_npy(path: &Path) -> Result<Vec<f32>> {
    let array = npy::read(path)?;
    let shape = &array.shape;
    let (n, h, w) = match shape[..] {
        [n, h, w] | [n, 1, h, w] => (n, h, w),
        _ => bail!("{}: patches must have shape (N,H,W) or (N,1,H,W), found {shape:?}", path.display()),
    };
    if n == 0 || h == 0 || w == 0 {
        bail!("{}: contains no patches (shape {shape:?})", path.display());
    }
    let resize_err = |e: ResizeError| anyhow::anyhow!("{}: {e}", path.display());
    match array.data {
        NpyData::U8(raw) => {
            let raw = if array.fortran_order { to_c_order(&raw, shape) } else { raw };
            Ok(to_unit(&patches_to_32_u8(&raw, n, h, w).map_err(resize_err)?))
        }
        NpyData::F32(values) => {
            let values = if array.fortran_order { to_c_order(&values, shape) } else { values };
            check_unit_floats(path, &values)?;
            patches_to_32_f32(&values, n, h, w).map_err(resize_err)
        }
    }
}

fn check_unit_floats(path: &Path, values: &[f32]) -> Result<()> {
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
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_order_is_transposed() {
        // A 2x3 array [[0,1,2],[3,4,5]] stored column-major is 0,3,1,4,2,5.
        assert_eq!(to_c_order(&[0, 3, 1, 4, 2, 5], &[2, 3]), vec![0, 1, 2, 3, 4, 5]);
    }
}
