//! Reading and writing HPatches patch strips.

use crate::error::{DataError, Result};
use crate::patch::{PatchSet, PATCH_LEN, PATCH_SIDE};
use crate::resize::{downsample_area_2x, resize_bilinear_u8};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Side of an HPatches patch.
pub const STRIP_PATCH_SIDE: usize = 65;
const STRIP_PATCH_LEN: usize = STRIP_PATCH_SIDE * STRIP_PATCH_SIDE;

/// Strip names of a full HPatches sequence, in the canonical order.
pub const STRIP_NAMES: [&str; 16] =
    ["ref", "e1", "e2", "e3", "e4", "e5", "h1", "h2", "h3", "h4", "h5", "t1", "t2", "t3", "t4", "t5"];

/// How 65x65 patches become 32x32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resize {
    /// Bilinear with half-pixel centres, bit-exact with `cv2.resize(p, (32, 32))` (INTER_LINEAR),
    /// as in the published HPatches evaluations.
    #[default]
    Bilinear,
    /// Drop the last row and column, then average 2x2 blocks (the PhotoTour convention).
    CropArea,
}

/// The 65x65 patches of one strip image, row-major, one after the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strip {
    /// `len() * 65 * 65` bytes.
    pub patches: Vec<u8>,
}

impl Strip {
    /// Number of patches.
    pub fn len(&self) -> usize {
        self.patches.len() / STRIP_PATCH_LEN
    }

    /// True when the strip holds no patch.
    pub fn is_empty(&self) -> bool {
        self.patches.is_empty()
    }

    /// Patch `i` (65x65). Panics when `i >= len()`.
    pub fn patch(&self, i: usize) -> &[u8] {
        &self.patches[i * STRIP_PATCH_LEN..(i + 1) * STRIP_PATCH_LEN]
    }

    /// All patches resized to 32x32, in order (`len() * 1024` bytes).
    pub fn to_32(&self, method: Resize) -> Vec<u8> {
        let mut out = vec![0u8; self.len() * PATCH_LEN];
        out.par_chunks_mut(PATCH_LEN).zip(self.patches.par_chunks(STRIP_PATCH_LEN)).for_each(|(dst, src)| {
            resize_patch(src, method, dst);
        });
        out
    }

    /// The strip as a patch set whose point id is the patch index, which is what relates the
    /// patches of the strips of one sequence.
    pub fn to_patch_set(&self, method: Resize) -> PatchSet {
        PatchSet { patches: self.to_32(method), point_ids: (0..self.len() as u32).collect() }
    }
}

fn resize_patch(src: &[u8], method: Resize, dst: &mut [u8]) {
    match method {
        Resize::Bilinear => {
            dst.copy_from_slice(&resize_bilinear_u8(
                src,
                STRIP_PATCH_SIDE,
                STRIP_PATCH_SIDE,
                PATCH_SIDE,
                PATCH_SIDE,
            ));
        }
        Resize::CropArea => {
            let side = STRIP_PATCH_SIDE - 1;
            let cropped: Vec<u8> = (0..side)
                .flat_map(|y| &src[y * STRIP_PATCH_SIDE..y * STRIP_PATCH_SIDE + side])
                .copied()
                .collect();
            downsample_area_2x(&cropped, side, dst);
        }
    }
}

/// Reads a strip image: 65 pixels wide, a multiple of 65 high.
pub fn read_strip(path: &Path) -> Result<Strip> {
    let image = image::open(path).map_err(|e| DataError::image(path, e))?.into_luma8();
    let (w, h) = (image.width() as usize, image.height() as usize);
    if w != STRIP_PATCH_SIDE || h % STRIP_PATCH_SIDE != 0 || h == 0 {
        return Err(DataError::invalid(
            path,
            format!("strip is {w}x{h}; expected {STRIP_PATCH_SIDE} wide and a positive multiple of {STRIP_PATCH_SIDE} high"),
        ));
    }
    // Patches are stacked vertically and the image is row-major, so the bytes already are the
    // patches one after the other.
    Ok(Strip { patches: image.into_raw() })
}

/// Writes 65x65 patches (`n * 65 * 65` bytes) as a strip PNG.
pub fn write_strip(path: &Path, patches: &[u8]) -> Result<()> {
    if patches.is_empty() || !patches.len().is_multiple_of(STRIP_PATCH_LEN) {
        return Err(DataError::invalid(
            path,
            format!("{} bytes do not make whole 65x65 patches", patches.len()),
        ));
    }
    let height = (patches.len() / STRIP_PATCH_SIDE) as u32;
    image::save_buffer(path, patches, STRIP_PATCH_SIDE as u32, height, image::ExtendedColorType::L8)
        .map_err(|e| DataError::image(path, e))
}

/// The strips of one HPatches sequence folder.
#[derive(Debug, Clone)]
pub struct HPatchesSequence {
    /// The sequence folder.
    pub dir: PathBuf,
    /// Strips found, by name (`ref`, `e1`, ...); `ref` is always there.
    pub strips: BTreeMap<String, Strip>,
}

impl HPatchesSequence {
    /// Reads every strip of [`STRIP_NAMES`] present in `dir`; `ref.png` is required and all strips
    /// must hold the same number of patches.
    pub fn load(dir: &Path) -> Result<HPatchesSequence> {
        let reference = dir.join("ref.png");
        if !reference.is_file() {
            return Err(DataError::invalid(
                &reference,
                "missing: every HPatches sequence has a ref.png strip",
            ));
        }
        let mut strips = BTreeMap::new();
        for name in STRIP_NAMES {
            let path = dir.join(format!("{name}.png"));
            if path.is_file() {
                strips.insert(name.to_string(), read_strip(&path)?);
            }
        }
        let expected = strips["ref"].len();
        for (name, strip) in &strips {
            if strip.len() != expected {
                let path = dir.join(format!("{name}.png"));
                return Err(DataError::invalid(
                    &path,
                    format!("{} patches, but ref.png has {expected}", strip.len()),
                ));
            }
        }
        Ok(HPatchesSequence { dir: dir.to_path_buf(), strips })
    }

    /// Sequence name (the folder name), e.g. `v_wormhole`.
    pub fn name(&self) -> String {
        self.dir.file_name().unwrap_or_default().to_string_lossy().into_owned()
    }
}
