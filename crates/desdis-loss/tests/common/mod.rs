//! Shared helpers of the integration tests: fixtures, tolerances, finite differences.
#![allow(dead_code)]

use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use std::path::{Path, PathBuf};

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/loss")
}

/// A float64, C-order `.npy` fixture as a CPU tensor.
pub fn npy(name: &str) -> Result<Tensor> {
    let path = fixtures_dir().join(format!("{name}.npy"));
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let file = npyz::NpyFile::new(&bytes[..])?;
    ensure!(file.order() == npyz::Order::C, "{name}: expected C order");
    let shape: Vec<usize> = file.shape().iter().map(|&d| d as usize).collect();
    Ok(Tensor::from_vec(file.into_vec::<f64>()?, shape, &Device::Cpu)?)
}

/// The expected values written by `make_fixtures.py`.
pub fn expected() -> Result<serde_json::Value> {
    let path = fixtures_dir().join("expected.json");
    Ok(serde_json::from_str(&std::fs::read_to_string(&path)?)?)
}

/// A number of `expected.json` by its path, e.g. `["rts", "abs_cosine"]`.
pub fn expected_f64(path: &[&str]) -> Result<f64> {
    let mut v = expected()?;
    for key in path {
        v = v.get(*key).cloned().with_context(|| format!("missing key {key} in {path:?}"))?;
    }
    v.as_f64().with_context(|| format!("{path:?} is not a number"))
}

/// A list of indices of `expected.json`.
pub fn expected_indices(path: &[&str]) -> Result<Vec<u32>> {
    let mut v = expected()?;
    for key in path {
        v = v.get(*key).cloned().with_context(|| format!("missing key {key}"))?;
    }
    Ok(serde_json::from_value(v)?)
}

/// The fixture inputs.
pub struct Inputs {
    pub anchors: Tensor,
    pub positives: Tensor,
    pub raw_anchors: Tensor,
    pub raw_positives: Tensor,
    pub teacher_anchors: Tensor,
    pub teacher_positives: Tensor,
    /// Unit pairs whose distances all stay far from 0, for finite differences of the SOS term.
    pub smooth_anchors: Tensor,
    pub smooth_positives: Tensor,
}

pub fn inputs() -> Result<Inputs> {
    Ok(Inputs {
        anchors: npy("anchors")?,
        positives: npy("positives")?,
        raw_anchors: npy("raw_anchors")?,
        raw_positives: npy("raw_positives")?,
        teacher_anchors: npy("teacher_anchors")?,
        teacher_positives: npy("teacher_positives")?,
        smooth_anchors: npy("smooth_anchors")?,
        smooth_positives: npy("smooth_positives")?,
    })
}

pub fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// Asserts `|got - want| <= rel * max(|want|, 1e-12)`.
pub fn assert_rel(got: f64, want: f64, rel: f64, what: &str) {
    let err = (got - want).abs() / want.abs().max(1e-12);
    assert!(err <= rel, "{what}: got {got}, want {want} (relative error {err:e} > {rel:e})");
}

/// Compares the autograd gradient of `f` at `inputs` with central differences of step `h`, for
/// every element of every input; returns the worst error relative to `1 + |gradient|`.
pub fn gradient_error(inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) -> Result<f64> {
    const H: f64 = 1e-6;
    let vars: Vec<Var> = inputs.iter().map(Var::from_tensor).collect::<candle_core::Result<_>>()?;
    let tracked: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let grads = f(&tracked)?.backward()?;
    let mut worst: f64 = 0.0;
    for (k, var) in vars.iter().enumerate() {
        let analytic: Vec<f64> = match grads.get(var.as_tensor()) {
            Some(g) => g.flatten_all()?.to_vec1()?,
            None => vec![0.0; var.elem_count()],
        };
        let base: Vec<f64> = inputs[k].flatten_all()?.to_vec1()?;
        for e in 0..base.len() {
            let at = |delta: f64| -> Result<f64> {
                let mut moved = base.clone();
                moved[e] += delta;
                let mut args: Vec<Tensor> = inputs.to_vec();
                args[k] = Tensor::from_vec(moved, inputs[k].shape(), &Device::Cpu)?;
                scalar(&f(&args)?)
            };
            let numeric = (at(H)? - at(-H)?) / (2.0 * H);
            ensure!(analytic[e].is_finite(), "input {k} element {e}: gradient {}", analytic[e]);
            worst = worst.max((numeric - analytic[e]).abs() / (1.0 + analytic[e].abs()));
        }
    }
    Ok(worst)
}

/// True when every element of `t` is finite.
pub fn all_finite(t: &Tensor) -> Result<bool> {
    Ok(t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?.iter().all(|v| v.is_finite()))
}

/// Unit-norm rows.
pub fn normalize(x: &Tensor) -> Result<Tensor> {
    Ok(x.broadcast_div(&x.sqr()?.sum_keepdim(1)?.sqrt()?)?)
}

/// Deterministic pseudo-random `(rows, cols)` f64 values in `[-1, 1)` (xorshift), so tests need
/// no random-number crate and never change between runs.
pub fn pseudo_random(rows: usize, cols: usize, seed: u64) -> Result<Tensor> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let values: Vec<f64> = (0..rows * cols)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect();
    Ok(Tensor::from_vec(values, (rows, cols), &Device::Cpu)?)
}
