//! PNG plots of `reproduce`: training-loss curves and FPR-versus-recall on the acceptance sequence.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;

use crate::report::{plotted_recalls, ModelResult};

/// One named line of a plot.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

/// Steps averaged in each point of a loss curve: single steps of small batches are too noisy to read.
const SMOOTHING: usize = 5;

/// The triplet-loss curve of every seed-0 run of `teacher` (its own triplet term, so teachers and
/// students compare on the same scale), written to `path`.
pub fn loss_curves(results: &[ModelResult], teacher: &str, path: &Path) -> Result<()> {
    let mut series = Vec::new();
    for r in results.iter().filter(|r| r.teacher == teacher && r.seed == 0) {
        let points = read_triplet_curve(Path::new(&r.dir))?;
        series.push(Series { name: r.row.clone(), points: smooth(&points, SMOOTHING) });
    }
    let title = format!("{teacher}: triplet loss per step (seed 0, mean of {SMOOTHING} steps)");
    line_plot(path, &title, ("step", "triplet loss"), &series, false)
}

/// FPR against recall (0.5 to 1) on `sequence` for every seed-0 model of `teacher`.
pub fn fpr_recall(results: &[ModelResult], teacher: &str, sequence: &str, path: &Path) -> Result<()> {
    let recalls = plotted_recalls();
    let series: Vec<Series> = results
        .iter()
        .filter(|r| r.teacher == teacher && r.seed == 0)
        .filter_map(|r| {
            let seq = r.sequences.iter().find(|s| s.sequence == sequence)?;
            let points = recalls.iter().copied().zip(seq.fpr_at_recall.iter().copied()).collect();
            Some(Series { name: r.row.clone(), points })
        })
        .collect();
    let title = format!("{teacher}: verification FPR vs recall on {sequence} (seed 0)");
    line_plot(path, &title, ("recall", "false-positive rate"), &series, true)
}

/// Triplet loss per step from a run's `metrics.csv`.
fn read_triplet_curve(dir: &Path) -> Result<Vec<(f64, f64)>> {
    let run = desdis_train::RunDir::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let rows = desdis_train::read_metrics(&run)?;
    Ok(rows.iter().map(|r| (r.step as f64, r.triplet)).collect())
}

/// Means of consecutive windows of `n` points.
fn smooth(points: &[(f64, f64)], n: usize) -> Vec<(f64, f64)> {
    points
        .chunks(n.max(1))
        .map(|c| {
            let k = c.len() as f64;
            (c.iter().map(|p| p.0).sum::<f64>() / k, c.iter().map(|p| p.1).sum::<f64>() / k)
        })
        .collect()
}

/// Draws `series` into a PNG at `path`, written under a temporary name and renamed, so a crash
/// never leaves half a picture.
fn line_plot(path: &Path, title: &str, axes: (&str, &str), series: &[Series], log_y: bool) -> Result<()> {
    let tmp = temporary_png(path);
    draw(&tmp, title, axes, series, log_y)
        .map_err(|e| anyhow!("drawing {}: {e}", path.display()))
        .and_then(|()| std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display())))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

/// A sibling of `path` that still ends in `.png` (the backend picks the encoder by extension).
fn temporary_png(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".tmp-{}-{name}", std::process::id()))
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Smallest value a log axis shows: a false-positive rate of 0 sits on the axis floor.
const LOG_FLOOR: f64 = 1e-4;

/// Draws on a linear chart; a log y axis is drawn as log10 of the values with labels showing the
/// values themselves, so both kinds share one code path.
fn draw(path: &Path, title: &str, axes: (&str, &str), series: &[Series], log_y: bool) -> DrawResult {
    let to_axis = |y: f64| if log_y { y.max(LOG_FLOOR).log10() } else { y };
    let series: Vec<Series> = series
        .iter()
        .map(|s| Series {
            name: s.name.clone(),
            points: s.points.iter().map(|&(x, y)| (x, to_axis(y))).collect(),
        })
        .collect();
    let (x_range, y_range) = bounds(&series);
    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, y_range)?;
    let y_label = |v: &f64| if log_y { format!("{:.0e}", 10f64.powf(*v)) } else { format!("{v:.2}") };
    chart.configure_mesh().x_desc(axes.0).y_desc(axes.1).y_label_formatter(&y_label).draw()?;
    for (i, s) in series.iter().enumerate() {
        let style = Palette99::pick(i).stroke_width(2);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), style))?
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    // FPR-recall curves rise to the right, loss curves fall: keep the legend off the lines.
    let corner = if log_y { SeriesLabelPosition::UpperLeft } else { SeriesLabelPosition::UpperRight };
    chart.configure_series_labels().position(corner).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// Axis ranges covering every finite point, with a 5% margin above and below.
fn bounds(series: &[Series]) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    let fold = |f: fn(&(f64, f64)) -> f64| {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .map(f)
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
    };
    let (x0, x1) = fold(|p| p.0);
    let (y0, y1) = fold(|p| p.1);
    if !x0.is_finite() {
        return (0.0..1.0, 0.0..1.0);
    }
    let pad = (y1 - y0).max(1e-6) * 0.05;
    (x0..x1.max(x0 + 1e-9), (y0 - pad)..(y1 + pad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_averages_windows() {
        let pts = [(1.0, 2.0), (2.0, 4.0), (3.0, 6.0)];
        assert_eq!(smooth(&pts, 2), vec![(1.5, 3.0), (3.0, 6.0)]);
    }

    #[test]
    fn a_plot_is_written_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.png");
        let s = Series { name: "a".into(), points: vec![(0.0, 1.0), (1.0, 0.5)] };
        line_plot(&path, "t", ("x", "y"), &[s], false).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("p.png")]);
        assert!(std::fs::metadata(&path).unwrap().len() > 1000);
    }
}
