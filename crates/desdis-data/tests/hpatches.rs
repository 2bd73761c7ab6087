//! HPatches strips and splits, on the shared files when present.

use desdis_data::hpatches::{read_strip, write_strip, HPatchesSequence, Resize, Splits};
use desdis_stdx::testing::shared_data;

#[test]
fn reference_strip_slices_into_1123_patches() {
    let Some(path) = shared_data("hpatches-patches/ref.png") else { return };
    let strip = read_strip(&path).unwrap();
    assert_eq!(strip.len(), 1123);
    assert_eq!(strip.patch(0).len(), 65 * 65);
    let set = strip.to_patch_set(Resize::Bilinear);
    assert_eq!(set.point_ids.len(), 1123);
    assert_eq!(set.patches.len(), 1123 * 1024);
}

/// The first 64 patches and their `cv2.resize` (INTER_LINEAR) to 32x32 are stored as fixtures.
#[test]
fn bilinear_resize_matches_opencv_bit_for_bit() {
    let (Some(strip), Some(raw), Some(resized)) = (
        shared_data("hpatches-patches/ref.png"),
        shared_data("reference/hpatches_ref64_u8_65x65.npy"),
        shared_data("reference/hpatches_ref64_f32_32x32_0to255.npy"),
    ) else {
        return;
    };
    let strip = read_strip(&strip).unwrap();
    let raw: Vec<u8> = npyz::NpyFile::new(std::fs::File::open(raw).unwrap()).unwrap().into_vec().unwrap();
    assert_eq!(&strip.patches[..raw.len()], &raw[..], "strip slicing differs from the fixture");
    let want: Vec<f32> =
        npyz::NpyFile::new(std::fs::File::open(resized).unwrap()).unwrap().into_vec().unwrap();
    let got = strip.to_32(Resize::Bilinear);
    let differing = want.iter().zip(&got).filter(|(w, g)| **w != **g as f32).count();
    assert_eq!(differing, 0, "{differing} of {} pixels differ from cv2.resize", want.len());
}

#[test]
fn crop_area_resize_averages_2x2_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut patch = vec![0u8; 65 * 65];
    for y in 0..65 {
        for x in 0..65 {
            patch[y * 65 + x] = ((x / 2) * 4 + (y / 2) * 3 % 256) as u8 + (x % 2) as u8;
        }
    }
    let path = dir.path().join("ref.png");
    write_strip(&path, &patch).unwrap();
    let strip = read_strip(&path).unwrap();
    let small = strip.to_32(Resize::CropArea);
    // Each 2x2 block holds v and v + 1 twice: the mean v + 0.5 rounds up.
    assert_eq!(small[0], 1);
    assert_eq!(small[5 * 32 + 7], (7 * 4 + 5 * 3 + 1) as u8);
}

#[test]
fn strip_of_wrong_shape_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e1.png");
    image::GrayImage::new(64, 130).save(&path).unwrap();
    let err = read_strip(&path).unwrap_err().to_string();
    assert!(err.contains("e1.png") && err.contains("64x130"), "{err}");
    image::GrayImage::new(65, 100).save(&path).unwrap();
    assert!(read_strip(&path).unwrap_err().to_string().contains("multiple of 65"));
}

#[test]
fn sequence_folder_needs_ref_and_equal_lengths() {
    let dir = tempfile::tempdir().unwrap();
    assert!(HPatchesSequence::load(dir.path()).unwrap_err().to_string().contains("ref.png"));
    write_strip(&dir.path().join("ref.png"), &vec![1u8; 2 * 65 * 65]).unwrap();
    write_strip(&dir.path().join("e1.png"), &vec![2u8; 2 * 65 * 65]).unwrap();
    let seq = HPatchesSequence::load(dir.path()).unwrap();
    assert_eq!(seq.strips.keys().collect::<Vec<_>>(), ["e1", "ref"]);
    write_strip(&dir.path().join("h1.png"), &vec![2u8; 65 * 65]).unwrap();
    let err = HPatchesSequence::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("h1.png") && err.contains("1 patches, but ref.png has 2"), "{err}");
}

#[test]
fn official_splits_are_read() {
    let Some(path) = shared_data("hpatches-benchmark/tasks/splits/splits.json") else { return };
    let splits = Splits::load(&path).unwrap();
    assert_eq!(splits.names().collect::<Vec<_>>(), ["a", "b", "c", "full", "illum", "view"]);
    let a = splits.get("a").unwrap();
    assert_eq!((a.train.len(), a.test.len()), (76, 40));
    assert!(a.test.iter().any(|s| s == "v_busstop"));
    let full = splits.get("full").unwrap();
    assert_eq!((full.train.len(), full.test.len()), (0, 116));
    assert_eq!(splits.get("illum").unwrap().test.len() + splits.get("view").unwrap().test.len(), 116);
}

#[test]
fn malformed_splits_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("splits.json");
    std::fs::write(&path, "{\"a\": {\"name\": \"a\"}}").unwrap();
    let err = Splits::load(&path).unwrap_err().to_string();
    assert!(err.contains("splits.json:1:") && err.contains("test"), "{err}");
}
