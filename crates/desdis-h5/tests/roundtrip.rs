//! Writing and reading back, the errors a reader of foreign files must give, and the COLMAP
//! export.

use std::collections::BTreeMap;
use std::path::Path;

use desdis_h5::{
    export_colmap, read_features, read_matches, write_features, write_matches, Error, ImageFeatures,
    PairMatches,
};
use hdf5_pure::FileBuilder;

fn image(n: usize, dim: usize, seed: f32) -> ImageFeatures {
    let f = |i: usize| seed + i as f32;
    ImageFeatures {
        keypoints: (0..n).map(|i| [f(i) * 1.5, f(i) * 0.25]).collect(),
        scales: (0..n).map(|i| 1.0 + f(i)).collect(),
        oris: (0..n).map(|i| f(i) * 10.0 - 90.0).collect(),
        scores: (0..n).map(|i| 1.0 / (1.0 + f(i))).collect(),
        descriptors: (0..n * dim).map(|i| (i as f32 * 0.37 + seed).sin()).collect(),
        dim,
        image_size: [640 + n as u32, 480],
    }
}

/// What the Python check (`fixtures/check_written.py`) expects in our written files.
pub fn sample_features() -> BTreeMap<String, ImageFeatures> {
    BTreeMap::from([
        ("a.jpg".to_string(), image(3, 8, 0.0)),
        ("seq/1.png".to_string(), image(2, 8, 1.0)),
        ("seq/deep/2.png".to_string(), image(1, 8, 2.0)),
        ("empty.png".to_string(), image(0, 8, 3.0)),
    ])
}

#[test]
fn features_round_trip_with_nested_names_and_no_keypoints() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("features.h5");
    let features = sample_features();
    write_features(&path, &features).unwrap();
    assert_eq!(read_features(&path).unwrap(), features);
    assert_eq!(
        desdis_h5::feature_names(&path).unwrap(),
        ["a.jpg", "empty.png", "seq/1.png", "seq/deep/2.png"]
    );
    // Only the target is left in the folder.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn matches_round_trip_keyed_like_hloc() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("matches.h5");
    let m = PairMatches { matches0: vec![40000, -1, 0], scores0: vec![0.5, 0.0, 0.25] };
    let e = PairMatches { matches0: vec![], scores0: vec![] };
    write_matches(
        &path,
        &[("seq/1.png".into(), "a.jpg".into(), m.clone()), ("a.jpg".into(), "empty.png".into(), e.clone())],
    )
    .unwrap();
    let read = read_matches(&path).unwrap();
    assert_eq!(read.len(), 2);
    // int32 on disk: an index past int16's range survives.
    assert_eq!(read[&("seq-1.png".to_string(), "a.jpg".to_string())], m);
    assert_eq!(read[&("a.jpg".to_string(), "empty.png".to_string())], e);
}

#[test]
fn writers_refuse_inconsistent_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.h5");
    let mut bad = image(2, 4, 0.0);
    bad.scales.pop();
    let err = write_features(&path, &BTreeMap::from([("x.png".to_string(), bad)])).unwrap_err();
    assert!(err.to_string().contains("scales"), "{err}");
    for name in ["", "/abs.png", "a//b.png", "a/./b.png", "a/../b.png"] {
        let map = BTreeMap::from([(name.to_string(), image(1, 4, 0.0))]);
        assert!(write_features(&path, &map).is_err(), "name {name:?}");
    }
    let clash = BTreeMap::from([
        ("a.png".to_string(), image(1, 4, 0.0)),
        ("a.png/keypoints".to_string(), image(1, 4, 0.0)),
    ]);
    assert!(write_features(&path, &clash).is_err());
    let pair = PairMatches { matches0: vec![0, -2], scores0: vec![0.0, 0.0] };
    assert!(write_matches(&path, &[("a".into(), "b".into(), pair)]).is_err());
    let ok = PairMatches { matches0: vec![0], scores0: vec![0.0] };
    let twice = [("a/b".into(), "c".into(), ok.clone()), ("a-b".into(), "c".into(), ok)];
    assert!(write_matches(&path, &twice).is_err(), "both map to key a-b/c");
    assert!(!path.exists(), "nothing written on refusal");
}

/// Builds a features file with hdf5-pure directly, to get layouts our writer never produces.
fn foreign_file(dir: &Path, build: impl FnOnce(&mut FileBuilder)) -> std::path::PathBuf {
    let mut builder = FileBuilder::new();
    build(&mut builder);
    let path = dir.join("foreign.h5");
    std::fs::write(&path, builder.finish().unwrap()).unwrap();
    path
}

fn expect_bad(path: &Path, dataset: &str) -> Error {
    let err = read_features(path).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("foreign.h5"), "{message}");
    assert!(message.contains(dataset), "{message}");
    assert!(message.contains("img.png"), "{message}");
    err
}

#[test]
fn missing_descriptors_names_file_group_and_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let path = foreign_file(dir.path(), |b| {
        let mut g = b.create_group("img.png");
        g.create_dataset("keypoints").with_f32_data(&[1.0, 2.0]).with_shape(&[1, 2]);
        g.create_dataset("image_size").with_i64_data(&[4, 4]);
        b.add_group(g.finish());
    });
    let err = expect_bad(&path, "descriptors");
    assert!(matches!(err, Error::MissingDataset { .. }), "{err:?}");
}

#[test]
fn missing_keypoints_beside_descriptors_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = foreign_file(dir.path(), |b| {
        let mut g = b.create_group("img.png");
        g.create_dataset("descriptors").with_f32_data(&[1.0, 2.0]).with_shape(&[2, 1]);
        b.add_group(g.finish());
    });
    let err = expect_bad(&path, "keypoints");
    assert!(matches!(err, Error::MissingDataset { .. }), "{err:?}");
}

#[test]
fn shape_mismatch_and_integer_descriptors_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Descriptors stored (N, D) instead of hloc's (D, N).
    let path = foreign_file(dir.path(), |b| {
        let mut g = b.create_group("img.png");
        g.create_dataset("keypoints").with_f32_data(&[0.0; 6]).with_shape(&[3, 2]);
        g.create_dataset("descriptors").with_f32_data(&[0.0; 12]).with_shape(&[3, 4]);
        g.create_dataset("image_size").with_i64_data(&[4, 4]);
        b.add_group(g.finish());
    });
    assert!(matches!(expect_bad(&path, "descriptors"), Error::BadDataset { .. }));
    let path = foreign_file(dir.path(), |b| {
        let mut g = b.create_group("img.png");
        g.create_dataset("keypoints").with_f32_data(&[0.0; 2]).with_shape(&[1, 2]);
        g.create_dataset("descriptors").with_u8_data(&[1, 2]).with_shape(&[2, 1]);
        g.create_dataset("image_size").with_i64_data(&[4, 4]);
        b.add_group(g.finish());
    });
    let err = expect_bad(&path, "descriptors");
    assert!(err.to_string().contains("floating-point"), "{err}");
    let path = foreign_file(dir.path(), |b| {
        let mut g = b.create_group("img.png");
        g.create_dataset("keypoints").with_f32_data(&[0.0; 2]).with_shape(&[1, 2]);
        g.create_dataset("descriptors").with_f64_data(&[0.5, 0.25]).with_shape(&[2, 1]);
        g.create_dataset("scales").with_f32_data(&[1.0, 2.0]).with_shape(&[2]);
        g.create_dataset("image_size").with_i64_data(&[4, 4]);
        b.add_group(g.finish());
    });
    assert!(matches!(expect_bad(&path, "scales"), Error::BadDataset { .. }));
}

#[test]
fn float64_descriptors_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = foreign_file(dir.path(), |b| {
        let mut g = b.create_group("img.png");
        g.create_dataset("keypoints").with_f64_data(&[1.0, 2.0]).with_shape(&[1, 2]);
        g.create_dataset("descriptors").with_f64_data(&[0.5, 0.25]).with_shape(&[2, 1]);
        g.create_dataset("image_size").with_i32_data(&[4, 3]);
        b.add_group(g.finish());
    });
    let features = read_features(&path).unwrap();
    assert_eq!(features["img.png"].descriptors, vec![0.5, 0.25]);
    assert_eq!(features["img.png"].image_size, [4, 3]);
}

#[test]
fn colmap_export_shifts_half_a_pixel_and_converts_to_radians() {
    let dir = tempfile::tempdir().unwrap();
    let mut features = BTreeMap::new();
    let mut a = image(2, 16, 0.0);
    a.keypoints = vec![[0.0, 0.0], [10.25, 3.5]];
    a.oris = vec![180.0, -90.0];
    a.scales = vec![1.5, 2.0];
    features.insert("a.jpg".to_string(), a);
    features.insert("seq/1.png".to_string(), image(3, 16, 1.0));
    features.insert("none.png".to_string(), image(0, 16, 2.0));
    let pairs = vec![
        ("a.jpg".to_string(), "seq/1.png".to_string(), vec![(0, 2), (1, 0)]),
        ("a.jpg".to_string(), "none.png".to_string(), vec![]),
    ];
    let summary = export_colmap(&features, &pairs, dir.path()).unwrap();
    assert_eq!((summary.images, summary.features, summary.pairs, summary.matches), (3, 5, 1, 2));

    let text = std::fs::read_to_string(dir.path().join("a.jpg.txt")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "2 128");
    let fields: Vec<f64> = lines[1].split(' ').map(|v| v.parse().unwrap()).collect();
    assert_eq!(fields.len(), 4 + 128);
    assert_eq!(&fields[..3], &[0.5, 0.5, 1.5]);
    assert!((fields[3] - std::f64::consts::PI).abs() < 1e-6, "{}", fields[3]);
    assert!(fields[4..].iter().all(|&d| (0.0..=255.0).contains(&d) && d.fract() == 0.0));
    let fields: Vec<f64> = lines[2].split(' ').take(4).map(|v| v.parse().unwrap()).collect();
    assert_eq!(&fields[..3], &[10.75, 4.0, 2.0]);
    assert!((fields[3] + std::f64::consts::FRAC_PI_2).abs() < 1e-6);

    assert!(dir.path().join("seq/1.png.txt").exists(), "folder tree mirrors the names");
    assert_eq!(std::fs::read_to_string(dir.path().join("none.png.txt")).unwrap(), "0 128\n");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("matches.txt")).unwrap(),
        "a.jpg seq/1.png\n0 2\n1 0\n\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("image_list.txt")).unwrap(),
        "a.jpg\nnone.png\nseq/1.png\n"
    );
}

#[test]
fn colmap_export_refuses_what_colmap_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let one = |name: &str, dim: usize| BTreeMap::from([(name.to_string(), image(2, dim, 0.0))]);
    assert!(export_colmap(&one("with space.jpg", 8), &[], &out).is_err());
    assert!(export_colmap(&one("a.jpg", 129), &[], &out).is_err());
    let features = one("a.jpg", 8);
    let past = [("a.jpg".to_string(), "a.jpg".to_string(), vec![(0, 0)])];
    assert!(export_colmap(&features, &past, &out).is_err(), "self pair");
    let mut two = features.clone();
    two.insert("b.jpg".to_string(), image(1, 8, 0.0));
    let past = [("a.jpg".to_string(), "b.jpg".to_string(), vec![(1, 1)])];
    let err = export_colmap(&two, &past, &out).unwrap_err();
    assert!(err.to_string().contains("past"), "{err}");
    let unknown = [("a.jpg".to_string(), "c.jpg".to_string(), vec![])];
    assert!(export_colmap(&two, &unknown, &out).is_err());
    assert!(!out.exists(), "all checks run before anything is written");
}
