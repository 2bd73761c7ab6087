//! DesDis(dim): the light-weight student. Instance-normalised input, three stride-2 3x3
//! convolutions (dim, 2·dim, 4·dim channels) and one stride-1, each with batch norm and ReLU, then
//! dropout 0.1, a 4x4 convolution with bias to 128 and a batch norm; L2-normalised.
//!
//! Keys `layer1.1` conv, `layer1.2` BN; `layer2.0`/`.1`; `layer3.0`/`.1` and `layer3.3`/`.4`;
//! `desc.1` conv (with bias), `desc.2` BN. No batch norm is affine.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

use crate::layers::{conv_bn_relu_chain_t, l2_normalize, ConvBn, ConvSpec, Dropout, InstanceNorm2d};
use crate::spec::{conv_bn_specs, LayerSpec};

/// Dropout probability in training, as the published training code sets it.
pub const DROPOUT: f32 = 0.1;

/// The convolutions before the head, with the sequence and index of each (its BN follows it).
fn trunk(dim: usize) -> [(&'static str, usize, ConvSpec); 4] {
    let down = |c_in, c_out| ConvSpec::new(c_in, c_out, 3).stride(2).padding(1);
    [
        ("layer1", 1, down(1, dim)),
        ("layer2", 0, down(dim, 2 * dim)),
        ("layer3", 0, down(2 * dim, 4 * dim)),
        ("layer3", 3, ConvSpec::new(4 * dim, 4 * dim, 3).padding(1)),
    ]
}

fn head(dim: usize) -> ConvSpec {
    ConvSpec::new(4 * dim, 128, 4).bias(true)
}

/// The DesDis student net.
#[derive(Debug)]
pub struct DesDis {
    dim: usize,
    input_norm: InstanceNorm2d,
    trunk: Vec<ConvBn>,
    dropout: Dropout,
    head: ConvBn,
}

impl DesDis {
    /// Reads the weights of width `dim` under `layer1..3.*` and `desc.*` of `vb`.
    pub fn new(vb: VarBuilder, dim: usize) -> Result<Self> {
        let trunk = trunk(dim)
            .into_iter()
            .map(|(seq, index, spec)| {
                ConvBn::new(vb.pp(seq).pp(index), vb.pp(seq).pp(index + 1), spec, false)
            })
            .collect::<Result<Vec<_>>>()?;
        let desc = vb.pp("desc");
        Ok(Self {
            dim,
            input_norm: InstanceNorm2d::new(),
            trunk,
            dropout: Dropout::new(DROPOUT, 0),
            head: ConvBn::new(desc.pp(1), desc.pp(2), head(dim), false)?,
        })
    }

    /// The width of the first layer.
    pub fn dim(&self) -> usize {
        self.dim
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

impl DesDis {
    /// The final normalisation, from [`DesDis::forward_raw_t`]'s output to the descriptors.
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
        let x = conv_bn_relu_chain_t(&self.trunk, &self.input_norm.forward(x)?, train)?;
        self.head.forward_t(&self.dropout.forward_t(&x, train)?, train)?.flatten_from(1)
    }
}

impl ModuleT for DesDis {
    /// # Shapes
    /// `(B, 1, 32, 32)` -> `(B, 128)`, unit rows
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Self::normalize(&self.forward_raw_t(x, train)?)
    }
}

/// The layers of width `dim`, for sizes and keys.
pub(crate) fn layer_specs(dim: usize) -> Vec<LayerSpec> {
    let mut layers = Vec::new();
    for (seq, index, spec) in trunk(dim) {
        layers.extend(conv_bn_specs(seq, [(index, spec)], false));
    }
    layers.extend(conv_bn_specs("desc", [(1, head(dim))], false));
    layers
}
