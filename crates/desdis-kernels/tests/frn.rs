//! `desdis_kernels::frn_tlu` (HyNet's FRN + TLU as one op) against the same formula in
//! candle's tensor ops in f64: outputs, and gradients for the input and all three parameters.

use candle_core::{DType, Device, Result, Tensor, Var};
use desdis_kernels::compare::max_abs_diff;
use desdis_kernels::frn_tlu;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(shape: &[usize], low: f32, high: f32, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let data: Vec<f32> = (0..shape.iter().product()).map(|_| rng.random_range(low..high)).collect();
    Tensor::from_vec(data, shape, &Device::Cpu)
}

/// `max(x * rsqrt(mean_hw(x²) + eps) * weight + bias, tau)` from candle's ops.
fn reference(x: &Tensor, params: &Tensor, eps: f64) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let row = |i: usize| params.get(i)?.reshape((1, c, 1, 1));
    let mean_sq = x.sqr()?.reshape((b, c, h * w))?.mean_keepdim(2)?.reshape((b, c, 1, 1))?;
    let normalised = x.broadcast_mul(&(mean_sq + eps)?.sqrt()?.recip()?)?;
    let scaled = normalised.broadcast_mul(&row(0)?)?.broadcast_add(&row(1)?)?;
    scaled.broadcast_maximum(&row(2)?)
}

#[test]
fn frn_tlu_matches_the_formula_in_f64() -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    // HyNet's raw-input FRN (1 channel, 32x32), a trunk-like plane, and an odd small one.
    for shape in [[4, 1, 32, 32], [2, 32, 8, 8], [3, 5, 5, 7]] {
        let c = shape[1];
        let x = Var::from_tensor(&random(&shape, -2.0, 2.0, &mut rng)?)?;
        // Weights of either sign, and thresholds that clip a good share of the values.
        let weight = random(&[c], -1.5, 1.5, &mut rng)?;
        let bias = random(&[c], -0.5, 0.5, &mut rng)?;
        let tau = random(&[c], -1.0, 0.5, &mut rng)?;
        let params = Var::from_tensor(&Tensor::stack(&[weight, bias, tau], 0)?)?;
        let eps = 1e-6;
        let y = frn_tlu(x.as_tensor(), params.as_tensor(), eps as f32)?;

        let (x64, p64) =
            (Var::from_tensor(&x.to_dtype(DType::F64)?)?, Var::from_tensor(&params.to_dtype(DType::F64)?)?);
        let expected = reference(x64.as_tensor(), p64.as_tensor(), eps)?;
        let dy = max_abs_diff(&y, &expected)?;
        assert!(dy < 1e-5, "{shape:?}: output differs by {dy}");
        let clipped =
            expected.broadcast_eq(&p64.get(2)?.reshape((1, c, 1, 1))?)?.to_dtype(DType::F64)?.mean_all()?;
        let clipped = clipped.to_scalar::<f64>()?;
        assert!(
            clipped > 0.05 && clipped < 0.95,
            "{shape:?}: {clipped} clipped, both sides should be tested"
        );

        let r = random(y.dims(), -1.0, 1.0, &mut rng)?;
        let got = (y * &r)?.sum_all()?.backward()?;
        let want = (expected * r.to_dtype(DType::F64)?)?.sum_all()?.backward()?;
        for (name, ours, theirs) in [("x", &x, &x64), ("params", &params, &p64)] {
            let (g, e) = (got.get(ours.as_tensor()).unwrap(), want.get(theirs.as_tensor()).unwrap());
            let scale = e.abs()?.flatten_all()?.max(0)?.to_dtype(DType::F32)?.to_scalar::<f32>()?.max(1.0);
            let diff = max_abs_diff(g, e)? / scale;
            assert!(diff < 1e-5, "{shape:?}: d{name} differs by {diff} (relative)");
        }
    }
    Ok(())
}

#[test]
fn mismatched_parameters_are_an_error() -> Result<()> {
    let x = Tensor::zeros((2, 3, 4, 4), DType::F32, &Device::Cpu)?;
    let params = Tensor::zeros((3, 5), DType::F32, &Device::Cpu)?;
    let err = frn_tlu(&x, &params, 1e-6).unwrap_err().to_string();
    assert!(err.contains("params (3, C)"), "{err}");
    Ok(())
}
