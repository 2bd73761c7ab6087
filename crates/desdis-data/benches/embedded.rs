//! Times generating the embedded default training set (no cache).
//! Run: `cargo bench -p desdis-data --bench embedded`.

use desdis_data::embedded::{generate, EmbeddedConfig};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let cfg = EmbeddedConfig::default();
    for (label, cfg) in [("training", cfg), ("validation", cfg.validation())] {
        let start = Instant::now();
        let set = generate(&cfg)?;
        println!(
            "embedded {label}: {} points, {} patches in {:.2} s ({} threads)",
            set.num_points(),
            set.point_ids.len(),
            start.elapsed().as_secs_f64(),
            rayon::current_num_threads()
        );
    }
    Ok(())
}
