//! Architectures beyond the built-in ones: a net file that defines its layers, its forward pass
//! and one [`ArchSpec`] value, plus one [`register`] call, is all it takes; names, sizes,
//! initialisation, checkpoint loading and key detection, training and evaluation then work as for
//! the built-in nets. `tests/registry.rs` adds a toy net this way.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{RwLock, RwLockReadGuard};

use candle_core::Tensor;
use candle_nn::VarBuilder;
use desdis_checkpoint::StateDict;

use crate::arch::Arch;
use crate::layers::Dropout;
use crate::spec::{LayerSpec, WeightScheme};
use crate::{Error, Result};

/// A registered net, as [`crate::nets::Net`] runs it.
pub trait DescriptorNet: Send + Sync + fmt::Debug {
    /// The output before the final normalisation.
    ///
    /// # Shapes
    /// `(B, 1, 32, 32)` in the net's input range -> `(B, D)`
    fn forward_raw_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor>;

    /// The descriptors from the raw output (the identity for nets that do not normalise).
    ///
    /// # Shapes
    /// `(B, D)` -> `(B, D)`
    fn normalize(&self, raw: &Tensor) -> candle_core::Result<Tensor>;

    /// The dropout layer, if the net has one.
    fn dropout(&self) -> Option<&Dropout> {
        None
    }

    /// The dropout layer, mutably.
    fn dropout_mut(&mut self) -> Option<&mut Dropout> {
        None
    }
}

/// Everything the project needs to know about one architecture.
pub struct ArchSpec {
    /// The name configs, flags and reports use; must not be a built-in one.
    pub name: &'static str,
    /// The layers with weights (and the poolings that change sizes), in forward order.
    pub layers: fn() -> Vec<LayerSpec>,
    /// The pixel range the weights expect (0..1 patches are multiplied by it).
    pub input_range: f32,
    /// Whether the descriptors have unit L2 norm.
    pub l2_normalized: bool,
    /// Dropout probability in training.
    pub dropout_rate: f32,
    /// How fresh weights are drawn.
    pub init: WeightScheme,
    /// Whether a checkpoint's keys are this net's (checked after the built-in nets).
    pub detect: fn(&StateDict) -> bool,
    /// Builds the net from `vb` (weights read, or created on a `VarMap`).
    pub build: fn(VarBuilder) -> candle_core::Result<Box<dyn DescriptorNet>>,
}

impl fmt::Debug for ArchSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArchSpec").field("name", &self.name).finish_non_exhaustive()
    }
}

/// A registered architecture: compared and hashed by name (names are unique in the registry).
#[derive(Debug, Clone, Copy)]
pub struct Registered(pub &'static ArchSpec);

impl PartialEq for Registered {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Registered {}

impl Hash for Registered {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

static REGISTRY: RwLock<Vec<&'static ArchSpec>> = RwLock::new(Vec::new());

/// The registered specs (a panic elsewhere never leaves the list half-written: it only grows).
fn registered() -> RwLockReadGuard<'static, Vec<&'static ArchSpec>> {
    REGISTRY.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Adds an architecture; returns its [`Arch`]. Registering the same spec again is a no-op; a name
/// that a built-in or another registered net already has is refused.
pub fn register(spec: &'static ArchSpec) -> Result<Arch> {
    let mut registry = REGISTRY.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = registry.iter().find(|s| s.name == spec.name) {
        if std::ptr::eq(*known, spec) {
            return Ok(Arch::Registered(Registered(spec)));
        }
        return Err(Error::UnknownArch(format!("`{}` is registered already", spec.name)));
    }
    if Arch::parse_builtin(spec.name).is_some() {
        return Err(Error::UnknownArch(format!("`{}` is a built-in architecture", spec.name)));
    }
    registry.push(spec);
    Ok(Arch::Registered(Registered(spec)))
}

/// The registered architecture named `name` (exactly).
pub(crate) fn find(name: &str) -> Option<Arch> {
    registered().iter().find(|s| s.name == name).map(|s| Arch::Registered(Registered(s)))
}

/// The first registered architecture whose keys `sd` holds.
pub(crate) fn detect(sd: &StateDict) -> Option<Arch> {
    registered().iter().find(|s| (s.detect)(sd)).map(|s| Arch::Registered(Registered(s)))
}

/// The registered names, for messages.
pub(crate) fn names() -> Vec<&'static str> {
    registered().iter().map(|s| s.name).collect()
}
