//! `metrics.csv`, one row per optimizer step: the schema, written and read in this one place.

use crate::error::{Error, Result};
use crate::run_dir::RunDir;

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRow {
    /// Optimizer steps done, counting this one (1-based).
    pub step: u64,
    /// The epoch of this step (0-based).
    pub epoch: usize,
    /// The learning rate of this step.
    pub lr: f64,
    /// The run's total objective (students: triplet + lambda R_ts).
    pub loss: f64,
    /// The triplet term alone.
    pub triplet: f64,
    /// The unweighted R_ts term (0 without a teacher).
    pub rts: f64,
    /// Training throughput of this step.
    pub pairs_per_s: f64,
    /// Validation FPR95, on the last step of an epoch that was validated.
    pub val_fpr95: Option<f64>,
}

impl MetricsRow {
    /// The header line (without the newline).
    pub const HEADER: &'static str = "step,epoch,lr,loss,triplet,rts,pairs_per_s,val_fpr95";

    /// The row as a CSV line (without the newline); an empty last cell when not validated. The
    /// loss terms are computed in f32 and written as f32 (the shortest text that reads back to
    /// the same value).
    pub fn to_csv(&self) -> String {
        let val = self.val_fpr95.map_or(String::new(), |f| f.to_string());
        let (loss, triplet, rts) = (self.loss as f32, self.triplet as f32, self.rts as f32);
        format!(
            "{},{},{},{loss},{triplet},{rts},{:.1},{val}",
            self.step, self.epoch, self.lr, self.pairs_per_s
        )
    }

    /// Parses a line written by [`MetricsRow::to_csv`]; `None` when it is not one.
    pub fn parse(line: &str) -> Option<MetricsRow> {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 8 {
            return None;
        }
        let num = |i: usize| f[i].parse::<f64>().ok();
        Some(MetricsRow {
            step: f[0].parse().ok()?,
            epoch: f[1].parse().ok()?,
            lr: num(2)?,
            loss: num(3)?,
            triplet: num(4)?,
            rts: num(5)?,
            pairs_per_s: num(6)?,
            val_fpr95: if f[7].is_empty() { None } else { Some(num(7)?) },
        })
    }
}

/// Reads a run's `metrics.csv`; a malformed row or another header is an error naming the line.
pub fn read_metrics(run: &RunDir) -> Result<Vec<MetricsRow>> {
    let path = run.path("metrics.csv");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let bad = |n: usize| Error::Config(format!("{}: line {}: malformed metrics row", path.display(), n + 1));
    let mut lines = text.lines().enumerate();
    if let Some((n, header)) = lines.next() {
        if header != MetricsRow::HEADER {
            return Err(bad(n));
        }
    }
    lines.map(|(n, line)| MetricsRow::parse(line).ok_or_else(|| bad(n))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_with_and_without_validation() {
        let row = MetricsRow {
            step: 3,
            epoch: 0,
            lr: 0.5,
            loss: 0.25,
            triplet: 0.125,
            rts: 0.5,
            pairs_per_s: 123.456,
            val_fpr95: None,
        };
        assert_eq!(row.to_csv(), "3,0,0.5,0.25,0.125,0.5,123.5,");
        // A loss computed in f32 is written as that f32, not as its longer f64 expansion.
        let f32_loss = MetricsRow { loss: f64::from(0.2f32), ..row.clone() };
        assert!(f32_loss.to_csv().starts_with("3,0,0.5,0.2,"), "{}", f32_loss.to_csv());
        let back = MetricsRow::parse(&row.to_csv()).unwrap();
        assert_eq!(back, MetricsRow { pairs_per_s: 123.5, ..row.clone() });
        let validated = MetricsRow { val_fpr95: Some(0.0125), ..row };
        assert_eq!(MetricsRow::parse(&validated.to_csv()).unwrap().val_fpr95, Some(0.0125));
        assert!(MetricsRow::parse("1,2,3").is_none());
        assert!(MetricsRow::parse("x,0,0.5,0.25,0.125,0.5,1.0,").is_none());
    }
}
