//! The configuration of a training run, read from and written to TOML.
//!
//! Every field has a default, so a file only names what it changes. The defaults are sized for the
//! embedded training set on a CPU: DesDis-32 student, batch 128, SGD with HardNet's momentum and
//! dampening but lr 1.0 instead of HardNet's 10. HardNet's lr 10 goes with batches of 1024; on
//! batches of 128 (DesDis-32, 2 epochs of 30 steps, linear decay) lr 10 took the mean epoch loss
//! from 0.684 to 0.609 while lr 1.0 took it from 0.565 to 0.454, so the smaller value is the
//! default (close to the linear scaling rule, 10 * 128 / 1024 = 1.25).
//! [`TrainConfig::for_teacher`] gives each published recipe with its own optimizer and lr.

use std::path::PathBuf;

use desdis_data::embedded::EmbeddedConfig;
use desdis_loss::{LossConfig, LossKind, RtsConfig};
use desdis_models::arch::Arch;
use serde::{Deserialize, Serialize};

use crate::optim::OptimizerConfig;
use crate::{Error, Result};

/// How the learning rate moves over the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// `lr * (1 - step / total_steps)`: linear decay to 0, as HardNet.
    #[default]
    Linear,
    /// `lr` throughout.
    Constant,
}

impl Schedule {
    /// The learning rate of step `step` (0-based) of `total` steps, from base rate `lr`.
    pub fn lr_at(self, lr: f64, step: u64, total: u64) -> f64 {
        match self {
            Schedule::Constant => lr,
            Schedule::Linear if total == 0 => lr,
            Schedule::Linear => lr * (1.0 - step as f64 / total as f64),
        }
    }
}

/// Where the training patches come from.
// One value per run, never stored in bulk: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DataSource {
    /// The set generated from the committed photos (cached under `cache_dir`, or the default cache).
    Embedded {
        #[serde(default)]
        config: EmbeddedConfig,
        #[serde(default)]
        cache_dir: Option<PathBuf>,
        /// Use only the first `limit` patches (for tests and quick runs).
        #[serde(default)]
        limit: Option<usize>,
    },
    /// A PhotoTour scene folder (`info.txt` and patch sheets).
    PhotoTour { dir: PathBuf },
}

impl Default for DataSource {
    fn default() -> Self {
        DataSource::Embedded { config: EmbeddedConfig::default(), cache_dir: None, limit: None }
    }
}

/// Distil from a frozen teacher: adds `lambda * R_ts` to the student's loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    /// Teacher weights: a path (safetensors or `.pth`) or an `hf://` source.
    pub teacher: String,
    /// The teacher's architecture; detected from its keys when absent.
    #[serde(default)]
    pub teacher_arch: Option<String>,
    /// The regularizer.
    #[serde(default)]
    pub rts: RtsConfig,
}

/// Everything a training run depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// The trained net's architecture, e.g. `hardnet`, `desdis-32`.
    pub arch: String,
    /// The triplet loss.
    pub loss: LossConfig,
    /// The update rule.
    pub optimizer: OptimizerConfig,
    /// Base learning rate.
    pub lr: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Number of epochs.
    pub epochs: usize,
    /// Pairs mined per epoch (rounded down to whole batches).
    pub pairs_per_epoch: usize,
    /// Pairs per batch.
    pub batch_size: usize,
    /// Master seed: initial weights, mining, augmentation and dropout derive from it.
    pub seed: u64,
    /// Random rotations by 90° and flips of each pair.
    pub augmentation: bool,
    /// Training patches.
    pub data: DataSource,
    /// Validation pairs drawn from the embedded validation set each epoch (0: no validation).
    pub validation_pairs: usize,
    /// Write a checkpoint at the end of each epoch.
    pub checkpoint_each_epoch: bool,
    /// Distillation from a teacher; plain triplet training when absent.
    pub distill: Option<DistillConfig>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            arch: "desdis-32".into(),
            loss: LossConfig::default(),
            optimizer: OptimizerConfig::hardnet_sgd(),
            lr: 1.0,
            schedule: Schedule::Linear,
            epochs: 5,
            pairs_per_epoch: 12_800,
            batch_size: 128,
            seed: 0,
            augmentation: true,
            data: DataSource::default(),
            validation_pairs: 2_000,
            checkpoint_each_epoch: true,
            distill: None,
        }
    }
}

impl TrainConfig {
    /// A published recipe for `kind`'s teacher: its architecture, loss, optimizer and lr.
    /// HardNet / L2-Net: SGD lr 10 with linear decay, momentum 0.9, dampening 0.9, wd 1e-4;
    /// SOSNet / HyNet: Adam lr 1e-2; TFeat: momentum SGD lr 0.1.
    pub fn for_teacher(kind: LossKind) -> TrainConfig {
        let (arch, optimizer, lr) = match kind {
            LossKind::HardNet => ("hardnet", OptimizerConfig::hardnet_sgd(), 10.0),
            LossKind::L2Net => ("l2net", OptimizerConfig::hardnet_sgd(), 10.0),
            LossKind::SosNet => ("sosnet", OptimizerConfig::adam(), 1e-2),
            LossKind::HyNet => ("hynet", OptimizerConfig::adam(), 1e-2),
            LossKind::TFeat => ("tfeat", OptimizerConfig::tfeat_sgd(), 0.1),
        };
        TrainConfig {
            arch: arch.into(),
            loss: kind.default_config(),
            optimizer,
            lr,
            ..TrainConfig::default()
        }
    }

    /// Parses a TOML document; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<TrainConfig> {
        let cfg: TrainConfig = toml::from_str(text)
            .map_err(|e| Error::Config(format!("{origin}: invalid training config: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and checks a TOML file.
    pub fn load(path: &std::path::Path) -> Result<TrainConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// The student architecture, parsed.
    pub fn student_arch(&self) -> Result<Arch> {
        Arch::parse(&self.arch).map_err(|e| Error::Config(format!("arch = {:?}: {e}", self.arch)))
    }

    /// The teacher architecture, when distilling and given.
    pub fn teacher_arch(&self) -> Result<Option<Arch>> {
        let Some(name) = self.distill.as_ref().and_then(|d| d.teacher_arch.as_deref()) else {
            return Ok(None);
        };
        Arch::parse(name)
            .map(Some)
            .map_err(|e| Error::Config(format!("distill.teacher_arch = {name:?}: {e}")))
    }

    /// Optimizer steps per epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.pairs_per_epoch / self.batch_size.max(1)
    }

    /// Checks every value that would otherwise fail deep inside training.
    pub fn validate(&self) -> Result<()> {
        self.student_arch()?;
        self.teacher_arch()?;
        let bad = |msg: String| Err(Error::Config(msg));
        if self.batch_size < 2 {
            return bad(format!("batch_size = {}: must be at least 2", self.batch_size));
        }
        if self.steps_per_epoch() == 0 {
            return bad(format!(
                "pairs_per_epoch = {} is smaller than batch_size = {}: no step per epoch",
                self.pairs_per_epoch, self.batch_size
            ));
        }
        if self.epochs == 0 {
            return bad("epochs = 0: nothing to train".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr = {}: must be a positive number", self.lr));
        }
        self.loss.build().map_err(|e| Error::Config(format!("loss: {e}")))?;
        if let Some(d) = &self.distill {
            if d.teacher.trim().is_empty() {
                return bad("distill.teacher: empty weights path".into());
            }
            d.rts.validate().map_err(|e| Error::Config(format!("distill.rts: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_schedule_decays_to_zero_and_constant_stays() {
        assert_eq!(Schedule::Linear.lr_at(10.0, 0, 100), 10.0);
        assert_eq!(Schedule::Linear.lr_at(10.0, 50, 100), 5.0);
        assert!(Schedule::Linear.lr_at(10.0, 99, 100) < 0.11);
        assert_eq!(Schedule::Constant.lr_at(10.0, 99, 100), 10.0);
    }

    #[test]
    fn teacher_recipes_pick_their_optimizers() {
        let hardnet = TrainConfig::for_teacher(LossKind::HardNet);
        assert_eq!((hardnet.arch.as_str(), hardnet.lr), ("hardnet", 10.0));
        assert_eq!(hardnet.optimizer, OptimizerConfig::hardnet_sgd());
        let sosnet = TrainConfig::for_teacher(LossKind::SosNet);
        assert_eq!((sosnet.lr, sosnet.optimizer), (1e-2, OptimizerConfig::adam()));
        assert_eq!(TrainConfig::for_teacher(LossKind::TFeat).lr, 0.1);
        assert!(TrainConfig::for_teacher(LossKind::HyNet).validate().is_ok());
    }
}
