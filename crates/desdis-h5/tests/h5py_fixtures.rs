//! Files written by h5py the way hloc writes them (`fixtures/make_fixtures.py`, whose values are
//! asserted here), and damaged copies of them.

use std::path::{Path, PathBuf};

use desdis_h5::{feature_names, read_features, read_matches, Error};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

#[test]
fn reads_hloc_features_written_by_h5py() {
    let features = read_features(&fixture("hloc_features.h5")).unwrap();
    let names: Vec<_> = features.keys().cloned().collect();
    assert_eq!(names, ["a.jpg", "empty.png", "seq/1.png"]);

    let a = &features["a.jpg"];
    assert_eq!(a.keypoints, vec![[1.5, 2.25], [10.0, 20.0], [0.0, 0.0]]);
    assert_eq!(a.dim, 4);
    // Stored (D, N); keypoint 1's descriptor is the file's column 1.
    assert_eq!(a.descriptor(0).unwrap(), [0.5, 0.5, 0.5, 0.5]);
    assert_eq!(a.descriptor(1).unwrap(), [0.0, 0.6, 0.8, 0.0]);
    assert_eq!(a.descriptor(2).unwrap(), [1.0, 0.0, 0.0, 0.0]);
    assert_eq!(a.scores, vec![0.9, 0.5, 0.25]);
    assert_eq!(a.scales, vec![1.6, 3.2, 2.0]);
    assert_eq!(a.oris, vec![0.0, 90.0, -45.0]);
    assert_eq!(a.image_size, [640, 480]);

    // float16 everywhere, no scales/oris: the documented defaults.
    let b = &features["seq/1.png"];
    assert_eq!(b.keypoints, vec![[3.0, 4.0], [5.5, 6.5]]);
    assert_eq!(b.dim, 2);
    assert_eq!(b.descriptors, vec![1.0, 0.0, 0.0, -1.0]);
    assert_eq!(b.scores, vec![0.125, 0.75]);
    assert_eq!(b.scales, vec![1.0, 1.0]);
    assert_eq!(b.oris, vec![0.0, 0.0]);
    assert_eq!(b.image_size, [320, 240]);

    let c = &features["empty.png"];
    assert!(c.is_empty());
    assert_eq!((c.dim, c.descriptors.len(), c.image_size), (4, 0, [100, 50]));
}

#[test]
fn lists_names_without_reading_data() {
    let names = feature_names(&fixture("hloc_features.h5")).unwrap();
    assert_eq!(names, ["a.jpg", "empty.png", "seq/1.png"]);
}

#[test]
fn reads_hloc_matches_written_by_h5py() {
    let matches = read_matches(&fixture("hloc_matches.h5")).unwrap();
    let keys: Vec<_> = matches.keys().cloned().collect();
    let key = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(keys, [key("a.jpg", "seq-1.png"), key("seq-1.png", "empty.png")]);
    let m = &matches[&key("a.jpg", "seq-1.png")];
    assert_eq!(m.matches0, vec![1, -1, 0]);
    assert_eq!(m.scores0, vec![0.5, 0.0, 0.25]);
    assert_eq!(m.pairs(), vec![(0, 1), (2, 0)]);
    assert_eq!(matches[&key("seq-1.png", "empty.png")].matches0, vec![-1, -1]);
}

/// Writes `bytes` into a temporary file and returns it with its folder.
fn temp_file(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.h5");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = std::fs::read(fixture("hloc_features.h5")).unwrap();
    for len in (0..bytes.len()).step_by(97).chain([bytes.len() - 1]) {
        let (_dir, path) = temp_file(&bytes[..len]);
        let result = read_features(&path);
        assert!(result.is_err(), "truncated to {len} bytes read as {result:?}");
        let message = result.unwrap_err().to_string();
        assert!(message.contains("damaged.h5"), "{message}");
    }
    let matches = std::fs::read(fixture("hloc_matches.h5")).unwrap();
    for len in (0..matches.len()).step_by(61) {
        let (_dir, path) = temp_file(&matches[..len]);
        assert!(read_matches(&path).is_err(), "matches truncated to {len}");
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    // Flip one byte at a time across the file: any outcome but a panic is acceptable (a flip in
    // raw data reads as different values), and an error must name the file.
    let bytes = std::fs::read(fixture("hloc_features.h5")).unwrap();
    for pos in (0..bytes.len()).step_by(13) {
        let mut damaged = bytes.clone();
        damaged[pos] ^= 0xff;
        let (_dir, path) = temp_file(&damaged);
        if let Err(e) = read_features(&path) {
            assert!(e.to_string().contains("damaged.h5"), "{e}");
        }
    }
}

#[test]
fn missing_file_names_the_file() {
    let err = read_features(Path::new("/nonexistent/features.h5")).unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/features.h5"), "{err}");
}
