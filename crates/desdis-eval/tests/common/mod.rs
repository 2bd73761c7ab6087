//! The reference values of `tests/fixtures/eval/metrics.json`, written by `make_fixtures.py`
//! next to it (float64 numpy, independent of this crate).

#![allow(dead_code)] // each test binary uses part of the fixture

use serde::Deserialize;

#[derive(Deserialize)]
pub struct Fixture {
    pub fpr95: Vec<FprCase>,
    pub average_precision: Vec<ApCase>,
    pub sequence: SequenceCase,
}

#[derive(Deserialize)]
pub struct FprCase {
    pub name: String,
    pub distances: Vec<f64>,
    pub labels: Vec<bool>,
    /// This crate's definition.
    pub ours: f64,
    /// HardNet's `ErrorRateAt95Recall` with numpy's default argsort.
    pub hardnet: f64,
    /// HardNet's value with ties ranked positives-first and negatives-first.
    pub hardnet_tie_bounds: [f64; 2],
    /// HyNet's `cal_fpr95`; `None` where it indexes past the end (fewer than 20 positives).
    pub hynet: Option<f64>,
}

#[derive(Deserialize)]
pub struct ApCase {
    pub name: String,
    pub distances: Vec<f64>,
    pub labels: Vec<bool>,
    pub total_positives: usize,
    pub hpatches_trapezoid: f64,
    pub step: f64,
}

#[derive(Deserialize)]
pub struct Image {
    pub descriptors: Vec<f64>,
    pub point_ids: Vec<u64>,
}

#[derive(Deserialize)]
pub struct SequenceCase {
    pub dim: usize,
    pub reference: Image,
    pub targets: Vec<Image>,
    pub matching_ap: Vec<f64>,
    pub matching_map: f64,
    pub verification_positives: usize,
    pub verification_negatives: usize,
    pub verification_ap: f64,
    pub fpr95: f64,
    pub retrieval_map: f64,
}

pub fn load() -> Fixture {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/eval/metrics.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fixture stores each `f32` as the exact `f64` of its value, so this cast is lossless.
pub fn to_f32(values: &[f64]) -> Vec<f32> {
    values.iter().map(|&v| v as f32).collect()
}

/// Within `tol` of `expected`, with a message naming the case.
pub fn assert_close(actual: f64, expected: f64, tol: f64, what: &str) {
    assert!((actual - expected).abs() <= tol, "{what}: got {actual}, expected {expected}");
}
