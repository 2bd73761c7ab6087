//! Training descriptor nets and distilling students from frozen teachers.
//!
//! [`TrainConfig`] describes a run (TOML), [`train`] runs it into a [`RunDir`], resumable from the
//! run's latest checkpoint.

pub mod config;
pub mod error;
pub mod metrics;
pub mod optim;
pub mod run_dir;
pub mod step;
pub mod trainer;

pub use config::{DataSource, DistillConfig, Schedule, TrainConfig};
pub use error::{Error, Result};
pub use metrics::{read_metrics, MetricsRow};
pub use run_dir::RunDir;
pub use trainer::{named_vars, train, train_until, varmap_tensors, TrainSummary};
