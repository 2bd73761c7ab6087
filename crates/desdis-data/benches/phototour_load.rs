//! Times loading a Liberty-sized (450,092 patches) PhotoTour folder: decoding the sheets, then
//! reading the cache. The folder is generated into a temporary directory first.
//! Run: `cargo bench -p desdis-data --bench phototour_load`.

use desdis_data::patch::PatchSet;
use desdis_data::phototour::{self, CachePolicy};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let n = 450_092usize;
    let patches: Vec<u8> = (0..n * 1024).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let set = PatchSet::new(patches, (0..n as u32).map(|i| i / 4).collect())?;
    let dir = tempfile::tempdir()?;
    let start = Instant::now();
    phototour::write(dir.path(), &set)?;
    println!("write: {n} patches ({} sheets) in {:.2} s", n.div_ceil(256), start.elapsed().as_secs_f64());

    let checksum = fingerprint(&set);
    drop(set);

    reset_peak_memory();
    let start = Instant::now();
    let decoded = phototour::load(dir.path(), &CachePolicy::Off)?;
    println!("load from sheets: {:.2} s, peak memory {}", start.elapsed().as_secs_f64(), peak_memory());
    assert_eq!(fingerprint(&decoded.set), checksum, "round trip failed");
    drop(decoded);

    let start = Instant::now();
    phototour::load(dir.path(), &CachePolicy::NextToData)?;
    println!("load from sheets and write the cache: {:.2} s", start.elapsed().as_secs_f64());
    reset_peak_memory();
    let start = Instant::now();
    let cached = phototour::load(dir.path(), &CachePolicy::NextToData)?;
    println!("load from cache: {:.2} s, peak memory {}", start.elapsed().as_secs_f64(), peak_memory());
    assert_eq!(fingerprint(&cached.set), checksum, "cache round trip failed");
    println!("{} threads", rayon::current_num_threads());
    Ok(())
}

fn fingerprint(set: &PatchSet) -> u64 {
    let mut h = desdis_data::StableHasher::new();
    h.bytes(&set.patches);
    for id in &set.point_ids {
        h.u64(*id as u64);
    }
    h.finish()
}

/// Resets the process's peak resident size (Linux); elsewhere a no-op.
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident size since the last reset (Linux `VmHWM`), or "n/a".
fn peak_memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .map_or("n/a".into(), |l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
}
