//! What an architecture is made of, as data: its layers with weights, the state-dict tensors they
//! hold, and the patch side. The nets build their specs from these; [`crate::arch`] derives sizes,
//! work and keys from them.

use crate::layers::ConvSpec;

/// Side of the square grayscale patches every net describes.
pub const PATCH_SIDE: usize = 32;

/// One layer that holds weights or changes the spatial size, enough to count weights and work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSpec {
    /// A convolution whose tensors are `{prefix}.weight` (and `{prefix}.bias`).
    Conv { prefix: String, conv: ConvSpec },
    /// A fully connected layer with bias: `{prefix}.weight` `(n_out, n_in)`, `{prefix}.bias`.
    Linear { prefix: String, n_in: usize, n_out: usize },
    /// A batch norm: running statistics, plus weight and bias when `affine`.
    BatchNorm { prefix: String, channels: usize, affine: bool },
    /// A filter response normalisation: weight, bias, eps.
    Frn { prefix: String, channels: usize },
    /// A thresholded linear unit: tau.
    Tlu { prefix: String, channels: usize },
    /// Non-overlapping max pooling over `kernel`x`kernel` windows.
    MaxPool { kernel: usize },
}

/// What a state-dict tensor is for; decides its initialisation and whether training changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorRole {
    /// Convolution or linear weight, with the number of inputs per output.
    Weight { fan_in: usize },
    /// Convolution or linear bias, with the fan-in of its layer.
    Bias { fan_in: usize },
    /// Scale of a batch norm (affine) or FRN.
    NormWeight,
    /// Shift of a batch norm (affine) or FRN.
    NormBias,
    /// Batch-norm running mean (a buffer).
    RunningMean,
    /// Batch-norm running variance (a buffer).
    RunningVar,
    /// FRN epsilon (a buffer).
    FrnEps,
    /// TLU threshold.
    TluTau,
}

impl TensorRole {
    /// Whether an optimizer learns this tensor (buffers are not learned).
    pub fn is_learned(&self) -> bool {
        !matches!(self, TensorRole::RunningMean | TensorRole::RunningVar | TensorRole::FrnEps)
    }
}

/// One tensor of an architecture's state dict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// The PyTorch state-dict key.
    pub key: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// What it is for.
    pub role: TensorRole,
}

impl TensorSpec {
    /// Number of scalars.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

impl LayerSpec {
    /// The state-dict tensors of this layer.
    pub fn tensors(&self) -> Vec<TensorSpec> {
        match self {
            LayerSpec::Conv { prefix, conv } => conv_tensors(prefix, conv),
            LayerSpec::Linear { prefix, n_in, n_out } => vec![
                tensor(prefix, "weight", vec![*n_out, *n_in], TensorRole::Weight { fan_in: *n_in }),
                tensor(prefix, "bias", vec![*n_out], TensorRole::Bias { fan_in: *n_in }),
            ],
            LayerSpec::BatchNorm { prefix, channels, affine } => {
                batch_norm_tensors(prefix, *channels, *affine)
            }
            LayerSpec::Frn { prefix, channels } => vec![
                tensor(prefix, "weight", vec![1, *channels, 1, 1], TensorRole::NormWeight),
                tensor(prefix, "bias", vec![1, *channels, 1, 1], TensorRole::NormBias),
                tensor(prefix, "eps", vec![1], TensorRole::FrnEps),
            ],
            LayerSpec::Tlu { prefix, channels } => {
                vec![tensor(prefix, "tau", vec![1, *channels, 1, 1], TensorRole::TluTau)]
            }
            LayerSpec::MaxPool { .. } => vec![],
        }
    }
}

fn tensor(prefix: &str, name: &str, shape: Vec<usize>, role: TensorRole) -> TensorSpec {
    TensorSpec { key: format!("{prefix}.{name}"), shape, role }
}

fn conv_tensors(prefix: &str, conv: &ConvSpec) -> Vec<TensorSpec> {
    let fan_in = conv.fan_in();
    let shape = vec![conv.c_out, conv.c_in, conv.kernel, conv.kernel];
    let mut tensors = vec![tensor(prefix, "weight", shape, TensorRole::Weight { fan_in })];
    if conv.bias {
        tensors.push(tensor(prefix, "bias", vec![conv.c_out], TensorRole::Bias { fan_in }));
    }
    tensors
}

fn batch_norm_tensors(prefix: &str, channels: usize, affine: bool) -> Vec<TensorSpec> {
    let mut tensors = vec![
        tensor(prefix, "running_mean", vec![channels], TensorRole::RunningMean),
        tensor(prefix, "running_var", vec![channels], TensorRole::RunningVar),
    ];
    if affine {
        tensors.push(tensor(prefix, "weight", vec![channels], TensorRole::NormWeight));
        tensors.push(tensor(prefix, "bias", vec![channels], TensorRole::NormBias));
    }
    tensors
}

/// Specs of convolutions at `{seq}.{index}`, each followed by a batch norm at `{seq}.{index + 1}`.
pub(crate) fn conv_bn_specs(
    seq: &str,
    convs: impl IntoIterator<Item = (usize, ConvSpec)>,
    affine: bool,
) -> Vec<LayerSpec> {
    convs
        .into_iter()
        .flat_map(|(index, conv)| {
            [
                LayerSpec::Conv { prefix: format!("{seq}.{index}"), conv },
                LayerSpec::BatchNorm { prefix: format!("{seq}.{}", index + 1), channels: conv.c_out, affine },
            ]
        })
        .collect()
}

/// The six 3x3 convolutions shared by L2-Net, HardNet, SOSNet and HyNet: 32, 32, 64 (stride 2),
/// 64, 128 (stride 2), 128 channels.
pub const TRUNK: [ConvSpec; 6] = [
    ConvSpec::new(1, 32, 3).padding(1),
    ConvSpec::new(32, 32, 3).padding(1),
    ConvSpec::new(32, 64, 3).stride(2).padding(1),
    ConvSpec::new(64, 64, 3).padding(1),
    ConvSpec::new(64, 128, 3).stride(2).padding(1),
    ConvSpec::new(128, 128, 3).padding(1),
];

/// Their final 8x8 convolution to the 128-d descriptor.
pub const HEAD: ConvSpec = ConvSpec::new(128, 128, 8);

/// How convolution and linear layers of an architecture start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightScheme {
    /// Orthogonal weights with this gain, constant biases.
    Orthogonal { gain: f64 },
    /// PyTorch's default: weights and biases uniform in ±1/sqrt(fan_in).
    TorchDefault,
}
