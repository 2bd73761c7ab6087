//! The results of `reproduce`: per-model records, throughput, and the Markdown report.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use candle_core::{Device, Tensor};
use desdis_eval::SequenceScores;
use desdis_loss::RtsConfig;
use desdis_models::nets::Net;
use desdis_train::TrainSummary;
use serde::Serialize;

/// Recalls at which [`SequenceResult::fpr_at_recall`] samples the ROC curve: 0.50, 0.51, ..., 1.00.
pub fn plotted_recalls() -> Vec<f64> {
    (50..=100).map(|r| r as f64 / 100.0).collect()
}

/// One model's scores on one test sequence.
#[derive(Debug, Clone, Serialize)]
pub struct SequenceResult {
    pub sequence: String,
    pub scores: SequenceScores,
    /// False-positive rate of the verification pairs at each of [`plotted_recalls`].
    pub fpr_at_recall: Vec<f64>,
}

/// One trained and scored model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelResult {
    /// The teacher recipe of its group.
    pub teacher: String,
    /// Table row it belongs to (seeds of a row are averaged).
    pub row: String,
    pub arch: String,
    pub seed: u64,
    /// The run directory (config, metrics, weights).
    pub dir: String,
    /// Scores per test sequence, the acceptance sequence last.
    pub sequences: Vec<SequenceResult>,
    pub patches_per_s: f64,
    pub params: usize,
    pub macs: u64,
    pub summary: TrainSummary,
    pub train_seconds: f64,
}

impl ModelResult {
    /// Scores on `sequence`, if it was evaluated.
    pub fn on(&self, sequence: &str) -> Option<&SequenceScores> {
        self.sequences.iter().find(|s| s.sequence == sequence).map(|s| &s.scores)
    }
}

/// How the report names the rows that the verdict compares.
pub const TEACHER_ROW: &str = "teacher";
pub const EQUAL_ROW: &str = "equal-weight student";
pub const LIGHT_ROW: &str = "light student";
pub const LIGHT_CONTROL_ROW: &str = "control: light, lambda = 0";
/// Prefix of the `--ablations` rows (light students with another lambda or form).
pub const ABLATION_ROW: &str = "ablation: light";

/// Patches per second of `net` in evaluation mode, on batches of 256, for half a second at least.
pub fn throughput(net: &Net) -> Result<f64> {
    const BATCH: usize = 256;
    let x = Tensor::rand(0f32, 1f32, (BATCH, 1, 32, 32), &Device::Cpu)?;
    let t = desdis_eval::measure_throughput(
        |_| net.describe_t(&x, false).and_then(|d| d.descriptors.to_vec2::<f32>()).map(|_| ()),
        BATCH,
        0.5,
    )?;
    Ok(t.patches_per_s)
}

/// What the report says about the run besides the models.
#[derive(Debug)]
pub struct ReportContext<'a> {
    pub quick: bool,
    /// The flags the run was given (empty: the defaults).
    pub flags: String,
    pub seconds: f64,
    /// Test sequences in the order scored; the last is the acceptance sequence.
    pub sequences: &'a [String],
    /// Plot files relative to the report, with a caption each.
    pub plots: &'a [(String, String)],
}

/// Writes `results.json` and `results.md` into `out`; returns the Markdown.
pub fn write(out: &Path, results: &[ModelResult], ctx: &ReportContext) -> Result<String> {
    let md = markdown(results, ctx);
    std::fs::create_dir_all(out)?;
    desdis_eval::write_json_atomic(&out.join("results.json"), &results)?;
    desdis_eval::write_atomic(&out.join("results.md"), md.as_bytes())?;
    Ok(md)
}

/// Mean and sample standard deviation (0 for one value).
fn mean_std_of(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// `mean ± std` (sample standard deviation), or the value alone for one seed.
pub(crate) fn mean_std(values: &[f64], digits: usize) -> String {
    let (mean, std) = mean_std_of(values);
    if values.len() < 2 {
        return format!("{mean:.digits$}");
    }
    format!("{mean:.digits$} ± {std:.digits$}")
}

fn markdown(results: &[ModelResult], ctx: &ReportContext) -> String {
    let mut md = String::from("# Results\n\n");
    md.push_str(&preamble(ctx));
    let bases = base_sequences(ctx.sequences);
    for (i, base) in bases.iter().enumerate().rev() {
        let role = if i + 1 == bases.len() { "acceptance" } else { "tuning" };
        let _ = writeln!(md, "## {base} ({role} sequence): paired comparisons\n");
        md.push_str(&verdicts(results, ctx.sequences, base));
        for sequence in ctx.sequences.iter().filter(|s| base_of(s) == *base) {
            let _ = writeln!(md, "### {sequence}\n");
            md.push_str(&scores_table(results, sequence));
            md.push('\n');
        }
    }
    md.push_str(NOTES);
    md.push_str(&training_table(results));
    if !ctx.plots.is_empty() {
        md.push_str("\n## Plots\n\n");
        for (file, caption) in ctx.plots {
            let _ = writeln!(md, "{caption}\n\n![{caption}]({file})\n");
        }
    }
    md
}

/// What the table cannot say by itself.
const NOTES: &str = "Notes. The default regularizer (named above) was re-tuned at this budget on \
the tuning sequence only (`docs/losses.md`; `--ablations` adds those rows to this report). Teachers \
and students get the same budget here (steps in the training table), far from the published \
schedules (10 epochs of 5M pairs): the verdicts are about this budget. `cargo xtask reproduce \
--budget N` scales every run; `cargo xtask reproduce --full` runs the published UBC protocol on a \
GPU.\n\n";

fn preamble(ctx: &ReportContext) -> String {
    let command =
        format!("cargo xtask reproduce{}{}", if ctx.flags.is_empty() { "" } else { " " }, ctx.flags);
    let mode =
        if ctx.quick { format!("`{command}` (a smoke test, not results)") } else { format!("`{command}`") };
    format!(
        "Produced by {mode} on the CPU in {:.0} min of wall-clock time (runs finished by an \
         earlier invocation with the same settings are reused; the training table gives every \
         run's own training time), training on the embedded set (photos in `data/images`). Each model is scored on patches cut from the test sequences (keypoints of \
         image 1 carried into images 2-6 by the ground-truth homographies, frames perturbed at the \
         easy, hard and tough jitter levels as HPatches' patches are), each level its own table. Rows with several seeds \
         give mean ± sample standard deviation. FPR95: lower is better; AP and mAP: higher is better. \
         Throughput: eval mode, one CPU process, batches of 256, measured while training ran on \
         the same cores (see `docs/performance.md` for clean speed numbers). Students use R_ts = \
         {:?}, {:?}, λ = {} unless the row says otherwise. The last sequence is the acceptance \
         sequence: nothing was tuned on it.\n\n",
        ctx.seconds / 60.0,
        RtsConfig::default().form,
        RtsConfig::default().similarity,
        RtsConfig::default().lambda,
    )
}

/// The rows of `results` in first-seen order, as (teacher, row) keys.
fn row_keys(results: &[ModelResult]) -> Vec<(&str, &str)> {
    let mut rows: Vec<(&str, &str)> = Vec::new();
    for r in results {
        if !rows.contains(&(r.teacher.as_str(), r.row.as_str())) {
            rows.push((&r.teacher, &r.row));
        }
    }
    rows
}

fn group<'a>(results: &'a [ModelResult], teacher: &str, row: &str) -> Vec<&'a ModelResult> {
    results.iter().filter(|r| r.teacher == teacher && r.row == row).collect()
}

fn scores_table(results: &[ModelResult], sequence: &str) -> String {
    let mut md = String::from(
        "| model | teacher | arch | seeds | FPR95 | verification AP | matching mAP | retrieval mAP | patches/s | params | MACs/patch |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (teacher, row) in row_keys(results) {
        let group = group(results, teacher, row);
        let scores: Vec<&SequenceScores> = group.iter().filter_map(|r| r.on(sequence)).collect();
        let col =
            |f: fn(&SequenceScores) -> f64| mean_std(&scores.iter().map(|s| f(s)).collect::<Vec<_>>(), 4);
        let speed = mean_std(&group.iter().map(|r| r.patches_per_s).collect::<Vec<_>>(), 0);
        let first = group[0];
        let _ = writeln!(
            md,
            "| {row} | {teacher} | {} | {} | {} | {} | {} | {} | {speed} | {} | {} |",
            first.arch,
            group.len(),
            col(|s| s.fpr95),
            col(|s| s.verification_ap),
            col(|s| s.matching_map),
            col(|s| s.retrieval_map),
            first.params,
            first.macs,
        );
    }
    md
}

/// The sequence a cut belongs to: `v_churchill` of `v_churchill hard`.
fn base_of(cut: &str) -> &str {
    cut.split(' ').next().unwrap_or(cut)
}

/// The sequences of the cuts, in first-seen order.
fn base_sequences(cuts: &[String]) -> Vec<&str> {
    let mut bases: Vec<&str> = Vec::new();
    for cut in cuts {
        if !bases.contains(&base_of(cut)) {
            bases.push(base_of(cut));
        }
    }
    bases
}

/// The comparisons each teacher recipe's verdict makes: (row asked about, row compared with).
fn comparisons(results: &[ModelResult], teacher: &str) -> Vec<(String, String)> {
    let rows = row_keys(results);
    let find = |prefix: &str| {
        rows.iter().find(|(t, r)| *t == teacher && r.starts_with(prefix)).map(|k| k.1.to_string())
    };
    // The teacher is also the equal-weight student's lambda = 0 control (see `reproduce`).
    let teacher_row = find(&format!("{teacher} {TEACHER_ROW}"));
    let pairs = [
        (find(EQUAL_ROW), teacher_row.clone()),
        (find(LIGHT_ROW), teacher_row),
        (find(LIGHT_ROW), find(LIGHT_CONTROL_ROW)),
    ];
    let ablations = rows
        .iter()
        .filter(|(t, r)| *t == teacher && r.starts_with(ABLATION_ROW))
        .map(|k| (Some(k.1.to_string()), find(LIGHT_CONTROL_ROW)));
    pairs.into_iter().chain(ablations).filter_map(|(a, b)| Some((a?, b?))).collect()
}

/// Per teacher recipe and comparison, on the cuts of `base`: the mean paired difference of FPR95
/// and matching mAP with its 95% interval, and the verdict that interval supports.
fn verdicts(results: &[ModelResult], cuts: &[String], base: &str) -> String {
    let cuts: Vec<&str> = cuts.iter().map(String::as_str).filter(|c| base_of(c) == base).collect();
    let mut md = String::from(
        "Each difference is `row - compared row` over paired units: one per seed (the teacher and the \
         students of a seed share data order and initialisation stream) and jitter level. The interval \
         is a 95% percentile bootstrap over those units (10,000 resamples, fixed seed); the verdict is \
         \"better\" or \"worse\" only when it excludes 0. The teacher is also the equal-weight \
         student's λ = 0 control: same architecture, seed, data order and recipe, so with λ = 0 the \
         student run would repeat the teacher's bit for bit.\n\n\
         | teacher | row | compared with | units | FPR95 difference [95% interval] | verdict | \
         matching mAP difference [95% interval] | verdict |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut teachers: Vec<&str> = Vec::new();
    for (t, _) in row_keys(results) {
        if !teachers.contains(&t) {
            teachers.push(t);
        }
    }
    for teacher in teachers {
        for (row, other) in comparisons(results, teacher) {
            let fpr = paired(results, teacher, (&row, &other), &cuts, |s| s.fpr95);
            let map = paired(results, teacher, (&row, &other), &cuts, |s| s.matching_map);
            let cell = |d: &[f64], lower_is_better: bool| match interval(d) {
                None => ("n/a".to_string(), "no paired units"),
                Some((mean, lo, hi)) => {
                    (format!("{mean:+.4} [{lo:+.4}, {hi:+.4}]"), verdict_of(lo, hi, lower_is_better))
                }
            };
            let (fpr_cell, fpr_verdict) = cell(&fpr, true);
            let (map_cell, map_verdict) = cell(&map, false);
            let _ = writeln!(
                md,
                "| {teacher} | {row} | {other} | {} | {fpr_cell} | {fpr_verdict} | {map_cell} | {map_verdict} |",
                fpr.len()
            );
        }
    }
    md.push('\n');
    md
}

/// Paired differences `row - other` of `metric`: one per seed both rows have, per cut.
fn paired(
    results: &[ModelResult],
    teacher: &str,
    (row, other): (&str, &str),
    cuts: &[&str],
    metric: fn(&SequenceScores) -> f64,
) -> Vec<f64> {
    let mut diffs = Vec::new();
    for a in group(results, teacher, row) {
        let Some(b) = group(results, teacher, other).into_iter().find(|b| b.seed == a.seed) else { continue };
        for cut in cuts {
            if let (Some(x), Some(y)) = (a.on(cut), b.on(cut)) {
                diffs.push(metric(x) - metric(y));
            }
        }
    }
    diffs
}

/// Mean and 95% percentile-bootstrap interval of `d` (`None` when empty).
pub(crate) fn interval(d: &[f64]) -> Option<(f64, f64, f64)> {
    use rand::{Rng, SeedableRng};
    if d.is_empty() {
        return None;
    }
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed);
    let mut means: Vec<f64> = (0..10_000)
        .map(|_| (0..d.len()).map(|_| d[rng.random_range(0..d.len())]).sum::<f64>() / d.len() as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    Some((mean, means[249], means[9_749]))
}

/// "better", "worse" or "not distinguishable" from an interval of `row - other`.
pub(crate) fn verdict_of(lo: f64, hi: f64, lower_is_better: bool) -> &'static str {
    let (below, above) = (hi < 0.0, lo > 0.0);
    match (below, above, lower_is_better) {
        (true, _, true) | (_, true, false) => "better",
        (true, _, false) | (_, true, true) => "worse",
        _ => "not distinguishable",
    }
}

fn training_table(results: &[ModelResult]) -> String {
    let mut md = String::from(
        "## Training\n\nLoss = the run's total objective (students: triplet + λ·R_ts), mean over the \
         first and the last epoch.\n\n| model | teacher | seeds | steps | first-epoch loss | last-epoch loss | pairs/s | training steps time (s) |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for (teacher, row) in row_keys(results) {
        let group = group(results, teacher, row);
        let col = |f: fn(&ModelResult) -> f64, d: usize| {
            mean_std(&group.iter().map(|r| f(r)).collect::<Vec<_>>(), d)
        };
        let _ = writeln!(
            md,
            "| {row} | {teacher} | {} | {} | {} | {} | {} | {} |",
            group.len(),
            group[0].summary.steps,
            col(|r| r.summary.first_epoch_loss, 3),
            col(|r| r.summary.last_epoch_loss, 3),
            col(|r| r.summary.pairs_per_s, 0),
            col(|r| r.train_seconds, 0),
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_interval_and_verdict() {
        let (mean, lo, hi) = interval(&[0.01, 0.012, 0.009, 0.011, 0.010, 0.013]).unwrap();
        assert!(lo > 0.0 && lo <= mean && mean <= hi, "{lo} {mean} {hi}");
        // A higher FPR95 is worse, a higher mAP better; an interval across 0 decides nothing.
        assert_eq!(verdict_of(lo, hi, true), "worse");
        assert_eq!(verdict_of(lo, hi, false), "better");
        let (_, lo, hi) = interval(&[0.01, -0.012, 0.004, -0.006]).unwrap();
        assert_eq!(verdict_of(lo, hi, true), "not distinguishable");
        assert!(interval(&[]).is_none());
    }

    #[test]
    fn cuts_group_by_sequence() {
        let cuts: Vec<String> = ["v_a easy", "v_a hard", "v_b easy"].iter().map(|s| s.to_string()).collect();
        assert_eq!(base_sequences(&cuts), vec!["v_a", "v_b"]);
    }

    #[test]
    fn mean_std_uses_the_sample_deviation() {
        assert_eq!(mean_std(&[1.0, 3.0], 2), "2.00 ± 1.41");
        assert_eq!(mean_std(&[0.5], 3), "0.500");
    }
}
