//! `cargo xtask reproduce --full --data-dir D`: the UBC PhotoTour protocol. Train every model on
//! one scene, report FPR95 on the 100k-pair files of the other two. Sized for GPU machines.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use candle_core::Device;
use desdis_data::phototour::{self, CachePolicy, Network, Source};
use desdis_loss::LossKind;
use desdis_models::arch::Arch;
use desdis_train::{DataSource, TrainSummary};
use serde::Serialize;

use crate::reproduce::{plan_jobs, teacher_config, train_or_reuse, Budget, Job, ReproduceArgs};

/// The published schedule: 10 epochs of 5,000,000 pairs in batches of 1024.
const UBC: Budget = Budget {
    teacher_arch: None,
    light_arch: Arch::DesDis { dim: 32 },
    epochs: 10,
    steps_per_epoch: 5_000_000 / 1024,
    batch_size: 1024,
    validation_pairs: 0,
    max_keypoints: 0,
};

/// The test pairs of each scene.
pub const PAIRS_FILE: &str = "m50_100000_100000_0.txt";

/// One model's FPR95 on each test scene.
#[derive(Debug, Serialize)]
struct UbcResult {
    teacher: String,
    row: String,
    arch: String,
    seed: u64,
    dir: String,
    fpr95: BTreeMap<String, f64>,
    summary: TrainSummary,
    train_seconds: f64,
}

/// Runs the protocol and writes `results-ubc.json` and `results-ubc.md` into `--out`.
pub fn run(args: &ReproduceArgs, kinds: &[LossKind], seeds: usize, device: &Device) -> Result<()> {
    let started = Instant::now();
    let root = args.data_dir.as_deref().context("--full needs --data-dir")?;
    let scenes = fetch_scenes(root)?;
    ensure!(
        scenes.iter().any(|(name, _)| *name == args.train_scene),
        "--train-scene {:?}: expected liberty, notredame or yosemite",
        args.train_scene
    );
    let train_dir =
        scenes.iter().find(|(n, _)| *n == args.train_scene).map(|(_, d)| d.clone()).unwrap_or_default();
    let tests: Vec<(String, PathBuf)> =
        scenes.into_iter().filter(|(n, _)| *n != args.train_scene).map(|(n, d)| (n.to_string(), d)).collect();
    let mut results = Vec::new();
    for &kind in kinds {
        let mut teacher = teacher_config(args, &UBC, kind);
        teacher.data = DataSource::PhotoTour { dir: train_dir.clone() };
        let out = args.out.join(format!("ubc-{}", args.train_scene)).join(kind.as_str());
        for job in plan_jobs(kind, &out, &teacher, UBC.light_arch, seeds, args.ablations) {
            results.push(run_job(kind, &job, &tests, device)?);
        }
    }
    let md = markdown(&args.train_scene, &tests, &results, started.elapsed().as_secs_f64());
    std::fs::create_dir_all(&args.out)?;
    desdis_eval::write_json_atomic(&args.out.join("results-ubc.json"), &results)?;
    desdis_eval::write_atomic(&args.out.join("results-ubc.md"), md.as_bytes())?;
    println!("{md}");
    Ok(())
}

/// The three scenes under `root`, downloaded and checked when missing (unless offline).
fn fetch_scenes(root: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
    let network = Network::from_env();
    phototour::SOURCES
        .iter()
        .map(|source: &Source| {
            let dir = phototour::fetch(source, root, network)
                .with_context(|| format!("PhotoTour scene {} in {}", source.name, root.display()))?;
            Ok((source.name, dir))
        })
        .collect()
}

fn run_job(kind: LossKind, job: &Job, tests: &[(String, PathBuf)], device: &Device) -> Result<UbcResult> {
    let t0 = Instant::now();
    let summary = train_or_reuse(job, device)?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let arch = job.cfg.arch;
    let net = desdis_models::nets::load_net(
        &job.dir.join("model.safetensors").to_string_lossy(),
        Some(arch),
        device,
    )?;
    let mut fpr95 = BTreeMap::new();
    for (scene, dir) in tests {
        fpr95.insert(scene.clone(), scene_fpr95(&net, dir, device)?);
    }
    tracing::info!("{} (seed {}): FPR95 {:?}", job.row, job.seed, fpr95);
    Ok(UbcResult {
        teacher: kind.to_string(),
        row: job.row.clone(),
        arch: arch.name(),
        seed: job.seed,
        dir: job.dir.to_string_lossy().into_owned(),
        fpr95,
        summary,
        train_seconds,
    })
}

/// FPR95 of `net` over the scene's [`PAIRS_FILE`].
pub fn scene_fpr95(net: &desdis_models::nets::Net, dir: &Path, device: &Device) -> Result<f64> {
    let tour = phototour::load(dir, &CachePolicy::NextToData)?;
    let pairs_path = dir.join(PAIRS_FILE);
    let pairs =
        tour.read_pairs(&pairs_path).with_context(|| format!("test pairs {}", pairs_path.display()))?;
    let labelled = desdis_eval::pair_distances(net, &tour.set, &pairs, device)?;
    Ok(desdis_eval::fpr95(&labelled.distances, &labelled.labels)?)
}

fn markdown(train: &str, tests: &[(String, PathBuf)], results: &[UbcResult], seconds: f64) -> String {
    let mut md = format!(
        "# UBC PhotoTour results\n\nProduced by `cargo xtask reproduce --full` in {:.0} min: trained on \
         {train}, FPR95 (lower is better) on each other scene's {PAIRS_FILE}; mean ± sample std over seeds.\n\n",
        seconds / 60.0
    );
    let _ = write!(md, "| model | teacher | arch | seeds |");
    for (scene, _) in tests {
        let _ = write!(md, " {scene} |");
    }
    md.push_str(" mean |\n|---|---|---|---|");
    md.push_str(&"---|".repeat(tests.len() + 1));
    md.push('\n');
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for r in results {
        if !keys.contains(&(r.teacher.as_str(), r.row.as_str())) {
            keys.push((&r.teacher, &r.row));
        }
    }
    for (teacher, row) in keys {
        let group: Vec<&UbcResult> =
            results.iter().filter(|r| r.teacher == teacher && r.row == row).collect();
        let _ = write!(md, "| {row} | {teacher} | {} | {} |", group[0].arch, group.len());
        let mut means = Vec::new();
        for (scene, _) in tests {
            let v: Vec<f64> = group.iter().filter_map(|r| r.fpr95.get(scene).copied()).collect();
            means.push(v.iter().sum::<f64>() / v.len().max(1) as f64);
            let _ = write!(md, " {} |", crate::report::mean_std(&v, 4));
        }
        let _ = writeln!(md, " {:.4} |", means.iter().sum::<f64>() / means.len().max(1) as f64);
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use desdis_data::patch::PatchSet;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ReproduceArgs,
    }

    /// A small scene in PhotoTour layout: 150 points of 3 noisy views of a random smooth patch,
    /// with a pair file of 300 pairs.
    fn write_scene(dir: &Path, seed: u64) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut set = PatchSet::default();
        for point in 0..150u32 {
            let (fx, fy, phase) =
                (rng.random_range(0.1..0.6f32), rng.random_range(0.1..0.6f32), rng.random::<f32>());
            for _ in 0..3 {
                let mut patch = [0u8; desdis_data::patch::PATCH_LEN];
                for (i, px) in patch.iter_mut().enumerate() {
                    let (x, y) = ((i % 32) as f32, (i / 32) as f32);
                    let v =
                        128.0 + 90.0 * (fx * x + fy * y + 6.0 * phase).sin() + rng.random_range(-20.0..20.0);
                    *px = v.clamp(0.0, 255.0) as u8;
                }
                set.push(&patch, point);
            }
        }
        phototour::write(dir, &set).unwrap();
        let pairs = desdis_data::mining::sample_eval_pairs(&set.point_ids, 300, seed).unwrap();
        phototour::write_pairs(&dir.join(PAIRS_FILE), &pairs, &set.point_ids).unwrap();
    }

    #[test]
    fn full_protocol_runs_on_a_local_fixture() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        for (i, name) in ["liberty", "notredame", "yosemite"].iter().enumerate() {
            write_scene(&data.join(name), i as u64);
        }
        let out = tmp.path().join("out");
        let argv =
            ["reproduce", "--full", "--data-dir", data.to_str().unwrap(), "--out", out.to_str().unwrap()];
        let small = [
            "--teachers",
            "hardnet",
            "--seeds",
            "1",
            "--arch",
            "desdis-8",
            "--epochs",
            "1",
            "--pairs-per-epoch",
            "32",
        ];
        let rest = ["--batch-size", "16", "--device", "cpu", "--train-scene", "notredame"];
        let wrapper = Wrapper::try_parse_from(argv.iter().chain(&small).chain(&rest)).unwrap();
        crate::run_reproduce(&wrapper.args).unwrap();

        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results-ubc.json")).unwrap()).unwrap();
        let rows = json.as_array().unwrap();
        assert_eq!(rows.len(), 4, "teacher, equal and light students, the light one's lambda = 0 control");
        for row in rows {
            let fpr = row["fpr95"].as_object().unwrap();
            assert_eq!(fpr.keys().collect::<Vec<_>>(), ["liberty", "yosemite"]);
            assert!(fpr.values().all(|v| (0.0..=1.0).contains(&v.as_f64().unwrap())), "{row}");
        }
        let teacher_cfg =
            std::fs::read_to_string(out.join("ubc-notredame/hardnet/teacher-s0/config.toml")).unwrap();
        assert!(teacher_cfg.contains("notredame"), "{teacher_cfg}");
        assert!(std::fs::read_to_string(out.join("results-ubc.md"))
            .unwrap()
            .contains("| liberty | yosemite |"));
    }
}
