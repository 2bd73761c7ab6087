//! A batch of matching pairs, validated once so every loss can trust its shapes.

use candle_core::Tensor;

use crate::error::{input, Result};

/// `N` matching pairs: row `i` of `anchors` and row `i` of `positives` show the same scene
/// point, and every other row of the batch is a negative for them.
///
/// The losses assume the descriptors are L2-normalised (except TFeat's); HyNet also needs the raw
/// descriptors from before the normalisation, attached with [`PairBatch::with_raw`].
///
/// # Shapes
/// - `anchors`, `positives`: `(N, D)`, same floating dtype and device
/// - raw anchors, raw positives: `(N, D_raw)`, same dtype and device as the descriptors
#[derive(Clone, Debug)]
pub struct PairBatch {
    anchors: Tensor,
    positives: Tensor,
    raw: Option<(Tensor, Tensor)>,
}

impl PairBatch {
    /// A batch of `(anchors, positives)`; errors unless both are `(N, D)` float matrices of one
    /// dtype on one device with `N >= 1` and `D >= 1`.
    pub fn new(anchors: Tensor, positives: Tensor) -> Result<Self> {
        check_matrix_pair("anchors", &anchors, "positives", &positives)?;
        if anchors.dims() != positives.dims() {
            return Err(input(format!(
                "anchors {:?} and positives {:?} must have the same shape",
                anchors.dims(),
                positives.dims()
            )));
        }
        Ok(Self { anchors, positives, raw: None })
    }

    /// Attaches the raw (pre-normalisation) descriptors of both sides.
    pub fn with_raw(mut self, raw_anchors: Tensor, raw_positives: Tensor) -> Result<Self> {
        check_matrix_pair("raw anchors", &raw_anchors, "raw positives", &raw_positives)?;
        check_matrix_pair("anchors", &self.anchors, "raw anchors", &raw_anchors)?;
        if raw_anchors.dims() != raw_positives.dims() || raw_anchors.dim(0)? != self.len() {
            return Err(input(format!(
                "raw anchors {:?} and raw positives {:?} must both be ({}, D_raw)",
                raw_anchors.dims(),
                raw_positives.dims(),
                self.len()
            )));
        }
        self.raw = Some((raw_anchors, raw_positives));
        Ok(self)
    }

    /// The anchor descriptors, `(N, D)`.
    pub fn anchors(&self) -> &Tensor {
        &self.anchors
    }

    /// The positive descriptors, `(N, D)`.
    pub fn positives(&self) -> &Tensor {
        &self.positives
    }

    /// The raw anchor and positive descriptors, if attached.
    pub fn raw(&self) -> Option<(&Tensor, &Tensor)> {
        self.raw.as_ref().map(|(a, p)| (a, p))
    }

    /// Number of pairs `N`.
    pub fn len(&self) -> usize {
        self.anchors.dims()[0]
    }

    /// Always false: a batch holds at least one pair.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Descriptor length `D`.
    pub fn dim(&self) -> usize {
        self.anchors.dims()[1]
    }

    /// Errors unless the batch has at least two pairs, which in-batch negative mining needs.
    pub(crate) fn require_negatives(&self) -> Result<()> {
        if self.len() < 2 {
            return Err(input(format!(
                "in-batch negatives need at least 2 pairs, the batch has {}",
                self.len()
            )));
        }
        Ok(())
    }
}

/// Errors unless `x` and `y` are non-empty float matrices of the same dtype on the same device
/// (their row and column counts may differ).
pub(crate) fn check_matrix_pair(x_name: &str, x: &Tensor, y_name: &str, y: &Tensor) -> Result<()> {
    check_matrix(x_name, x)?;
    check_matrix(y_name, y)?;
    if x.dtype() != y.dtype() {
        return Err(input(format!("{x_name} are {:?} but {y_name} are {:?}", x.dtype(), y.dtype())));
    }
    if !x.device().same_device(y.device()) {
        return Err(input(format!("{x_name} and {y_name} are on different devices")));
    }
    Ok(())
}

/// Errors unless `x` is an `(N, D)` float matrix with `N, D >= 1`.
pub(crate) fn check_matrix(name: &str, x: &Tensor) -> Result<()> {
    let dims = x.dims();
    if dims.len() != 2 || dims[0] == 0 || dims[1] == 0 {
        return Err(input(format!("{name} must be a non-empty (N, D) matrix, got shape {dims:?}")));
    }
    if !x.dtype().is_float() {
        return Err(input(format!("{name} must be floating point, got {:?}", x.dtype())));
    }
    Ok(())
}
