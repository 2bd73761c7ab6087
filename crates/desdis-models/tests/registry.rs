//! Adding an architecture from outside the crate: this file is the whole net (layers, forward,
//! one `ArchSpec`), and `toy()` holds the one registry line. Everything else (names, sizes,
//! fresh weights, checkpoints and key detection, the `Net` wrapper) then works as for the
//! built-in nets.

use candle_core::{Device, Module, Tensor};
use candle_nn::VarBuilder;
use desdis_checkpoint::{save_safetensors, StateDict};
use desdis_models::arch::Arch;
use desdis_models::init::init_net;
use desdis_models::layers::{l2_normalize, Conv2d, ConvSpec};
use desdis_models::nets::{expected_tensors, load_net};
use desdis_models::registry::{register, ArchSpec, DescriptorNet};
use desdis_models::spec::{LayerSpec, WeightScheme};

/// 32x32 -> 8x8 with 16 channels, then an 8x8 convolution to 128.
const CONV1: ConvSpec = ConvSpec::new(1, 16, 4).stride(4).bias(true);
const CONV2: ConvSpec = ConvSpec::new(16, 128, 8).bias(true);

#[derive(Debug)]
struct ToyNet {
    conv1: Conv2d,
    conv2: Conv2d,
}

impl DescriptorNet for ToyNet {
    fn forward_raw_t(&self, x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        self.conv2.forward(&self.conv1.forward(x)?.relu()?)?.flatten_from(1)
    }

    fn normalize(&self, raw: &Tensor) -> candle_core::Result<Tensor> {
        l2_normalize(raw)
    }
}

static TOY: ArchSpec = ArchSpec {
    name: "toy-net",
    layers: || {
        vec![
            LayerSpec::Conv { prefix: "toy.0".into(), conv: CONV1 },
            LayerSpec::Conv { prefix: "toy.2".into(), conv: CONV2 },
        ]
    },
    input_range: 1.0,
    l2_normalized: true,
    dropout_rate: 0.0,
    init: WeightScheme::TorchDefault,
    detect: |sd: &StateDict| sd.tensors.contains_key("toy.0.weight"),
    build: |vb: VarBuilder| {
        let toy = vb.pp("toy");
        let net = ToyNet { conv1: Conv2d::new(toy.pp(0), CONV1)?, conv2: Conv2d::new(toy.pp(2), CONV2)? };
        Ok(Box::new(net))
    },
};

/// The one registry line.
fn toy() -> Arch {
    register(&TOY).expect("toy-net registers")
}

#[test]
fn a_registered_net_is_named_sized_built_and_run_like_a_built_in_one() -> anyhow::Result<()> {
    let arch = toy();
    assert_eq!(Arch::parse("toy-net")?, arch);
    assert_eq!(arch.name(), "toy-net");
    assert_eq!(arch.learnable_param_count(), 16 * 16 + 16 + 128 * 16 * 64 + 128);
    assert_eq!(arch.macs_per_patch(), (16 * 16 * 64 + 128 * 16 * 64) as u64);
    let keys: Vec<String> = expected_tensors(arch)?.into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["toy.0.bias", "toy.0.weight", "toy.2.bias", "toy.2.weight"]);

    let (varmap, net) = init_net(arch, 3, &Device::Cpu)?;
    let x = Tensor::rand(0f32, 1f32, (5, 1, 32, 32), &Device::Cpu)?;
    let d = net.describe_t(&x, false)?;
    assert_eq!(d.descriptors.dims(), &[5, 128]);
    let norms = d.descriptors.sqr()?.sum(1)?.sqrt()?.to_vec1::<f32>()?;
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-4), "{norms:?}");
    assert!(d.raw.sqr()?.sum(1)?.to_vec1::<f32>()?.iter().any(|n| (n - 1.0).abs() > 1e-3));

    // A checkpoint of it is recognised from its keys and loads to the same descriptors.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("toy.safetensors");
    let tensors =
        varmap.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
    save_safetensors(&tensors, &path)?;
    let loaded = load_net(path.to_str().unwrap(), None, &Device::Cpu)?;
    assert_eq!(loaded.arch(), arch);
    let again = loaded.describe_t(&x, false)?.descriptors;
    assert!(desdis_kernels::compare::max_abs_diff(&again, &d.descriptors)? < 1e-6);
    Ok(())
}

#[test]
fn names_are_unique() {
    toy();
    assert_eq!(register(&TOY).unwrap(), toy(), "registering the same spec again is a no-op");
    static CLASH: ArchSpec = ArchSpec { name: "hardnet", ..TOY };
    assert!(register(&CLASH).unwrap_err().to_string().contains("built-in"));
    static TWIN: ArchSpec = ArchSpec { name: "toy-net", ..TOY };
    assert!(register(&TWIN).unwrap_err().to_string().contains("registered already"));
}
