//! `desdis train` / `desdis distill` end to end: a run killed with SIGKILL and resumed ends exactly
//! where an uninterrupted run ends, and bad settings are refused with a clear message.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// The embedded set's cache, shared by every run of these tests.
fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("desdis-cli-train-cache")
}

fn desdis() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_desdis"));
    cmd.env("DESDIS_CACHE_DIR", cache_dir());
    cmd
}

/// A tiny DesDis-8 training run: 10 epochs of 8 steps of 16 pairs, checkpoint every epoch.
fn tiny_train(out: &Path) -> Vec<String> {
    [
        "train",
        "--recipe",
        "hardnet",
        "--arch",
        "desdis-8",
        "--epochs",
        "10",
        "--pairs-per-epoch",
        "128",
        "--batch-size",
        "16",
        "--lr",
        "0.5",
        "--seed",
        "11",
        "--validation-pairs",
        "100",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.to_string_lossy().into_owned()])
    .collect()
}

fn run_ok(args: &[String]) -> Output {
    let out = desdis().args(args).output().expect("desdis runs");
    assert!(out.status.success(), "desdis {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// metrics.csv without its wall-clock column (pairs_per_s), which differs between runs.
fn deterministic_metrics(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).expect("metrics.csv");
    let header: Vec<&str> = text.lines().next().expect("a header").split(',').collect();
    let clock = header.iter().position(|h| *h == "pairs_per_s").expect("pairs_per_s column");
    text.lines()
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| *i != clock)
                .map(|(_, c)| c)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

/// Waits until the first checkpoint is complete, then kills the process with SIGKILL.
fn kill_after_first_checkpoint(mut child: Child, run: &Path) {
    let latest = run.join("checkpoints").join("latest");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !latest.exists() {
        assert!(child.try_wait().expect("poll").is_none(), "training ended before its first checkpoint");
        assert!(Instant::now() < deadline, "no checkpoint after 300 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "the run finished before it could be killed: the test proves nothing");
}

/// Every file a killed run leaves is whole: the config parses, `latest` names a complete
/// checkpoint, and no temporary file is visible under a final name.
fn assert_consistent(run: &Path) {
    let config = std::fs::read_to_string(run.join("config.toml")).expect("config.toml");
    assert!(config.contains("arch = \"desdis-8\""), "config.toml: {config}");
    let latest = std::fs::read_to_string(run.join("checkpoints/latest")).expect("latest");
    let ckpt = run.join("checkpoints").join(latest.trim());
    for file in ["progress.json", "model.safetensors"] {
        let bytes =
            std::fs::read(ckpt.join(file)).unwrap_or_else(|e| panic!("{file} in {}: {e}", ckpt.display()));
        assert!(!bytes.is_empty(), "{file} is empty");
    }
    assert!(!run.join("results.json").exists(), "a killed run must not have results yet");
}

#[test]
fn sigkill_then_resume_matches_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    run_ok(&tiny_train(&whole));

    let killed = tmp.path().join("killed");
    let child = desdis().args(tiny_train(&killed)).spawn().expect("desdis starts");
    kill_after_first_checkpoint(child, &killed);
    assert_consistent(&killed);
    let resume =
        ["train".to_string(), "--resume".into(), "--out".into(), killed.to_string_lossy().into_owned()];
    run_ok(&resume);

    assert_eq!(deterministic_metrics(&whole), deterministic_metrics(&killed));
    let weights = |run: &Path| std::fs::read(run.join("model.safetensors")).expect("final weights");
    assert_eq!(weights(&whole), weights(&killed), "final weights differ after kill -9 and --resume");
    let leftovers: Vec<_> = std::fs::read_dir(killed.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
}

#[test]
fn distill_writes_a_student_and_refuses_bad_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let teacher = tmp.path().join("teacher");
    let mut args = tiny_train(&teacher);
    let epochs = args.iter().position(|a| a == "--epochs").unwrap() + 1;
    args[epochs] = "1".into(); // one epoch is enough for a teacher here
    run_ok(&args);

    let student = tmp.path().join("student");
    let teacher_weights = teacher.join("model.safetensors").to_string_lossy().into_owned();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut distill = s(&["distill", "--teacher", &teacher_weights, "--arch", "desdis-8", "--rts", "hinge"]);
    distill.extend(s(&["--epochs", "1", "--pairs-per-epoch", "64", "--batch-size", "16", "--lr", "0.5"]));
    distill.extend(s(&["--validation-pairs", "0", "--out", &student.to_string_lossy()]));
    run_ok(&distill);
    let config = std::fs::read_to_string(student.join("config.toml")).unwrap();
    assert!(config.contains("form = \"hinge\""), "{config}");
    assert!(student.join("model.safetensors").is_file());

    let fails = |args: &[String], needle: &str| {
        let out = desdis().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(needle), "{args:?}: expected {needle:?} in {err}");
    };
    fails(&distill, "already holds a run");
    let mut bad_form = distill.clone();
    let rts = bad_form.iter().position(|a| a == "--rts").unwrap() + 1;
    bad_form[rts] = "cubic".into();
    *bad_form.last_mut().unwrap() = tmp.path().join("x").to_string_lossy().into_owned();
    fails(&bad_form, "--rts \"cubic\"");
    let resume_with_flag = s(&["train", "--resume", "--lr", "1", "--out", &student.to_string_lossy()]);
    fails(&resume_with_flag, "drop the other settings");
    let no_teacher = s(&["distill", "--out", &tmp.path().join("y").to_string_lossy()]);
    fails(&no_teacher, "no teacher");
    let missing = s(&[
        "distill",
        "--teacher",
        "/nonexistent/t.safetensors",
        "--out",
        &tmp.path().join("z").to_string_lossy(),
    ]);
    fails(&missing, "/nonexistent/t.safetensors");
}
