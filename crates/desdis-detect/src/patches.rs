//! Patches cut around keypoints, anti-aliased: sampled from the level of a 2x2-mean pyramid
//! whose pixels are nearest in size to the patch's (within a factor of 1.41 either way), then
//! averaged over `n x n` bilinear sub-samples per patch pixel when the patch's pixels are more
//! than 1.42 times the level's. The training patches are cut by supersampling too, so the net
//! sees the same kind of image; the nearest level (instead of the finer one) needs a quarter of
//! the samples and measured the same (docs/pipeline.md).

use rayon::prelude::*;

use crate::plane::Plane;
use crate::Keypoint;

/// Sub-samples per patch pixel and axis at most.
const MAX_SUBSAMPLES: usize = 4;

/// How much wider than a level pixel a patch pixel may be before it is supersampled.
const SUBSAMPLE_SLACK: f32 = 0.42;

/// The image at full, half, quarter ... resolution (2x2 means).
#[derive(Debug, Clone)]
pub struct PatchPyramid {
    levels: Vec<Plane>,
}

impl PatchPyramid {
    /// Levels down to a few pixels.
    pub fn new(image: &Plane) -> Self {
        let mut levels = vec![image.clone()];
        while levels.len() < 16 {
            let last = &levels[levels.len() - 1];
            if last.width.min(last.height) < 8 {
                break;
            }
            let next = last.halve();
            levels.push(next);
        }
        PatchPyramid { levels }
    }
}

/// Patches of `size x size` values (0..1), keypoint after keypoint, each spanning
/// `2 * magnification * scale` input pixels, its x axis along the keypoint's orientation.
pub fn cut_patches(
    pyramid: &PatchPyramid,
    keypoints: &[Keypoint],
    magnification: f32,
    size: usize,
) -> Vec<f32> {
    let mut out = vec![0.0f32; keypoints.len() * size * size];
    if size == 0 {
        return out;
    }
    out.par_chunks_mut(size * size)
        .zip(keypoints.par_iter())
        .for_each(|(patch, kp)| cut_one(pyramid, kp, magnification, size, patch));
    out
}

#[inline(never)]
fn cut_one(pyramid: &PatchPyramid, kp: &Keypoint, magnification: f32, size: usize, patch: &mut [f32]) {
    let half = magnification * kp.scale;
    let step = 2.0 * half / size as f32;
    let level = (step.max(1.0).log2().round() as usize).min(pyramid.levels.len() - 1);
    // Patch pixels up to 1.42 level pixels wide: one bilinear sample each (the level's own
    // 2x2 means already filter at that size).
    let image = &pyramid.levels[level];
    let f = (1u32 << level) as f32;
    // Level pixel i covers input pixels i*f .. (i+1)*f - 1: its centre is at i*f + (f-1)/2.
    let to_level = |v: f32| (v - (f - 1.0) / 2.0) / f;
    let (cx, cy) = (to_level(kp.x), to_level(kp.y));
    let n = ((step / f - SUBSAMPLE_SLACK).ceil() as usize).clamp(1, MAX_SUBSAMPLES);
    let (sin, cos) = kp.ori.to_radians().sin_cos();
    let (a, b) = (half / f * cos, half / f * sin);
    let inv = 1.0 / (size * n) as f32;
    // Most patches lie well inside the image: sample those without the edge clamps.
    let reach = a.abs() + b.abs() + 1.0;
    let inside = cx - reach >= 0.0
        && cy - reach >= 0.0
        && cx + reach <= (image.width - 2) as f32
        && cy + reach <= (image.height - 2) as f32;
    let sample = |x: f32, y: f32| if inside { image.sample_inside(x, y) } else { image.sample(x, y) };
    for row in 0..size {
        for col in 0..size {
            let mut acc = 0.0;
            for sy in 0..n {
                // Unit coordinates of the sub-sample; the patch's pixel centres span (-1, 1).
                let v = (row * n + sy) as f32 * 2.0 * inv + inv - 1.0;
                for sx in 0..n {
                    let u = (col * n + sx) as f32 * 2.0 * inv + inv - 1.0;
                    acc += sample(cx + a * u - b * v, cy + b * u + a * v);
                }
            }
            patch[row * size + col] = acc / (n * n) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient_image() -> Plane {
        let mut p = Plane::zeros(64, 64);
        for y in 0..64 {
            for x in 0..64 {
                p.data[y * 64 + x] = x as f32 / 63.0;
            }
        }
        p
    }

    #[test]
    fn upright_patch_follows_the_image_and_rotation_turns_it() {
        let pyr = PatchPyramid::new(&gradient_image());
        let kp = Keypoint { x: 32.0, y: 32.0, scale: 1.0, ori: 0.0, score: 1.0 };
        // Side 2 * 8 * 1 = 16 input pixels over 16 patch pixels: one input pixel each.
        let p = cut_patches(&pyr, &[kp], 8.0, 16);
        assert!(p[8] > p[7], "increases along x");
        let expect = (32.0 - 8.0 + 0.5) / 63.0;
        assert!((p[0] - expect).abs() < 1e-4, "{} vs {expect}", p[0]);
        // Rotated by 90 degrees the patch's x axis runs down the image: constant along it.
        let turned = Keypoint { ori: 90.0, ..kp };
        let q = cut_patches(&pyr, &[turned], 8.0, 16);
        assert!((q[0] - q[15]).abs() < 1e-5);
        assert!(q[15 * 16] < q[0], "patch rows run along -x of the image");
    }

    #[test]
    fn large_patches_come_from_coarser_levels_without_shifting() {
        let pyr = PatchPyramid::new(&gradient_image());
        let kp = Keypoint { x: 31.5, y: 31.5, scale: 4.0, ori: 0.0, score: 1.0 };
        // Side 32 input pixels over 8 patch pixels: level 2, centre kept at the image centre.
        let p = cut_patches(&pyr, &[kp], 4.0, 8);
        let mean: f32 = p.iter().sum::<f32>() / 64.0;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
    }
}
