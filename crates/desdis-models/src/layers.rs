//! The building blocks of the descriptor nets, with PyTorch's exact semantics so published
//! checkpoints give the published descriptors: convolution, batch/instance normalisation, FRN + TLU,
//! reproducible dropout, and the input and output normalisations of the patch-descriptor papers.
//!
//! Variable names inside each layer are PyTorch's (`weight`, `bias`, `running_mean`, ...), so a
//! state dict loads through a [`VarBuilder`] with no renaming.

use std::sync::Mutex;

use candle_core::{bail, DType, Module, ModuleT, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Epsilon of every batch and instance normalisation in the published nets (PyTorch's default).
pub const NORM_EPS: f64 = 1e-5;
/// Weight of the new batch statistic in a running-statistics update (PyTorch's default).
pub const BN_MOMENTUM: f64 = 0.1;
/// Added to the squared norm before the square root in [`l2_normalize`], so a zero vector stays finite.
pub const L2_EPS: f64 = 1e-10;

/// Shape of a square-kernel 2-D convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Stride, the same along both axes.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl ConvSpec {
    /// A `kernel`x`kernel` convolution with stride 1, no padding and no bias.
    pub const fn new(c_in: usize, c_out: usize, kernel: usize) -> Self {
        Self { c_in, c_out, kernel, stride: 1, padding: 0, bias: false }
    }
    /// The same convolution with stride `stride`.
    pub const fn stride(self, stride: usize) -> Self {
        Self { stride, ..self }
    }
    /// The same convolution with padding `padding`.
    pub const fn padding(self, padding: usize) -> Self {
        Self { padding, ..self }
    }
    /// The same convolution with (`true`) or without a bias.
    pub const fn bias(self, bias: bool) -> Self {
        Self { bias, ..self }
    }
    /// Side of the output for a square input of side `side`.
    pub const fn out_side(&self, side: usize) -> usize {
        (side + 2 * self.padding - self.kernel) / self.stride + 1
    }
    /// Inputs feeding one output value: `c_in * kernel²`.
    pub const fn fan_in(&self) -> usize {
        self.c_in * self.kernel * self.kernel
    }
    /// Multiply-adds of one forward pass on a square input of side `side`.
    pub const fn macs(&self, side: usize) -> u64 {
        let out = self.out_side(side);
        (self.c_out * self.fan_in() * out * out) as u64
    }
}

/// 2-D convolution (`weight`, optional `bias`), computed by [`desdis_kernels::conv2d`].
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    /// Reads `weight` `(c_out, c_in, k, k)` and, when `spec.bias`, `bias` `(c_out)` from `vb`.
    pub fn new(vb: VarBuilder, spec: ConvSpec) -> Result<Self> {
        let shape = (spec.c_out, spec.c_in, spec.kernel, spec.kernel);
        let weight = vb.get_with_hints(shape, "weight", candle_nn::init::DEFAULT_KAIMING_UNIFORM)?;
        let bias = match spec.bias {
            true => Some(vb.get_with_hints(spec.c_out, "bias", Init::Const(0.0))?),
            false => None,
        };
        Ok(Self { weight, bias, stride: spec.stride, padding: spec.padding })
    }

    /// The kernel, `(c_out, c_in, k, k)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for Conv2d {
    /// # Shapes
    /// `(B, c_in, H, W)` -> `(B, c_out, (H + 2p - k) / s + 1, (W + 2p - k) / s + 1)`
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        desdis_kernels::conv2d(x, &self.weight, self.bias.as_ref(), self.stride, self.padding)
    }
}

/// Batch normalisation over `(B, C, H, W)` as PyTorch's `BatchNorm2d`.
///
/// Training mode normalises with the batch mean and biased variance and updates the running
/// statistics in place with momentum [`BN_MOMENTUM`], using the *unbiased* batch variance as PyTorch
/// does. The update writes into the tensors' storage, so a net built on a `VarMap` sees it there.
/// Evaluation mode normalises with the running statistics.
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    running_mean: Tensor,
    running_var: Tensor,
    affine: Option<(Tensor, Tensor)>,
    eps: f64,
}

impl BatchNorm2d {
    /// Reads `running_mean`, `running_var` and, when `affine`, `weight` and `bias`, all `(channels)`.
    /// `num_batches_tracked` is never read: a checkpoint may hold it or not.
    pub fn new(vb: VarBuilder, channels: usize, affine: bool) -> Result<Self> {
        let running_mean = vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?;
        let running_var = vb.get_with_hints(channels, "running_var", Init::Const(1.0))?;
        let affine = match affine {
            true => Some((
                vb.get_with_hints(channels, "weight", Init::Const(1.0))?,
                vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
            )),
            false => None,
        };
        Ok(Self { running_mean, running_var, affine, eps: NORM_EPS })
    }

    /// The same layer with epsilon `eps` instead of [`NORM_EPS`].
    pub fn with_eps(self, eps: f64) -> Self {
        Self { eps, ..self }
    }

    /// The running mean, `(C)`.
    pub fn running_mean(&self) -> &Tensor {
        &self.running_mean
    }

    /// The running variance, `(C)`.
    pub fn running_var(&self) -> &Tensor {
        &self.running_var
    }

    fn normalize_with_running_stats(&self, x: &Tensor) -> Result<Tensor> {
        // Detached: running statistics are buffers, an optimizer must never see a gradient for them.
        let mean = as_channel_column(&self.running_mean.detach())?;
        let std = (as_channel_column(&self.running_var.detach())? + self.eps)?.sqrt()?;
        x.sub(&expand_channels(&mean, x)?)?.div(&expand_channels(&std, x)?)
    }

    fn normalize_with_batch_stats(&self, x: &Tensor) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        let count = b * h * w;
        if count < 2 {
            bail!(
                "batch norm in training mode needs more than one value per channel, got input {:?}",
                x.dims()
            );
        }
        let mean = batch_channel_mean(x)?;
        let centered = x.sub(&expand_channels(&mean, x)?)?;
        let var = batch_channel_mean(&centered.sqr()?)?;
        self.update_running_stats(&mean, &var, count)?;
        centered.div(&expand_channels(&(var + self.eps)?.sqrt()?, x)?)
    }

    fn update_running_stats(&self, batch_mean: &Tensor, biased_var: &Tensor, count: usize) -> Result<()> {
        let unbiased = (biased_var.detach().flatten_all()? * (count as f64 / (count - 1) as f64))?;
        let mean = batch_mean.detach().flatten_all()?;
        blend_in_place(&self.running_mean, &mean)?;
        blend_in_place(&self.running_var, &unbiased)
    }
}

/// Mean of each channel over the batch and both spatial axes, `(B, C, H, W)` -> `(1, C, 1, 1)`.
/// Summing the contiguous spatial axis first is two orders of magnitude faster on the CPU than
/// one reduction over axes (0, 2, 3).
fn batch_channel_mean(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let sums = x.reshape((b, c, h * w))?.sum(2)?.sum_keepdim(0)?;
    (sums / (b * h * w) as f64)?.reshape((1, c, 1, 1))
}

/// Mean of each channel of each sample over both spatial axes, `(B, C, H, W)` -> `(B, C, 1, 1)`.
fn spatial_mean(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    x.reshape((b, c, h * w))?.mean_keepdim(2)?.reshape((b, c, 1, 1))
}

/// `stat <- (1 - momentum) * stat + momentum * batch`, written into `stat`'s own storage.
fn blend_in_place(stat: &Tensor, batch: &Tensor) -> Result<()> {
    let updated = ((stat.detach() * (1.0 - BN_MOMENTUM))? + (batch.to_dtype(stat.dtype())? * BN_MOMENTUM)?)?;
    stat.slice_set(&updated, 0, 0)
}

/// `v` of shape `(1 or B, C, 1, 1)` viewed with the shape `(B, C, H, W)` of `like`, broadcasting
/// the batch axis first and the spatial axes second. Candle's backward pass then sums the gradient
/// over the spatial axes and the batch axis in two fast reductions, instead of one strided
/// reduction over axes (0, 2, 3) that is several times slower on the CPU (`broadcast_mul` et al.).
fn expand_channels(v: &Tensor, like: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = like.dims4()?;
    v.broadcast_as((b, c, 1, 1))?.broadcast_as((b, c, h, w))
}

/// `(C)` -> `(1, C, 1, 1)`, a per-channel vector ready to expand over `(B, C, H, W)`.
fn as_channel_column(v: &Tensor) -> Result<Tensor> {
    v.reshape((1, (), 1, 1))
}

impl BatchNorm2d {
    /// Training-mode `relu(forward_t(x, true))`; one fused op for a non-affine batch norm of f32
    /// CPU tensors ([`desdis_kernels::batch_norm_train`]), candle's ops otherwise.
    ///
    /// # Shapes
    /// `(B, C, H, W)` -> `(B, C, H, W)`
    pub fn forward_relu_train(&self, x: &Tensor) -> Result<Tensor> {
        let fused = self.affine.is_none() && x.device().is_cpu() && x.dtype() == DType::F32 && x.rank() == 4;
        if !fused {
            return self.forward_t(x, true)?.relu();
        }
        let (y, stats) = desdis_kernels::batch_norm_train(&x.contiguous()?, self.eps, true)?;
        self.update_running_stats_from(stats)?;
        Ok(y)
    }

    /// Blends the statistics of a fused training-mode call into the running ones.
    fn update_running_stats_from(&self, stats: desdis_kernels::BatchStats) -> Result<()> {
        let (c, device) = (stats.mean.len(), self.running_mean.device());
        let mean = Tensor::from_vec(stats.mean, c, device)?;
        let var = Tensor::from_vec(stats.var, c, device)?;
        self.update_running_stats(&mean, &var, stats.count)
    }
}

impl ModuleT for BatchNorm2d {
    /// # Shapes
    /// `(B, C, H, W)` -> `(B, C, H, W)`
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = match train {
            true => self.normalize_with_batch_stats(x)?,
            false => self.normalize_with_running_stats(x)?,
        };
        match &self.affine {
            Some((weight, bias)) => y
                .mul(&expand_channels(&as_channel_column(weight)?, x)?)?
                .add(&expand_channels(&as_channel_column(bias)?, x)?),
            None => Ok(y),
        }
    }
}

/// Instance normalisation without affine parameters or running statistics: each channel of each
/// sample is normalised by its own mean and biased variance (the same in training and evaluation).
#[derive(Debug, Clone, Copy)]
pub struct InstanceNorm2d {
    eps: f64,
}

impl InstanceNorm2d {
    /// With epsilon [`NORM_EPS`].
    pub fn new() -> Self {
        Self { eps: NORM_EPS }
    }
}

impl Default for InstanceNorm2d {
    fn default() -> Self {
        Self::new()
    }
}

impl Module for InstanceNorm2d {
    /// # Shapes
    /// `(B, C, H, W)` -> `(B, C, H, W)`
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let centered = x.broadcast_sub(&spatial_mean(x)?)?;
        let var = spatial_mean(&centered.sqr()?)?;
        centered.broadcast_div(&(var + self.eps)?.sqrt()?)
    }
}

/// Filter response normalisation as in HyNet: `x * rsqrt(mean_hw(x²) + |eps|) * weight + bias`.
/// `weight` and `bias` are `(1, C, 1, 1)`, `eps` is a one-element buffer.
#[derive(Debug, Clone)]
pub struct Frn {
    weight: Tensor,
    bias: Tensor,
    eps: Tensor,
}

/// The FRN epsilon HyNet registers.
pub const FRN_EPS: f64 = 1e-6;

impl Frn {
    /// Reads `weight`, `bias` `(1, channels, 1, 1)` and `eps` `(1)`.
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        let shape = (1, channels, 1, 1);
        Ok(Self {
            weight: vb.get_with_hints(shape, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(shape, "bias", Init::Const(0.0))?,
            eps: vb.get_with_hints(1, "eps", Init::Const(FRN_EPS))?,
        })
    }
}

impl Module for Frn {
    /// # Shapes
    /// `(B, C, H, W)` -> `(B, C, H, W)`
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // `eps` is a buffer in HyNet, not a learned parameter: keep gradients away from it.
        let eps = self.eps.detach().abs()?.reshape((1, 1, 1, 1))?;
        let inv_rms = spatial_mean(&x.sqr()?)?.broadcast_add(&eps)?.sqrt()?.recip()?;
        x.broadcast_mul(&inv_rms)?
            .mul(&expand_channels(&self.weight, x)?)?
            .add(&expand_channels(&self.bias, x)?)
    }
}

impl Frn {
    /// `tlu(self(x))`: on f32 CPU tensors one op ([`desdis_kernels::frn_tlu`]) instead of about ten.
    ///
    /// # Shapes
    /// `(B, C, H, W)` -> `(B, C, H, W)`
    pub fn forward_with_tlu(&self, tlu: &Tlu, x: &Tensor) -> Result<Tensor> {
        let f32_cpu = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
        let fused = x.rank() == 4 && [x, &self.weight, &self.bias, &tlu.tau].into_iter().all(f32_cpu);
        if !fused {
            return tlu.forward(&self.forward(x)?);
        }
        let rows = [&self.weight, &self.bias, &tlu.tau].map(Tensor::flatten_all);
        let [weight, bias, tau] = rows;
        let params = Tensor::stack(&[weight?, bias?, tau?], 0)?;
        let eps = self.eps.detach().abs()?.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let Some(&eps) = eps.first() else { candle_core::bail!("frn: empty eps") };
        desdis_kernels::frn_tlu(x, &params, eps)
    }
}

/// Thresholded linear unit: `max(x, tau)` with a learned per-channel `tau` `(1, C, 1, 1)`.
#[derive(Debug, Clone)]
pub struct Tlu {
    tau: Tensor,
}

impl Tlu {
    /// Reads `tau` `(1, channels, 1, 1)`.
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(Self { tau: vb.get_with_hints((1, channels, 1, 1), "tau", Init::Const(-1.0))? })
    }
}

impl Module for Tlu {
    /// # Shapes
    /// `(B, C, H, W)` -> `(B, C, H, W)`
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.maximum(&expand_channels(&self.tau, x)?)
    }
}

/// Inverted dropout with its own seeded random generator, so training runs are reproducible
/// (candle's CPU generator cannot be seeded). In training mode each value is zeroed with
/// probability `p` and the survivors are scaled by `1 / (1 - p)`; in evaluation it is the identity.
#[derive(Debug)]
pub struct Dropout {
    p: f32,
    rng: Mutex<ChaCha8Rng>,
}

impl Dropout {
    /// Drop probability `p` (clamped to `0..=1`), masks drawn from a generator seeded with `seed`.
    pub fn new(p: f32, seed: u64) -> Self {
        Self { p: p.clamp(0.0, 1.0), rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)) }
    }

    /// The drop probability.
    pub fn p(&self) -> f32 {
        self.p
    }

    /// Sets the drop probability; `0` makes training mode deterministic (used for parity checks).
    pub fn set_p(&mut self, p: f32) {
        self.p = p.clamp(0.0, 1.0);
    }

    /// Restarts the mask sequence from `seed`.
    pub fn reseed(&self, seed: u64) {
        *self.lock_rng() = ChaCha8Rng::seed_from_u64(seed);
    }

    fn lock_rng(&self) -> std::sync::MutexGuard<'_, ChaCha8Rng> {
        // A panic elsewhere while holding the lock leaves a valid generator: keep using it.
        self.rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The inverted-dropout mask for `x`: `1 / (1 - p)` where a value is kept, else 0.
    ///
    /// One draw from the layer's generator seeds each call; chunks of the mask come from their
    /// own streams of that seed, in parallel, so a mask is the same on any number of threads.
    /// Each value gets a 16-bit draw (two per 32-bit word), so `p` acts in steps of 1/65536.
    /// Drawn one f32 at a time on one thread, the masks were 2% of a HardNet train step.
    fn mask(&self, x: &Tensor) -> Result<Tensor> {
        const CHUNK: usize = 1 << 14;
        let keep = 1.0 - self.p;
        let scale = if keep > 0.0 { 1.0 / keep } else { 0.0 };
        let threshold = (keep as f64 * 65536.0).round() as u32; // keep where the draw is below
        let call_seed: u64 = self.lock_rng().random();
        let mut values = vec![0f32; x.elem_count()];
        values.par_chunks_mut(CHUNK).enumerate().for_each(|(chunk_index, chunk)| {
            let mut rng = ChaCha8Rng::seed_from_u64(call_seed);
            rng.set_stream(chunk_index as u64);
            for pair in chunk.chunks_mut(2) {
                let bits = rng.next_u32();
                for (half, value) in pair.iter_mut().enumerate() {
                    let draw = (bits >> (16 * half)) & 0xffff;
                    *value = if draw < threshold { scale } else { 0.0 };
                }
            }
        });
        Tensor::from_vec(values, x.shape(), x.device())?.to_dtype(x.dtype())
    }
}

impl ModuleT for Dropout {
    /// # Shapes
    /// any -> the same
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(x.clone());
        }
        x.mul(&self.mask(x)?)
    }
}

/// HardNet's input normalisation: each patch minus its mean, divided by its unbiased standard
/// deviation plus `eps` (HardNet uses `1e-7`).
///
/// # Shapes
/// `(B, C, H, W)` -> `(B, C, H, W)`
pub fn input_norm(x: &Tensor, eps: f64) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let flat = x.flatten_from(1)?;
    let n = flat.dim(1)?;
    if n < 2 {
        bail!("input normalisation needs more than one value per patch, got input {dims:?}");
    }
    let centered = flat.broadcast_sub(&flat.mean_keepdim(1)?)?;
    let std = (centered.sqr()?.sum_keepdim(1)? / (n - 1) as f64)?.sqrt()?;
    centered.broadcast_div(&(std + eps)?)?.reshape(dims)
}

/// `x / sqrt(k + sum_j x_j²)` per row: local response normalisation spanning all channels
/// (what SOSNet's and L2-Net's `LocalResponseNorm(2D, alpha=2D, beta=0.5, k)` computes on `D` channels).
///
/// # Shapes
/// `(B, D)` -> `(B, D)`
pub fn channel_normalize(x: &Tensor, k: f64) -> Result<Tensor> {
    let norm = (x.sqr()?.sum_keepdim(1)? + k)?.sqrt()?;
    x.broadcast_div(&norm)
}

/// L2 normalisation of each row: `x / sqrt(sum x² + 1e-10)`.
///
/// # Shapes
/// `(B, D)` -> `(B, D)`
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    channel_normalize(x, L2_EPS)
}

/// A convolution followed by a batch norm, the unit the HardNet family repeats.
#[derive(Debug, Clone)]
pub struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm2d,
}

impl ConvBn {
    /// The convolution from `conv_vb`, the batch norm (`affine` or not) from `bn_vb`.
    pub fn new(conv_vb: VarBuilder, bn_vb: VarBuilder, spec: ConvSpec, affine: bool) -> Result<Self> {
        Ok(Self { conv: Conv2d::new(conv_vb, spec)?, bn: BatchNorm2d::new(bn_vb, spec.c_out, affine)? })
    }

    /// The same unit with batch-norm epsilon `eps`.
    pub fn with_bn_eps(self, eps: f64) -> Self {
        Self { bn: self.bn.with_eps(eps), ..self }
    }
}

impl ModuleT for ConvBn {
    /// # Shapes
    /// `(B, c_in, H, W)` -> `(B, c_out, H', W')` as [`Conv2d`]
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.bn.forward_t(&self.conv.forward(x)?, train)
    }
}

impl ConvBn {
    /// `relu(forward_t(x, train))`, fused where it pays: in training, batch norm and ReLU run as
    /// one op; in evaluation, the batch norm is folded into the convolution's weights (one
    /// convolution with a bias instead of a convolution plus a normalisation pass).
    ///
    /// # Shapes
    /// `(B, c_in, H, W)` -> `(B, c_out, H', W')` as [`Conv2d`]
    pub fn forward_relu_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            return conv_bn_relu_chain_t(std::slice::from_ref(self), x, true);
        }
        let bn = &self.bn;
        let (gamma, beta) = match &bn.affine {
            Some((g, b)) => (Some(g.detach()), Some(b.detach())),
            None => (None, None),
        };
        let (w, b) = desdis_kernels::fold_batchnorm(
            &self.conv.weight.detach(),
            self.conv.bias.as_ref().map(Tensor::detach).as_ref(),
            &bn.running_mean.detach(),
            &bn.running_var.detach(),
            gamma.as_ref(),
            beta.as_ref(),
            bn.eps,
        )?;
        desdis_kernels::conv2d(x, &w, Some(&b), self.conv.stride, self.conv.padding)?.relu()
    }
}

/// `relu(bn(conv(x)))` through `blocks` in order, in training mode when `train`. In training on
/// f32 CPU tensors the whole chain runs as one op ([`desdis_kernels::conv_batch_norm_chain_train`]),
/// so no gradient between two blocks passes through candle's zero-filled accumulators; otherwise
/// block by block, the convolution and then [`BatchNorm2d::forward_relu_train`] (in evaluation,
/// [`ConvBn::forward_relu_t`]).
///
/// # Shapes
/// `(B, C_0, H, W)` -> `(B, C_n, H_n, W_n)`
pub fn conv_bn_relu_chain_t(blocks: &[ConvBn], x: &Tensor, train: bool) -> Result<Tensor> {
    if !train {
        return blocks.iter().try_fold(x.clone(), |x, block| block.forward_relu_t(&x, false));
    }
    let chain: Vec<desdis_kernels::ChainBlock> = blocks.iter().map(ConvBn::chain_block).collect();
    if x.rank() != 4 || !desdis_kernels::chain_has_fast_kernels(x, &chain) {
        return blocks
            .iter()
            .try_fold(x.clone(), |x, block| block.bn.forward_relu_train(&block.conv.forward(&x)?));
    }
    let (y, stats) = desdis_kernels::conv_batch_norm_chain_train(x, &chain)?;
    for (block, stats) in blocks.iter().zip(stats) {
        block.bn.update_running_stats_from(stats)?;
    }
    Ok(y)
}

impl ConvBn {
    /// This block as a link of a fused chain.
    fn chain_block(&self) -> desdis_kernels::ChainBlock<'_> {
        let (conv, bn) = (&self.conv, &self.bn);
        desdis_kernels::ChainBlock {
            weight: &conv.weight,
            params: desdis_kernels::ConvBnParams {
                bias: conv.bias.as_ref(),
                gamma: bn.affine.as_ref().map(|(gamma, _)| gamma),
                beta: bn.affine.as_ref().map(|(_, beta)| beta),
            },
            stride: conv.stride,
            padding: conv.padding,
            eps: bn.eps,
            relu: true,
        }
    }
}

/// The dtype the nets are built and run in; inputs of another dtype are converted to it.
pub const NET_DTYPE: DType = DType::F32;
