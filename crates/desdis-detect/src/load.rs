//! Reading an image file into a gray [`Plane`]: JPEG, PNG (8 or 16 bit), BMP, PNM; gray, colour
//! or with alpha; EXIF orientation applied; optionally downscaled so its longer side fits.

use std::io::{BufRead, Cursor, Read, Seek};
use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, ImageBuffer, ImageDecoder, ImageFormat, ImageReader, Luma};

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
    let plane = Plane { width: width as usize, height: height as usize, data: gray.into_raw() };
    LoadedImage { plane, original_size: [width, height] }.fit(max_size)
}

impl LoadedImage {
    /// This image resized (triangle filter, which widens with the scale factor and so does not
    /// alias) so that its longer side is at most `max_size`; unchanged when it already fits or
    /// `max_size` is `None`. The original size is kept, so features map back to it. Fails only
    /// for a plane whose buffer does not hold `width * height` values.
    pub fn fit(self, max_size: Option<u32>) -> Result<LoadedImage> {
        let (width, height) = (self.plane.width as u32, self.plane.height as u32);
        let limit = match max_size {
            Some(limit) if width.max(height) > limit.max(1) => limit.max(1),
            _ => return Ok(self),
        };
        let f = limit as f64 / width.max(height) as f64;
        let (w, h) =
            (((width as f64 * f).round() as u32).max(1), ((height as f64 * f).round() as u32).max(1));
        let len = self.plane.data.len();
        let Some(gray) = ImageBuffer::<Luma<f32>, Vec<f32>>::from_raw(width, height, self.plane.data) else {
            return Err(Error::Config(format!("a {width}x{height} plane holds {len} values")));
        };
        let small = image::imageops::resize(&gray, w, h, FilterType::Triangle);
        let plane = Plane { width: w as usize, height: h as usize, data: small.into_raw() };
        Ok(LoadedImage { plane, original_size: self.original_size })
    }
}

fn decode(path: &Path) -> Result<DynamicImage> {
    let io_err = |source| Error::Io { path: path.to_path_buf(), source };
    let reader = ImageReader::open(path).map_err(io_err)?.with_guessed_format().map_err(io_err)?;
    match reader.format() {
        Some(ImageFormat::Png) => {
            // The PNG decoder reads on to the first data chunk before it reports the size, so a
            // header-only file would fail without saying why it is refused: check IHDR first.
            let mut head = [0u8; 24];
            let n = read_prefix(path, &mut head)?;
            if let Some((width, height)) = png_size(&head[..n]) {
                check_size(path, width, height)?;
            }
            decode_with(path, reader)
        }
        Some(ImageFormat::Jpeg) => {
            // The JPEG decoder reads the whole file anyway; it also fills what a truncated file
            // lacks with gray instead of failing, so the file's structure is checked here.
            let bytes = std::fs::read(path).map_err(io_err)?;
            if let Some(what) = jpeg_truncation(&bytes) {
                return Err(Error::Truncated { path: path.to_path_buf(), what });
            }
            decode_with(path, ImageReader::with_format(Cursor::new(bytes), ImageFormat::Jpeg))
        }
        _ => decode_with(path, reader),
    }
}

fn decode_with<R: BufRead + Seek>(path: &Path, mut reader: ImageReader<R>) -> Result<DynamicImage> {
    let decode_err = |source| Error::Decode { path: path.to_path_buf(), source };
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(decode_err)?;
    let (width, height) = decoder.dimensions();
    check_size(path, width, height)?;
    // A missing or unreadable EXIF block is no reason to refuse the pixels.
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    image.apply_orientation(orientation);
    Ok(image)
}

fn check_size(path: &Path, width: u32, height: u32) -> Result<()> {
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(Error::TooLarge { path: path.to_path_buf(), width, height, limit: MAX_SIDE });
    }
    Ok(())
}

/// Reads up to `buf.len()` bytes from the start of `path`; returns how many were read.
fn read_prefix(path: &Path, buf: &mut [u8]) -> Result<usize> {
    let io_err = |source| Error::Io { path: path.to_path_buf(), source };
    let mut file = std::fs::File::open(path).map_err(io_err)?;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    Ok(n)
}

/// (width, height) of a PNG's IHDR, which the format requires to be the first chunk.
fn png_size(head: &[u8]) -> Option<(u32, u32)> {
    if head.len() < 24 || &head[..8] != b"\x89PNG\r\n\x1a\n" || &head[12..16] != b"IHDR" {
        return None;
    }
    let be = |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    Some((be(16), be(20)))
}

/// Why a JPEG file is incomplete, or `None` when its segments run on to the end-of-image marker.
/// Segments are skipped by their lengths (so an EXIF thumbnail's markers are not mistaken for
/// the image's), and entropy-coded data runs to the next marker other than a stuffed `FF 00`
/// or a restart marker; progressive files simply have several scans. Stray bytes between
/// segments and bytes after the end-of-image marker (camera trailers) are allowed.
fn jpeg_truncation(bytes: &[u8]) -> Option<&'static str> {
    if !bytes.starts_with(&[0xff, 0xd8]) {
        // Not a JPEG after all: the decoder reports it.
        return None;
    }
    let mut i = 2;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        while i < bytes.len() && bytes[i] == 0xff && bytes.get(i + 1) == Some(&0xff) {
            i += 1;
        }
        if i + 1 >= bytes.len() {
            return Some("it ends before the end-of-image marker");
        }
        if bytes[i] != 0xff {
            // Stray bytes between segments: decoders skip them (with a warning), so do we.
            i += 1;
            continue;
        }
        let marker = bytes[i + 1];
        match marker {
            0xd9 => return None,
            0x01 | 0xd0..=0xd8 => i += 2,
            _ => {
                let Some(len) =
                    bytes.get(i + 2..i + 4).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                else {
                    return Some("it ends inside a segment header");
                };
                if len < 2 || i + 2 + len > bytes.len() {
                    return Some("it ends inside a segment");
                }
                i += 2 + len;
                if marker == 0xda {
                    // Entropy-coded data: up to the next real marker.
                    loop {
                        if i + 1 >= bytes.len() {
                            return Some("it ends inside the compressed image data");
                        }
                        if bytes[i] == 0xff && !matches!(bytes[i + 1], 0x00 | 0xd0..=0xd7 | 0xff) {
                            break;
                        }
                        i += 1;
                    }
                }
            }
        }
    }
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

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/pipeline");

    #[test]
    fn cmyk_jpeg_has_the_right_polarity_and_colours() {
        // Dark disks (K only) on white, a pure cyan band in the bottom rows; see the script.
        let loaded = load_image(&Path::new(FIXTURES).join("cmyk.jpg"), None).unwrap();
        assert_eq!(loaded.original_size, [64, 48]);
        let p = &loaded.plane;
        assert!(p.at(2, 2) > 0.95, "white background: {}", p.at(2, 2));
        assert!((p.at(12, 10) - (1.0 - 220.0 / 255.0)).abs() < 0.05, "dark disk: {}", p.at(12, 10));
        assert!((p.at(30, 45) - (0.587 + 0.114)).abs() < 0.05, "cyan band: {}", p.at(30, 45));
    }

    #[test]
    fn exif_orientation_is_applied() {
        // Stored 40x20, left half black; orientation 6 turns it 90 degrees clockwise.
        let loaded = load_image(&Path::new(FIXTURES).join("exif_rot6.jpg"), None).unwrap();
        assert_eq!(loaded.original_size, [20, 40]);
        assert_eq!((loaded.plane.width, loaded.plane.height), (20, 40));
        assert!(loaded.plane.at(10, 5) < 0.1 && loaded.plane.at(10, 34) > 0.9);
    }

    fn jpeg_bytes() -> Vec<u8> {
        let img = image::GrayImage::from_fn(64, 48, |x, y| image::Luma([((x * 7 + y * 13) % 256) as u8]));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(&img).unwrap();
        bytes
    }

    #[test]
    fn truncated_jpegs_are_refused_and_trailers_allowed() {
        let bytes = jpeg_bytes();
        assert_eq!(jpeg_truncation(&bytes), None);
        let mut trailer = bytes.clone();
        trailer.extend([0u8; 100]);
        assert_eq!(jpeg_truncation(&trailer), None, "bytes after the end-of-image marker");
        // Two stray bytes after the first segment (the JFIF header) are skipped.
        let jfif_end = 4 + usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
        let mut stray = bytes[..jfif_end].to_vec();
        stray.extend([0x12, 0x34]);
        stray.extend(&bytes[jfif_end..]);
        assert_eq!(jpeg_truncation(&stray), None, "stray bytes between segments");
        for cut in [3, 20, bytes.len() / 2, bytes.len() - 2, bytes.len() - 1] {
            assert!(jpeg_truncation(&bytes[..cut]).is_some(), "cut at {cut} of {}", bytes.len());
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("half.jpg");
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let msg = load_image(&path, None).unwrap_err().to_string();
        assert!(msg.contains("half.jpg") && msg.contains("truncated"), "{msg}");
    }

    #[test]
    fn a_png_header_past_the_limit_is_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wide.png");
        // A real 1x1 PNG with the IHDR's width patched (the decoder would then fail on the CRC).
        let mut bytes = Vec::new();
        image::GrayImage::new(1, 1)
            .write_to(&mut std::io::Cursor::new(&mut bytes), ImageFormat::Png)
            .unwrap();
        bytes[16..20].copy_from_slice(&(MAX_SIDE + 1).to_be_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let msg = load_image(&path, None).unwrap_err().to_string();
        assert!(msg.contains("wide.png") && msg.contains("16385x1") && msg.contains("limit"), "{msg}");
    }
}
