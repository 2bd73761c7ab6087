//! TFeat: instance-normalised input, a 7x7 tanh convolution, 2x2 max pooling, a 6x6 tanh
//! convolution and a tanh linear layer. Not L2-normalised; the published weights expect 0..255 input.
//! Keys `features.1.*`, `features.4.*` (convolutions with bias), `descr.0.*` (linear).

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::layers::{Conv2d, ConvSpec, InstanceNorm2d};
use crate::spec::LayerSpec;
use desdis_kernels::{max_pool2d, tanh};

const CONV1: ConvSpec = ConvSpec::new(1, 32, 7).bias(true);
const CONV2: ConvSpec = ConvSpec::new(32, 64, 6).bias(true);
const POOL: usize = 2;
/// 64 channels of 8x8 after the second convolution.
const FLAT: usize = 64 * 8 * 8;
const OUT: usize = 128;

/// The TFeat descriptor net.
#[derive(Debug)]
pub struct TFeat {
    input_norm: InstanceNorm2d,
    conv1: Conv2d,
    conv2: Conv2d,
    descr: Linear,
}

impl TFeat {
    /// Reads the weights under `features.*` and `descr.*` of `vb`.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let features = vb.pp("features");
        let linear_vb = vb.pp("descr").pp(0);
        let weight =
            linear_vb.get_with_hints((OUT, FLAT), "weight", candle_nn::init::DEFAULT_KAIMING_UNIFORM)?;
        let bias = linear_vb.get_with_hints(OUT, "bias", candle_nn::Init::Const(0.0))?;
        Ok(Self {
            input_norm: InstanceNorm2d::new(),
            conv1: Conv2d::new(features.pp(1), CONV1)?,
            conv2: Conv2d::new(features.pp(4), CONV2)?,
            descr: Linear::new(weight, Some(bias)),
        })
    }
}

impl ModuleT for TFeat {
    /// # Shapes
    /// `(B, 1, 32, 32)` -> `(B, 128)`, values in `(-1, 1)`
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        let x = max_pool2d(&tanh(&self.conv1.forward(&self.input_norm.forward(x)?)?)?, POOL)?;
        let x = tanh(&self.conv2.forward(&x)?)?.flatten_from(1)?;
        tanh(&self.descr.forward(&x)?)
    }
}

/// The layers, for sizes and keys.
pub(crate) fn layer_specs() -> Vec<LayerSpec> {
    vec![
        LayerSpec::Conv { prefix: "features.1".into(), conv: CONV1 },
        LayerSpec::MaxPool { kernel: POOL },
        LayerSpec::Conv { prefix: "features.4".into(), conv: CONV2 },
        LayerSpec::Linear { prefix: "descr.0".into(), n_in: FLAT, n_out: OUT },
    ]
}
