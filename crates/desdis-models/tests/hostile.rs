//! Sizes and values from flags and checkpoints are not trusted: DesDis widths are bounded, and a
//! checkpoint with a non-finite value is refused naming the tensor and the file.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use desdis_checkpoint::{load, save_safetensors, StateDict};
use desdis_models::arch::{Arch, DESDIS_DIMS};

#[test]
fn desdis_widths_are_bounded() {
    for name in ["desdis-1025", "desdis-100000", "desdis-99999999999999999999999", "desdis-0"] {
        let msg = Arch::parse(name).unwrap_err().to_string();
        assert!(msg.contains(name) && msg.contains("1..=1024"), "{msg}");
    }
    assert_eq!(Arch::parse("desdis-1024").unwrap(), Arch::DesDis { dim: 1024 });
    assert!(Arch::desdis(*DESDIS_DIMS.end() + 1).is_err());
    // The largest width accepted still fits in memory.
    let params = Arch::DesDis { dim: 1024 }.param_count();
    assert!(params < 300_000_000, "{params} parameters");
}

#[test]
fn a_checkpoint_declaring_a_huge_width_is_refused() {
    let t = |n: usize| Tensor::zeros(n, DType::F32, &Device::Cpu).unwrap();
    let tensors =
        HashMap::from([("desc.1.weight".to_string(), t(1)), ("layer1.1.weight".to_string(), t(5000))]);
    let sd = StateDict { path: PathBuf::from("wide.pth"), tensors };
    let msg = Arch::detect(&sd).unwrap_err().to_string();
    assert!(msg.contains("wide.pth") && msg.contains("5000"), "{msg}");
}

#[test]
fn non_finite_tensors_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for (value, name) in [(f32::NAN, "nan.safetensors"), (f32::INFINITY, "inf.safetensors")] {
        let bad = Tensor::new(&[1.0f32, value, 2.0], &Device::Cpu).unwrap();
        let good = Tensor::new(&[1.0f32], &Device::Cpu).unwrap();
        let counts = Tensor::new(&[3i64], &Device::Cpu).unwrap();
        let tensors = HashMap::from([
            ("a.weight".to_string(), good),
            ("b.running_var".to_string(), bad),
            ("c.num_batches_tracked".to_string(), counts),
        ]);
        let path = dir.path().join(name);
        save_safetensors(&tensors, &path).unwrap();
        let msg = load(path.to_str().unwrap(), &Device::Cpu).unwrap_err().to_string();
        assert!(msg.contains(name) && msg.contains("`b.running_var`") && msg.contains("non-finite"), "{msg}");
    }
}
