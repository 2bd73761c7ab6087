//! The fused training-mode batch norm (+ ReLU), and the fused convolution + batch norm (+ ReLU),
//! against the same computation in candle's tensor ops: outputs, gradients and running statistics.

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use desdis_kernels::compare::max_abs_diff;
use desdis_kernels::{batch_norm_train, conv_batch_norm_train, ConvBnParams};
use desdis_models::layers::{conv_bn_relu_chain_t, BatchNorm2d, ConvBn, ConvSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(shape: &[usize], rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let n = shape.iter().product();
    // An offset and a scale per call, so means and variances are far from 0 and 1.
    let (offset, scale) = (rng.random_range(-2.0..2.0f32), rng.random_range(0.1..3.0f32));
    let data: Vec<f32> = (0..n).map(|_| offset + scale * rng.random_range(-1.0..1.0f32)).collect();
    Tensor::from_vec(data, shape, &Device::Cpu)
}

/// Batch norm (biased batch variance) and optional ReLU, from candle's ops.
fn reference(x: &Tensor, eps: f64, relu: bool) -> Result<Tensor> {
    let mean = x.mean_keepdim(0)?.mean_keepdim(2)?.mean_keepdim(3)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(0)?.mean_keepdim(2)?.mean_keepdim(3)?;
    let y = centred.broadcast_div(&(var + eps)?.sqrt()?)?;
    if relu {
        y.relu()
    } else {
        Ok(y)
    }
}

#[test]
fn outputs_and_gradients_match_candle() -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let shapes: [&[usize]; 5] =
        [&[8, 16, 8, 8], &[3, 5, 4, 7], &[1, 4, 3, 3], &[2, 1, 1, 2], &[16, 32, 32, 32]];
    for shape in shapes {
        for relu in [false, true] {
            let x = Var::from_tensor(&random(shape, &mut rng)?)?;
            let r = random(shape, &mut rng)?;
            let (y, _) = batch_norm_train(x.as_tensor(), 1e-5, relu)?;
            let expected = reference(x.as_tensor(), 1e-5, relu)?;
            let dy = max_abs_diff(&y, &expected)?;
            assert!(dy < 1e-5, "{shape:?} relu={relu}: output differs by {dy}");
            let got = (y * &r)?.sum_all()?.backward()?;
            let want = (expected * &r)?.sum_all()?.backward()?;
            let (g, w) = (got.get(x.as_tensor()).unwrap(), want.get(x.as_tensor()).unwrap());
            let scale = w.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?.max(1.0);
            let dg = max_abs_diff(g, w)? / scale;
            assert!(dg < 1e-5, "{shape:?} relu={relu}: gradient differs by {dg} (relative)");
        }
    }
    Ok(())
}

#[test]
fn fused_layer_updates_running_statistics_like_the_plain_one() -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = random(&[4, 6, 5, 5], &mut rng)?;
    let layer =
        |map: &VarMap| BatchNorm2d::new(VarBuilder::from_varmap(map, DType::F32, &Device::Cpu), 6, false);
    let (fused_map, plain_map) = (VarMap::new(), VarMap::new());
    let (fused, plain) = (layer(&fused_map)?, layer(&plain_map)?);
    for _ in 0..3 {
        let a = fused.forward_relu_train(&x)?;
        let b = plain.forward_t(&x, true)?.relu()?;
        assert!(max_abs_diff(&a, &b)? < 1e-5);
    }
    assert!(max_abs_diff(fused.running_mean(), plain.running_mean())? < 1e-6);
    assert!(max_abs_diff(fused.running_var(), plain.running_var())? < 1e-6);
    assert!(max_abs_diff(plain.running_var(), &Tensor::ones(6, DType::F32, &Device::Cpu)?)? > 1e-3);
    Ok(())
}

/// Batch statistics stay accurate when the mean dwarfs the spread and differs between the
/// images (the per-plane moments are merged exactly): checked against sums in f64.
#[test]
fn statistics_are_accurate_far_from_zero() -> Result<()> {
    let (b, c, hw) = (5, 3, 37);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let data: Vec<f32> = (0..b * c * hw)
        .map(|i| 300.0 + (i / (c * hw)) as f32 * 0.5 + 0.01 * rng.random_range(-1.0..1.0f32))
        .collect();
    let x = Tensor::from_vec(data.clone(), (b, c, hw, 1), &Device::Cpu)?;
    let (_, stats) = batch_norm_train(&x, 1e-5, false)?;
    for ch in 0..c {
        let values: Vec<f64> =
            (0..b).flat_map(|i| data[(i * c + ch) * hw..][..hw].iter().map(|&v| v as f64)).collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        let mean_err = (stats.mean[ch] as f64 - mean).abs() / mean;
        let var_err = (stats.var[ch] as f64 - var).abs() / var;
        assert!(
            mean_err < 1e-6 && var_err < 1e-4,
            "channel {ch}: mean error {mean_err}, variance error {var_err}"
        );
    }
    Ok(())
}

#[test]
fn a_single_value_per_channel_is_refused() -> Result<()> {
    let x = Tensor::ones((1, 3, 1, 1), DType::F32, &Device::Cpu)?;
    let err = batch_norm_train(&x, 1e-5, true).unwrap_err().to_string();
    assert!(err.contains("B*H*W > 1"), "{err}");
    Ok(())
}

/// `v` `(C)` viewed as `(1, C, 1, 1)`.
fn channel(v: &Tensor) -> Result<Tensor> {
    v.reshape((1, (), 1, 1))
}

#[test]
fn fused_conv_batch_norm_matches_candle() -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    // (batch, c_in, side, c_out, kernel, stride, padding): the Winograd path, a stride-2 conv,
    // HardNet's 8x8 head and a small odd case on im2col.
    let cases =
        [(6, 8, 8, 16, 3, 1, 1), (3, 4, 9, 6, 3, 2, 1), (5, 16, 8, 8, 8, 1, 0), (2, 3, 5, 4, 3, 1, 1)];
    for (batch, c_in, side, c_out, kernel, stride, padding) in cases {
        for (relu, affine) in [(false, false), (true, false), (false, true), (true, true)] {
            let x = Var::from_tensor(&random(&[batch, c_in, side, side], &mut rng)?)?;
            let w = Var::from_tensor(&(random(&[c_out, c_in, kernel, kernel], &mut rng)? * 0.2)?)?;
            let [bias, gamma, beta] =
                [(); 3].map(|_| random(&[c_out], &mut rng).and_then(|t| Var::from_tensor(&t)));
            let (bias, gamma, beta) = (bias?, gamma?, beta?);
            let params = match affine {
                true => ConvBnParams {
                    bias: Some(bias.as_tensor()),
                    gamma: Some(gamma.as_tensor()),
                    beta: Some(beta.as_tensor()),
                },
                false => ConvBnParams::default(),
            };
            let (y, stats) =
                conv_batch_norm_train(x.as_tensor(), w.as_tensor(), params, (stride, padding), 1e-5, relu)?;

            // The reference runs in f64, so the comparison sees only our f32 rounding.
            let vars = [&x, &w, &bias, &gamma, &beta];
            let vars64: Vec<Var> =
                vars.iter().map(|v| Var::from_tensor(&v.to_dtype(DType::F64)?)).collect::<Result<_>>()?;
            let mut z = vars64[0].as_tensor().conv2d(vars64[1].as_tensor(), padding, stride, 1, 1)?;
            if affine {
                z = z.broadcast_add(&channel(vars64[2].as_tensor())?)?;
            }
            let mut expected = reference(&z, 1e-5, false)?;
            if affine {
                expected = expected
                    .broadcast_mul(&channel(vars64[3].as_tensor())?)?
                    .broadcast_add(&channel(vars64[4].as_tensor())?)?;
            }
            if relu {
                expected = expected.relu()?;
            }
            let what = format!(
                "{:?} relu={relu} affine={affine}",
                (batch, c_in, side, c_out, kernel, stride, padding)
            );
            let dy = max_abs_diff(&y, &expected.to_dtype(DType::F32)?)?;
            assert!(dy < 1e-4, "{what}: output differs by {dy}");
            let z_mean =
                z.mean_keepdim(0)?.mean_keepdim(2)?.mean_keepdim(3)?.flatten_all()?.to_dtype(DType::F32)?;
            let dm = max_abs_diff(&Tensor::new(stats.mean, &Device::Cpu)?, &z_mean)?;
            assert!(dm < 1e-4, "{what}: batch mean differs by {dm}");

            let r = random(expected.dims(), &mut rng)?;
            let got = (y * &r)?.sum_all()?.backward()?;
            let want = (expected * r.to_dtype(DType::F64)?)?.sum_all()?.backward()?;
            let names = ["x", "w", "bias", "gamma", "beta"];
            for ((name, var), var64) in names.iter().zip(vars).zip(&vars64).take(if affine { 5 } else { 2 }) {
                let g = got.get(var.as_tensor()).unwrap();
                let e = match want.get(var64.as_tensor()) {
                    Some(e) => e.to_dtype(DType::F32)?,
                    None => g.zeros_like()?, // the bias: no path to the output in candle's graph
                };
                let scale = e.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?.max(1.0);
                let diff = max_abs_diff(g, &e)? / scale;
                assert!(diff < 1e-4, "{what}: d{name} differs by {diff} (relative)");
            }
        }
    }
    Ok(())
}

#[test]
fn fused_conv_block_updates_running_statistics_like_the_plain_one() -> Result<()> {
    // HardNet's block (no bias, no affine) and L2-Net's (both).
    for with_params in [false, true] {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let x = random(&[4, 8, 8, 8], &mut rng)?;
        let spec = ConvSpec::new(8, 16, 3).padding(1).bias(with_params);
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let block = ConvBn::new(vb.pp("conv"), vb.pp("fused_bn"), spec, with_params)?;
        // The same convolution in front of a second, plain batch norm.
        let plain_bn = BatchNorm2d::new(vb.pp("plain_bn"), 16, with_params)?;
        let var = |name: &str| map.data().lock().unwrap()[name].clone();
        if with_params {
            // Non-trivial bias (it moves the running mean) and affine parameters, the same in both.
            var("conv.bias").set(&random(&[16], &mut rng)?)?;
            for param in ["weight", "bias"] {
                let value = random(&[16], &mut rng)?;
                var(&format!("fused_bn.{param}")).set(&value)?;
                var(&format!("plain_bn.{param}")).set(&value)?;
            }
        }
        let weight = var("conv.weight").as_tensor().clone();
        for _ in 0..3 {
            let fused = block.forward_relu_t(&x, true)?;
            let mut z = x.conv2d(&weight, 1, 1, 1, 1)?;
            if with_params {
                z = z.broadcast_add(&var("conv.bias").as_tensor().reshape((1, 16, 1, 1))?)?;
            }
            let plain = plain_bn.forward_t(&z, true)?.relu()?;
            assert!(max_abs_diff(&fused, &plain)? < 1e-4, "with_params={with_params}");
        }
        for stat in ["running_mean", "running_var"] {
            let fused = var(&format!("fused_bn.{stat}")).as_tensor().clone();
            let plain = var(&format!("plain_bn.{stat}")).as_tensor().clone();
            assert!(max_abs_diff(&fused, &plain)? < 1e-5, "{stat}, with_params={with_params}");
        }
        let moved = var("plain_bn.running_mean").as_tensor().abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(moved > 1e-3, "the running mean should have moved");
    }
    Ok(())
}

/// The whole chain as one op against the same blocks run one by one (each checked against an f64
/// reference above): outputs, every gradient and the running statistics. Three blocks: the
/// im2col path with bias and affine batch norm, a stride-2 block without parameters, and the
/// Winograd path with an affine batch norm.
#[test]
fn fused_chain_matches_the_blocks_run_one_by_one() -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let specs = [
        (ConvSpec::new(3, 8, 3).padding(1).bias(true), true),
        (ConvSpec::new(8, 16, 3).stride(2).padding(1), false),
        (ConvSpec::new(16, 16, 3).padding(1), true),
    ];
    let blocks = |map: &VarMap| -> Result<Vec<ConvBn>> {
        let vb = VarBuilder::from_varmap(map, DType::F32, &Device::Cpu);
        let blocks = specs.iter().enumerate();
        blocks
            .map(|(i, (spec, affine))| {
                ConvBn::new(vb.pp(format!("c{i}")), vb.pp(format!("b{i}")), *spec, *affine)
            })
            .collect()
    };
    let (chain_map, plain_map) = (VarMap::new(), VarMap::new());
    let (chain_blocks, plain_blocks) = (blocks(&chain_map)?, blocks(&plain_map)?);
    // Sorted: a map's own order changes from run to run, and so would the values drawn.
    let mut names: Vec<String> = chain_map.data().lock().unwrap().keys().cloned().collect();
    names.sort();
    for name in &names {
        // Random values everywhere, the same in both (biases and affine parameters included).
        // Positive batch-norm scales: with negative ones and a negative shift a whole channel is
        // cut by the ReLU, and its weights get no gradient to compare.
        let value = random(chain_map.data().lock().unwrap()[name].dims(), &mut rng)?;
        let value = match name.as_str() {
            n if n.ends_with("running_var") => value.abs()?,
            n if n.starts_with('b') && n.ends_with(".weight") => (value.abs()? + 0.5)?,
            _ => value,
        };
        chain_map.data().lock().unwrap()[name].set(&value)?;
        plain_map.data().lock().unwrap()[name].set(&value)?;
    }
    let x = Var::from_tensor(&random(&[4, 3, 9, 9], &mut rng)?)?;
    let chained = conv_bn_relu_chain_t(&chain_blocks, x.as_tensor(), true)?;
    let plain =
        plain_blocks.iter().try_fold(x.as_tensor().clone(), |h, block| block.forward_relu_t(&h, true))?;
    assert_eq!(chained.dims(), [4, 16, 5, 5]);
    assert!(max_abs_diff(&chained, &plain)? < 1e-6, "outputs differ");

    let r = random(plain.dims(), &mut rng)?;
    let (got, want) = ((chained * &r)?.sum_all()?.backward()?, (plain * &r)?.sum_all()?.backward()?);
    let dx = max_abs_diff(got.get(x.as_tensor()).unwrap(), want.get(x.as_tensor()).unwrap())?;
    assert!(dx < 1e-5, "dx differs by {dx}");
    for name in &names {
        let (c, p) =
            (chain_map.data().lock().unwrap()[name].clone(), plain_map.data().lock().unwrap()[name].clone());
        if name.contains("running") {
            assert!(max_abs_diff(&c, &p)? < 1e-6, "{name} differs");
            continue;
        }
        let zeros = c.zeros_like()?;
        let (g, e) = (got.get(&c).unwrap_or(&zeros), want.get(&p).unwrap_or(&zeros));
        let diff = max_abs_diff(g, e)?;
        assert!(diff < 1e-5, "d{name} differs by {diff}");
        if !name.starts_with("c0.bias") {
            assert!(g.abs()?.max_all()?.to_scalar::<f32>()? > 0.0, "d{name} is all zeros");
        }
    }
    Ok(())
}
