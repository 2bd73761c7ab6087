//! Times mining 5 M HardNet pairs (batch 1024) from a Liberty-sized point list, and batching.
//! Run: `cargo bench -p desdis-data --bench mining`.

use desdis_data::batch::PairBatcher;
use desdis_data::mining::generate_pairs;
use desdis_data::patch::PatchSet;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    // About Liberty's shape: 450k patches over 100k points.
    let point_ids: Vec<u32> = (0..450_000u32).map(|i| i / 9 * 2 + (i % 9 == 8) as u32).collect();
    let start = Instant::now();
    let pairs = generate_pairs(&point_ids, 5_000_000, 1024, 7)?;
    let mined = start.elapsed().as_secs_f64();
    println!(
        "mining: {} pairs in {mined:.3} s ({:.1} M pairs/s, {} threads)",
        pairs.len(),
        pairs.len() as f64 / mined / 1e6,
        rayon::current_num_threads()
    );

    let set = PatchSet::new(vec![128u8; point_ids.len() * 1024], point_ids)?;
    let batcher =
        PairBatcher::new(&set, &pairs[..1024 * 100], 1024, candle_core::Device::Cpu).with_augmentation(1);
    let start = Instant::now();
    for batch in batcher {
        batch?;
    }
    let t = start.elapsed().as_secs_f64();
    println!("batching: 100 augmented batches of 1024 pairs in {t:.3} s ({:.2} ms/batch)", t * 10.0);
    Ok(())
}
