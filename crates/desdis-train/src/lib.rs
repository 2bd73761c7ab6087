//! Training descriptor nets and distilling students from frozen teachers.

pub mod error;
pub mod optim;
pub mod run_dir;

pub use error::{Error, Result};
