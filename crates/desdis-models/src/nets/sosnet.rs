//! SOSNet32x32: instance-normalised input, the HardNet trunk and head (dropout 0.1), and a local
//! response normalisation spanning all channels, which L2-normalises `x + 1e-10`.
//! Keys `layers.{1,4,7,10,13,16,20}.weight`, `layers.{2,5,...,21}.running_{mean,var}`.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

use crate::layers::{channel_normalize, conv_bn_relu_chain_t, ConvBn, Dropout, InstanceNorm2d, L2_EPS};
use crate::spec::{conv_bn_specs, LayerSpec, HEAD, TRUNK};

/// Dropout probability in training, as the published training code sets it.
pub const DROPOUT: f32 = 0.1;

/// Index of the final convolution in the `layers` sequence (the dropout sits at 19).
const HEAD_INDEX: usize = 20;

/// The SOSNet32x32 descriptor net.
#[derive(Debug)]
pub struct SosNet {
    input_norm: InstanceNorm2d,
    trunk: Vec<ConvBn>,
    dropout: Dropout,
    head: ConvBn,
}

impl SosNet {
    /// Reads the weights under `layers.*` of `vb`.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let layers = vb.pp("layers");
        let trunk = TRUNK
            .iter()
            .enumerate()
            .map(|(i, spec)| ConvBn::new(layers.pp(3 * i + 1), layers.pp(3 * i + 2), *spec, false))
            .collect::<Result<Vec<_>>>()?;
        let head = ConvBn::new(layers.pp(HEAD_INDEX), layers.pp(HEAD_INDEX + 1), HEAD, false)?;
        Ok(Self { input_norm: InstanceNorm2d::new(), trunk, dropout: Dropout::new(DROPOUT, 0), head })
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

impl SosNet {
    /// The final normalisation, from [`SosNet::forward_raw_t`]'s output to the descriptors.
    ///
    /// # Shapes
    /// `(B, D)` -> `(B, D)`, unit rows
    pub fn normalize(raw: &Tensor) -> Result<Tensor> {
        // SOSNet adds 1e-10 before its LocalResponseNorm(256, alpha=256, beta=0.5, k=0).
        channel_normalize(&(raw + L2_EPS)?, 0.0)
    }

    /// The descriptors before the final L2 normalisation (HyNet's loss penalises their norms).
    ///
    /// # Shapes
    /// `(B, 1, 32, 32)` -> `(B, D)`
    pub fn forward_raw_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = conv_bn_relu_chain_t(&self.trunk, &self.input_norm.forward(x)?, train)?;
        self.head.forward_t(&self.dropout.forward_t(&x, train)?, train)?.flatten_from(1)
    }
}

impl ModuleT for SosNet {
    /// # Shapes
    /// `(B, 1, 32, 32)` -> `(B, 128)`, unit rows
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Self::normalize(&self.forward_raw_t(x, train)?)
    }
}

/// The layers, for sizes and keys.
pub(crate) fn layer_specs() -> Vec<LayerSpec> {
    let mut layers = conv_bn_specs("layers", TRUNK.iter().enumerate().map(|(i, s)| (3 * i + 1, *s)), false);
    layers.extend(conv_bn_specs("layers", [(HEAD_INDEX, HEAD)], false));
    layers
}
