//! Writes `features.h5` and `matches.h5` with fixed values into the folder given as the only
//! argument, for `tests/fixtures/check_written.py` to open with h5py:
//!
//! ```text
//! cargo run -p desdis-h5 --example write_samples -- /tmp/samples
//! python crates/desdis-h5/tests/fixtures/check_written.py /tmp/samples
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use desdis_h5::{write_features, write_matches, ImageFeatures, PairMatches};

/// Image with `n` keypoints of dimension `dim`; value formulas mirrored in check_written.py.
fn image(n: usize, dim: usize, seed: usize) -> ImageFeatures {
    let f = |i: usize| (seed * 100 + i) as f32;
    ImageFeatures {
        keypoints: (0..n).map(|i| [f(i) + 0.5, f(i) + 0.25]).collect(),
        scales: (0..n).map(|i| 1.0 + i as f32).collect(),
        oris: (0..n).map(|i| 10.0 * i as f32).collect(),
        scores: (0..n).map(|i| 0.5 + i as f32).collect(),
        // Row i (keypoint i) holds i*dim .. i*dim + dim - 1, so the file's (D, N) transpose
        // can be checked value by value.
        descriptors: (0..n * dim).map(|v| v as f32).collect(),
        dim,
        image_size: [640 + seed as u32, 480],
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: write_samples DIR")?);
    std::fs::create_dir_all(&dir)?;
    let features = BTreeMap::from([
        ("a.jpg".to_string(), image(3, 4, 0)),
        ("seq/1.png".to_string(), image(2, 4, 1)),
        ("empty.png".to_string(), image(0, 4, 2)),
    ]);
    write_features(&dir.join("features.h5"), &features)?;
    let pair = PairMatches { matches0: vec![1, -1, 40000], scores0: vec![0.5, 0.0, 0.25] };
    write_matches(&dir.join("matches.h5"), &[("a.jpg".into(), "seq/1.png".into(), pair)])?;
    println!("wrote {}", dir.display());
    Ok(())
}
