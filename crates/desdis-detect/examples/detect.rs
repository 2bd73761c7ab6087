//! `cargo run --release -p desdis-detect --example detect -- IMAGE [MAX]`: keypoint count and time.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or("usage: detect IMAGE [MAX]")?;
    let max = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let image = desdis_detect::load_image(std::path::Path::new(path), None)?;
    let ct = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(0.02);
    let cfg = desdis_detect::DetectConfig {
        max_keypoints: max,
        contrast_threshold: ct,
        first_octave: args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(0),
        ..Default::default()
    };
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let (kps, _patches) = desdis_detect::detect_and_cut(&image.plane, &cfg)?;
        let scales: Vec<f32> = kps.iter().map(|k| k.scale).collect();
        println!(
            "{} keypoints in {:.1} ms; scale min {:.2} max {:.2}",
            kps.len(),
            t.elapsed().as_secs_f64() * 1e3,
            scales.iter().copied().fold(f32::INFINITY, f32::min),
            scales.iter().copied().fold(0.0, f32::max)
        );
    }
    let all = desdis_detect::detect(&image.plane, &desdis_detect::DetectConfig { max_keypoints: 0, ..cfg })?;
    println!("{} keypoints without a limit", all.len());
    Ok(())
}
