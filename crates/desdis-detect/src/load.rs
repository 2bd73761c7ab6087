//! Reading an image file into a gray [`Plane`]: JPEG, PNG (8 or 16 bit), BMP, PNM; gray, colour
//! or with alpha; EXIF orientation applied; optionally downscaled so its longer side fits.

use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, ImageBuffer, ImageDecoder, ImageReader, Luma};

use crate::error::{Error, Result};
use crate::plane::Plane;

/// Largest side accepted by default: the header is checked before any pixel is allocated, so a
/// hostile header cannot make the decoder reserve gigabytes.
pub const MAX_SIDE: u32 = 16384;

/// Bytes the decoder may allocate at most (a 16384x16384 RGBA image at 8 bits is 1 GiB).
const MAX_ALLOC: u64 = 1 << 30;

/// A loaded image, gray in 0..1, maybe downscaled, with the size of the file's image.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// The pixels the detector sees.
    pub plane: Plane,
    /// (width, height) of the image as stored (after EXIF orientation), before any downscaling.
    pub original_size: [u32; 2],
}

impl LoadedImage {
    /// A plane given directly (already gray, values 0..1): nothing was downscaled.
    pub fn from_plane(plane: Plane) -> Result<Self> {
        if plane.data.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite);
        }
        let original_size = [plane.width as u32, plane.height as u32];
        Ok(LoadedImage { plane, original_size })
    }

    /// Factors (x, y) from original pixels to the plane's pixels.
    pub fn scale_factors(&self) -> [f32; 2] {
        [
            self.plane.width as f32 / self.original_size[0] as f32,
            self.plane.height as f32 / self.original_size[1] as f32,
        ]
    }
}

/// Reads `path`; when `max_size` is given and the longer side exceeds it, the image is resized
/// (triangle filter, which widens with the scale factor and so does not alias) to fit.
pub fn load_image(path: &Path, max_size: Option<u32>) -> Result<LoadedImage> {
    let image = decode(path)?;
    let (width, height) = (image.width(), image.height());
    if width == 0 || height == 0 {
        return Err(Error::Empty { path: path.to_path_buf(), width, height });
    }
    let gray = to_gray(&image);
    drop(image);
    let gray = match max_size {
        Some(limit) if width.max(height) > limit.max(1) => {
            let f = limit.max(1) as f64 / width.max(height) as f64;
            let (w, h) =
                (((width as f64 * f).round() as u32).max(1), ((height as f64 * f).round() as u32).max(1));
            image::imageops::resize(&gray, w, h, FilterType::Triangle)
        }
        _ => gray,
    };
    let plane = Plane { width: gray.width() as usize, height: gray.height() as usize, data: gray.into_raw() };
    Ok(LoadedImage { plane, original_size: [width, height] })
}

fn decode(path: &Path) -> Result<DynamicImage> {
    let decode_err = |source| Error::Decode { path: path.to_path_buf(), source };
    let mut reader = ImageReader::open(path)
        .map_err(|source| Error::Io { path: path.to_path_buf(), source })?
        .with_guessed_format()
        .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(decode_err)?;
    let (width, height) = decoder.dimensions();
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(Error::TooLarge { path: path.to_path_buf(), width, height, limit: MAX_SIDE });
    }
    // A missing or unreadable EXIF block is no reason to refuse the pixels.
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// Gray in 0..1 with the Rec. 601 weights OpenCV's colour-to-gray conversion uses, so that
/// keypoints match what OpenCV users see; alpha is ignored; 16-bit values keep their precision.
fn to_gray(image: &DynamicImage) -> ImageBuffer<Luma<f32>, Vec<f32>> {
    if !image.color().has_color() {
        return image.to_luma32f();
    }
    let rgb = image.to_rgb32f();
    let (w, h) = rgb.dimensions();
    let data = rgb.pixels().map(|p| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]).collect();
    ImageBuffer::from_raw(w, h, data).expect("one value per pixel")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_bit_png_keeps_its_scale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep.png");
        let img: ImageBuffer<Luma<u16>, Vec<u16>> =
            ImageBuffer::from_fn(8, 4, |x, _| Luma([x as u16 * 8000]));
        img.save(&path).unwrap();
        let loaded = load_image(&path, None).unwrap();
        assert_eq!(loaded.original_size, [8, 4]);
        assert!((loaded.plane.at(7, 0) - 56000.0 / 65535.0).abs() < 1e-6);
    }

    #[test]
    fn colour_uses_opencv_weights_and_max_size_downscales() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("red.png");
        image::RgbImage::from_pixel(40, 20, image::Rgb([255, 0, 0])).save(&path).unwrap();
        let loaded = load_image(&path, Some(10)).unwrap();
        assert_eq!((loaded.plane.width, loaded.plane.height), (10, 5));
        assert_eq!(loaded.original_size, [40, 20]);
        assert!((loaded.plane.at(3, 2) - 0.299).abs() < 1e-3);
    }

    #[test]
    fn garbage_and_empty_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.jpg");
        std::fs::write(&empty, b"").unwrap();
        let msg = load_image(&empty, None).unwrap_err().to_string();
        assert!(msg.contains("empty.jpg"), "{msg}");
        let junk = dir.path().join("junk.png");
        std::fs::write(&junk, b"\x89PNG\r\n\x1a\nnot really").unwrap();
        let msg = load_image(&junk, None).unwrap_err().to_string();
        assert!(msg.contains("junk.png") && msg.contains("decode"), "{msg}");
    }
}
