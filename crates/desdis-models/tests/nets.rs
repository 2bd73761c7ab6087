//! The descriptor nets against independent references: the released DesDis and TFeat weights
//! against descriptors from a float64 numpy implementation (shared data), and every architecture
//! on deterministic synthetic weights against the numpy forward in tests/fixtures/nets
//! (make_fixtures.py there documents the weight generator re-implemented below).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::{VarBuilder, VarMap};
use desdis_checkpoint::{save_safetensors, StateDict};
use desdis_kernels::compare::max_abs_diff;
use desdis_models::arch::Arch;
use desdis_models::init::{init_net, trainable_net};
use desdis_models::layers::{BatchNorm2d, Dropout};
use desdis_models::nets::{expected_tensors, load_net, net_from_state_dict, Net};
use desdis_models::spec::{TensorRole, TensorSpec};
use desdis_models::Error;
use desdis_stdx::testing::shared_data;

const TOL: f32 = 1e-5;

// ------------------------------------------------------------------ helpers

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/nets")
}

/// A float32 `.npy` file as a tensor, in C or Fortran order.
fn npy_tensor(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let npy = npyz::NpyFile::new(&bytes[..])?;
    let mut shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let fortran = npy.order() == npyz::Order::Fortran;
    if fortran {
        shape.reverse();
    }
    let tensor = Tensor::from_vec(npy.into_vec::<f32>()?, shape.as_slice(), &Device::Cpu)?;
    if !fortran {
        return Ok(tensor);
    }
    // Fortran order is C order of the reversed shape: reverse the axes back.
    let axes: Vec<usize> = (0..shape.len()).rev().collect();
    Ok(tensor.permute(axes)?.contiguous()?)
}

fn assert_close(got: &Tensor, want: &Tensor, what: &str) -> Result<()> {
    let diff = max_abs_diff(got, want)?;
    eprintln!("{what}: {diff:e}");
    ensure!(diff <= TOL, "{what}: max |diff| = {diff:e} > {TOL:e}");
    Ok(())
}

/// 64-bit FNV-1a of the key's bytes.
fn fnv1a64(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The fixture script's synthetic value of element `i` of tensor `spec`.
fn synthetic_value(spec: &TensorSpec, i: usize) -> f32 {
    let u = (splitmix64(fnv1a64(&spec.key).wrapping_add(i as u64)) >> 11) as f64 / (1u64 << 53) as f64;
    let s = 2.0 * u - 1.0;
    let v = match spec.role {
        TensorRole::Weight { fan_in } => s * (6.0 / fan_in as f64).sqrt(),
        TensorRole::Bias { .. } | TensorRole::RunningMean | TensorRole::NormBias => 0.1 * s,
        TensorRole::RunningVar => 0.5 + u,
        TensorRole::NormWeight => 0.75 + 0.5 * u,
        TensorRole::FrnEps => -1e-6 * (1.0 + u),
        TensorRole::TluTau => -0.2 + 0.3 * u,
    };
    v as f32
}

fn synthetic_weights(arch: Arch) -> Result<HashMap<String, Tensor>> {
    let mut tensors = HashMap::new();
    for spec in arch.tensor_specs() {
        let values: Vec<f32> = (0..spec.numel()).map(|i| synthetic_value(&spec, i)).collect();
        tensors.insert(spec.key.clone(), Tensor::from_vec(values, spec.shape.as_slice(), &Device::Cpu)?);
    }
    Ok(tensors)
}

fn fixture_archs() -> Vec<Arch> {
    vec![Arch::HardNet, Arch::SosNet, Arch::L2Net, Arch::HyNet, Arch::TFeat, Arch::DesDis { dim: 8 }]
}

fn fixture_inputs() -> Result<Tensor> {
    npy_tensor(&fixtures_dir().join("inputs.npy"))
}

fn state_dict(path: &str, tensors: HashMap<String, Tensor>) -> StateDict {
    StateDict { path: PathBuf::from(path), tensors }
}

/// Every running mean and variance of a `VarMap`, concatenated in sorted key order.
fn running_stats(varmap: &VarMap) -> Result<Tensor> {
    let vars = varmap.data().lock().unwrap();
    let mut keys: Vec<&String> =
        vars.keys().filter(|k| k.ends_with(".running_mean") || k.ends_with(".running_var")).collect();
    keys.sort();
    let parts = keys.iter().map(|k| vars[*k].as_tensor().clone()).collect::<Vec<_>>();
    Ok(Tensor::cat(&parts, 0)?)
}

// ------------------------------------------------------------------ parity with the numpy forward

#[test]
fn eval_mode_matches_numpy_forward_through_load_net() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let x = fixture_inputs()?;
    for arch in fixture_archs() {
        let path = dir.path().join(format!("{arch}.safetensors"));
        save_safetensors(&synthetic_weights(arch)?, &path)?;
        let net = load_net(path.to_str().context("non-UTF-8 temp path")?, None, &Device::Cpu)?;
        ensure!(net.arch() == arch, "detected {} for {arch}", net.arch());
        let want = npy_tensor(&fixtures_dir().join(format!("{arch}_eval.npy")))?;
        assert_close(&net.forward_t(&x, false)?, &want, &format!("{arch} eval"))?;
    }
    Ok(())
}

#[test]
fn train_mode_without_dropout_matches_numpy_forward_and_running_stats() -> Result<()> {
    let x = fixture_inputs()?;
    for arch in fixture_archs() {
        let sd = state_dict("synthetic", synthetic_weights(arch)?);
        let (varmap, mut net) = trainable_net(&sd, Some(arch), &Device::Cpu)?;
        net.set_dropout(0.0)?;
        let want = npy_tensor(&fixtures_dir().join(format!("{arch}_train.npy")))?;
        assert_close(&net.forward_t(&x, true)?, &want, &format!("{arch} train"))?;
        if arch != Arch::TFeat {
            let want = npy_tensor(&fixtures_dir().join(format!("{arch}_running_after_train.npy")))?;
            assert_close(&running_stats(&varmap)?, &want, &format!("{arch} running stats"))?;
        }
    }
    Ok(())
}

#[test]
fn training_forward_of_a_loaded_net_leaves_the_state_dict_untouched() -> Result<()> {
    let arch = Arch::DesDis { dim: 8 };
    let sd = state_dict("synthetic", synthetic_weights(arch)?);
    let before = sd.tensors["desc.2.running_var"].to_vec1::<f32>()?;
    let mut net = net_from_state_dict(&sd, Some(arch), &Device::Cpu)?;
    net.set_dropout(0.0)?;
    net.forward_t(&fixture_inputs()?, true)?;
    ensure!(
        sd.tensors["desc.2.running_var"].to_vec1::<f32>()? == before,
        "running stats written into the state dict"
    );
    Ok(())
}

// ------------------------------------------------------------------ parity with the released weights

fn reference_patches(scale: f32) -> Result<Option<Tensor>> {
    let Some(path) = shared_data("reference/hpatches_ref64_f32_32x32_0to255.npy") else { return Ok(None) };
    let patches = npy_tensor(&path)?;
    Ok(Some((patches.unsqueeze(1)? * scale as f64)?))
}

fn check_released(weights: &str, reference: &str, arch: Arch) -> Result<()> {
    let (Some(weights), Some(reference)) = (shared_data(weights), shared_data(reference)) else {
        return Ok(());
    };
    let Some(x) = reference_patches(arch.input_range() / 255.0)? else { return Ok(()) };
    let net = load_net(weights.to_str().context("non-UTF-8 shared data path")?, None, &Device::Cpu)?;
    ensure!(net.arch() == arch, "{}: detected {}, expected {arch}", weights.display(), net.arch());
    assert_close(
        &net.forward_t(&x, false)?,
        &npy_tensor(&reference)?,
        &format!("{arch} on {}", weights.display()),
    )
}

#[test]
fn released_desdis_students_match_reference_descriptors() -> Result<()> {
    for dim in [8, 16, 24, 32] {
        check_released(
            &format!("desdis-official/DesDis-{dim}.pth"),
            &format!("reference/desdis-{dim}_ref64.npy"),
            Arch::DesDis { dim },
        )?;
    }
    Ok(())
}

#[test]
fn released_tfeat_matches_reference_descriptors() -> Result<()> {
    check_released("tfeat/tfeat-liberty.params", "reference/tfeat-liberty_ref64.npy", Arch::TFeat)
}

// ------------------------------------------------------------------ architecture facts

#[test]
fn detect_recognises_every_architecture_from_its_keys() -> Result<()> {
    let mut archs = Arch::all();
    archs.push(Arch::DesDis { dim: 5 });
    for arch in archs {
        let tensors = expected_tensors(arch)?
            .into_iter()
            .map(|(key, shape)| Ok((key, Tensor::zeros(shape, DType::F32, &Device::Cpu)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        let detected = Arch::detect(&state_dict("x.pth", tensors))?;
        ensure!(detected == arch, "detected {detected} for {arch}");
    }
    Ok(())
}

#[test]
fn detect_rejects_unknown_layouts_naming_the_file() -> Result<()> {
    let tensors = HashMap::from([("conv.weight".to_string(), Tensor::zeros(3, DType::F32, &Device::Cpu)?)]);
    let err = Arch::detect(&state_dict("mystery.pth", tensors)).unwrap_err();
    let msg = err.to_string();
    ensure!(matches!(err, Error::UnknownArch(_)), "wrong error: {msg}");
    ensure!(msg.contains("mystery.pth") && msg.contains("conv.weight") && msg.contains("hardnet"), "{msg}");
    Ok(())
}

#[test]
fn specs_list_exactly_the_tensors_the_nets_read_and_param_count_is_their_size() -> Result<()> {
    for arch in Arch::all() {
        let varmap = VarMap::new();
        Net::new(arch, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
        let scalars: usize = varmap.all_vars().iter().map(|v| v.elem_count()).sum();
        ensure!(arch.param_count() == scalars, "{arch}: param_count {} != {scalars}", arch.param_count());
        let mut from_spec: Vec<(String, Vec<usize>)> =
            arch.tensor_specs().into_iter().map(|t| (t.key, t.shape)).collect();
        from_spec.sort();
        ensure!(from_spec == expected_tensors(arch)?, "{arch}: spec and net disagree");
        ensure!(arch.learnable_param_count() < arch.param_count() || arch == Arch::TFeat, "{arch}: buffers");
    }
    Ok(())
}

#[test]
fn param_and_mac_counts_match_hand_computed_totals() -> Result<()> {
    // HardNet: seven bias-free convolutions on a 32x32 patch; 2 x 576 batch-norm buffers.
    let convs = [(1, 32, 32), (32, 32, 32), (32, 64, 16), (64, 64, 16), (64, 128, 8), (128, 128, 8)];
    let trunk_macs: u64 = convs.iter().map(|&(i, o, side)| (i * o * 9 * side * side) as u64).sum();
    ensure!(Arch::HardNet.macs_per_patch() == trunk_macs + 128 * 128 * 64);
    let weights: usize = convs.iter().map(|&(i, o, _)| i * o * 9).sum::<usize>() + 128 * 128 * 64;
    ensure!(Arch::HardNet.learnable_param_count() == weights);
    ensure!(Arch::HardNet.param_count() == weights + 2 * (32 + 32 + 64 + 64 + 128 + 128 + 128));
    // TFeat: 7x7 conv to 26x26, pool to 13x13, 6x6 conv to 8x8, linear 4096 -> 128.
    ensure!(Arch::TFeat.macs_per_patch() == (32 * 49 * 26 * 26 + 64 * 32 * 36 * 64 + 4096 * 128) as u64);
    // DesDis-8: 16x16, 8x8, 4x4, 4x4, then a 4x4 convolution to 1x1.
    let d = 8;
    let desdis = 9 * (d * 256 + 2 * d * d * 64 + 8 * d * d * 16 + 16 * d * d * 16) + 4 * d * 128 * 16;
    ensure!(Arch::DesDis { dim: 8 }.macs_per_patch() == desdis as u64);
    Ok(())
}

#[test]
fn arch_names_parse_and_round_trip() -> Result<()> {
    for arch in Arch::all() {
        ensure!(Arch::parse(&arch.name())? == arch && arch.to_string() == arch.name());
    }
    for spelling in ["desdis-8", "desdis8", "desdis:8", "DesDis_8"] {
        ensure!(spelling.parse::<Arch>()? == Arch::DesDis { dim: 8 }, "{spelling}");
    }
    ensure!(Arch::parse("desdis")? == Arch::DesDis { dim: 32 });
    ensure!(Arch::DesDis { dim: 32 }.name() == "desdis-32");
    ensure!(Arch::parse("Hard-Net")? == Arch::HardNet && Arch::parse("sosnet32x32")? == Arch::SosNet);
    for bad in ["resnet", "desdis-0", "desdis-x", ""] {
        let err = Arch::parse(bad).unwrap_err();
        let msg = err.to_string();
        ensure!(matches!(err, Error::UnknownArch(_)), "{bad}: {msg}");
        ensure!(msg.contains("hardnet") && msg.contains("tfeat") && msg.contains("desdis-8"), "{msg}");
    }
    Ok(())
}

#[test]
fn arch_properties() {
    assert_eq!(Arch::TFeat.input_range(), 255.0);
    assert_eq!(Arch::DesDis { dim: 8 }.input_range(), 1.0);
    assert!(!Arch::TFeat.l2_normalized() && Arch::HyNet.l2_normalized());
    assert!(Arch::all().iter().all(|a| a.descriptor_size() == 128));
}

// ------------------------------------------------------------------ loading errors

fn write_checkpoint(dir: &Path, name: &str, tensors: &HashMap<String, Tensor>) -> Result<String> {
    let path = dir.join(name);
    save_safetensors(tensors, &path)?;
    Ok(path.to_str().context("non-UTF-8 temp path")?.to_string())
}

#[test]
fn missing_key_error_names_file_and_key() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut tensors = synthetic_weights(Arch::HardNet)?;
    tensors.remove("features.9.weight");
    let path = write_checkpoint(dir.path(), "incomplete.safetensors", &tensors)?;
    let err = load_net(&path, Some(Arch::HardNet), &Device::Cpu).unwrap_err();
    let msg = err.to_string();
    ensure!(matches!(&err, Error::MissingKey { key, .. } if key == "features.9.weight"), "{msg}");
    ensure!(msg.contains("incomplete.safetensors") && msg.contains("features.9.weight"), "{msg}");
    Ok(())
}

#[test]
fn wrong_shape_error_names_file_key_and_shapes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut tensors = synthetic_weights(Arch::DesDis { dim: 16 })?;
    tensors.insert("layer2.1.running_var".into(), Tensor::ones(7, DType::F32, &Device::Cpu)?);
    let path = write_checkpoint(dir.path(), "bent.safetensors", &tensors)?;
    let err = load_net(&path, None, &Device::Cpu).unwrap_err();
    let msg = err.to_string();
    ensure!(
        matches!(&err, Error::Shape { expected, found, .. } if expected == &[32] && found == &[7]),
        "{msg}"
    );
    ensure!(msg.contains("bent.safetensors") && msg.contains("layer2.1.running_var"), "{msg}");
    Ok(())
}

#[test]
fn explicit_arch_of_the_wrong_width_is_a_shape_error() -> Result<()> {
    let sd = state_dict("desdis16.pth", synthetic_weights(Arch::DesDis { dim: 16 })?);
    let err = net_from_state_dict(&sd, Some(Arch::DesDis { dim: 8 }), &Device::Cpu).unwrap_err();
    ensure!(matches!(err, Error::Shape { .. }) && err.to_string().contains("desdis16.pth"), "{err}");
    Ok(())
}

#[test]
fn extra_keys_such_as_num_batches_tracked_are_ignored() -> Result<()> {
    let mut tensors = synthetic_weights(Arch::SosNet)?;
    tensors.insert("layers.2.num_batches_tracked".into(), Tensor::new(&[3i64], &Device::Cpu)?.squeeze(0)?);
    let net = net_from_state_dict(&state_dict("sos.pth", tensors), None, &Device::Cpu)?;
    ensure!(net.arch() == Arch::SosNet);
    Ok(())
}

#[test]
fn bad_inputs_are_errors_not_panics() -> Result<()> {
    let (_, net) = init_net(Arch::DesDis { dim: 8 }, 0, &Device::Cpu)?;
    for dims in [vec![2, 1, 16, 16], vec![2, 3, 32, 32], vec![1, 32, 32], vec![0, 1, 32, 32]] {
        let x = Tensor::zeros(dims.as_slice(), DType::F32, &Device::Cpu)?;
        let err = net.forward_t(&x, false).unwrap_err().to_string();
        ensure!(err.contains("desdis-8") && err.contains("32"), "{dims:?}: {err}");
    }
    // A single patch has no batch statistics at the 1x1 head: PyTorch refuses it too.
    let one = Tensor::zeros((1, 1, 32, 32), DType::F32, &Device::Cpu)?;
    ensure!(net.forward_t(&one, true).is_err());
    // Other dtypes are converted.
    let x = fixture_inputs()?.to_dtype(DType::F64)?;
    ensure!(net.forward_t(&x, false)?.dims() == [8, 128]);
    Ok(())
}

// ------------------------------------------------------------------ initialisation and dropout

fn var_values(varmap: &VarMap, key: &str) -> Result<Vec<f32>> {
    let vars = varmap.data().lock().unwrap();
    Ok(vars[key].as_tensor().flatten_all()?.to_vec1::<f32>()?)
}

#[test]
fn seeded_init_is_deterministic_and_seed_dependent() -> Result<()> {
    for arch in Arch::all() {
        let (a, _) = init_net(arch, 42, &Device::Cpu)?;
        let (b, _) = init_net(arch, 42, &Device::Cpu)?;
        let (c, _) = init_net(arch, 43, &Device::Cpu)?;
        let weight = &arch.tensor_specs()[0].key;
        let first = if arch == Arch::HyNet { "layer1.2.weight" } else { weight.as_str() };
        ensure!(var_values(&a, first)? == var_values(&b, first)?, "{arch}: same seed, different {first}");
        ensure!(var_values(&a, first)? != var_values(&c, first)?, "{arch}: seed ignored for {first}");
    }
    Ok(())
}

#[test]
fn init_follows_the_published_schemes() -> Result<()> {
    let (hardnet, _) = init_net(Arch::HardNet, 1, &Device::Cpu)?;
    // 32 x 288 orthogonal rows with gain 0.6: W Wᵀ = 0.36 I.
    let w = Tensor::from_vec(var_values(&hardnet, "features.3.weight")?, (32, 288), &Device::Cpu)?;
    let gram = w.matmul(&w.t()?)?;
    let want = (Tensor::eye(32, DType::F32, &Device::Cpu)? * 0.36)?;
    ensure!(max_abs_diff(&gram, &want)? < 1e-5, "HardNet conv weights are not orthogonal");
    ensure!(var_values(&hardnet, "features.1.running_var")?.iter().all(|&v| v == 1.0));

    let (hynet, _) = init_net(Arch::HyNet, 1, &Device::Cpu)?;
    ensure!(var_values(&hynet, "layer2.2.tau")?.iter().all(|&v| v == -1.0));
    ensure!(var_values(&hynet, "layer2.1.eps")? == [1e-6]);
    ensure!(var_values(&hynet, "layer2.1.weight")?.iter().all(|&v| v == 1.0));
    let bound = 1.0 / (32.0f32 * 9.0).sqrt();
    let conv = var_values(&hynet, "layer2.0.weight")?;
    ensure!(conv.iter().all(|v| v.abs() <= bound) && conv.iter().any(|v| v.abs() > 0.9 * bound));
    Ok(())
}

#[test]
fn fresh_nets_describe_patches_as_unit_vectors() -> Result<()> {
    let x = fixture_inputs()?;
    for arch in Arch::all() {
        let (_, net) = init_net(arch, 3, &Device::Cpu)?;
        let y = net.forward_t(&x, false)?;
        let norms = y.sqr()?.sum(1)?.sqrt()?.to_vec1::<f32>()?;
        ensure!(y.dims() == [8, 128], "{arch}: {:?}", y.dims());
        if arch.l2_normalized() {
            ensure!(norms.iter().all(|n| (n - 1.0).abs() < 1e-4), "{arch}: norms {norms:?}");
        } else {
            ensure!(norms.iter().all(|n| n.is_finite() && *n > 0.0), "{arch}: norms {norms:?}");
        }
    }
    Ok(())
}

#[test]
fn dropout_is_seeded_inverted_and_off_in_eval() -> Result<()> {
    let x = Tensor::ones((64, 256), DType::F32, &Device::Cpu)?;
    let dropout = Dropout::new(0.25, 9);
    let a = dropout.forward_t(&x, true)?.flatten_all()?.to_vec1::<f32>()?;
    ensure!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6), "not inverted dropout");
    let dropped = a.iter().filter(|&&v| v == 0.0).count() as f32 / a.len() as f32;
    ensure!((dropped - 0.25).abs() < 0.03, "dropped fraction {dropped}");
    dropout.reseed(9);
    ensure!(
        dropout.forward_t(&x, true)?.flatten_all()?.to_vec1::<f32>()? == a,
        "reseeding does not repeat masks"
    );
    ensure!(dropout.forward_t(&x, true)?.flatten_all()?.to_vec1::<f32>()? != a, "masks repeat");
    ensure!(max_abs_diff(&dropout.forward_t(&x, false)?, &x)? == 0.0, "eval is not the identity");
    Ok(())
}

/// Masks are drawn in parallel chunks, each from its own stream: one thread or several, the same
/// seed gives the same mask (so a training run repeats on any machine).
#[test]
fn dropout_masks_do_not_depend_on_the_thread_count() -> Result<()> {
    let x = Tensor::ones((3, 40_000), DType::F32, &Device::Cpu)?;
    let masked = |threads: usize| -> Result<Vec<f32>> {
        let pool =
            rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(anyhow::Error::from)?;
        pool.install(|| Ok(Dropout::new(0.3, 4).forward_t(&x, true)?.flatten_all()?.to_vec1::<f32>()?))
    };
    let one = masked(1)?;
    ensure!(one == masked(3)?, "the mask changed with the thread count");
    let dropped = one.iter().filter(|&&v| v == 0.0).count() as f64 / one.len() as f64;
    ensure!((dropped - 0.3).abs() < 0.01, "dropped fraction {dropped}");
    Ok(())
}

#[test]
fn net_dropout_changes_training_outputs_reproducibly() -> Result<()> {
    let x = fixture_inputs()?;
    let (_, mut net) = init_net(Arch::HardNet, 5, &Device::Cpu)?;
    ensure!(net.dropout() == 0.3);
    net.seed_dropout(11);
    let first = net.forward_t(&x, true)?;
    net.seed_dropout(11);
    ensure!(max_abs_diff(&net.forward_t(&x, true)?, &first)? == 0.0, "same seed, different masks");
    net.set_dropout(0.0)?;
    ensure!(max_abs_diff(&net.forward_t(&x, true)?, &first)? > 1e-3, "dropout had no effect");
    ensure!(net.set_dropout(1.5).is_err());
    let (_, mut l2net) = init_net(Arch::L2Net, 5, &Device::Cpu)?;
    ensure!(l2net.set_dropout(0.0).is_ok() && l2net.set_dropout(0.2).is_err());
    Ok(())
}

#[test]
fn batch_norm_training_updates_running_stats_with_unbiased_variance() -> Result<()> {
    let varmap = VarMap::new();
    let bn = BatchNorm2d::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu), 1, false)?;
    // One channel, values 1..4: mean 2.5, biased variance 1.25, unbiased 5/3.
    let x = Tensor::new(&[1f32, 2., 3., 4.], &Device::Cpu)?.reshape((4, 1, 1, 1))?;
    let y = bn.forward_t(&x, true)?.flatten_all()?.to_vec1::<f32>()?;
    ensure!((y[0] - (-1.5 / (1.25f32 + 1e-5).sqrt())).abs() < 1e-6, "{y:?}");
    ensure!((var_values(&varmap, "running_mean")?[0] - 0.25).abs() < 1e-6);
    ensure!((var_values(&varmap, "running_var")?[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-6);
    Ok(())
}

#[test]
fn gradients_reach_every_learned_tensor_and_no_buffer() -> Result<()> {
    let x = fixture_inputs()?;
    for arch in [Arch::HardNet, Arch::HyNet, Arch::L2Net, Arch::TFeat, Arch::DesDis { dim: 8 }] {
        let (varmap, net) = init_net(arch, 2, &Device::Cpu)?;
        let y = net.forward_t(&x, true)?;
        // A loss that depends on every output value, with different weights.
        let w = Tensor::arange(0f32, 128., &Device::Cpu)?.broadcast_as(y.shape())?;
        let grads = (y * w)?.sum_all()?.backward()?;
        let vars = varmap.data().lock().unwrap();
        for spec in arch.tensor_specs() {
            let has_grad = grads.get(vars[&spec.key].as_tensor()).is_some();
            ensure!(has_grad == spec.role.is_learned(), "{arch}: {} gradient: {has_grad}", spec.key);
        }
    }
    Ok(())
}
