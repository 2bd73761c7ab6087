//! Descriptor networks for 32x32 grayscale patches in candle: HardNet, SOSNet, HyNet, L2-Net, TFeat and
//! the light-weight DesDis student, with exact loading of published PyTorch checkpoints.
//!
//! Describe ten patches with a net (here freshly initialised from a seed; [`nets::load_net`] takes
//! a `.pth`, `.safetensors` or `hf://` checkpoint of released weights the same way):
//!
//! ```
//! use candle_core::{Device, ModuleT, Tensor};
//! use desdis_models::{arch::Arch, init::init_net};
//!
//! let (_vars, net) = init_net(Arch::DesDis { dim: 8 }, 42, &Device::Cpu)?;
//! // Ten 32x32 patches in the net's input range (0..1 for DesDis).
//! let patches = Tensor::rand(0f32, 1f32, (10, 1, 32, 32), &Device::Cpu)?;
//! let descriptors = net.forward_t(&patches, false)?;
//! assert_eq!(descriptors.dims(), &[10, 128]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod arch;
pub mod device;
pub mod error;
pub mod init;
pub mod layers;
pub mod nets;
pub mod registry;
pub mod spec;

pub use error::{Error, Result};
