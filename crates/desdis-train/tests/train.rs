//! End-to-end training on a tiny slice of the embedded set: loss goes down, resuming is exact,
//! distillation with lambda = 0 is plain training, and bad configs are refused clearly.

use std::path::{Path, PathBuf};

use candle_core::Device;
use desdis_data::embedded::EmbeddedConfig;
use desdis_loss::RtsConfig;
use desdis_models::arch::Arch;
use desdis_train::{
    read_metrics, train, train_until, varmap_tensors, DataSource, DistillConfig, MetricsRow, RunDir,
    Schedule, TrainConfig,
};

/// The shared cache of the embedded sets, generated once before any test reads it (tests run
/// in parallel, and two generating the same file at once would race).
fn cache_dir() -> PathBuf {
    static READY: std::sync::Once = std::sync::Once::new();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("desdis-train-cache");
    READY.call_once(|| {
        let cfg = EmbeddedConfig::default();
        desdis_data::embedded::load_or_generate(&dir, &cfg).expect("embedded training set");
        desdis_data::embedded::load_or_generate(&dir, &cfg.validation()).expect("embedded validation set");
    });
    dir
}

/// DesDis-8 on 600 patches: 3 epochs of 8 steps of 16 pairs.
fn tiny() -> TrainConfig {
    TrainConfig {
        arch: Arch::DesDis { dim: 8 },
        lr: 0.5,
        schedule: Schedule::Linear,
        epochs: 3,
        pairs_per_epoch: 128,
        batch_size: 16,
        seed: 7,
        data: DataSource::Embedded {
            config: EmbeddedConfig::default(),
            cache_dir: Some(cache_dir()),
            limit: Some(600),
        },
        validation_pairs: 100,
        ..TrainConfig::default()
    }
}

fn run_dir(root: &Path, name: &str, cfg: &TrainConfig) -> RunDir {
    RunDir::create(&root.join(name), cfg).expect("run directory")
}

/// The metric rows without the wall-clock throughput.
fn deterministic_metrics(run: &RunDir) -> Vec<MetricsRow> {
    let rows = read_metrics(run).expect("metrics");
    rows.into_iter().map(|r| MetricsRow { pairs_per_s: 0.0, ..r }).collect()
}

fn model_bytes(run: &RunDir) -> Vec<u8> {
    std::fs::read(run.path("model.safetensors")).expect("final model")
}

#[test]
fn loss_decreases_and_outputs_are_written() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = TrainConfig { epochs: 4, schedule: Schedule::Constant, ..tiny() };
    let run = run_dir(tmp.path(), "plain", &cfg);
    let summary = train(&cfg, &run, false, &Device::Cpu).expect("training");
    assert!(
        summary.last_epoch_loss < summary.first_epoch_loss,
        "loss did not decrease: {} -> {}",
        summary.first_epoch_loss,
        summary.last_epoch_loss
    );
    assert_eq!(summary.steps, 32);
    assert_eq!(summary.val_fpr95.len(), 4);
    assert!(summary.val_fpr95.iter().all(|f| (0.0..=1.0).contains(f)));
    assert!(run.path("results.json").is_file());
    // The final weights load back as the trained architecture, under the nets' own keys.
    let net = desdis_models::nets::load_net(
        run.path("model.safetensors").to_str().unwrap(),
        Some(Arch::parse("desdis-8").unwrap()),
        &Device::Cpu,
    );
    assert!(net.is_ok(), "{:?}", net.err());
}

#[test]
fn resume_after_interruption_is_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny();
    let whole = run_dir(tmp.path(), "whole", &cfg);
    train(&cfg, &whole, false, &Device::Cpu).expect("uninterrupted run");

    let parts = run_dir(tmp.path(), "parts", &cfg);
    train_until(&cfg, &parts, false, &Device::Cpu, 1).expect("first epoch");
    // A crash after the checkpoint leaves rows the resumed run must drop.
    parts.append_metrics("", "999,1,0.1,1,1,0,1,").expect("append");
    let reopened = RunDir::open(parts.root()).expect("reopen");
    train(&cfg, &reopened, true, &Device::Cpu).expect("resumed run");

    assert_eq!(deterministic_metrics(&whole), deterministic_metrics(&reopened));
    assert_eq!(model_bytes(&whole), model_bytes(&reopened), "final weights differ after resuming");
}

#[test]
fn distillation_with_zero_lambda_is_plain_training() {
    let tmp = tempfile::tempdir().unwrap();
    let teacher_path = tmp.path().join("teacher.safetensors");
    let (teacher_vars, _) =
        desdis_models::init::init_net(Arch::parse("desdis-16").unwrap(), 99, &Device::Cpu).unwrap();
    desdis_checkpoint::save_safetensors(&varmap_tensors(&teacher_vars), &teacher_path).unwrap();

    let plain_cfg = TrainConfig { epochs: 1, validation_pairs: 0, ..tiny() };
    let distill_cfg = TrainConfig {
        distill: Some(DistillConfig {
            teacher: teacher_path.to_string_lossy().into_owned(),
            teacher_arch: Some(Arch::DesDis { dim: 16 }),
            rts: RtsConfig { lambda: 0.0, ..RtsConfig::default() },
        }),
        ..plain_cfg.clone()
    };
    let plain = run_dir(tmp.path(), "plain", &plain_cfg);
    let distilled = run_dir(tmp.path(), "distilled", &distill_cfg);
    train(&plain_cfg, &plain, false, &Device::Cpu).unwrap();
    train(&distill_cfg, &distilled, false, &Device::Cpu).unwrap();

    let triplet = |run: &RunDir| read_metrics(run).unwrap().iter().map(|r| r.triplet).collect::<Vec<_>>();
    assert_eq!(triplet(&plain), triplet(&distilled));
    assert!(read_metrics(&distilled).unwrap().iter().any(|r| r.rts > 0.0), "R_ts was not computed");
    assert_eq!(model_bytes(&plain), model_bytes(&distilled));
}

#[test]
fn bad_configs_are_refused_with_the_setting_named() {
    let cases = [
        ("arch = \"resnet\"", "arch"),
        ("batch_size = 1", "batch_size"),
        ("pairs_per_epoch = 10\nbatch_size = 64", "pairs_per_epoch"),
        ("lr = -1.0", "lr"),
        ("epochs = 0", "epochs"),
        ("learning_rate = 0.1", "learning_rate"),
        ("[distill]\nteacher = \"\"", "distill.teacher"),
        ("[distill]\nteacher = \"t.pth\"\n[distill.rts]\nlambda = -1.0", "lambda"),
    ];
    for (toml, needle) in cases {
        let err = TrainConfig::from_toml(toml, "bad.toml").expect_err(toml).to_string();
        assert!(err.contains(needle), "error for {toml:?} does not name {needle:?}: {err}");
    }
    assert!(TrainConfig::from_toml("", "empty.toml").is_ok(), "the defaults must be valid");
}

#[test]
fn a_missing_teacher_is_named_in_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        distill: Some(DistillConfig {
            teacher: "no/such/teacher.safetensors".into(),
            teacher_arch: None,
            rts: RtsConfig::default(),
        }),
        validation_pairs: 0,
        ..tiny()
    };
    let run = run_dir(tmp.path(), "missing", &cfg);
    let err = train(&cfg, &run, false, &Device::Cpu).expect_err("no teacher").to_string();
    assert!(err.contains("no/such/teacher.safetensors"), "{err}");
}

#[test]
fn config_round_trips_through_toml() {
    let cfg = TrainConfig {
        distill: Some(DistillConfig {
            teacher: "t.safetensors".into(),
            teacher_arch: Some(Arch::HardNet),
            rts: RtsConfig::default(),
        }),
        ..tiny()
    };
    let text = toml::to_string_pretty(&cfg).unwrap();
    assert_eq!(TrainConfig::from_toml(&text, "round trip").unwrap(), cfg);
}

#[test]
fn the_model_is_the_best_validated_epoch_and_the_last_weights_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = TrainConfig { epochs: 4, lr: 2.0, ..tiny() };
    let run = run_dir(tmp.path(), "best", &cfg);
    let summary = train(&cfg, &run, false, &Device::Cpu).expect("training");
    let best = desdis_train::read_best(&run).unwrap().expect("a best epoch");
    let lowest = summary.val_fpr95.iter().copied().fold(f64::INFINITY, f64::min);
    let first_lowest = summary.val_fpr95.iter().position(|&f| f == lowest).unwrap() + 1;
    assert_eq!((best.epoch, best.val_fpr95), (first_lowest, lowest), "{:?}", summary.val_fpr95);
    assert_eq!((summary.best_epoch, summary.best_val_fpr95), (Some(best.epoch), Some(lowest)));
    assert_eq!(model_bytes(&run), std::fs::read(run.path("best.safetensors")).unwrap());
    assert!(run.path("last.safetensors").is_file());
    // A fresh start in the same directory forgets the earlier run's best epoch.
    let no_val = TrainConfig { validation_pairs: 0, epochs: 1, ..cfg };
    let again = RunDir::create(&tmp.path().join("best"), &no_val).unwrap();
    let summary = train(&no_val, &again, false, &Device::Cpu).expect("second training");
    assert_eq!(summary.best_epoch, None);
    assert!(!again.path("best.json").exists());
}

#[test]
fn a_diverging_run_stops_naming_the_step() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = TrainConfig { lr: 1e30, validation_pairs: 0, ..tiny() };
    let run = run_dir(tmp.path(), "diverge", &cfg);
    let err = train(&cfg, &run, false, &Device::Cpu).expect_err("lr 1e30 must not finish").to_string();
    assert!(err.starts_with("step ") && err.contains("diverged"), "{err}");
    assert!(!run.path("model.safetensors").exists(), "no final model from a diverged run");
}
