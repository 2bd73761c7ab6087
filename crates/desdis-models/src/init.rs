//! Trainable nets: freshly initialised from a seed, or starting from a checkpoint. Both hold their
//! tensors in a `VarMap`, whose variables an optimizer updates in place.
//!
//! Initialisation follows the published training code of each net, drawn from our own seeded
//! generator so the same seed gives the same weights on every machine and device:
//! - HardNet, SOSNet, L2-Net: orthogonal convolution weights with gain 0.6, biases 0.01;
//! - HyNet, TFeat, DesDis: PyTorch's default, weights and biases uniform in ±1/sqrt(fan_in)
//!   (Kaiming-uniform with a = sqrt(5));
//! - batch norm: running mean 0, running variance 1, weight 1, bias 0;
//! - FRN: weight 1, bias 0, eps 1e-6; TLU: tau -1 (HyNet's reset value).

use candle_core::{Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::arch::Arch;
use crate::layers::{FRN_EPS, NET_DTYPE};
use crate::nets::{checked_tensors, resolve_arch, Net};
use crate::spec::{TensorRole, TensorSpec, WeightScheme};
use crate::{Error, Result};
use desdis_checkpoint::StateDict;

/// Gain of the orthogonal initialisation in HardNet's training code.
const ORTHOGONAL_GAIN: f64 = 0.6;
/// Bias value in HardNet's training code.
const HARDNET_BIAS: f32 = 0.01;
/// HyNet's initial TLU threshold.
const TLU_TAU: f32 = -1.0;

fn weight_scheme(arch: Arch) -> WeightScheme {
    match arch {
        Arch::HardNet | Arch::SosNet | Arch::L2Net => WeightScheme::Orthogonal { gain: ORTHOGONAL_GAIN },
        Arch::HyNet | Arch::TFeat | Arch::DesDis { .. } => WeightScheme::TorchDefault,
        Arch::Registered(r) => r.0.init,
    }
}

/// A fresh net for `arch` with weights drawn from `seed` (identical for the same seed), and the
/// `VarMap` holding them under their state-dict keys.
pub fn init_net(arch: Arch, seed: u64, device: &Device) -> Result<(VarMap, Net)> {
    let varmap = VarMap::new();
    let net = Net::new(arch, VarBuilder::from_varmap(&varmap, NET_DTYPE, device))?;
    let specs = arch.tensor_specs();
    set_vars(&varmap, arch, specs.len(), |key| {
        let spec = specs.iter().find(|s| s.key == key).ok_or_else(|| unlisted(arch, key))?;
        Ok(Tensor::from_vec(initial_values(arch, spec, seed), spec.shape.as_slice(), device)?)
    })?;
    Ok((varmap, net))
}

/// A trainable net starting from the weights in `sd` (architecture detected when `arch` is
/// `None`), checked as [`crate::nets::load_net`] checks them.
pub fn trainable_net(sd: &StateDict, arch: Option<Arch>, device: &Device) -> Result<(VarMap, Net)> {
    let arch = resolve_arch(sd, arch)?;
    let tensors = checked_tensors(sd, arch, device)?;
    let varmap = VarMap::new();
    let net = Net::new(arch, VarBuilder::from_varmap(&varmap, NET_DTYPE, device))?;
    set_vars(&varmap, arch, tensors.len(), |key| {
        tensors.get(key).cloned().ok_or_else(|| unlisted(arch, key))
    })?;
    Ok((varmap, net))
}

/// Sets every variable of `varmap` to `value(key)`, checking there are `expected` of them.
fn set_vars(
    varmap: &VarMap,
    arch: Arch,
    expected: usize,
    value: impl Fn(&str) -> Result<Tensor>,
) -> Result<()> {
    let vars = varmap.data().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if vars.len() != expected {
        return Err(Error::Input(format!(
            "{arch}: the net has {} tensors, its spec lists {expected}",
            vars.len()
        )));
    }
    for (key, var) in vars.iter() {
        set_var(var, &value(key)?)?;
    }
    Ok(())
}

fn set_var(var: &Var, value: &Tensor) -> Result<()> {
    Ok(var.set(&value.to_dtype(var.dtype())?)?)
}

fn unlisted(arch: Arch, key: &str) -> Error {
    Error::Input(format!("{arch}: the net has a tensor `{key}` its spec does not list"))
}

/// The initial values of one tensor, row-major.
fn initial_values(arch: Arch, spec: &TensorSpec, seed: u64) -> Vec<f32> {
    let n = spec.numel();
    let mut rng = tensor_rng(seed, &spec.key);
    match (spec.role, weight_scheme(arch)) {
        (TensorRole::Weight { fan_in }, WeightScheme::Orthogonal { gain }) => {
            orthogonal(spec.shape[0], fan_in, gain, &mut rng)
        }
        (TensorRole::Weight { fan_in } | TensorRole::Bias { fan_in }, WeightScheme::TorchDefault) => {
            uniform(n, 1.0 / (fan_in as f64).sqrt(), &mut rng)
        }
        (TensorRole::Bias { .. }, WeightScheme::Orthogonal { .. }) => vec![HARDNET_BIAS; n],
        (TensorRole::NormWeight | TensorRole::RunningVar, _) => vec![1.0; n],
        (TensorRole::NormBias | TensorRole::RunningMean, _) => vec![0.0; n],
        (TensorRole::FrnEps, _) => vec![FRN_EPS as f32; n],
        (TensorRole::TluTau, _) => vec![TLU_TAU; n],
    }
}

/// A generator for one tensor: the seed picks the run, the key picks an independent stream, so
/// the values of a tensor do not depend on the order tensors are visited in.
fn tensor_rng(seed: u64, key: &str) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(fnv1a(key));
    rng
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3))
}

fn uniform(n: usize, bound: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| ((2.0 * rng.random::<f64>() - 1.0) * bound) as f32).collect()
}

/// A standard normal value (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // in (0, 1], so the logarithm is finite
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A `rows` x `cols` matrix (row-major) with orthonormal rows or columns, whichever are fewer,
/// times `gain`: Gram-Schmidt on a Gaussian matrix, which is the Q of its QR decomposition with a
/// positive diagonal, as PyTorch's `orthogonal_` takes it.
fn orthogonal(rows: usize, cols: usize, gain: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let (long, short) = (rows.max(cols), rows.min(cols));
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(short);
    for _ in 0..short {
        let mut v: Vec<f64> = (0..long).map(|_| normal(rng)).collect();
        for q in &basis {
            let dot: f64 = v.iter().zip(q).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(q).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        v.iter_mut().for_each(|a| *a /= norm);
        basis.push(v);
    }
    // `basis[j][i]` is element i of orthonormal vector j: columns when rows >= cols, else rows.
    let at = |r: usize, c: usize| if rows >= cols { basis[c][r] } else { basis[r][c] };
    (0..rows).flat_map(|r| (0..cols).map(move |c| (r, c))).map(|(r, c)| (gain * at(r, c)) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_rows_or_columns_are_orthonormal_times_gain() {
        for (rows, cols) in [(4, 9), (9, 4), (5, 5)] {
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let w = orthogonal(rows, cols, 0.5, &mut rng);
            let (vectors, len, stride, step) =
                if rows >= cols { (cols, rows, 1, cols) } else { (rows, cols, cols, 1) };
            for a in 0..vectors {
                for b in 0..vectors {
                    let dot: f64 = (0..len)
                        .map(|i| w[a * stride + i * step] as f64 * w[b * stride + i * step] as f64)
                        .sum();
                    let want = if a == b { 0.25 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-6, "{rows}x{cols}: <{a},{b}> = {dot}");
                }
            }
        }
    }

    #[test]
    fn normal_draws_have_unit_variance() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let draws: Vec<f64> = (0..20_000).map(|_| normal(&mut rng)).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "mean {mean}, var {var}");
    }
}
