//! Losses for learning patch descriptors, on candle tensors: the triplet losses of the teacher
//! recipes (HardNet, L2-Net, SOSNet, HyNet, TFeat) and the DesDis objective
//! `L = L_triplet(student) + lambda * R_ts`, whose teacher-student regularizer keeps the student's
//! similarities on the mined positive and negative pairs close to a frozen teacher's.
//!
//! Every loss takes a [`PairBatch`] of `N` matching pairs and mines its negatives inside the
//! batch. Mining runs on a detached host copy (a fused gemm kernel on the CPU); only the `O(N)`
//! distances a loss uses are then gathered and differentiated. See `docs/losses.md` for the
//! definitions and where they come from.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use desdis_loss::{HardNetLoss, PairBatch, TripletLoss};
//!
//! // Four anchor/positive pairs of unit vectors: each positive equals its anchor.
//! let a = Tensor::eye(4, candle_core::DType::F32, &Device::Cpu)?;
//! let batch = PairBatch::new(a.clone(), a)?;
//! let loss = HardNetLoss::default().loss(&batch)?.to_scalar::<f32>()?;
//! // d_p = 0 and every negative is at sqrt(2): max(0, 1 + 0 - sqrt 2) = 0.
//! assert!(loss.abs() < 1e-3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod batch;
mod dense;
mod distance;
mod distill;
mod error;
mod hardnet;
mod hynet;
mod mining;
mod recipe;
mod rts;
mod sosnet;
mod tfeat;
mod triplet;

pub use batch::PairBatch;
pub use dense::{hardnet_dense, DistanceBackend};
pub use distance::{paired_distance, pairwise_distance, pairwise_distance_plain, Metric, DISTANCE_EPS};
pub use distill::{Distillation, DistillationConfig, DistillationLoss};
pub use error::{Error, Result};
pub use hardnet::{HardNetConfig, HardNetLoss};
pub use hynet::{HyNetConfig, HyNetLoss, HyNetTerms};
pub use mining::{
    hardest_negatives, nearest_neighbours, shifted_negatives, Mining, Negatives, FALSE_NEGATIVE_DISTANCE,
};
pub use recipe::{LossConfig, LossKind};
pub use rts::{
    pair_similarities, pair_similarities_on, teacher_student_regularizer, teacher_student_regularizer_on,
    PairSimilarities, RtsConfig, RtsForm, Similarity,
};
pub use sosnet::{SosNetConfig, SosNetLoss, SosNetTerms};
pub use tfeat::{TfeatConfig, TfeatLoss, TfeatNegatives};
pub use triplet::{Mined, TripletLoss};
