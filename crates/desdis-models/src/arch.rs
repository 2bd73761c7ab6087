//! The architectures: their names, and what follows from their layer specs (descriptor size, work
//! per patch, parameter count, state-dict keys), plus recognising one from a checkpoint's keys.
//! The nets themselves (`nets/*`) know nothing of [`Arch`]: this file maps each to its net.

use std::fmt;
use std::str::FromStr;

use crate::nets;
use crate::registry::{self, Registered};
use crate::spec::{LayerSpec, TensorSpec, PATCH_SIDE};
use crate::{Error, Result};
use desdis_checkpoint::StateDict;

/// A descriptor-net architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// HardNet (L2-Net layout, dropout 0.3, L2-normalised output).
    HardNet,
    /// SOSNet32x32 (instance-normalised input, HardNet trunk).
    SosNet,
    /// HyNet (FRN + TLU instead of batch norm and ReLU).
    HyNet,
    /// L2-Net as in its PyTorch port of the published weights (biases, affine batch norm, no dropout).
    L2Net,
    /// TFeat (two tanh convolutions and a linear layer, not normalised).
    TFeat,
    /// The light-weight DesDis student with `dim` channels in its first layer.
    DesDis {
        /// Width of the first layer; the others are 2x and 4x.
        dim: usize,
    },
    /// An architecture added through [`crate::registry::register`].
    Registered(Registered),
}

/// The DesDis widths accepted: 1024 is 32 times the largest released student (about 254 M
/// parameters, 1 GB of float32), far past any useful size and still within a machine's memory.
pub const DESDIS_DIMS: std::ops::RangeInclusive<usize> = 1..=1024;

const KNOWN_NAMES: &str = "hardnet, sosnet, hynet, l2net, tfeat, desdis-<dim> (released: desdis-8, desdis-16, desdis-24, desdis-32)";

impl Arch {
    /// The canonical name: `hardnet`, `sosnet`, `hynet`, `l2net`, `tfeat` or `desdis-<dim>`.
    pub fn name(&self) -> String {
        match self {
            Arch::HardNet => "hardnet".into(),
            Arch::SosNet => "sosnet".into(),
            Arch::HyNet => "hynet".into(),
            Arch::L2Net => "l2net".into(),
            Arch::TFeat => "tfeat".into(),
            Arch::DesDis { dim } => format!("desdis-{dim}"),
            Arch::Registered(r) => r.0.name.into(),
        }
    }

    /// Every architecture with published weights: the five teachers and the four released DesDis widths.
    pub fn all() -> Vec<Arch> {
        let mut all = vec![Arch::HardNet, Arch::SosNet, Arch::HyNet, Arch::L2Net, Arch::TFeat];
        all.extend([8, 16, 24, 32].map(|dim| Arch::DesDis { dim }));
        all
    }

    /// Parses a name, case-insensitively; `-` and `_` inside teacher names are ignored (`hard-net`).
    /// DesDis widths may be written `desdis-8`, `desdis8`, `desdis:8` or `desdis_8`; a bare `desdis`
    /// is the published default width 32. Then the registered names, exactly. Anything else is
    /// [`Error::UnknownArch`] listing the names.
    pub fn parse(name: &str) -> Result<Arch> {
        if let Some(arch) = Arch::parse_builtin(name).transpose()? {
            return Ok(arch);
        }
        registry::find(name.trim()).ok_or_else(|| unknown_name(name))
    }

    /// [`Arch::parse`] of the built-in names only: `None` when `name` is none of them.
    pub(crate) fn parse_builtin(name: &str) -> Option<Result<Arch>> {
        let lower = name.trim().to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("desdis") {
            let Some(dim) = parse_desdis_dim(rest) else { return Some(Err(unknown_name(name))) };
            let checked = check_desdis_dim(dim)
                .map(|dim| Arch::DesDis { dim })
                .map_err(|e| Error::UnknownArch(format!("`{name}`: {e} (known: {})", known_names())));
            return Some(checked);
        }
        let compact: String = lower.chars().filter(|c| !matches!(c, '-' | '_')).collect();
        match compact.as_str() {
            "hardnet" => Some(Ok(Arch::HardNet)),
            "sosnet" | "sosnet32x32" => Some(Ok(Arch::SosNet)),
            "hynet" => Some(Ok(Arch::HyNet)),
            "l2net" => Some(Ok(Arch::L2Net)),
            "tfeat" => Some(Ok(Arch::TFeat)),
            _ => None,
        }
    }

    /// A DesDis student of width `dim`, refused outside [`DESDIS_DIMS`]: the width sizes every
    /// layer (up to `4 * dim` channels), so an unbounded one from a flag or a file would ask for
    /// any amount of memory.
    pub fn desdis(dim: usize) -> Result<Arch> {
        check_desdis_dim(dim).map(|dim| Arch::DesDis { dim }).map_err(Error::UnknownArch)
    }

    /// Length of the descriptor.
    pub fn descriptor_size(&self) -> usize {
        128
    }

    /// The layers with weights (and the pooling that changes sizes), in forward order.
    pub fn layers(&self) -> Vec<LayerSpec> {
        match *self {
            Arch::HardNet => nets::hardnet::layer_specs(),
            Arch::SosNet => nets::sosnet::layer_specs(),
            Arch::HyNet => nets::hynet::layer_specs(),
            Arch::L2Net => nets::l2net::layer_specs(),
            Arch::TFeat => nets::tfeat::layer_specs(),
            Arch::DesDis { dim } => nets::desdis::layer_specs(dim),
            Arch::Registered(r) => (r.0.layers)(),
        }
    }

    /// Every tensor of the state dict (`num_batches_tracked` aside), in forward order.
    pub fn tensor_specs(&self) -> Vec<TensorSpec> {
        self.layers().iter().flat_map(LayerSpec::tensors).collect()
    }

    /// Convolution and linear multiply-adds to describe one 32x32 patch.
    pub fn macs_per_patch(&self) -> u64 {
        let mut side = PATCH_SIDE;
        let mut macs = 0;
        for layer in self.layers() {
            match layer {
                LayerSpec::Conv { conv, .. } => {
                    macs += conv.macs(side);
                    side = conv.out_side(side);
                }
                LayerSpec::Linear { n_in, n_out, .. } => macs += (n_in * n_out) as u64,
                LayerSpec::MaxPool { kernel } => side /= kernel,
                _ => {}
            }
        }
        macs
    }

    /// Scalars in the state dict, buffers (running statistics, FRN eps) included: the size of the
    /// checkpoint and of the `VarMap` a net is built on.
    pub fn param_count(&self) -> usize {
        self.tensor_specs().iter().map(TensorSpec::numel).sum()
    }

    /// Scalars an optimizer learns (buffers excluded), the figure papers quote.
    pub fn learnable_param_count(&self) -> usize {
        self.tensor_specs().iter().filter(|t| t.role.is_learned()).map(TensorSpec::numel).sum()
    }

    /// The pixel range the published weights expect: 255 for TFeat (its reference feeds 0..255),
    /// 1 for the others. Patches in `0..=1` are multiplied by this before the forward pass.
    pub fn input_range(&self) -> f32 {
        match self {
            Arch::TFeat => 255.0,
            Arch::Registered(r) => r.0.input_range,
            _ => 1.0,
        }
    }

    /// Whether descriptors have unit L2 norm. L2-Net's output divides by `sqrt(0.5 + |x|²)`, so its
    /// norm is just below 1; TFeat's tanh output is not normalised at all.
    pub fn l2_normalized(&self) -> bool {
        match self {
            Arch::L2Net | Arch::TFeat => false,
            Arch::Registered(r) => r.0.l2_normalized,
            _ => true,
        }
    }

    /// The dropout probability used in training, as the published training code sets it.
    pub fn dropout_rate(&self) -> f32 {
        match self {
            Arch::HardNet => nets::hardnet::DROPOUT,
            Arch::SosNet => nets::sosnet::DROPOUT,
            Arch::HyNet => nets::hynet::DROPOUT,
            Arch::DesDis { .. } => nets::desdis::DROPOUT,
            Arch::L2Net | Arch::TFeat => 0.0,
            Arch::Registered(r) => r.0.dropout_rate,
        }
    }

    /// Recognises the architecture (and DesDis width) of a checkpoint from its keys and shapes.
    pub fn detect(sd: &StateDict) -> Result<Arch> {
        let has = |key: &str| sd.tensors.contains_key(key);
        let arch = if has("layer1.0.eps") || has("layer7.1.weight") {
            Arch::HyNet
        } else if has("layers.1.weight") {
            Arch::SosNet
        } else if has("descr.0.weight") {
            Arch::TFeat
        } else if has("desc.1.weight") {
            let dim = desdis_dim(sd)?;
            let dim = check_desdis_dim(dim).map_err(|e| Error::checkpoint(&sd.path, e))?;
            Arch::DesDis { dim }
        } else if has("features.18.weight") {
            // L2-Net's head convolution; HardNet has its dropout at 18 (and 19 would be L2-Net's BN).
            Arch::L2Net
        } else if has("features.19.weight") {
            Arch::HardNet
        } else if let Some(arch) = registry::detect(sd) {
            arch
        } else {
            return Err(unrecognised_keys(sd));
        };
        Ok(arch)
    }
}

/// `""` (default width 32) or a separator and a positive width.
fn parse_desdis_dim(rest: &str) -> Option<usize> {
    if rest.is_empty() {
        return Some(32);
    }
    let digits = rest.strip_prefix(['-', ':', '_']).unwrap_or(rest);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        // A width too long for usize is still a width: report the bound, not an unknown name.
        return Some(digits.parse::<usize>().unwrap_or(usize::MAX));
    }
    None
}

fn check_desdis_dim(dim: usize) -> std::result::Result<usize, String> {
    if DESDIS_DIMS.contains(&dim) {
        Ok(dim)
    } else {
        Err(format!("DesDis width {dim} is outside {}..={}", DESDIS_DIMS.start(), DESDIS_DIMS.end()))
    }
}

/// The built-in names and the registered ones, for messages.
fn known_names() -> String {
    let registered = registry::names();
    if registered.is_empty() {
        return KNOWN_NAMES.to_string();
    }
    format!("{KNOWN_NAMES}; registered: {}", registered.join(", "))
}

fn unknown_name(name: &str) -> Error {
    Error::UnknownArch(format!("`{name}` (known: {})", known_names()))
}

fn desdis_dim(sd: &StateDict) -> Result<usize> {
    let key = "layer1.1.weight";
    let weight = sd.tensors.get(key).ok_or_else(|| Error::MissingKey {
        path: sd.path.clone(),
        key: key.into(),
        arch: "desdis".into(),
    })?;
    match weight.dims() {
        [dim, ..] if *dim > 0 => Ok(*dim),
        dims => Err(Error::checkpoint(
            &sd.path,
            format!("key `{key}` has shape {dims:?}, not a DesDis first layer"),
        )),
    }
}

fn unrecognised_keys(sd: &StateDict) -> Error {
    let mut keys: Vec<&str> = sd.tensors.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let shown = keys.iter().take(6).copied().collect::<Vec<_>>().join(", ");
    let more = if keys.len() > 6 { format!(", ... ({} keys)", keys.len()) } else { String::new() };
    Error::UnknownArch(format!(
        "{}: its keys match none of {}; found: [{shown}{more}]",
        sd.path.display(),
        known_names()
    ))
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Written as its name (`"desdis-32"`), read with [`Arch::parse`]: configs stay readable and a
/// misspelt architecture is refused when the config is read.
impl serde::Serialize for Arch {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Arch {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Arch::parse(&name).map_err(serde::de::Error::custom)
    }
}

impl FromStr for Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Arch::parse(s)
    }
}
