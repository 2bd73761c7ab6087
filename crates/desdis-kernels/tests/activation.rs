//! `desdis_kernels::{tanh, max_pool2d}` against candle's own ops: outputs and gradients.

use candle_core::{DType, Device, Result, Tensor, Var};
use desdis_kernels::compare::max_abs_diff;
use desdis_kernels::{max_pool2d, tanh};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(shape: &[usize], seed: u64) -> Result<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data: Vec<f32> = (0..shape.iter().product()).map(|_| rng.random_range(-3.0..3.0f32)).collect();
    Tensor::from_vec(data, shape, &Device::Cpu)
}

type Op = fn(&Tensor) -> Result<Tensor>;

/// Output and input gradient of `sum(op(x) * r)`.
fn run(op: Op, x: &Tensor, r_seed: u64) -> Result<(Tensor, Tensor)> {
    let x = Var::from_tensor(x)?;
    let y = op(x.as_tensor())?;
    let r = random(y.dims(), r_seed)?;
    let grads = (&y * r)?.sum_all()?.backward()?;
    Ok((y, grads.get(x.as_tensor()).expect("gradient").clone()))
}

fn check(ours: Op, candle: Op, shape: &[usize], seed: u64) -> Result<()> {
    let x = random(shape, seed)?;
    let (y, dx) = run(ours, &x, seed + 1)?;
    let (y_ref, dx_ref) = run(candle, &x, seed + 1)?;
    assert_eq!(y.dims(), y_ref.dims());
    assert!(max_abs_diff(&y, &y_ref)? < 1e-6, "{shape:?}: output");
    assert!(max_abs_diff(&dx, &dx_ref)? < 1e-5, "{shape:?}: gradient");
    assert!(dx_ref.abs()?.max_all()?.to_scalar::<f32>()? > 0.1, "a zero gradient checks nothing");
    Ok(())
}

#[test]
fn tanh_matches_candle() -> Result<()> {
    for (i, shape) in [&[7][..], &[3, 32, 26, 26], &[2, 128]].into_iter().enumerate() {
        check(tanh, |x| x.tanh(), shape, i as u64)?;
    }
    Ok(())
}

/// Checks `max_pool2d(x, 2)` against candle's forward and a gradient built independently: the
/// output gradient upsampled onto each window, kept where `x` equals its window's maximum (no
/// ties in random data). Candle's own max-pool backward is not the reference: it hands each
/// window's maximum only a quarter (`1/k²`) of the gradient, where PyTorch (and this op) hand it all.
fn check_pool(shape: &[usize], seed: u64) -> Result<()> {
    const K: usize = 2;
    let x = random(shape, seed)?;
    let (y, dx) = run(|x| max_pool2d(x, K), &x, seed + 1)?;
    let y_ref = x.max_pool2d(K)?;
    assert!(max_abs_diff(&y, &y_ref)? == 0.0, "{shape:?}: output");
    let (h, w) = (shape[2], shape[3]);
    let (h_in, w_in) = (y.dim(2)? * K, y.dim(3)? * K);
    let r = random(y.dims(), seed + 1)?;
    let covered = x.narrow(2, 0, h_in)?.narrow(3, 0, w_in)?;
    let mask = covered.eq(&y_ref.upsample_nearest2d(h_in, w_in)?)?.to_dtype(DType::F32)?;
    let expected = (mask * r.upsample_nearest2d(h_in, w_in)?)?
        .pad_with_zeros(2, 0, h - h_in)?
        .pad_with_zeros(3, 0, w - w_in)?;
    assert!(max_abs_diff(&dx, &expected)? == 0.0, "{shape:?}: gradient");
    Ok(())
}

#[test]
fn max_pool_matches_candle_forward_and_an_independent_gradient() -> Result<()> {
    // TFeat's 26x26 -> 13x13, and odd sides (the last row and column are dropped).
    check_pool(&[3, 32, 26, 26], 10)?;
    check_pool(&[2, 3, 7, 9], 11)?;
    Ok(())
}

#[test]
fn max_pool_gradient_goes_to_the_first_maximum_of_a_tie() -> Result<()> {
    let x = Var::from_tensor(&Tensor::new(&[[[[1f32, 5.0], [5.0, 2.0]]]], &Device::Cpu)?)?;
    let y = max_pool2d(x.as_tensor(), 2)?;
    let grads = y.sum_all()?.backward()?;
    let dx = grads.get(x.as_tensor()).expect("gradient").flatten_all()?.to_vec1::<f32>()?;
    assert_eq!(dx, [0.0, 1.0, 0.0, 0.0]);
    Ok(())
}

#[test]
fn other_dtypes_take_candle_with_the_gradient_corrected() -> Result<()> {
    // f64 goes through candle's op plus the gradient correction (as the GPU does).
    let x = Var::from_tensor(&random(&[2, 3, 6, 7], 30)?.to_dtype(DType::F64)?)?;
    let y = max_pool2d(x.as_tensor(), 2)?;
    assert_eq!(y.dims(), [2, 3, 3, 3]);
    let r = random(y.dims(), 31)?.to_dtype(DType::F64)?;
    let grads = (&y * &r)?.sum_all()?.backward()?;
    let dx64 = grads.get(x.as_tensor()).expect("gradient").to_dtype(DType::F32)?;
    let x32 = x.as_tensor().to_dtype(DType::F32)?;
    let (y32, dx32) = run(|x| max_pool2d(x, 2), &x32, 31)?;
    assert!(max_abs_diff(&y.to_dtype(DType::F32)?, &y32)? == 0.0);
    assert!(max_abs_diff(&dx64, &dx32)? < 1e-6);
    Ok(())
}

#[test]
fn other_dtypes_use_candle() -> Result<()> {
    let x = random(&[1, 1, 4, 4], 20)?.to_dtype(DType::F64)?;
    assert_eq!(max_pool2d(&x, 2)?.dtype(), DType::F64);
    assert_eq!(tanh(&x)?.dtype(), DType::F64);
    assert!(max_pool2d(&random(&[1, 1, 1, 1], 21)?, 2).is_err());
    Ok(())
}
