//! HardNet: the L2-Net layout (seven convolutions with batch norm, no affine, no biases) with
//! dropout before the last convolution, per-patch input normalisation and an L2-normalised output.
//! Keys `features.{0,3,6,9,12,15,19}.weight` and `features.{1,4,...,20}.running_{mean,var}`.

use candle_core::{ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

use crate::layers::{conv_bn_relu_chain_t, input_norm, l2_normalize, ConvBn, Dropout};
use crate::spec::{conv_bn_specs, LayerSpec, HEAD, TRUNK};

/// Dropout probability in training, as the published training code sets it.
pub const DROPOUT: f32 = 0.3;

/// HardNet's input normalisation epsilon (added to the standard deviation).
const INPUT_EPS: f64 = 1e-7;
/// Index of the final convolution in the `features` sequence (the dropout sits at 18).
const HEAD_INDEX: usize = 19;

/// The HardNet descriptor net.
#[derive(Debug)]
pub struct HardNet {
    trunk: Vec<ConvBn>,
    dropout: Dropout,
    head: ConvBn,
}

impl HardNet {
    /// Reads the weights under `features.*` of `vb`.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let features = vb.pp("features");
        let trunk = TRUNK
            .iter()
            .enumerate()
            .map(|(i, spec)| ConvBn::new(features.pp(3 * i), features.pp(3 * i + 1), *spec, false))
            .collect::<Result<Vec<_>>>()?;
        let head = ConvBn::new(features.pp(HEAD_INDEX), features.pp(HEAD_INDEX + 1), HEAD, false)?;
        Ok(Self { trunk, dropout: Dropout::new(DROPOUT, 0), head })
    }

    /// The dropout layer.
    pub fn dropout(&self) -> &Dropout {
        &self.dropout
    }

    /// The dropout layer, to change its probability.
    pub fn dropout_mut(&mut self) -> &mut Dropout {
        &mut self.dropout
    }
}

impl HardNet {
    /// The final normalisation, from [`HardNet::forward_raw_t`]'s output to the descriptors.
    ///
    /// # Shapes
    /// `(B, D)` -> `(B, D)`, unit rows
    pub fn normalize(raw: &Tensor) -> Result<Tensor> {
        l2_normalize(raw)
    }

    /// The descriptors before the final L2 normalisation (HyNet's loss penalises their norms).
    ///
    /// # Shapes
    /// `(B, 1, 32, 32)` -> `(B, D)`
    pub fn forward_raw_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = conv_bn_relu_chain_t(&self.trunk, &input_norm(x, INPUT_EPS)?, train)?;
        self.head.forward_t(&self.dropout.forward_t(&x, train)?, train)?.flatten_from(1)
    }
}

impl ModuleT for HardNet {
    /// # Shapes
    /// `(B, 1, 32, 32)` -> `(B, 128)`, unit rows
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Self::normalize(&self.forward_raw_t(x, train)?)
    }
}

/// The layers, for sizes and keys.
pub(crate) fn layer_specs() -> Vec<LayerSpec> {
    let mut layers = conv_bn_specs("features", TRUNK.iter().enumerate().map(|(i, s)| (3 * i, *s)), false);
    layers.extend(conv_bn_specs("features", [(HEAD_INDEX, HEAD)], false));
    layers
}
