//! `cargo xtask ship-weights`: copy a trained light student into `data/weights/`, the weights
//! `desdis describe` uses when no `--weights` is given. Only this command changes them.

use std::fs;
use std::path::PathBuf;

use anyhow::{ensure, Context, Result};

/// Files of a run directory that travel with the shipped weights (the model and what describes it).
const FILES: [(&str, &str); 4] = [
    ("model.safetensors", "desdis-32.safetensors"),
    ("config.toml", "desdis-32.config.toml"),
    ("metrics.csv", "desdis-32.metrics.csv"),
    ("results.json", "desdis-32.results.json"),
];

/// Ship the light DesDis-32 student of a finished `reproduce` run as the default weights.
#[derive(Debug, clap::Args)]
pub struct ShipWeights {
    /// Run directory of the light student (written by `cargo xtask reproduce`).
    #[arg(long, default_value = "runs/reproduce/hardnet/light-s0")]
    run: PathBuf,
}

impl ShipWeights {
    pub fn run(self) -> Result<()> {
        let dest = crate::stdx::workspace_root().join("data/weights");
        fs::create_dir_all(&dest).with_context(|| format!("{}: cannot create", dest.display()))?;
        for (from, _) in FILES {
            let path = self.run.join(from);
            ensure!(path.is_file(), "{}: missing; is {} a finished run?", path.display(), self.run.display());
        }
        // Check the weights load as the architecture they are shipped as before replacing anything.
        let model = self.run.join("model.safetensors");
        let net = desdis_models::nets::load_net(&model.to_string_lossy(), None, &candle_core::Device::Cpu)?;
        ensure!(
            net.arch() == desdis_models::arch::Arch::DesDis { dim: 32 },
            "{}: is a {} net, the default weights must be desdis-32",
            model.display(),
            net.arch()
        );
        for (from, to) in FILES {
            let bytes = fs::read(self.run.join(from)).with_context(|| format!("reading {from}"))?;
            desdis_eval::write_atomic(&dest.join(to), &bytes)?;
        }
        eprintln!("shipped {} as {}", self.run.display(), dest.join(FILES[0].1).display());
        Ok(())
    }
}
