//! The teachers shipped in `data/weights/teachers/` (by `cargo xtask ship-weights --teachers`)
//! load as the architecture their name says and describe patches with finite unit descriptors.

use std::path::Path;

use candle_core::{Device, Tensor};
use desdis_models::arch::Arch;
use desdis_models::nets::load_net;

#[test]
fn shipped_teachers_load_as_their_architecture() -> anyhow::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/weights/teachers");
    let x = Tensor::rand(0f32, 1f32, (4, 1, 32, 32), &Device::Cpu)?;
    for (name, arch) in [("hardnet", Arch::HardNet), ("sosnet", Arch::SosNet), ("hynet", Arch::HyNet)] {
        let path = dir.join(format!("{name}.safetensors"));
        let net = load_net(path.to_str().unwrap(), None, &Device::Cpu)?;
        assert_eq!(net.arch(), arch, "{}", path.display());
        let d = net.describe_t(&x, false)?.descriptors;
        let norms = d.sqr()?.sum(1)?.sqrt()?.to_vec1::<f32>()?;
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-3), "{name}: {norms:?}");
    }
    Ok(())
}
