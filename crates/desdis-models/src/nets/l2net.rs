//! L2-Net in the layout of its PyTorch port of the published weights: the HardNet layout without
//! dropout, with convolution biases and affine batch norms (eps 1e-10), per-patch input
//! normalisation (eps 1e-12) and a `LocalResponseNorm(256, alpha=256, beta=0.5, k=0.5)` output,
//! i.e. `x / sqrt(0.5 + |x|²)`. Keys `features.{0,3,...,15,18}.{weight,bias}`,
//! `features.{1,4,...,19}.{weight,bias,running_mean,running_var}`.

use candle_core::{ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

use crate::layers::{channel_normalize, conv_bn_relu_chain_t, input_norm, ConvBn, ConvSpec};
use crate::spec::{conv_bn_specs, LayerSpec, HEAD, TRUNK};

/// Input normalisation epsilon of the port (added to the standard deviation).
const INPUT_EPS: f64 = 1e-12;
/// Batch-norm epsilon of the port.
const BN_EPS: f64 = 1e-10;
/// The `k` of the output local response normalisation.
const OUTPUT_K: f64 = 0.5;
/// Index of the final convolution in the `features` sequence (no dropout before it).
const HEAD_INDEX: usize = 18;

/// The L2-Net descriptor net.
#[derive(Debug)]
pub struct L2Net {
    trunk: Vec<ConvBn>,
    head: ConvBn,
}

fn with_bias(spec: ConvSpec) -> ConvSpec {
    spec.bias(true)
}

impl L2Net {
    /// Reads the weights under `features.*` of `vb`.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let features = vb.pp("features");
        let block = |index: usize, spec: ConvSpec| -> Result<ConvBn> {
            Ok(ConvBn::new(features.pp(index), features.pp(index + 1), with_bias(spec), true)?
                .with_bn_eps(BN_EPS))
        };
        let trunk =
            TRUNK.iter().enumerate().map(|(i, spec)| block(3 * i, *spec)).collect::<Result<Vec<_>>>()?;
        Ok(Self { trunk, head: block(HEAD_INDEX, HEAD)? })
    }
}

impl ModuleT for L2Net {
    /// # Shapes
    /// `(B, 1, 32, 32)` -> `(B, 128)`, rows of norm just below 1
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = conv_bn_relu_chain_t(&self.trunk, &input_norm(x, INPUT_EPS)?, train)?;
        let x = self.head.forward_t(&x, train)?;
        channel_normalize(&x.flatten_from(1)?, OUTPUT_K)
    }
}

/// The layers, for sizes and keys.
pub(crate) fn layer_specs() -> Vec<LayerSpec> {
    let trunk = TRUNK.iter().enumerate().map(|(i, s)| (3 * i, with_bias(*s)));
    let mut layers = conv_bn_specs("features", trunk, true);
    layers.extend(conv_bn_specs("features", [(HEAD_INDEX, with_bias(HEAD))], true));
    layers
}
