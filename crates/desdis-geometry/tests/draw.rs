//! The side-by-side match drawing.

use desdis_geometry::draw::{INLIER_COLOR, OUTLIER_COLOR};
use desdis_geometry::{draw_matches, DrawConfig, Error};
use image::{DynamicImage, GrayImage, Luma, Rgb, RgbImage};

fn images() -> (DynamicImage, DynamicImage) {
    let img0 = DynamicImage::ImageLuma8(GrayImage::from_pixel(20, 8, Luma([128])));
    let img1 = DynamicImage::ImageRgb8(RgbImage::from_pixel(12, 16, Rgb([10, 20, 30])));
    (img0, img1)
}

#[test]
fn side_by_side_with_coloured_lines() {
    let (img0, img1) = images();
    let kpts0 = [[2.0f32, 5.0], [3.0, 1.0]];
    let kpts1 = [[3.0f32, 5.0], [4.0, 14.0]];
    let matches = [(0, 0), (1, 1)];
    let cfg = DrawConfig { keypoint_radius: None, ..Default::default() };
    let out = draw_matches(&img0, &img1, &kpts0, &kpts1, &matches, Some(&[true, false]), &cfg).unwrap();
    assert_eq!(out.dimensions(), (20 + 12, 16));
    // The inlier runs horizontally along y = 5 from x = 2 to x = 20 + 3.
    assert_eq!(*out.get_pixel(10, 5), INLIER_COLOR);
    assert_eq!(*out.get_pixel(21, 5), INLIER_COLOR);
    // The outlier ends at (24, 14) in image 1's half.
    assert_eq!(*out.get_pixel(24, 14), OUTLIER_COLOR);
    // Untouched pixels keep the images; image 0's missing rows are black padding.
    assert_eq!(*out.get_pixel(0, 0), Rgb([128, 128, 128]));
    assert_eq!(*out.get_pixel(31, 0), Rgb([10, 20, 30]));
    assert_eq!(*out.get_pixel(15, 12), Rgb([0, 0, 0]));
}

#[test]
fn options_and_default_colours() {
    let (img0, img1) = images();
    let kpts0 = [[10.0f32, 4.0]];
    let kpts1 = [[6.0f32, 12.0]];
    // Without a mask every match is drawn as accepted.
    let out = draw_matches(&img0, &img1, &kpts0, &kpts1, &[(0, 0)], None, &DrawConfig::default()).unwrap();
    assert_eq!(*out.get_pixel(10, 4), INLIER_COLOR);
    // The default circle of radius 2 around the keypoint.
    assert_eq!(*out.get_pixel(12, 4), INLIER_COLOR);
    let hidden = DrawConfig { keypoint_radius: None, draw_outliers: false };
    let out = draw_matches(&img0, &img1, &kpts0, &kpts1, &[(0, 0)], Some(&[false]), &hidden).unwrap();
    assert_eq!(*out.get_pixel(10, 4), Rgb([128, 128, 128]));
}

#[test]
fn far_away_keypoints_are_clipped_not_walked() {
    let (img0, img1) = images();
    let kpts0 = [[-1e7f32, 3.0]];
    let kpts1 = [[1e7f32, 3.0]];
    let out = draw_matches(&img0, &img1, &kpts0, &kpts1, &[(0, 0)], None, &DrawConfig::default()).unwrap();
    assert_eq!(*out.get_pixel(0, 3), INLIER_COLOR);
    assert_eq!(*out.get_pixel(31, 3), INLIER_COLOR);
    // Coordinates beyond any precision: whatever is drawn, it finishes and stays on the canvas.
    let huge = [[-1e30f32, 1e30]];
    let out = draw_matches(&img0, &img1, &huge, &kpts1, &[(0, 0)], None, &DrawConfig::default()).unwrap();
    assert_eq!(out.dimensions(), (32, 16));
}

#[test]
fn invalid_inputs_are_errors() {
    let (img0, img1) = images();
    let k = [[1.0f32, 1.0]];
    let cfg = DrawConfig::default();
    assert!(matches!(
        draw_matches(&img0, &img1, &k, &k, &[(0, 1)], None, &cfg),
        Err(Error::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        draw_matches(&img0, &img1, &k, &k, &[(0, 0)], Some(&[true, true]), &cfg),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        draw_matches(&img0, &img1, &[[f32::NAN, 0.0]], &k, &[], None, &cfg),
        Err(Error::NonFinite { .. })
    ));
}
