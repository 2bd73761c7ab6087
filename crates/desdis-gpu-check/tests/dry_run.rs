//! The GPU check's dry run: the whole check on the CPU with tiny sizes.

use std::process::{Command, Output};

fn gpu_check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_desdis-gpu-check")).args(args).output().expect("desdis-gpu-check runs")
}

/// `desdis-gpu-check` on the CPU with tiny sizes: every section (data, parity with gradients,
/// timings with the PyTorch inputs, distillation against its CPU repeat) runs and passes.
#[test]
fn gpu_check_dry_run_on_the_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let s = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let o = gpu_check(&[
        "--device",
        "cpu",
        "--quick",
        "--archs",
        "desdis-8,tfeat",
        "--time-archs",
        "desdis-8",
        "--patches",
        "8",
        "--reps",
        "1",
        "--warmup",
        "0",
        "--distill-steps",
        "2",
        "--distill-epoch-steps",
        "1",
        "--distill-batch",
        "8",
        "--torch-dir",
        &s("nets"),
        "--work",
        &s("work"),
        "--json",
        &s("report.json"),
    ]);
    assert!(o.status.success(), "gpu-check failed: {}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["complete"], true);
    assert_eq!(report["parity"].as_array().map(Vec::len), Some(2));
    assert_eq!(report["distill"]["steps"], 2);
    for file in ["desdis-8.safetensors", "desdis-8.check.safetensors"] {
        assert!(dir.join("nets").join(file).is_file(), "{file} written for the PyTorch script");
    }
}
