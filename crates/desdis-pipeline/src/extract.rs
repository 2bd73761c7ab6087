//! One image to its features: detect keypoints, cut their patches, describe them with the net,
//! and express everything in the pixels of the original image.

use std::path::Path;

use desdis_detect::{detect_and_cut, load_image, DetectConfig, Keypoint, LoadedImage};
use desdis_eval::describe_f32;
use desdis_h5::ImageFeatures;
use desdis_models::nets::Net;

use crate::error::{Error, Result};

/// Side of the patches every descriptor net reads.
const NET_PATCH_SIDE: usize = 32;

/// Detects and describes keypoints with one net and one detector setting.
#[derive(Debug)]
pub struct Extractor {
    net: Net,
    detect: DetectConfig,
    batch: usize,
}

impl Extractor {
    /// An extractor running `net` on the patches of `detect`'s keypoints, `batch` at a time.
    pub fn new(net: Net, detect: DetectConfig, batch: usize) -> Result<Self> {
        detect.validate()?;
        check_patch_size(&detect)?;
        if batch == 0 {
            return Err(Error::Invalid("the batch size must be at least 1".into()));
        }
        Ok(Extractor { net, detect, batch })
    }

    /// The net.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// The detector settings.
    pub fn detect_config(&self) -> &DetectConfig {
        &self.detect
    }

    /// Features of the image file at `path`, downscaled first when its longer side exceeds
    /// `max_size`; coordinates are in the pixels of the file's image either way.
    pub fn extract_file(&self, path: &Path, max_size: Option<u32>) -> Result<ImageFeatures> {
        let image = load_image(path, max_size)?;
        self.extract(&image).map_err(|e| match e {
            Error::NonFinite(_) => Error::NonFinite(path.display().to_string()),
            other => other,
        })
    }

    /// Features of a loaded image.
    pub fn extract(&self, image: &LoadedImage) -> Result<ImageFeatures> {
        self.extract_with(image, &self.detect)
    }

    /// Features of a loaded image with other detector settings than the extractor's (the net
    /// reads 32x32 patches: `detect.patch_size` must be 32).
    pub fn extract_with(&self, image: &LoadedImage, detect: &DetectConfig) -> Result<ImageFeatures> {
        check_patch_size(detect)?;
        let (keypoints, patches) = detect_and_cut(&image.plane, detect)?;
        let dim = self.net.arch().descriptor_size();
        let descriptors = if keypoints.is_empty() {
            Vec::new()
        } else {
            describe_f32(&self.net, &patches, self.batch, self.net.device(), |_| ())?
        };
        if descriptors.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite("image".into()));
        }
        Ok(to_original(&keypoints, descriptors, dim, image))
    }
}

fn check_patch_size(detect: &DetectConfig) -> Result<()> {
    if detect.patch_size != NET_PATCH_SIDE {
        return Err(Error::Invalid(format!(
            "patch_size {} must be {NET_PATCH_SIDE}: the nets read {NET_PATCH_SIDE}x{NET_PATCH_SIDE} patches",
            detect.patch_size
        )));
    }
    Ok(())
}

/// Keypoints from the (maybe downscaled) plane to the original image, as a resize maps pixel
/// centres: `x_orig + 0.5 = (x + 0.5) / factor`.
fn to_original(
    keypoints: &[Keypoint],
    descriptors: Vec<f32>,
    dim: usize,
    image: &LoadedImage,
) -> ImageFeatures {
    let [fx, fy] = image.scale_factors();
    let scale_factor = (fx * fy).sqrt();
    ImageFeatures {
        keypoints: keypoints.iter().map(|k| [(k.x + 0.5) / fx - 0.5, (k.y + 0.5) / fy - 0.5]).collect(),
        scales: keypoints.iter().map(|k| k.scale / scale_factor).collect(),
        oris: keypoints.iter().map(|k| k.ori).collect(),
        scores: keypoints.iter().map(|k| k.score).collect(),
        descriptors,
        dim,
        image_size: image.original_size,
    }
}
