//! `desdis_kernels::conv2d` against candle's own `conv2d`: forward and all gradients.

use candle_core::{DType, Device, Result, Tensor, Var};
use desdis_kernels::{conv2d, fold_batchnorm};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One convolution to check.
#[derive(Debug, Clone, Copy)]
struct Case {
    batch: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    bias: bool,
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    // HardNet: first conv, stride-2 convs, the 8x8 head covering the whole input.
    Case { batch: 3, c_in: 1, h: 32, w: 32, c_out: 8, kernel: 3, stride: 1, padding: 1, bias: false },
    Case { batch: 2, c_in: 8, h: 32, w: 32, c_out: 16, kernel: 3, stride: 2, padding: 1, bias: false },
    Case { batch: 2, c_in: 16, h: 8, w: 8, c_out: 24, kernel: 3, stride: 1, padding: 1, bias: true },
    Case { batch: 3, c_in: 16, h: 8, w: 8, c_out: 32, kernel: 8, stride: 1, padding: 0, bias: false },
    // Whole-input head with an output-channel count that does not split evenly across threads.
    Case { batch: 3, c_in: 2, h: 3, w: 3, c_out: 5, kernel: 3, stride: 1, padding: 0, bias: true },
    // DesDis: stride-2 first conv, 4x4 head.
    Case { batch: 2, c_in: 1, h: 32, w: 32, c_out: 8, kernel: 3, stride: 2, padding: 1, bias: true },
    Case { batch: 2, c_in: 16, h: 4, w: 4, c_out: 24, kernel: 4, stride: 1, padding: 0, bias: true },
    // TFeat: 7x7 and 6x6 without padding.
    Case { batch: 2, c_in: 1, h: 32, w: 32, c_out: 8, kernel: 7, stride: 1, padding: 0, bias: true },
    Case { batch: 2, c_in: 8, h: 13, w: 13, c_out: 16, kernel: 6, stride: 1, padding: 0, bias: true },
    // Batch 1, non-square input, stride not dividing the size, padding wider than 1.
    Case { batch: 1, c_in: 3, h: 9, w: 7, c_out: 5, kernel: 3, stride: 2, padding: 1, bias: true },
    Case { batch: 2, c_in: 4, h: 10, w: 13, c_out: 6, kernel: 5, stride: 3, padding: 2, bias: false },
    // Winograd F(2x2, 3x3) path (3x3, stride 1, >= 8 channels): HardNet's 32x32 layer with more
    // images than one group, odd sides (tiles hanging over the edge), padding 0 and 2, batch 1.
    Case { batch: 9, c_in: 8, h: 32, w: 32, c_out: 8, kernel: 3, stride: 1, padding: 1, bias: false },
    Case { batch: 37, c_in: 12, h: 8, w: 8, c_out: 10, kernel: 3, stride: 1, padding: 1, bias: true },
    Case { batch: 3, c_in: 9, h: 7, w: 11, c_out: 8, kernel: 3, stride: 1, padding: 1, bias: false },
    Case { batch: 2, c_in: 8, h: 9, w: 6, c_out: 11, kernel: 3, stride: 1, padding: 0, bias: true },
    Case { batch: 1, c_in: 10, h: 5, w: 5, c_out: 8, kernel: 3, stride: 1, padding: 2, bias: false },
    Case { batch: 2, c_in: 8, h: 3, w: 3, c_out: 8, kernel: 3, stride: 1, padding: 0, bias: false },
    // The DesDis students' last trunk layer: rows of two tiles.
    Case { batch: 3, c_in: 32, h: 4, w: 4, c_out: 32, kernel: 3, stride: 1, padding: 1, bias: false },
    // 1x1 output from a padded input: not the plain-matmul special case.
    Case { batch: 2, c_in: 2, h: 2, w: 2, c_out: 3, kernel: 4, stride: 1, padding: 1, bias: false },
];

/// Deterministic standard-normal-ish values (sum of uniforms), scaled.
fn random(shape: &[usize], scale: f64, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let n = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|_| ((0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() * 1.7) * scale as f32)
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu)
}

/// Inputs of one case, scaled so every output and gradient is of order one.
struct Inputs {
    x: Tensor,
    w: Tensor,
    b: Tensor,
    /// The output gradient, applied as `loss = sum(y * dy)`.
    dy: Tensor,
}

impl Inputs {
    fn new(case: &Case, seed: u64) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let patch_len = (case.c_in * case.kernel * case.kernel) as f64;
        let x = random(&[case.batch, case.c_in, case.h, case.w], 1.0, &mut rng)?;
        let w = random(&[case.c_out, case.c_in, case.kernel, case.kernel], patch_len.powf(-0.5), &mut rng)?;
        let b = random(&[case.c_out], 1.0, &mut rng)?;
        let y_dims = x.conv2d(&w, case.padding, case.stride, 1, 1)?.dims().to_vec();
        let per_channel = (y_dims[0] * y_dims[2] * y_dims[3]) as f64;
        let dy = random(&y_dims, per_channel.powf(-0.5), &mut rng)?;
        Ok(Self { x, w, b, dy })
    }
}

/// Forward output and the gradients of `sum(y * dy)` for x, w and (if used) b.
struct Outcome {
    y: Tensor,
    dx: Tensor,
    dw: Tensor,
    db: Option<Tensor>,
}

type Conv = fn(&Tensor, &Tensor, Option<&Tensor>, usize, usize) -> Result<Tensor>;

fn candle_conv(x: &Tensor, w: &Tensor, b: Option<&Tensor>, stride: usize, padding: usize) -> Result<Tensor> {
    let y = x.conv2d(w, padding, stride, 1, 1)?;
    match b {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
        None => Ok(y),
    }
}

fn run(conv: Conv, case: &Case, inputs: &Inputs) -> Result<Outcome> {
    let (x, w, b) =
        (Var::from_tensor(&inputs.x)?, Var::from_tensor(&inputs.w)?, Var::from_tensor(&inputs.b)?);
    let bias = case.bias.then_some(b.as_tensor());
    let y = conv(x.as_tensor(), w.as_tensor(), bias, case.stride, case.padding)?;
    let grads = (&y * &inputs.dy)?.sum_all()?.backward()?;
    let grad = |v: &Var| grads.get(v.as_tensor()).cloned().expect("gradient recorded");
    Ok(Outcome { dx: grad(&x), dw: grad(&w), db: case.bias.then(|| grad(&b)), y })
}

/// Asserts `|actual - expected| <= 1e-5 + 1e-4 |expected|` element-wise.
fn assert_close(what: &str, actual: &Tensor, expected: &Tensor) {
    assert_eq!(actual.dims(), expected.dims(), "{what}: shape");
    let a = actual.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let e = expected.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    // NaN-aware maximum (`f32::max` would drop a NaN, and a NaN is what an unwritten element of a
    // debug build's output holds).
    let worst = a
        .iter()
        .zip(&e)
        .map(|(a, e)| (a - e).abs() / (1e-5 + 1e-4 * e.abs()))
        .fold(0.0f32, |worst, err| if err.is_nan() || worst.is_nan() { f32::NAN } else { worst.max(err) });
    assert!(worst <= 1.0, "{what}: error {worst}x the tolerance");
    assert!(e.iter().any(|&v| v != 0.0), "{what}: a reference of zeros checks nothing");
}

#[test]
fn forward_and_gradients_match_candle() -> Result<()> {
    for (seed, case) in CASES.iter().enumerate() {
        let inputs = Inputs::new(case, seed as u64)?;
        let ours = run(conv2d, case, &inputs)?;
        let reference = run(candle_conv, case, &inputs)?;
        let name = |part: &str| format!("{part} of {case:?}");
        assert_close(&name("y"), &ours.y, &reference.y);
        assert_close(&name("dx"), &ours.dx, &reference.dx);
        assert_close(&name("dw"), &ours.dw, &reference.dw);
        if let (Some(ours), Some(reference)) = (&ours.db, &reference.db) {
            assert_close(&name("db"), ours, reference);
        }
    }
    Ok(())
}

/// `<a, b>` of two same-shaped f32 tensors, in f64.
fn dot(a: &Tensor, b: &Tensor) -> Result<f64> {
    (a.to_dtype(DType::F64)? * b.to_dtype(DType::F64)?)?.sum_all()?.to_scalar::<f64>()
}

/// Where the stride leaves a different number of unused input rows than columns, candle's own
/// backward returns an input gradient of the wrong shape, so check ours by linearity instead:
/// for any probe `p`, `<conv(p, w), dy> = <p, dx>` and `<conv(x, p), dy> = <p, dw>`.
#[test]
fn gradients_are_adjoints_when_stride_leaves_uneven_remainders() -> Result<()> {
    let case =
        Case { batch: 2, c_in: 4, h: 10, w: 11, c_out: 6, kernel: 5, stride: 3, padding: 2, bias: false };
    let inputs = Inputs::new(&case, 21)?;
    let ours = run(conv2d, &case, &inputs)?;
    assert_eq!(ours.dx.dims(), inputs.x.dims());
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    for _ in 0..3 {
        let probe_x = random(inputs.x.dims(), 1.0, &mut rng)?;
        let probe_w = random(inputs.w.dims(), 0.1, &mut rng)?;
        let y_x = conv2d(&probe_x, &inputs.w, None, case.stride, case.padding)?;
        let y_w = conv2d(&inputs.x, &probe_w, None, case.stride, case.padding)?;
        let (lhs_x, rhs_x) = (dot(&y_x, &inputs.dy)?, dot(&probe_x, &ours.dx)?);
        let (lhs_w, rhs_w) = (dot(&y_w, &inputs.dy)?, dot(&probe_w, &ours.dw)?);
        assert!((lhs_x - rhs_x).abs() <= 1e-4 * (1.0 + lhs_x.abs()), "dx: {lhs_x} vs {rhs_x}");
        assert!((lhs_w - rhs_w).abs() <= 1e-4 * (1.0 + lhs_w.abs()), "dw: {lhs_w} vs {rhs_w}");
    }
    Ok(())
}

#[test]
fn non_contiguous_input_matches_candle() -> Result<()> {
    let case = CASES[1];
    let inputs = Inputs::new(&case, 42)?;
    // The same values, stored channels-last and viewed as NCHW.
    let x_nhwc = inputs.x.permute((0, 2, 3, 1))?.contiguous()?;
    let x_view = x_nhwc.permute((0, 3, 1, 2))?;
    assert!(!x_view.is_contiguous());
    let w_view = inputs.w.t()?.contiguous()?.t()?; // non-contiguous weight too
    assert!(!w_view.is_contiguous());
    let inputs = Inputs { x: x_view, w: w_view, ..inputs };
    let ours = run(conv2d, &case, &inputs)?;
    let reference = run(candle_conv, &case, &inputs)?;
    assert_close("y", &ours.y, &reference.y);
    assert_close("dx", &ours.dx, &reference.dx);
    assert_close("dw", &ours.dw, &reference.dw);
    Ok(())
}

#[test]
fn only_tracked_arguments_get_gradients() -> Result<()> {
    let case = CASES[2];
    let inputs = Inputs::new(&case, 7)?;
    let reference = run(candle_conv, &case, &inputs)?;
    // Frozen weights: only the input gradient.
    let x = Var::from_tensor(&inputs.x)?;
    let y = conv2d(x.as_tensor(), &inputs.w, None, case.stride, case.padding)?;
    let grads = (&y * &inputs.dy)?.sum_all()?.backward()?;
    assert!(grads.get(&inputs.w).is_none());
    assert_close("dx", grads.get(x.as_tensor()).expect("dx"), &reference.dx);
    // Constant input (a net's first layer): only the weight gradient.
    let w = Var::from_tensor(&inputs.w)?;
    let y = conv2d(&inputs.x, w.as_tensor(), None, case.stride, case.padding)?;
    let grads = (&y * &inputs.dy)?.sum_all()?.backward()?;
    assert!(grads.get(&inputs.x).is_none());
    assert_close("dw", grads.get(w.as_tensor()).expect("dw"), &reference.dw);
    Ok(())
}

#[test]
fn f64_falls_back_to_candle() -> Result<()> {
    let case = CASES[1];
    let inputs = Inputs::new(&case, 3)?;
    let x = inputs.x.to_dtype(DType::F64)?;
    let w = inputs.w.to_dtype(DType::F64)?;
    let ours = conv2d(&x, &w, None, case.stride, case.padding)?;
    assert_eq!(ours.dtype(), DType::F64);
    let reference = x.conv2d(&w, case.padding, case.stride, 1, 1)?;
    let max_diff = (ours - reference)?.abs()?.max_all()?.to_scalar::<f64>()?;
    assert_eq!(max_diff, 0.0, "f64 must take candle's path exactly");
    Ok(())
}

#[test]
fn repeated_calls_reuse_scratch_without_stale_values() -> Result<()> {
    // A large conv then a small one on the same threads: the small one must not see leftovers.
    let big =
        Case { batch: 2, c_in: 8, h: 32, w: 32, c_out: 8, kernel: 3, stride: 1, padding: 1, bias: false };
    let small =
        Case { batch: 3, c_in: 3, h: 9, w: 7, c_out: 5, kernel: 3, stride: 2, padding: 1, bias: false };
    let big_inputs = Inputs::new(&big, 11)?;
    conv2d(&big_inputs.x, &big_inputs.w, None, big.stride, big.padding)?;
    let inputs = Inputs::new(&small, 12)?;
    let ours = conv2d(&inputs.x, &inputs.w, None, small.stride, small.padding)?;
    assert_close("y", &ours, &candle_conv(&inputs.x, &inputs.w, None, small.stride, small.padding)?);
    Ok(())
}

#[test]
fn mismatched_channels_are_an_error() -> Result<()> {
    let x = Tensor::zeros((1, 3, 8, 8), DType::F32, &Device::Cpu)?;
    let w = Tensor::zeros((4, 2, 3, 3), DType::F32, &Device::Cpu)?;
    assert!(conv2d(&x, &w, None, 1, 1).is_err());
    Ok(())
}

#[test]
fn folded_batchnorm_matches_conv_then_batchnorm() -> Result<()> {
    let case = CASES[2];
    let inputs = Inputs::new(&case, 5)?;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mean = random(&[case.c_out], 1.0, &mut rng)?;
    let var = (random(&[case.c_out], 1.0, &mut rng)?.abs()? + 0.1)?;
    let gamma = random(&[case.c_out], 1.0, &mut rng)?;
    let beta = random(&[case.c_out], 1.0, &mut rng)?;
    let eps = 1e-5;
    let channel = |t: &Tensor| t.reshape((1, (), 1, 1));
    for affine in [false, true] {
        let (g, bt) = if affine { (Some(&gamma), Some(&beta)) } else { (None, None) };
        let y = conv2d(&inputs.x, &inputs.w, Some(&inputs.b), case.stride, case.padding)?;
        let mut expected =
            y.broadcast_sub(&channel(&mean)?)?.broadcast_div(&channel(&(&var + eps)?.sqrt()?)?)?;
        if affine {
            expected = expected.broadcast_mul(&channel(&gamma)?)?.broadcast_add(&channel(&beta)?)?;
        }
        let (w, b) = fold_batchnorm(&inputs.w, Some(&inputs.b), &mean, &var, g, bt, eps)?;
        let folded = conv2d(&inputs.x, &w, Some(&b), case.stride, case.padding)?;
        assert_close("folded conv+bn", &folded, &expected);
    }
    Ok(())
}

#[test]
fn gradients_repeat_bit_for_bit() -> Result<()> {
    // Weight gradients are sums over the batch split across threads; the split and the order of
    // the partial sums must not depend on scheduling, or resumed training would drift.
    for case in [CASES[1], CASES[11], CASES[12]] {
        let inputs = Inputs::new(&case, 5)?;
        let first = run(conv2d, &case, &inputs)?;
        for _ in 0..3 {
            let again = run(conv2d, &case, &inputs)?;
            for (what, a, b) in
                [("y", &first.y, &again.y), ("dx", &first.dx, &again.dx), ("dw", &first.dw, &again.dw)]
            {
                let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert_eq!(diff, 0.0, "{what} of {case:?} changed between identical calls");
            }
        }
    }
    Ok(())
}
