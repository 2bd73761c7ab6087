//! Convolution entry point used by every net, so a faster kernel replaces it in one place.

use candle_core::{Result, Tensor};

/// 2-D convolution with square kernels, symmetric padding and equal strides.
///
/// # Shapes
/// - `x`: `(B, C_in, H, W)`, `w`: `(C_out, C_in, K, K)`, `b`: `(C_out)`
/// - returns `(B, C_out, (H + 2p - K) / s + 1, (W + 2p - K) / s + 1)`
pub fn conv2d(x: &Tensor, w: &Tensor, b: Option<&Tensor>, stride: usize, padding: usize) -> Result<Tensor> {
    let y = x.conv2d(w, padding, stride, 1, 1)?;
    match b {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
        None => Ok(y),
    }
}
