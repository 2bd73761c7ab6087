//! The net that describes patches: the project's shipped student by default, embedded in the
//! binary so that an installed `desdis` needs no source tree.

use std::path::Path;

use candle_core::Device;
use desdis_models::arch::Arch;
use desdis_models::nets::{load_net, load_net_bytes, Net};

use crate::error::Result;

/// How the embedded default weights are named in messages and in the files' metadata.
pub const DEFAULT_WEIGHTS_NAME: &str = "desdis-32 (shipped default)";

/// The shipped light student (`data/weights/desdis-32.safetensors`), compiled in.
static DEFAULT_WEIGHTS: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/weights/desdis-32.safetensors"));

/// Loads `weights` (a checkpoint path or `hf://` source), or the embedded default when `None`.
pub fn load_describer(weights: Option<&str>, arch: Option<Arch>, device: &Device) -> Result<Net> {
    Ok(match weights {
        Some(source) => load_net(source, arch, device)?,
        None => load_net_bytes(Path::new(DEFAULT_WEIGHTS_NAME), DEFAULT_WEIGHTS, arch, device)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_is_a_desdis_32() {
        let net = load_describer(None, None, &Device::Cpu).unwrap();
        assert_eq!(net.arch().to_string(), "desdis-32");
        assert_eq!(net.arch().descriptor_size(), 128);
    }
}
