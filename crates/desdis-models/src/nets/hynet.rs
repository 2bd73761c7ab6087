//! HyNet: FRN + TLU in place of batch norm and ReLU (also on the input), the HardNet channel
//! layout with convolution biases, and a dropout / convolution / batch-norm head; L2-normalised.
//!
//! Keys as the published code's sequences: `layer1.0` FRN(1), `layer1.1` TLU(1), `layer1.2` conv,
//! `layer1.3` FRN, `layer1.4` TLU; `layer{2..6}.0` conv, `.1` FRN, `.2` TLU; `layer7.0` dropout,
//! `layer7.1` conv (no bias), `layer7.2` batch norm (not affine).

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

use crate::layers::{l2_normalize, Conv2d, ConvBn, ConvSpec, Dropout, Frn, Tlu};
use crate::spec::{conv_bn_specs, LayerSpec, HEAD, TRUNK};

/// Dropout probability in training, as the published training code sets it.
pub const DROPOUT: f32 = 0.3;

/// A convolution, FRN and TLU.
#[derive(Debug)]
struct FrnBlock {
    conv: Conv2d,
    frn: Frn,
    tlu: Tlu,
}

impl FrnBlock {
    /// The three layers from `vb.pp(first)`, `vb.pp(first + 1)`, `vb.pp(first + 2)`.
    fn new(vb: VarBuilder, first: usize, spec: ConvSpec) -> Result<Self> {
        Ok(Self {
            conv: Conv2d::new(vb.pp(first), spec)?,
            frn: Frn::new(vb.pp(first + 1), spec.c_out)?,
            tlu: Tlu::new(vb.pp(first + 2), spec.c_out)?,
        })
    }
}

impl Module for FrnBlock {
    /// # Shapes
    /// `(B, c_in, H, W)` -> `(B, c_out, H', W')` as the convolution
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.frn.forward_with_tlu(&self.tlu, &self.conv.forward(x)?)
    }
}

/// The HyNet descriptor net.
#[derive(Debug)]
pub struct HyNet {
    input_frn: Frn,
    input_tlu: Tlu,
    trunk: Vec<FrnBlock>,
    dropout: Dropout,
    head: ConvBn,
}

/// Sequence name and index of the first convolution of trunk block `i` (block 0 follows the input FRN + TLU).
fn trunk_position(i: usize) -> (String, usize) {
    (format!("layer{}", i + 1), if i == 0 { 2 } else { 0 })
}

fn with_bias(spec: ConvSpec) -> ConvSpec {
    spec.bias(true)
}

impl HyNet {
    /// Reads the weights under `layer1.*` .. `layer7.*` of `vb`.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let layer1 = vb.pp("layer1");
        let trunk = TRUNK
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let (seq, first) = trunk_position(i);
                FrnBlock::new(vb.pp(seq), first, with_bias(*spec))
            })
            .collect::<Result<Vec<_>>>()?;
        let layer7 = vb.pp("layer7");
        Ok(Self {
            input_frn: Frn::new(layer1.pp(0), 1)?,
            input_tlu: Tlu::new(layer1.pp(1), 1)?,
            trunk,
            dropout: Dropout::new(DROPOUT, 0),
            head: ConvBn::new(layer7.pp(1), layer7.pp(2), HEAD, false)?,
        })
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

impl HyNet {
    /// The final normalisation, from [`HyNet::forward_raw_t`]'s output to the descriptors.
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
        let mut x = self.input_frn.forward_with_tlu(&self.input_tlu, x)?;
        for block in &self.trunk {
            x = block.forward(&x)?;
        }
        self.head.forward_t(&self.dropout.forward_t(&x, train)?, train)?.flatten_from(1)
    }
}

impl ModuleT for HyNet {
    /// # Shapes
    /// `(B, 1, 32, 32)` -> `(B, 128)`, unit rows
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Self::normalize(&self.forward_raw_t(x, train)?)
    }
}

/// The layers, for sizes and keys.
pub(crate) fn layer_specs() -> Vec<LayerSpec> {
    let mut layers = vec![
        LayerSpec::Frn { prefix: "layer1.0".into(), channels: 1 },
        LayerSpec::Tlu { prefix: "layer1.1".into(), channels: 1 },
    ];
    for (i, spec) in TRUNK.iter().enumerate() {
        let (seq, first) = trunk_position(i);
        let channels = spec.c_out;
        layers.push(LayerSpec::Conv { prefix: format!("{seq}.{first}"), conv: with_bias(*spec) });
        layers.push(LayerSpec::Frn { prefix: format!("{seq}.{}", first + 1), channels });
        layers.push(LayerSpec::Tlu { prefix: format!("{seq}.{}", first + 2), channels });
    }
    layers.extend(conv_bn_specs("layer7", [(1, HEAD)], false));
    layers
}
