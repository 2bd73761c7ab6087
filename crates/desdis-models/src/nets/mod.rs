//! The descriptor nets, the [`Net`] wrapper that runs any of them, and [`load_net`], which builds
//! one from a checkpoint after checking every key and shape.

pub mod desdis;
pub mod hardnet;
pub mod hynet;
pub mod l2net;
pub mod sosnet;
pub mod tfeat;

use std::collections::HashMap;

use candle_core::{bail, DType, Device, ModuleT, Tensor};
use candle_nn::{VarBuilder, VarMap};

pub use desdis::DesDis;
pub use hardnet::HardNet;
pub use hynet::HyNet;
pub use l2net::L2Net;
pub use sosnet::SosNet;
pub use tfeat::TFeat;

use crate::arch::Arch;
use crate::layers::{Dropout, NET_DTYPE};
use crate::registry::DescriptorNet;
use crate::spec::PATCH_SIDE;
use crate::{Error, Result};
use desdis_checkpoint::StateDict;

#[derive(Debug)]
enum Inner {
    HardNet(HardNet),
    SosNet(SosNet),
    HyNet(HyNet),
    L2Net(L2Net),
    TFeat(TFeat),
    DesDis(DesDis),
    Registered(Box<dyn DescriptorNet>),
}

/// Any of the descriptor nets, with its architecture. Implements [`ModuleT`]: `forward_t(x, train)`
/// takes `(B, 1, 32, 32)` patches (any dtype, converted) in [`Arch::input_range`] and returns `(B, 128)`.
///
/// `train = true` uses batch statistics (updating the running ones in place) and dropout.
/// [`Net::set_dropout`]`(0.0)` keeps batch statistics but removes the randomness, which is how
/// training-mode outputs are compared with a reference.
#[derive(Debug)]
pub struct Net {
    arch: Arch,
    dtype: DType,
    device: Device,
    inner: Inner,
}

impl Net {
    /// Builds the net for `arch` from `vb` (weights read, or created when `vb` is on a `VarMap`).
    pub fn new(arch: Arch, vb: VarBuilder) -> Result<Net> {
        let dtype = vb.dtype();
        let device = vb.device().clone();
        let inner = match arch {
            Arch::HardNet => Inner::HardNet(HardNet::new(vb)?),
            Arch::SosNet => Inner::SosNet(SosNet::new(vb)?),
            Arch::HyNet => Inner::HyNet(HyNet::new(vb)?),
            Arch::L2Net => Inner::L2Net(L2Net::new(vb)?),
            Arch::TFeat => Inner::TFeat(TFeat::new(vb)?),
            Arch::DesDis { dim: 0 } => return Err(Error::Input("DesDis needs a positive width".into())),
            Arch::DesDis { dim } => Inner::DesDis(DesDis::new(vb, dim)?),
            Arch::Registered(r) => Inner::Registered((r.0.build)(vb)?),
        };
        Ok(Net { arch, dtype, device, inner })
    }

    /// The architecture.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The device the weights live on; inputs must be there too.
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn dropout_layer(&self) -> Option<&Dropout> {
        match &self.inner {
            Inner::HardNet(net) => Some(net.dropout()),
            Inner::SosNet(net) => Some(net.dropout()),
            Inner::HyNet(net) => Some(net.dropout()),
            Inner::DesDis(net) => Some(net.dropout()),
            Inner::Registered(net) => net.dropout(),
            Inner::L2Net(_) | Inner::TFeat(_) => None,
        }
    }

    fn dropout_layer_mut(&mut self) -> Option<&mut Dropout> {
        match &mut self.inner {
            Inner::HardNet(net) => Some(net.dropout_mut()),
            Inner::SosNet(net) => Some(net.dropout_mut()),
            Inner::HyNet(net) => Some(net.dropout_mut()),
            Inner::DesDis(net) => Some(net.dropout_mut()),
            Inner::Registered(net) => net.dropout_mut(),
            Inner::L2Net(_) | Inner::TFeat(_) => None,
        }
    }

    /// The current dropout probability (0 for nets without dropout).
    pub fn dropout(&self) -> f32 {
        self.dropout_layer().map_or(0.0, Dropout::p)
    }

    /// Sets the dropout probability, in `0..=1`. Nets without a dropout layer accept only 0.
    pub fn set_dropout(&mut self, p: f32) -> Result<()> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::Input(format!("dropout probability {p} is outside 0..=1")));
        }
        let arch = self.arch;
        match self.dropout_layer_mut() {
            Some(dropout) => dropout.set_p(p),
            None if p == 0.0 => {}
            None => return Err(Error::Input(format!("{arch} has no dropout layer, cannot set p = {p}"))),
        }
        Ok(())
    }

    /// Restarts the dropout masks from `seed` (every net starts from seed 0), for reproducible runs.
    pub fn seed_dropout(&self, seed: u64) {
        if let Some(dropout) = self.dropout_layer() {
            dropout.reseed(seed);
        }
    }
}

/// What a net returns for a batch in [`Net::describe_t`].
#[derive(Debug, Clone)]
pub struct Descriptors {
    /// The descriptors, as [`ModuleT::forward_t`] returns them, `(B, D)`.
    pub descriptors: Tensor,
    /// The output before the final normalisation, `(B, D)`: what HyNet's norm penalty needs.
    /// The descriptors themselves for nets that end without one (L2-Net, TFeat).
    pub raw: Tensor,
}

impl Net {
    /// Descriptors of patches with values in `0..1`: the net scales them to its own
    /// [`Arch::input_range`], so no caller has to. One forward pass gives both outputs.
    ///
    /// # Shapes
    /// `(B, 1, 32, 32)` in `0..1` -> `(B, D)` descriptors and `(B, D)` raw outputs
    pub fn describe_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Descriptors> {
        check_input(self.arch, x)?;
        let x = x.to_device(&self.device)?.to_dtype(self.dtype)?;
        let range = f64::from(self.arch.input_range());
        let x = if range == 1.0 { x } else { (x * range)? };
        let (descriptors, raw) = match &self.inner {
            Inner::HardNet(net) => normalized(net.forward_raw_t(&x, train)?, HardNet::normalize)?,
            Inner::SosNet(net) => normalized(net.forward_raw_t(&x, train)?, SosNet::normalize)?,
            Inner::HyNet(net) => normalized(net.forward_raw_t(&x, train)?, HyNet::normalize)?,
            Inner::DesDis(net) => normalized(net.forward_raw_t(&x, train)?, DesDis::normalize)?,
            Inner::L2Net(net) => unnormalized(net.forward_t(&x, train)?),
            Inner::TFeat(net) => unnormalized(net.forward_t(&x, train)?),
            Inner::Registered(net) => {
                let raw = net.forward_raw_t(&x, train)?;
                (net.normalize(&raw)?, raw)
            }
        };
        Ok(Descriptors { descriptors, raw })
    }
}

fn normalized(
    raw: Tensor,
    normalize: fn(&Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<(Tensor, Tensor)> {
    Ok((normalize(&raw)?, raw))
}

fn unnormalized(descriptors: Tensor) -> (Tensor, Tensor) {
    (descriptors.clone(), descriptors)
}

/// Checks `x` is a non-empty `(B, 1, 32, 32)` batch.
fn check_input(arch: Arch, x: &Tensor) -> candle_core::Result<()> {
    match x.dims() {
        &[b, 1, h, w] if b > 0 && h == PATCH_SIDE && w == PATCH_SIDE => Ok(()),
        dims => {
            bail!("{arch}: expected patches of shape (B >= 1, 1, {PATCH_SIDE}, {PATCH_SIDE}), got {dims:?}")
        }
    }
}

impl ModuleT for Net {
    /// # Shapes
    /// `(B, 1, 32, 32)` -> `(B, 128)`
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        check_input(self.arch, x)?;
        // Inputs made on the host are moved to the weights' device (a no-op when already there).
        let x = x.to_device(&self.device)?.to_dtype(self.dtype)?;
        match &self.inner {
            Inner::HardNet(net) => net.forward_t(&x, train),
            Inner::SosNet(net) => net.forward_t(&x, train),
            Inner::HyNet(net) => net.forward_t(&x, train),
            Inner::L2Net(net) => net.forward_t(&x, train),
            Inner::TFeat(net) => net.forward_t(&x, train),
            Inner::DesDis(net) => net.forward_t(&x, train),
            Inner::Registered(net) => net.normalize(&net.forward_raw_t(&x, train)?),
        }
    }
}

/// Loads a net from a checkpoint path or `hf://` source (see [`desdis_checkpoint::load`]).
///
/// With `arch = None` the architecture is detected from the keys ([`Arch::detect`]). Every tensor
/// the architecture needs is checked before anything is built: a missing one is
/// [`Error::MissingKey`], a wrongly shaped one [`Error::Shape`], both naming the file. Extra keys
/// (`num_batches_tracked`) are ignored. Tensors are converted to `f32` on `device`.
pub fn load_net(source: &str, arch: Option<Arch>, device: &Device) -> Result<Net> {
    let sd = desdis_checkpoint::load(source, device)?;
    net_from_state_dict(&sd, arch, device)
}

/// [`load_net`] from checkpoint bytes in memory (see [`desdis_checkpoint::load_bytes`]).
pub fn load_net_bytes(
    name: &std::path::Path,
    data: &[u8],
    arch: Option<Arch>,
    device: &Device,
) -> Result<Net> {
    let sd = desdis_checkpoint::load_bytes(name, data, device)?;
    net_from_state_dict(&sd, arch, device)
}

/// [`load_net`] from an already read state dict. The net gets its own copy of the tensors.
pub fn net_from_state_dict(sd: &StateDict, arch: Option<Arch>, device: &Device) -> Result<Net> {
    let arch = resolve_arch(sd, arch)?;
    let tensors = checked_tensors(sd, arch, device)?;
    Net::new(arch, VarBuilder::from_tensors(tensors, NET_DTYPE, device))
}

/// `arch` if given, else the one detected from the keys of `sd`.
pub(crate) fn resolve_arch(sd: &StateDict, arch: Option<Arch>) -> Result<Arch> {
    match arch {
        Some(arch) => Ok(arch),
        None => Arch::detect(sd),
    }
}

/// The tensors `arch` reads, by key, with their shapes, in key order: found by building the net on
/// a fresh `VarMap`, so the list is exactly what [`Net::new`] asks for.
pub fn expected_tensors(arch: Arch) -> Result<Vec<(String, Vec<usize>)>> {
    let varmap = VarMap::new();
    Net::new(arch, VarBuilder::from_varmap(&varmap, NET_DTYPE, &Device::Cpu))?;
    let vars = varmap.data().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut expected: Vec<(String, Vec<usize>)> =
        vars.iter().map(|(key, var)| (key.clone(), var.dims().to_vec())).collect();
    expected.sort();
    Ok(expected)
}

/// Checks `sd` holds every tensor of `arch` with the right shape (errors name the file and key).
pub fn check_state_dict(sd: &StateDict, arch: Arch) -> Result<()> {
    check_against(sd, arch, &expected_tensors(arch)?)
}

fn check_against(sd: &StateDict, arch: Arch, expected: &[(String, Vec<usize>)]) -> Result<()> {
    for (key, shape) in expected {
        let found = sd.tensors.get(key).ok_or_else(|| Error::MissingKey {
            path: sd.path.clone(),
            key: key.clone(),
            arch: arch.name(),
        })?;
        if found.dims() != shape.as_slice() {
            return Err(Error::Shape {
                path: sd.path.clone(),
                key: key.clone(),
                arch: arch.name(),
                expected: shape.clone(),
                found: found.dims().to_vec(),
            });
        }
    }
    Ok(())
}

/// The tensors of `arch` from `sd`, checked, as fresh contiguous `f32` copies on `device`.
pub(crate) fn checked_tensors(
    sd: &StateDict,
    arch: Arch,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let expected = expected_tensors(arch)?;
    check_against(sd, arch, &expected)?;
    let mut tensors = HashMap::new();
    for (key, _) in expected {
        // A copy, so that training-mode running-statistics updates never write into `sd`.
        let converted = sd.tensors[&key].to_dtype(NET_DTYPE)?.to_device(device)?.copy()?;
        tensors.insert(key, converted);
    }
    Ok(tensors)
}
