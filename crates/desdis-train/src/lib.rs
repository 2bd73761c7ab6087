//! Training descriptor nets and distilling students from frozen teachers.
//!
//! [`TrainConfig`] describes a run (TOML), [`train`] runs it into a [`RunDir`], resumable from the
//! run's latest checkpoint.

mod config;
mod error;
mod metrics;
mod optim;
mod run_dir;
mod step;
mod trainer;

pub use config::{DataSource, DistillConfig, Schedule, TrainConfig};
pub use error::{Error, Result};
pub use metrics::{read_metrics, MetricsRow};
pub use optim::{Optimizer, OptimizerConfig};
pub use run_dir::{Progress, RunDir};
pub use step::{train_step, Objective, StepLoss};
pub use trainer::{
    derive_seed, named_vars, read_best, train, train_until, varmap_tensors, Best, TrainSummary,
};
