//! `desdis extract`, `desdis match` and `desdis export`: photos to features, matches, and the
//! files hloc and COLMAP read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use desdis_detect::{load_image, DetectConfig, LoadedImage};
use desdis_geometry::{draw_matches, DrawConfig, Match, MatchConfig, RansacConfig};
use desdis_h5::{read_features, read_matches, write_features, write_matches, ImageFeatures, PairMatches};
use desdis_models::arch::Arch;
use desdis_models::device::select_device;
use desdis_pipeline::{list_images, load_describer, match_pair, Extractor, PairConfig, Verify};

use crate::commands::{check_output_path, progress_bar};

/// Features are saved at least this often during a long extraction, so a killed run resumes.
const SAVE_EVERY: Duration = Duration::from_secs(30);

#[derive(Args, Debug)]
pub struct Extract {
    /// One image file, or a folder walked recursively (JPEG, PNG 8/16-bit, BMP, PNM; other files
    /// are skipped with a warning). Each image is named by its path relative to the folder.
    #[arg(long)]
    images: PathBuf,
    /// Output features file in hloc's layout: per image `keypoints` (N,2) with (0,0) the centre
    /// of the top-left pixel, `descriptors` (D,N), `scores`, `scales` (sigma, pixels), `oris`
    /// (degrees), `image_size` (W,H). Images already in it are skipped (resume).
    #[arg(long)]
    output: PathBuf,
    /// Weights (.pth zip or legacy, .safetensors, hf://org/repo/file). Default: the project's
    /// DesDis-32 student, built into the binary.
    #[arg(long)]
    weights: Option<String>,
    /// Architecture; detected from the checkpoint's keys when omitted.
    #[arg(long)]
    arch: Option<String>,
    /// Keypoints per image at most: the strongest, spread over the image (0: all).
    #[arg(long, default_value_t = 2000)]
    max_keypoints: usize,
    /// Downscale images whose longer side exceeds this many pixels before detection
    /// (coordinates are still written in the original image's pixels).
    #[arg(long)]
    max_size: Option<u32>,
    /// Cut every patch upright instead of rotating it to the keypoint's dominant orientation.
    #[arg(long)]
    upright: bool,
    /// Orientations per keypoint at most (peaks of the gradient histogram within 80% of the
    /// highest; each extra one is another keypoint at the same place).
    #[arg(long, default_value_t = DetectConfig::default().max_orientations)]
    max_orientations: usize,
    /// Spread of the kept keypoints: each cell of an 8x8 grid first takes at most this many times
    /// its even share of --max-keypoints (in order of strength), the rest go to the strongest.
    #[arg(long, default_value_t = DetectConfig::default().spread_cap)]
    spread_cap: f32,
    /// Detector: largest ratio of principal curvatures kept (higher keeps more edge-like points).
    #[arg(long, default_value_t = DetectConfig::default().edge_ratio)]
    edge_ratio: f32,
    /// Detector: least DoG contrast (times the scales per octave) of a keypoint.
    #[arg(long, default_value_t = DetectConfig::default().contrast_threshold)]
    contrast_threshold: f32,
    /// Detector: first octave's resolution: 0 = the image's own, -1 = doubled (SIFT's default:
    /// more small keypoints, finer positions, about twice the detection time).
    #[arg(long, default_value_t = DetectConfig::default().first_octave, allow_negative_numbers = true)]
    first_octave: i32,
    /// Half the side of a keypoint's patch in units of its scale (patch side = 2 x this x sigma).
    #[arg(long, default_value_t = DetectConfig::default().magnification)]
    magnification: f32,
    /// Device: `cpu`, `cuda` or `cuda:N` (default: a GPU when built with CUDA, else the CPU).
    #[arg(long)]
    device: Option<String>,
}

impl Extract {
    pub fn run(self) -> Result<()> {
        check_output_path(&self.output)?;
        let extractor = self.extractor()?;
        let list = list_images(&self.images)?;
        warn_skipped(&list.skipped);
        if list.images.is_empty() {
            bail!("{}: no image files found", self.images.display());
        }
        let mut features = existing_features(&self.output, extractor.net().arch().descriptor_size())?;
        let todo: Vec<_> = list.images.iter().filter(|(name, _)| !features.contains_key(name)).collect();
        if todo.len() < list.images.len() {
            eprintln!(
                "{} of {} images already in {}: skipped",
                list.images.len() - todo.len(),
                list.images.len(),
                self.output.display()
            );
        }
        let bar = progress_bar(todo.len() as u64, "images");
        let mut last_save = Instant::now();
        let mut unsaved = 0usize;
        for (name, path) in todo {
            let result = extractor.extract_file(path, self.max_size);
            let image = match result {
                Ok(image) => image,
                Err(err) => {
                    bar.abandon();
                    // What was extracted so far is complete: keep it for the next run.
                    if unsaved > 0 {
                        write_features(&self.output, &features)?;
                    }
                    return Err(err).with_context(|| format!("{}: extraction stopped", path.display()));
                }
            };
            features.insert(name.clone(), image);
            unsaved += 1;
            bar.inc(1);
            if last_save.elapsed() > SAVE_EVERY {
                write_features(&self.output, &features)?;
                (last_save, unsaved) = (Instant::now(), 0);
            }
        }
        bar.finish_and_clear();
        write_features(&self.output, &features)?;
        let total: usize = features.values().map(|f| f.keypoints.len()).sum();
        eprintln!(
            "wrote features of {} images ({total} keypoints) to {}",
            features.len(),
            self.output.display()
        );
        Ok(())
    }

    fn extractor(&self) -> Result<Extractor> {
        let cfg = DetectConfig {
            max_keypoints: self.max_keypoints,
            upright: self.upright,
            contrast_threshold: self.contrast_threshold,
            magnification: self.magnification,
            first_octave: self.first_octave,
            max_orientations: self.max_orientations,
            spread_cap: self.spread_cap,
            edge_ratio: self.edge_ratio,
            ..DetectConfig::default()
        };
        build_extractor(self.weights.as_deref(), self.arch.as_deref(), self.device.as_deref(), cfg)
    }
}

fn build_extractor(
    weights: Option<&str>,
    arch: Option<&str>,
    device: Option<&str>,
    cfg: DetectConfig,
) -> Result<Extractor> {
    let device = select_device(device)?;
    let arch: Option<Arch> = arch.map(str::parse).transpose()?;
    let net = load_describer(weights, arch, &device)?;
    Ok(Extractor::new(net, cfg, 512)?)
}

fn warn_skipped(skipped: &[PathBuf]) {
    if skipped.is_empty() {
        return;
    }
    let shown: Vec<String> = skipped.iter().take(3).map(|p| p.display().to_string()).collect();
    let more = if skipped.len() > 3 { format!(" and {} more", skipped.len() - 3) } else { String::new() };
    eprintln!("warning: skipped {} files that are not images: {}{more}", skipped.len(), shown.join(", "));
}

/// The features already in `path` (none when it does not exist), refused when their
/// descriptors have another dimension than the net's: one file, one descriptor.
fn existing_features(path: &Path, dim: usize) -> Result<BTreeMap<String, ImageFeatures>> {
    if !path.exists() {
        return Ok(BTreeMap::new());
    }
    let features =
        read_features(path).with_context(|| format!("{}: cannot resume from this file", path.display()))?;
    if let Some((name, f)) = features.iter().find(|(_, f)| f.dim != dim && !f.keypoints.is_empty()) {
        bail!(
            "{}: image `{name}` has {}-dimensional descriptors but this net gives {dim}: write to another file",
            path.display(),
            f.dim
        );
    }
    Ok(features)
}

#[derive(Args, Debug)]
pub struct MatchCmd {
    /// Two images: run the whole chain (extract, match, verify) on them and print the counts.
    #[arg(num_args = 2, value_names = ["IMAGE_A", "IMAGE_B"], conflicts_with_all = ["features", "pairs", "output"])]
    images: Vec<PathBuf>,
    /// Features file written by `desdis extract` (or any file in hloc's layout).
    #[arg(long, requires_all = ["pairs", "output"])]
    features: Option<PathBuf>,
    /// Pairs to match: one `name0 name1` per line (names as in the features file); empty lines
    /// and lines starting with `#` are ignored.
    #[arg(long)]
    pairs: Option<PathBuf>,
    /// Output matches file in hloc's layout: group `name0` (with `/` as `-`) / `name1`, datasets
    /// `matches0` (N0,) int32 with -1 for unmatched and `matching_scores0` (N0,) float32.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Keep only mutual nearest neighbours (the default).
    #[arg(long, overrides_with = "no_mutual")]
    mutual: bool,
    /// Keep every nearest neighbour, mutual or not.
    #[arg(long)]
    no_mutual: bool,
    /// Lowe's ratio test on descriptor distances (e.g. 0.9): best / second best below this.
    #[arg(long)]
    ratio: Option<f32>,
    /// Keep only the RANSAC inliers of a homography (planar scenes, rotating cameras) or a
    /// fundamental matrix (general scenes). Default: none with --features, fundamental with
    /// two images.
    #[arg(long, value_parser = ["none", "homography", "fundamental"])]
    verify: Option<String>,
    /// Inlier threshold in pixels (transfer error for a homography, Sampson distance for a
    /// fundamental matrix).
    #[arg(long, default_value_t = 3.0)]
    threshold: f64,
    /// Seed of RANSAC's sampling (the same input and seed give the same matches).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// With two images: draw them side by side with the matches (inliers green, rejected red).
    #[arg(long, requires = "images")]
    draw: Option<PathBuf>,
    /// With two images: weights (default: the built-in DesDis-32 student).
    #[arg(long)]
    weights: Option<String>,
    /// With two images: keypoints per image at most.
    #[arg(long, default_value_t = 2000)]
    max_keypoints: usize,
    /// Device: `cpu`, `cuda` or `cuda:N`.
    #[arg(long)]
    device: Option<String>,
}

impl MatchCmd {
    pub fn run(self) -> Result<()> {
        match (&self.features, &self.pairs, &self.output, self.images.len()) {
            (Some(f), Some(p), Some(o), 0) => self.match_files(f, p, o),
            (None, None, None, 2) => self.match_images(&self.images[0], &self.images[1]),
            _ => bail!("give either two images, or --features FILE --pairs FILE --output FILE"),
        }
    }

    fn pair_config(&self, default_verify: Verify) -> Result<PairConfig> {
        let verify = match &self.verify {
            Some(v) => v.parse()?,
            None => default_verify,
        };
        Ok(PairConfig {
            matching: MatchConfig { mutual: !self.no_mutual, ratio: self.ratio, max_distance: None },
            verify,
            threshold: self.threshold,
            ransac: RansacConfig { seed: self.seed, ..RansacConfig::default() },
        })
    }

    fn match_files(&self, features_path: &Path, pairs_path: &Path, output: &Path) -> Result<()> {
        check_output_path(output)?;
        let cfg = self.pair_config(Verify::None)?;
        let pairs = read_pairs(pairs_path)?;
        let features = read_features(features_path)?;
        for (a, b) in &pairs {
            for name in [a, b] {
                if !features.contains_key(name) {
                    bail!(
                        "{}: no features for image `{name}` named in {} (images in the file: {})",
                        features_path.display(),
                        pairs_path.display(),
                        features.len()
                    );
                }
            }
        }
        let bar = progress_bar(pairs.len() as u64, "pairs");
        let mut out = Vec::with_capacity(pairs.len());
        let mut kept = 0usize;
        for (a, b) in pairs {
            let (f0, f1) = (&features[&a], &features[&b]);
            let result = match_pair(f0, f1, &cfg).with_context(|| format!("matching `{a}` with `{b}`"))?;
            let verified = result.verified();
            kept += verified.len();
            let (matches0, scores0) = desdis_geometry::to_matches0(&verified, f0.keypoints.len())?;
            out.push((a, b, PairMatches { matches0, scores0 }));
            bar.inc(1);
        }
        bar.finish_and_clear();
        write_matches(output, &out)?;
        eprintln!("wrote {} pairs ({kept} matches) to {}", out.len(), output.display());
        Ok(())
    }

    fn match_images(&self, a: &Path, b: &Path) -> Result<()> {
        if let Some(path) = &self.draw {
            check_output_path(path)?;
        }
        let cfg = DetectConfig { max_keypoints: self.max_keypoints, ..DetectConfig::default() };
        let extractor = build_extractor(self.weights.as_deref(), None, self.device.as_deref(), cfg)?;
        // Each image is decoded once: for its features and, with --draw, for the drawing.
        let (image_a, image_b) = (load_image(a, None)?, load_image(b, None)?);
        let f0 =
            extractor.extract(&image_a).with_context(|| format!("{}: extraction failed", a.display()))?;
        let f1 =
            extractor.extract(&image_b).with_context(|| format!("{}: extraction failed", b.display()))?;
        let pair_cfg = self.pair_config(Verify::Fundamental)?;
        let result = match_pair(&f0, &f1, &pair_cfg)?;
        let inliers = result.inliers.iter().filter(|&&ok| ok).count();
        println!(
            "{}: {} keypoints\n{}: {} keypoints\nmatches: {}\nverified ({:?}, {} px): {inliers}",
            a.display(),
            f0.keypoints.len(),
            b.display(),
            f1.keypoints.len(),
            result.matches.len(),
            pair_cfg.verify,
            pair_cfg.threshold
        );
        if let Some(path) = &self.draw {
            draw([&image_a, &image_b], [&f0, &f1], &result.matches, &result.inliers, path)?;
            println!("drawn to {}", path.display());
        }
        Ok(())
    }
}

fn draw(
    images: [&LoadedImage; 2],
    features: [&ImageFeatures; 2],
    matches: &[Match],
    inliers: &[bool],
    path: &Path,
) -> Result<()> {
    let gray = |loaded: &LoadedImage| -> Result<image::DynamicImage> {
        let bytes = loaded.plane.data.iter().map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8).collect();
        let img = image::GrayImage::from_raw(loaded.plane.width as u32, loaded.plane.height as u32, bytes)
            .context("image buffer size")?;
        Ok(image::DynamicImage::ImageLuma8(img))
    };
    let pairs: Vec<(u32, u32)> = matches.iter().map(|m| (m.i0, m.i1)).collect();
    let canvas = draw_matches(
        &gray(images[0])?,
        &gray(images[1])?,
        &features[0].keypoints,
        &features[1].keypoints,
        &pairs,
        Some(inliers),
        &DrawConfig::default(),
    )?;
    let mut bytes = Vec::new();
    canvas
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .with_context(|| format!("{}: cannot encode the drawing", path.display()))?;
    desdis_eval::write_atomic(path, &bytes).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

/// `name0 name1` per line; blank lines and `#` comments skipped; a pair given twice is kept once.
fn read_pairs(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the pairs", path.display()))?;
    let mut seen = BTreeSet::new();
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [a, b] = fields[..] else {
            bail!("{}:{}: expected `name0 name1`, found {:?}", path.display(), i + 1, line);
        };
        if seen.insert((a.to_string(), b.to_string())) {
            pairs.push((a.to_string(), b.to_string()));
        }
    }
    Ok(pairs)
}

#[derive(Subcommand, Debug)]
pub enum Export {
    /// COLMAP's text import: `<out>/<image>.txt` per image (`NUM_FEATURES 128`, then `X Y SCALE
    /// ORIENTATION D1..D128` as uint8) for `feature_importer`, and `<out>/matches.txt` for
    /// `matches_importer --match_type raw`.
    Colmap(ExportColmap),
    /// The HPatches benchmark's descriptor files `<out>/<name>/<sequence>/<type>.csv` from the
    /// `<sequence>/<type>.png` patch strips of an HPatches release folder.
    Hpatches(ExportHpatches),
}

impl Export {
    pub fn run(self) -> Result<()> {
        match self {
            Export::Colmap(cmd) => cmd.run(),
            Export::Hpatches(cmd) => cmd.run(),
        }
    }
}

#[derive(Args, Debug)]
pub struct ExportColmap {
    /// Features file (hloc's layout).
    #[arg(long)]
    features: PathBuf,
    /// Matches file (hloc's layout); only pairs whose images are in the features file.
    #[arg(long)]
    matches: PathBuf,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
}

impl ExportColmap {
    pub fn run(self) -> Result<()> {
        let features = read_features(&self.features)?;
        let stored = read_matches(&self.matches)?;
        let names = stored_names(&features);
        let mut pairs = Vec::with_capacity(stored.len());
        for ((g0, g1), m) in stored {
            let (Some(a), Some(b)) = (names.get(&g0), names.get(&g1)) else {
                bail!(
                    "{}: pair `{g0}/{g1}` names an image that is not in {}",
                    self.matches.display(),
                    self.features.display()
                );
            };
            let list: Vec<(u32, u32)> = m
                .matches0
                .iter()
                .enumerate()
                .filter(|(_, &j)| j >= 0)
                .map(|(i, &j)| (i as u32, j as u32))
                .collect();
            pairs.push((a.clone(), b.clone(), list));
        }
        let summary = desdis_h5::export_colmap(&features, &pairs, &self.out)?;
        eprintln!("{summary:?}");
        Ok(())
    }
}

/// Image names by the form they take in a matches file (`/` written as `-`).
fn stored_names(features: &BTreeMap<String, ImageFeatures>) -> BTreeMap<String, String> {
    features.keys().map(|n| (n.replace('/', "-"), n.clone())).collect()
}

#[derive(Args, Debug)]
pub struct ExportHpatches {
    /// Weights (default: the built-in DesDis-32 student).
    #[arg(long)]
    weights: Option<String>,
    /// An HPatches release folder: `<sequence>/<type>.png` strips of 65x65 patches.
    #[arg(long)]
    hpatches: PathBuf,
    /// Output folder: `<out>/<name>/<sequence>/<type>.csv`.
    #[arg(long)]
    out: PathBuf,
    /// Descriptor name (the benchmark's folder name). Default: the weights' file stem.
    #[arg(long)]
    name: Option<String>,
    /// Device: `cpu`, `cuda` or `cuda:N`.
    #[arg(long)]
    device: Option<String>,
}

impl ExportHpatches {
    pub fn run(self) -> Result<()> {
        let device = select_device(self.device.as_deref())?;
        let net = load_describer(self.weights.as_deref(), None, &device)?;
        let name = self.name.clone().unwrap_or_else(|| descriptor_name(self.weights.as_deref()));
        let sequences = hpatches_sequences(&self.hpatches)?;
        let bar = progress_bar(sequences.len() as u64, "sequences");
        let mut files = 0;
        for seq in &sequences {
            files += export_sequence(&net, &self.hpatches.join(seq), seq, &name, &self.out)?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        eprintln!(
            "wrote {files} files for {} sequences under {}",
            sequences.len(),
            self.out.join(&name).display()
        );
        Ok(())
    }
}

fn descriptor_name(weights: Option<&str>) -> String {
    weights
        .and_then(|w| Path::new(w).file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "desdis-32".to_string())
}

/// The sequence folders (those holding a `ref.png`), in name order.
fn hpatches_sequences(root: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(root).with_context(|| format!("{}: cannot list", root.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("{}: cannot list", root.display()))?;
        if entry.path().join("ref.png").is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    if names.is_empty() {
        bail!("{}: no HPatches sequence folders (folders with a ref.png) found", root.display());
    }
    Ok(names)
}

fn export_sequence(
    net: &desdis_models::nets::Net,
    dir: &Path,
    seq: &str,
    name: &str,
    out: &Path,
) -> Result<usize> {
    let mut written = 0;
    for kind in desdis_eval::HPATCHES_IMAGE_TYPES {
        let path = dir.join(format!("{kind}.png"));
        if !path.is_file() {
            continue;
        }
        let strip = desdis_data::hpatches::read_strip(&path)?;
        let patches: Vec<f32> = strip
            .to_32(desdis_data::hpatches::Resize::Bilinear)
            .iter()
            .map(|&b| f32::from(b) / 255.0)
            .collect();
        let desc = desdis_eval::describe_f32(net, &patches, 512, net.device(), |_| ())
            .with_context(|| format!("{}: describing failed", path.display()))?;
        let matrix = desdis_eval::DescriptorMatrix::new(&desc, net.arch().descriptor_size())?;
        desdis_eval::write_hpatches_csv(out, name, seq, kind, &matrix)?;
        written += 1;
    }
    Ok(written)
}
