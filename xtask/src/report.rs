//! The results of `reproduce`: per-model records, throughput, and the Markdown table.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use candle_core::{Device, Tensor};
use candle_nn::ModuleT;
use desdis_eval::SequenceScores;
use desdis_models::nets::Net;
use desdis_train::TrainSummary;
use serde::Serialize;

/// One trained and scored model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelResult {
    /// The teacher recipe of its group.
    pub teacher: String,
    /// Table row it belongs to (seeds of a row are averaged).
    pub row: String,
    pub arch: String,
    pub seed: u64,
    /// Mean over the test sequences.
    pub scores: SequenceScores,
    pub patches_per_s: f64,
    pub params: usize,
    pub macs: u64,
    pub summary: TrainSummary,
    pub train_seconds: f64,
}

/// Patches per second of `net` in evaluation mode, on batches of 256, for half a second at least.
pub fn throughput(net: &Net) -> Result<f64> {
    const BATCH: usize = 256;
    let scale = net.arch().input_range() as f64;
    let x = (Tensor::rand(0f32, 1f32, (BATCH, 1, 32, 32), &Device::Cpu)? * scale)?;
    let t = desdis_eval::measure_throughput(
        |_| net.forward_t(&x, false).and_then(|d| d.to_vec2::<f32>()).map(|_| ()),
        BATCH,
        0.5,
    )?;
    Ok(t.patches_per_s)
}

/// Writes `results.json` and `results.md` into `out`; returns the Markdown.
pub fn write(out: &Path, results: &[ModelResult], quick: bool, seconds: f64) -> Result<String> {
    let table = markdown(results, quick, seconds);
    std::fs::create_dir_all(out)?;
    desdis_eval::write_json_atomic(&out.join("results.json"), &results)?;
    desdis_train::run_dir::write_atomic(&out.join("results.md"), table.as_bytes())?;
    Ok(table)
}

/// `mean ± std` (sample standard deviation), or the value alone for one seed.
fn mean_std(values: &[f64], digits: usize) -> String {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return format!("{mean:.digits$}");
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    format!("{mean:.digits$} ± {:.digits$}", var.sqrt())
}

fn markdown(results: &[ModelResult], quick: bool, seconds: f64) -> String {
    let mut md = String::from("# Results\n\n");
    let mode = if quick {
        "`cargo xtask reproduce --quick` (a smoke test, not results)"
    } else {
        "`cargo xtask reproduce`"
    };
    let _ = writeln!(
        md,
        "Produced by {mode} in {:.0} min on the CPU, training on the embedded set. Scores are the mean \
         over the test sequences; rows with several seeds give mean ± sample standard deviation. \
         FPR95: lower is better; AP and mAP: higher is better. Throughput: one CPU process, batches of 256.\n",
        seconds / 60.0
    );
    md.push_str("| model | teacher | arch | seeds | FPR95 | verification AP | matching mAP | retrieval mAP | patches/s | params | MACs/patch |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    let mut rows: Vec<(&str, &str)> = Vec::new();
    for r in results {
        if !rows.contains(&(&r.teacher, &r.row)) {
            rows.push((&r.teacher, &r.row));
        }
    }
    for (teacher, row) in rows {
        let group: Vec<&ModelResult> =
            results.iter().filter(|r| r.teacher == teacher && r.row == row).collect();
        let col = |f: fn(&ModelResult) -> f64, d: usize| {
            mean_std(&group.iter().map(|r| f(r)).collect::<Vec<_>>(), d)
        };
        let first = group[0];
        let _ = writeln!(
            md,
            "| {row} | {teacher} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            first.arch,
            group.len(),
            col(|r| r.scores.fpr95, 4),
            col(|r| r.scores.verification_ap, 4),
            col(|r| r.scores.matching_map, 4),
            col(|r| r.scores.retrieval_map, 4),
            col(|r| r.patches_per_s, 0),
            first.params,
            first.macs,
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_std_uses_the_sample_deviation() {
        assert_eq!(mean_std(&[1.0, 3.0], 2), "2.00 ± 1.41");
        assert_eq!(mean_std(&[0.5], 3), "0.500");
    }
}
