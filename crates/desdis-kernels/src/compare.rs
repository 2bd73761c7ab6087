//! Comparing tensors, for the parity checks of kernels, nets and devices.

use candle_core::{bail, DType, Result, Tensor};

/// `max |a - b|` over all elements, computed in f32 on `a`'s device (`b` is moved there).
/// Errors when the shapes differ, rather than broadcasting one over the other.
///
/// # Shapes
/// - `a`, `b`: any shape, the same for both
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    if a.dims() != b.dims() {
        bail!("shapes differ: {:?} vs {:?}", a.dims(), b.dims())
    }
    let (a, b) = (a.to_dtype(DType::F32)?, b.to_device(a.device())?.to_dtype(DType::F32)?);
    (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn largest_gap_in_any_dtype_and_shape_mismatch_refused() -> Result<()> {
        let a = Tensor::new(&[[1f64, 2.0], [3.0, 4.0]], &Device::Cpu)?;
        let b = Tensor::new(&[[1f32, 2.5], [2.0, 4.0]], &Device::Cpu)?;
        assert_eq!(max_abs_diff(&a, &b)?, 1.0);
        assert!(max_abs_diff(&a, &b.flatten_all()?).is_err());
        Ok(())
    }
}
