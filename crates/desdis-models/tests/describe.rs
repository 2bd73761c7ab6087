//! `Net::describe_t`: the net applies its own input range and exposes its pre-normalisation output.

use candle_core::{Device, ModuleT, Tensor};
use desdis_kernels::compare::max_abs_diff;
use desdis_models::arch::Arch;
use desdis_models::init::init_net;

#[test]
fn describe_scales_inputs_and_returns_the_raw_output() -> anyhow::Result<()> {
    let x01 = Tensor::rand(0f32, 1.0, (6, 1, 32, 32), &Device::Cpu)?;
    for arch in [Arch::HardNet, Arch::SosNet, Arch::HyNet, Arch::L2Net, Arch::TFeat, Arch::DesDis { dim: 8 }]
    {
        let (_, net) = init_net(arch, 3, &Device::Cpu)?;
        let out = net.describe_t(&x01, false)?;
        let direct = net.forward_t(&(&x01 * f64::from(arch.input_range()))?, false)?;
        assert!(max_abs_diff(&out.descriptors, &direct)? < 1e-6, "{arch}: descriptors");
        let norms = out.raw.sqr()?.sum(1)?.sqrt()?.to_vec1::<f32>()?;
        match arch {
            // These end without a normalisation: the raw output is the descriptor.
            Arch::L2Net | Arch::TFeat => assert!(max_abs_diff(&out.raw, &out.descriptors)? == 0.0, "{arch}"),
            _ => {
                assert!(norms.iter().any(|n| (n - 1.0).abs() > 1e-3), "{arch}: raw norms {norms:?}");
                let renormalised = out.raw.broadcast_div(&out.raw.sqr()?.sum_keepdim(1)?.sqrt()?)?;
                assert!(max_abs_diff(&renormalised, &out.descriptors)? < 1e-5, "{arch}: raw direction");
            }
        }
    }
    Ok(())
}
