//! Sizes of one 2-D convolution, checked once so the kernels can index without re-validating.

use candle_core::{bail, Result, Shape};

/// Every size a square-kernel, equal-stride, symmetric-padding convolution needs.
///
/// # Shapes
/// - input `(batch, c_in, h_in, w_in)`, weight `(c_out, c_in, kernel, kernel)`,
///   output `(batch, c_out, h_out, w_out)`
/// - the unfolded ("im2col") matrix of one image is `(patch_len, out_pixels)`, with
///   `patch_len = c_in * kernel * kernel` and `out_pixels = h_out * w_out`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    pub batch: usize,
    pub c_in: usize,
    pub h_in: usize,
    pub w_in: usize,
    pub c_out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub h_out: usize,
    pub w_out: usize,
}

impl ConvGeometry {
    /// Validates the input and weight dims against the stride and padding.
    pub fn new(x_dims: &[usize], w_dims: &[usize], stride: usize, padding: usize) -> Result<Self> {
        let (&[batch, c_in, h_in, w_in], &[c_out, w_c_in, kh, kw]) = (x_dims, w_dims) else {
            bail!("conv2d expects rank-4 input and weight, got {x_dims:?} and {w_dims:?}")
        };
        if c_in != w_c_in || kh != kw || stride == 0 || kh == 0 {
            bail!("conv2d: unsupported input {x_dims:?}, weight {w_dims:?}, stride {stride}")
        }
        let (h_padded, w_padded) = (h_in + 2 * padding, w_in + 2 * padding);
        if h_padded < kh || w_padded < kh {
            bail!("conv2d: kernel {kh} larger than padded input {h_padded}x{w_padded}")
        }
        let (h_out, w_out) = ((h_padded - kh) / stride + 1, (w_padded - kh) / stride + 1);
        Ok(Self { batch, c_in, h_in, w_in, c_out, kernel: kh, stride, padding, h_out, w_out })
    }

    /// Elements of one input image, `c_in * h_in * w_in`.
    pub fn image_len(&self) -> usize {
        self.c_in * self.h_in * self.w_in
    }

    /// Output pixels of one image, `h_out * w_out`.
    pub fn out_pixels(&self) -> usize {
        self.h_out * self.w_out
    }

    /// Weights feeding one output value, `c_in * kernel * kernel`.
    pub fn patch_len(&self) -> usize {
        self.c_in * self.kernel * self.kernel
    }

    /// Elements of one output image, `c_out * h_out * w_out`.
    pub fn out_image_len(&self) -> usize {
        self.c_out * self.out_pixels()
    }

    /// Elements of the whole weight tensor.
    pub fn weight_len(&self) -> usize {
        self.c_out * self.patch_len()
    }

    /// Elements of one image's unfolded matrix (dense rows).
    #[cfg(test)]
    pub fn col_len(&self) -> usize {
        self.patch_len() * self.out_pixels()
    }

    /// True when the kernel covers the whole unpadded input, so the single output pixel of
    /// each image is a dot product with the flattened image and the conv is one plain matmul.
    pub fn covers_whole_input(&self) -> bool {
        self.padding == 0 && self.kernel == self.h_in && self.kernel == self.w_in
    }

    /// `(batch, c_out, h_out, w_out)`.
    pub fn output_shape(&self) -> Shape {
        Shape::from((self.batch, self.c_out, self.h_out, self.w_out))
    }
}
