//! Faults around `desdis train`: a start that failed must not block its `--out`, and `--resume`
//! must not trust what it finds in the run directory (an edited `progress.json`, a missing or
//! truncated `metrics.csv`, a `latest` pointing outside the run, damaged weights, another arch).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("desdis-cli-train-cache")
}

fn desdis(args: &[String]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_desdis"));
    cmd.env("DESDIS_CACHE_DIR", cache_dir()).args(args).output().expect("desdis runs")
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Two epochs of two DesDis-8 steps, a checkpoint after each.
fn tiny(out: &Path) -> Vec<String> {
    let mut args = strings(&["train", "--arch", "desdis-8", "--epochs", "2", "--pairs-per-epoch", "32"]);
    args.extend(strings(&["--batch-size", "16", "--lr", "0.5", "--seed", "3", "--validation-pairs", "0"]));
    args.extend(["--out".to_string(), out.to_string_lossy().into_owned()]);
    args
}

fn resume(out: &Path) -> Vec<String> {
    vec!["train".into(), "--resume".into(), "--out".into(), out.to_string_lossy().into_owned()]
}

fn ok(args: &[String]) -> String {
    let o = desdis(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{args:?} failed: {err}");
    err
}

fn fails(args: &[String], needles: &[&str]) -> String {
    let o = desdis(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{args:?} should exit 1: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "stderr of {args:?} should mention {needle:?}: {err}");
    }
    err
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// metrics.csv without the wall-clock column.
fn metrics(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).expect("metrics.csv");
    assert!(!text.contains('\0'), "NUL bytes in {}", run.display());
    text.lines()
        .map(|l| l.split(',').enumerate().filter(|(i, _)| *i != 6).map(|(_, c)| c).collect())
        .collect()
}

fn latest(run: &Path) -> PathBuf {
    let name = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    run.join("checkpoints").join(name.trim())
}

fn edit_progress(run: &Path, field: &str, value: u64) {
    let path = latest(run).join("progress.json");
    let mut p: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    p[field] = value.into();
    std::fs::write(&path, serde_json::to_vec(&p).unwrap()).unwrap();
}

#[test]
fn a_failed_start_does_not_block_its_out() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut bad =
        strings(&["distill", "--teacher", "/nonexistent/teacher.safetensors", "--arch", "desdis-8"]);
    bad.extend(["--out".to_string(), out.to_string_lossy().into_owned()]);
    fails(&bad, &["/nonexistent/teacher.safetensors"]);
    ok(&tiny(&out));
    assert!(out.join("model.safetensors").is_file());
    // A run with checkpoints is still protected.
    fails(&tiny(&out), &["already holds a run"]);
}

#[test]
fn unknown_fields_in_nested_config_tables_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "arch = \"desdis-8\"\n[optimizer]\nkind = \"sgd\"\nlrr = 3\n").unwrap();
    let args = strings(&[
        "train",
        "--config",
        &cfg.to_string_lossy(),
        "--out",
        &tmp.path().join("r").to_string_lossy(),
    ]);
    fails(&args, &["bad.toml", "lrr"]);
}

#[test]
fn resume_validates_what_it_finds() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    ok(&tiny(&whole));
    let expected = metrics(&whole);
    let model = std::fs::read(whole.join("model.safetensors")).unwrap();
    let case = |name: &str| {
        let dir = tmp.path().join(name);
        copy_dir(&whole, &dir);
        dir
    };

    // Damage a resume survives: the previous checkpoint is used, and the run ends as the whole one.
    type Damage = fn(&Path);
    let survivable: [(&str, Damage); 4] = [
        ("metrics_len", |run| edit_progress(run, "metrics_len", 100_000_000)),
        ("epoch", |run| edit_progress(run, "epoch", 1)),
        ("truncated_metrics", |run| {
            let path = run.join("metrics.csv");
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        }),
        ("nan_weights", |run| {
            let path = latest(run).join("model.safetensors");
            let mut bytes = std::fs::read(&path).unwrap();
            // The last four bytes are the end of a float tensor's data: make it a NaN.
            let n = bytes.len();
            bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
            std::fs::write(&path, bytes).unwrap();
        }),
    ];
    for (name, damage) in survivable {
        let run = case(name);
        damage(&run);
        let err = ok(&resume(&run));
        assert!(err.contains("damaged") && err.contains("step-000000002"), "{name}: {err}");
        assert_eq!(metrics(&run), expected, "{name}: metrics differ from the uninterrupted run");
        assert_eq!(std::fs::read(run.join("model.safetensors")).unwrap(), model, "{name}: final model");
    }

    let run = case("outside");
    std::fs::write(run.join("checkpoints/latest"), "../../x").unwrap();
    fails(&resume(&run), &["latest", "../../x"]);

    let run = case("no_metrics");
    std::fs::remove_file(run.join("metrics.csv")).unwrap();
    fails(&resume(&run), &["metrics.csv", "missing"]);
    assert!(!run.join("metrics.csv").exists(), "no metrics.csv invented");

    let run = case("other_arch");
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    std::fs::write(run.join("config.toml"), config.replace("\"desdis-8\"", "\"desdis-16\"")).unwrap();
    let err = fails(&resume(&run), &["model.safetensors", "desdis-16", "shape"]);
    assert!(!err.contains("shape mismatch in"), "candle's raw message: {err}");
}
