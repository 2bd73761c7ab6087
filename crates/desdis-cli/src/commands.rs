//! The subcommands: each a small struct of flags with a `run`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use desdis_data::phototour::{self, CachePolicy};
use desdis_data::sequence::{cut_patches, CutConfig, Jitter, Sequence};
use desdis_eval::{describe_f32, evaluate_cut, fpr95, pair_distances, write_atomic, write_json_atomic};
use desdis_models::arch::Arch;
use desdis_models::device::{device_name, select_device};
use desdis_models::nets::Net;
use indicatif::{ProgressBar, ProgressStyle};
use npyz::WriterBuilder;

use crate::input::read_patches;

#[derive(Args, Debug)]
pub struct Describe {
    /// Weights: a .pth (zip or legacy), a .safetensors, or hf://org/repo[@rev]/file (cached, offline
    /// with HF_HUB_OFFLINE=1). Default: the project's own DesDis-32 student.
    #[arg(long)]
    weights: Option<String>,
    /// Architecture (hardnet, sosnet, hynet, l2net, tfeat, desdis-8/16/24/32, ...); detected from the
    /// checkpoint's keys when omitted.
    #[arg(long)]
    arch: Option<String>,
    /// Patches: a .npy (N,H,W) or (N,1,H,W) of uint8 0..255 or float32 0..1, an HPatches strip .png
    /// (65-pixel-wide column of patches), or a PhotoTour folder. Patches that are not 32x32 are
    /// resized (64x64: 2x2 area average; others: bilinear as OpenCV's INTER_LINEAR).
    #[arg(long)]
    input: PathBuf,
    /// Output .npy: float32 (N, D) descriptors, written to a temporary file and renamed into
    /// place. An existing path that is not a regular file (a symlink, FIFO, device, directory) is
    /// refused, never replaced.
    #[arg(long)]
    output: PathBuf,
    /// Patches per forward pass.
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// Device: `cpu`, `cuda` or `cuda:N`. Default: the first GPU when the binary was built with
    /// `--features cuda` and one is present, else the CPU.
    #[arg(long)]
    device: Option<String>,
}

impl Describe {
    pub fn run(self) -> Result<()> {
        // Before any work: a refused output should not cost a whole run.
        check_output_path(&self.output)?;
        let net = load(self.weights.as_deref(), self.arch.as_deref(), self.device.as_deref())?;
        let patches = read_patches(&self.input)?;
        let n = patches.len() / desdis_data::patch::PATCH_LEN;
        let bar = progress_bar(n as u64, "patches");
        let desc =
            describe_f32(&net, &patches, self.batch, net.device(), |done| bar.set_position(done as u64))
                .with_context(|| format!("{}: describing failed", self.input.display()))?;
        bar.finish_and_clear();
        let dim = net.arch().descriptor_size();
        write_npy_f32(&self.output, &desc, n, dim)?;
        eprintln!("wrote {} descriptors of dimension {dim} to {}", n, self.output.display());
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct Eval {
    /// Weights to score (as for `describe`).
    #[arg(long)]
    weights: String,
    /// Architecture; detected from the checkpoint when omitted.
    #[arg(long)]
    arch: Option<String>,
    /// A PhotoTour folder (patch sheets + info.txt); needs --pairs.
    #[arg(long, requires = "pairs", conflicts_with = "sequence")]
    phototour: Option<PathBuf>,
    /// Pair file (m50_*.txt) of the PhotoTour folder: FPR95 over its pairs.
    #[arg(long)]
    pairs: Option<PathBuf>,
    /// An image sequence folder (1.png..N.png + H_1_k): cut corresponding patches, score mAP.
    #[arg(long)]
    sequence: Option<PathBuf>,
    /// Seed of the frame jitter when cutting a sequence.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Frame jitter of the cut patches, as HPatches' easy / hard / tough patches perturb the
    /// detected frames (none: the exact frames carried by the homographies).
    #[arg(long, default_value = "none", value_parser = ["none", "easy", "hard", "tough"])]
    jitter: String,
    /// Keypoints detected in the sequence's first image (the strongest are kept).
    #[arg(long, default_value_t = 1000)]
    max_keypoints: usize,
    /// Write the scores as JSON here too (refused, like `describe --output`, when the path exists
    /// and is not a regular file).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Device: `cpu`, `cuda` or `cuda:N`. Default: the first GPU when the binary was built with
    /// `--features cuda` and one is present, else the CPU.
    #[arg(long)]
    device: Option<String>,
}

impl Eval {
    pub fn run(self) -> Result<()> {
        if let Some(path) = &self.json {
            check_output_path(path)?;
        }
        let net = load(Some(&self.weights), self.arch.as_deref(), self.device.as_deref())?;
        let scores = match (&self.phototour, &self.pairs, &self.sequence) {
            (Some(dir), Some(pairs), None) => phototour_fpr95(&net, dir, pairs)?,
            (None, None, Some(dir)) => {
                let cut = CutConfig {
                    jitter: jitter(&self.jitter),
                    max_keypoints: self.max_keypoints,
                    ..CutConfig::default()
                };
                let (s, points) = sequence_scores(&net, dir, &cut, self.seed)?;
                serde_json::json!({ "sequence": dir, "jitter": self.jitter, "seed": self.seed, "keypoints": points,
                    "fpr95": s.fpr95, "verification_ap": s.verification_ap,
                    "matching_map": s.matching_map, "retrieval_map": s.retrieval_map })
            }
            _ => bail!("give either --phototour DIR --pairs FILE, or --sequence DIR"),
        };
        println!("{}", serde_json::to_string_pretty(&scores)?);
        if let Some(path) = &self.json {
            write_json_atomic(path, &scores)?;
        }
        Ok(())
    }
}

/// The jitter level a `--jitter` value names (clap has checked it is one of them).
fn jitter(name: &str) -> Jitter {
    match name {
        "easy" => Jitter::Easy,
        "hard" => Jitter::Hard,
        "tough" => Jitter::Tough,
        _ => Jitter::None,
    }
}

/// Scores of `net` on the image sequence in `dir`, and the number of points scored.
fn sequence_scores(
    net: &Net,
    dir: &Path,
    cut: &CutConfig,
    seed: u64,
) -> Result<(desdis_eval::SequenceScores, usize)> {
    let seq = Sequence::load(dir)?;
    let cut =
        cut_patches(&seq, cut, seed).with_context(|| format!("{}: cannot cut patches", dir.display()))?;
    // No keypoint of image 1 lands inside every other image when a homography maps outside
    // them: say so, instead of failing later on an empty descriptor matrix.
    if cut.num_points() == 0 {
        bail!(
            "{}: no keypoint of 1.png maps inside every image of the sequence (check the H_1_k homographies)",
            dir.display()
        );
    }
    let scores = evaluate_cut(net, &cut)
        .with_context(|| format!("{}: cannot evaluate the sequence", dir.display()))?;
    Ok((scores, cut.num_points()))
}

/// FPR95 of `net` over the pairs of a PhotoTour pair file; only the patches the pairs use are described.
fn phototour_fpr95(net: &Net, dir: &Path, pairs_path: &Path) -> Result<serde_json::Value> {
    let tour = phototour::load(dir, &CachePolicy::Off)?;
    let pairs = tour.read_pairs(pairs_path)?;
    if pairs.is_empty() {
        bail!("{}: no pairs", pairs_path.display());
    }
    let labelled = pair_distances(net, &tour.set, &pairs, net.device())?;
    let fpr = fpr95(&labelled.distances, &labelled.labels)?;
    Ok(serde_json::json!({ "phototour": dir, "pairs": pairs_path, "num_pairs": pairs.len(), "fpr95": fpr }))
}

/// The net from `weights` (default: the shipped student, built into the binary) on the device
/// `--device` names.
pub(crate) fn load(weights: Option<&str>, arch: Option<&str>, device: Option<&str>) -> Result<Net> {
    let device = select_device(device)?;
    tracing::info!("running on {}", device_name(&device));
    let arch: Option<Arch> = arch.map(str::parse).transpose()?;
    Ok(desdis_pipeline::load_describer(weights, arch, &device)?)
}

/// Outputs are written to a temporary file renamed over the path, which would turn a symlink, a
/// FIFO or a device node into a regular file (as root, `/dev/full` would be destroyed). Such a
/// path is refused; a missing path or a regular file is fine. A symlink is refused too, even to a
/// regular file: replacing the link and writing through it would each surprise someone.
pub(crate) fn check_output_path(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(e).with_context(|| format!("{}: cannot inspect the output path", path.display()))
        }
    };
    let kind = meta.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "a special file (FIFO, socket or device)"
    };
    bail!(
        "{}: the output path exists and is {what}, not a regular file; refusing to replace it",
        path.display()
    )
}

fn write_npy_f32(path: &Path, values: &[f32], rows: usize, cols: usize) -> Result<()> {
    let mut bytes = Vec::new();
    {
        let mut writer = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[rows as u64, cols as u64])
            .writer(&mut bytes)
            .begin_nd()?;
        writer.extend(values.iter().copied())?;
        writer.finish()?;
    }
    write_atomic(path, &bytes).with_context(|| format!("{}: cannot write", path.display()))
}

pub(crate) fn progress_bar(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})");
    bar.set_style(ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar
}
