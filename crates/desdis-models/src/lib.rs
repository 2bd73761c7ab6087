//! Descriptor networks for 32x32 grayscale patches in candle: HardNet, SOSNet, HyNet, L2-Net, TFeat and
//! the light-weight DesDis student, with exact loading of published PyTorch checkpoints.

pub mod arch;
pub mod error;
pub mod init;
pub mod layers;
pub mod nets;
pub mod ops;
pub mod testing;
pub mod weights;

pub use error::{Error, Result};
