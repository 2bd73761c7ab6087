//! PhotoTour reader and writer: exact round trip of a generated fixture, the cache, m50 labels,
//! and a clear error for each kind of bad input.

use desdis_data::patch::{Dataset, PatchSet, PATCH_LEN};
use desdis_data::phototour::{self, CachePolicy, Pair, PER_SHEET};
use std::path::Path;

/// 300 patches (one full sheet and a partial one), 3 patches per point, varied content.
fn fixture_set() -> PatchSet {
    let n = 300;
    let patches = (0..n * PATCH_LEN).map(|i| ((i * 31 + i / PATCH_LEN * 7) % 256) as u8).collect();
    let point_ids = (0..n as u32).map(|i| 1000 + i / 3).collect();
    PatchSet::new(patches, point_ids).unwrap()
}

fn write_fixture(dir: &Path) -> PatchSet {
    let set = fixture_set();
    phototour::write(dir, &set).unwrap();
    let pairs = [
        Pair { a: 0, b: 1, is_match: true },
        Pair { a: 0, b: 3, is_match: false },
        Pair { a: 299, b: 298, is_match: true },
    ];
    phototour::write_pairs(&dir.join("m50_3_3_0.txt"), &pairs, &set.point_ids).unwrap();
    set
}

fn error_of(dir: &Path) -> String {
    phototour::load(dir, &CachePolicy::Off).unwrap_err().to_string()
}

#[test]
fn generated_fixture_round_trips_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let set = write_fixture(dir.path());
    assert!(dir.path().join("patches0001.bmp").is_file() && !dir.path().join("patches0002.bmp").exists());
    let loaded = phototour::load(dir.path(), &CachePolicy::Off).unwrap();
    assert_eq!(loaded.set, set);
    assert_eq!(loaded.len(), 300);
    assert_eq!(loaded.patch(299), set.patch(299));
    assert_eq!(loaded.pair_files, vec![dir.path().join("m50_3_3_0.txt")]);
    assert!(loaded.interest.is_none());
}

#[test]
fn m50_labels_follow_point_ids() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let loaded = phototour::load(dir.path(), &CachePolicy::Off).unwrap();
    let pairs = loaded.read_pairs(&loaded.pair_files[0]).unwrap();
    let labels: Vec<bool> = pairs.iter().map(|p| p.is_match).collect();
    assert_eq!(labels, vec![true, false, true]);
    for p in &pairs {
        assert_eq!(p.is_match, loaded.point_id(p.a as usize) == loaded.point_id(p.b as usize));
    }
}

#[test]
fn cache_is_written_reused_and_invalidated() {
    let dir = tempfile::tempdir().unwrap();
    let set = write_fixture(dir.path());
    let cache = dir.path().join(phototour::CACHE_FILE_NAME);
    assert_eq!(phototour::load(dir.path(), &CachePolicy::NextToData).unwrap().set, set);
    assert!(cache.is_file());
    // A second load leaves the current cache alone.
    let before = std::fs::metadata(&cache).unwrap().modified().unwrap();
    assert_eq!(phototour::load(dir.path(), &CachePolicy::NextToData).unwrap().set, set);
    assert_eq!(std::fs::metadata(&cache).unwrap().modified().unwrap(), before);
    // Changing info.txt (size changes) invalidates the cache.
    let mut changed = set.clone();
    changed.point_ids[0] = 123_456;
    phototour::write_info(&dir.path().join("info.txt"), &changed.point_ids).unwrap();
    assert_eq!(phototour::load(dir.path(), &CachePolicy::NextToData).unwrap().set, changed);
    // A separate cache folder works too.
    let elsewhere = tempfile::tempdir().unwrap();
    let policy = CachePolicy::In(elsewhere.path().to_path_buf());
    assert_eq!(phototour::load(dir.path(), &policy).unwrap().set, changed);
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 1);
}

#[test]
fn cache_is_really_read_when_current() {
    let dir = tempfile::tempdir().unwrap();
    let set = write_fixture(dir.path());
    phototour::load(dir.path(), &CachePolicy::NextToData).unwrap();
    // Replace a sheet's content with same-size garbage, restoring its modification time: a load
    // from the cache does not notice, proving the sheets were not decoded again.
    let sheet = dir.path().join("patches0000.bmp");
    let meta = std::fs::metadata(&sheet).unwrap();
    let garbage = vec![0u8; meta.len() as usize];
    std::fs::write(&sheet, garbage).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&sheet)
        .unwrap()
        .set_modified(meta.modified().unwrap())
        .unwrap();
    assert_eq!(phototour::load(dir.path(), &CachePolicy::NextToData).unwrap().set, set);
    assert!(error_of(dir.path()).contains("patches0000.bmp"));
}

#[test]
fn interest_file_is_read_when_present() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let rows: String = (0..300).map(|i| format!("{} {}.5 {} 0.25 1.5\n", i % 4, i, i * 2)).collect();
    std::fs::write(dir.path().join("interest.txt"), rows).unwrap();
    let loaded = phototour::load(dir.path(), &CachePolicy::Off).unwrap();
    let interest = loaded.interest.unwrap();
    assert_eq!(interest.len(), 300);
    assert_eq!((interest[3].image_id, interest[3].x, interest[3].y, interest[3].scale), (3, 3.5, 6.0, 1.5));
    std::fs::write(dir.path().join("interest.txt"), "0 1 2 3 4\n").unwrap();
    assert!(error_of(dir.path()).contains("1 rows, but info.txt lists 300 patches"));
}

#[test]
fn missing_sheet_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    std::fs::remove_file(dir.path().join("patches0000.bmp")).unwrap();
    let err = error_of(dir.path());
    assert!(err.contains("patches0000.bmp") && err.contains("missing sheet"), "{err}");
}

#[test]
fn sheet_of_wrong_size_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    image::GrayImage::new(512, 1024).save(dir.path().join("patches0001.bmp")).unwrap();
    let err = error_of(dir.path());
    assert!(err.contains("patches0001.bmp") && err.contains("512x1024, expected 1024x1024"), "{err}");
}

#[test]
fn info_longer_than_the_patches_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    phototour::write_info(&dir.path().join("info.txt"), &vec![1; 2 * PER_SHEET + 1]).unwrap();
    let err = error_of(dir.path());
    assert!(
        err.contains("info.txt") && err.contains("need 3 sheets") && err.contains("patches0002.bmp"),
        "{err}"
    );
}

#[test]
fn info_shorter_than_the_patches_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    phototour::write_info(&dir.path().join("info.txt"), &[1; 100]).unwrap();
    let err = error_of(dir.path());
    assert!(
        err.contains("info.txt") && err.contains("only 100 patches") && err.contains("2 sheets"),
        "{err}"
    );
}

#[test]
fn malformed_info_line_is_located() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let info = dir.path().join("info.txt");
    let text = std::fs::read_to_string(&info).unwrap().replacen("1000 0\n1000 0\n", "1000 0\nabc 0\n", 1);
    std::fs::write(&info, text).unwrap();
    let err = error_of(dir.path());
    assert!(err.contains("info.txt:2:") && err.contains("`abc`"), "{err}");
}

#[test]
fn m50_out_of_range_and_malformed_lines_are_located() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let loaded = phototour::load(dir.path(), &CachePolicy::Off).unwrap();
    let m50 = dir.path().join("m50_bad.txt");
    std::fs::write(&m50, "0 1000 0 1 1000 0\n5 1001 0 300 1100 0\n").unwrap();
    let err = loaded.read_pairs(&m50).unwrap_err().to_string();
    assert!(err.contains("m50_bad.txt:2:") && err.contains("patch index 300 out of range"), "{err}");
    std::fs::write(&m50, "0 1000 0 1 1000\n").unwrap();
    let err = loaded.read_pairs(&m50).unwrap_err().to_string();
    assert!(err.contains("m50_bad.txt:1:") && err.contains("expected 6 fields"), "{err}");
    std::fs::write(&m50, "0 1000 0 x 1000 0\n").unwrap();
    assert!(loaded.read_pairs(&m50).unwrap_err().to_string().contains("patch2 `x`"));
    std::fs::write(&m50, "0 1000 0 1 1000 0\n\n2 1000 0 1 1000 0\n").unwrap();
    assert!(loaded.read_pairs(&m50).unwrap_err().to_string().contains("m50_bad.txt:2: empty line"));
}
