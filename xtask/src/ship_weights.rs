//! `cargo xtask ship-weights`: copy a trained light student into `data/weights/`, the weights
//! `desdis describe` uses when no `--weights` is given, and with `--teachers` the teachers of a
//! `reproduce` run into `data/weights/teachers/`, so users can distill without training one.
//! Only this command changes them.

use std::fs;
use std::path::{Path, PathBuf};

use desdis_models::arch::Arch;

use anyhow::{ensure, Context, Result};

/// Files of a run directory that travel with the shipped weights (the model and what describes
/// it), with the suffix each gets after the shipped name.
const FILES: [(&str, &str); 4] = [
    ("model.safetensors", "safetensors"),
    ("config.toml", "config.toml"),
    ("metrics.csv", "metrics.csv"),
    ("results.json", "results.json"),
];

/// The teachers `--teachers` ships: seed 0 of each recipe of the default `reproduce`.
const TEACHERS: [&str; 3] = ["hardnet", "sosnet", "hynet"];

/// Ship the light DesDis-32 student of a finished `reproduce` run as the default weights.
#[derive(Debug, clap::Args)]
pub struct ShipWeights {
    /// Run directory of the light student (written by `cargo xtask reproduce`).
    #[arg(long, default_value = "runs/reproduce/hardnet/light-s0")]
    run: PathBuf,
    /// Instead: ship the seed-0 teachers (HardNet, SOSNet, HyNet) of this `reproduce` output folder.
    #[arg(long)]
    teachers: Option<PathBuf>,
}

impl ShipWeights {
    pub fn run(self) -> Result<()> {
        let weights = crate::stdx::workspace_root().join("data/weights");
        if let Some(out) = &self.teachers {
            for kind in TEACHERS {
                let run = out.join(kind).join("teacher-s0");
                ship(&run, &weights.join("teachers"), kind, Arch::parse(kind)?)?;
            }
            return Ok(());
        }
        ship(&self.run, &weights, "desdis-32", Arch::DesDis { dim: 32 })
    }
}

/// Copies the finished run `run` into `dest` as `<name>.*`, after checking its weights load as `arch`.
fn ship(run: &Path, dest: &Path, name: &str, arch: Arch) -> Result<()> {
    fs::create_dir_all(dest).with_context(|| format!("{}: cannot create", dest.display()))?;
    for (from, _) in FILES {
        let path = run.join(from);
        ensure!(path.is_file(), "{}: missing; is {} a finished run?", path.display(), run.display());
    }
    // Check the weights load as the architecture they are shipped as before replacing anything.
    let model = run.join("model.safetensors");
    let net = desdis_models::nets::load_net(&model.to_string_lossy(), None, &candle_core::Device::Cpu)?;
    ensure!(net.arch() == arch, "{}: is a {} net, {name} must be {arch}", model.display(), net.arch());
    for (from, suffix) in FILES {
        let bytes = fs::read(run.join(from)).with_context(|| format!("reading {from}"))?;
        desdis_eval::write_atomic(&dest.join(format!("{name}.{suffix}")), &bytes)?;
    }
    eprintln!("shipped {} as {}", run.display(), dest.join(format!("{name}.safetensors")).display());
    Ok(())
}
