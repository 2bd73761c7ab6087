//! Winograd F(2x2, 3x3) convolution for 3x3, stride-1 kernels: forward, input gradient and
//! weight gradient.
//!
//! Each 2x2 block of outputs ("tile") is computed from the 4x4 input block under it in a
//! transformed domain where the 3x3 correlation becomes 16 element-wise products, so the channel
//! sums are 16 matrix products of `(c_out, c_in) x (c_in, tiles)`: 16 multiply-adds per 4 outputs
//! instead of 36, 2.25x fewer. With the transforms in the notation of Lavin & Gray (2016),
//! `Y = Aᵀ [ (G w Gᵀ) ⊙ (Bᵀ d B) ] A`; the transform matrices hold only 0, ±1 and ±½, so f32
//! rounding stays at the level of the direct sum (checked against candle's conv in the tests).
//!
//! - Input gradient: the correlation of the output gradient with the flipped, transposed kernel
//!   and padding `2 - p`, which is again a 3x3 stride-1 convolution and runs through [`forward`].
//! - Weight gradient: the adjoint of the forward in the transformed domain,
//!   `dU = dM · Vᵀ` per transformed position with `dM = A dY Aᵀ`, then `dw = Gᵀ dU G`.
//!
//! Several small images share one set of products (their tiles side by side), so the products
//! stay wide enough for the gemm kernel on 8x8 layers.

use std::mem::MaybeUninit;

use gemm::Parallelism;
use rayon::prelude::*;

use super::geometry::ConvGeometry;
use super::kernels::sum_in_order;
use super::matmul::{matmul, Mat, MatMut, Write};
use super::scratch::with_scratch;

/// Positions of the transformed 4x4 tile.
const TAPS: usize = 16;
/// Channel counts below this stay on im2col: with few channels the transforms cost more than
/// the products they save (HardNet's first layer has one input channel).
const MIN_CHANNELS: usize = 8;
/// Group images until a group's transformed inputs and products reach this size: about half of
/// a core's L2 cache here, so they stay there between the transforms and the products. On
/// HardNet's 8x8 layer (2 images per group) this ran 5-15% faster than groups of 256 columns
/// (16 images); larger images form groups of one.
const GROUP_BYTES: usize = 512 * 1024;
/// Groups per thread at least, so a thread slowed by other work does not hold everyone up.
const GROUPS_PER_THREAD: usize = 2;

/// True when this module computes the convolution: a 3x3 kernel at stride 1 with padding at most
/// 2 (so the input gradient is a convolution with non-negative padding) and enough channels.
pub(crate) fn applies(g: &ConvGeometry) -> bool {
    g.kernel == 3 && g.stride == 1 && g.padding <= 2 && g.c_in.min(g.c_out) >= MIN_CHANNELS
}

/// How the output of one image is cut into 2x2 tiles, and the zero-padded input plane they read.
#[derive(Debug, Clone, Copy)]
struct Tiling {
    tiles_h: usize,
    tiles_w: usize,
    /// Side lengths of the padded input plane: every tile's 4x4 block lies inside it.
    padded_h: usize,
    padded_w: usize,
}

impl Tiling {
    /// Scratch the transforms need besides the transformed inputs and products.
    fn work_len(&self) -> usize {
        input_plane_len(self) + 16 * (self.tiles_w + 1)
    }

    fn new(g: &ConvGeometry) -> Self {
        let (tiles_h, tiles_w) = (g.h_out.div_ceil(2), g.w_out.div_ceil(2));
        Self { tiles_h, tiles_w, padded_h: 2 * tiles_h + 2, padded_w: 2 * tiles_w + 2 }
    }

    fn per_image(&self) -> usize {
        self.tiles_h * self.tiles_w
    }
}

/// Distance between the 16 transformed positions' matrices of `rows` x `columns`, padded by a
/// cache line: the transforms read or write all 16 side by side, and at a distance that is a
/// multiple of 4 KiB (32 channels x 256 tiles, say) they all compete for the same few L1 sets.
fn tap_stride(rows: usize, columns: usize) -> usize {
    rows * columns + 16
}

/// Images per group: enough to fill [`GROUP_BYTES`], few enough for
/// [`GROUPS_PER_THREAD`] groups per thread.
fn images_per_group(g: &ConvGeometry, tiling: &Tiling) -> usize {
    let bytes_per_column = TAPS * (g.c_in + g.c_out) * std::mem::size_of::<f32>();
    let wide_enough = (GROUP_BYTES / bytes_per_column).div_ceil(tiling.per_image());
    let balanced = g.batch.div_ceil(rayon::current_num_threads() * GROUPS_PER_THREAD);
    wide_enough.min(balanced).max(1)
}

/// The convolution of a batch.
///
/// # Shapes
/// - `x`: `(batch, c_in, h_in, w_in)`, `w`: `(c_out, c_in, 3, 3)`, returns `(batch, c_out, h_out, w_out)`
pub(crate) fn forward(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    let tiling = Tiling::new(g);
    let u = transform_weights(w, g.c_out, g.c_in);
    let group = images_per_group(g, &tiling);
    let len = g.batch * g.out_image_len();
    // No zero fill: on the largest layers it was a tenth of this function's time, and
    // `transform_outputs` writes every element (each image, channel, row and column pair).
    let mut y: Vec<f32> = Vec::with_capacity(len);
    let slots = &mut y.spare_capacity_mut()[..len];
    if cfg!(debug_assertions) {
        // Debug builds (the tests) start from NaN, so an element left unwritten would show.
        slots.iter_mut().for_each(|slot| {
            slot.write(f32::NAN);
        });
    }
    slots
        .par_chunks_mut(group * g.out_image_len())
        .zip(x.par_chunks(group * g.image_len()))
        .for_each(|(y_group, x_group)| forward_group(g, &tiling, &u, x_group, y_group));
    // SAFETY: the groups cover all `len` slots, and `transform_outputs_for` writes every element
    // of its group: `chunks_exact_mut` over whole images and channel planes, `tiles_h` tile rows
    // of two output rows (up to `h_out`), `tiles_w` column pairs per row (up to `w_out`).
    unsafe { y.set_len(len) };
    y
}

/// Forward of a group of images: transform the inputs, 16 products, transform back.
fn forward_group(
    g: &ConvGeometry,
    tiling: &Tiling,
    u: &[f32],
    x_group: &[f32],
    y_group: &mut [MaybeUninit<f32>],
) {
    let columns = x_group.len() / g.image_len() * tiling.per_image();
    let (v_len, m_len) = (TAPS * tap_stride(g.c_in, columns), TAPS * tap_stride(g.c_out, columns));
    with_scratch(v_len + m_len + tiling.work_len(), |scratch| {
        let (v, rest) = scratch.split_at_mut(v_len);
        let (m, work) = rest.split_at_mut(m_len);
        transform_inputs(g, tiling, x_group, work, v);
        for tap in 0..TAPS {
            let u_tap = Mat::row_major(&u[tap * g.c_out * g.c_in..][..g.c_out * g.c_in], g.c_out, g.c_in);
            let v_tap =
                Mat::row_major(&v[tap * tap_stride(g.c_in, columns)..][..g.c_in * columns], g.c_in, columns);
            let m_tap = MatMut::row_major(
                &mut m[tap * tap_stride(g.c_out, columns)..][..g.c_out * columns],
                g.c_out,
                columns,
            );
            matmul(m_tap, u_tap, v_tap, Write::Overwrite, Parallelism::None);
        }
        transform_outputs(g, tiling, m, columns, work, y_group);
    })
}

/// Gradient with respect to the input: the forward convolution of `dy` with the kernel flipped
/// in both spatial axes and its channel axes swapped, at padding `2 - p`.
///
/// # Shapes
/// - `w`: `(c_out, c_in, 3, 3)`, `dy`: `(batch, c_out, h_out, w_out)`, returns `(batch, c_in, h_in, w_in)`
pub(crate) fn input_gradient(g: &ConvGeometry, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut flipped = vec![0.0; w.len()];
    for co in 0..g.c_out {
        for ci in 0..g.c_in {
            let from = &w[(co * g.c_in + ci) * 9..][..9];
            let to = &mut flipped[(ci * g.c_out + co) * 9..][..9];
            for (t, f) in to.iter_mut().zip(from.iter().rev()) {
                *t = *f;
            }
        }
    }
    let transposed = ConvGeometry {
        c_in: g.c_out,
        c_out: g.c_in,
        h_in: g.h_out,
        w_in: g.w_out,
        h_out: g.h_in,
        w_out: g.w_in,
        padding: 2 - g.padding,
        ..*g
    };
    forward(&transposed, dy, &flipped)
}

/// Gradient with respect to the weight.
///
/// # Shapes
/// - `x`: `(batch, c_in, h_in, w_in)`, `dy`: `(batch, c_out, h_out, w_out)`, returns `(c_out, c_in, 3, 3)`
pub(crate) fn weight_gradient(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let tiling = Tiling::new(g);
    let group = images_per_group(g, &tiling);
    let du_len = TAPS * g.c_out * g.c_in;
    // A fixed number of chunks, each summing its groups in order, and the chunk sums added in
    // order: the result does not depend on how rayon happens to schedule the work, so training
    // runs repeat bit for bit.
    let groups = g.batch.div_ceil(group);
    let chunk_groups = groups.div_ceil(rayon::current_num_threads() * GROUPS_PER_THREAD).max(1);
    let partials: Vec<Vec<f32>> = x
        .par_chunks(chunk_groups * group * g.image_len())
        .zip(dy.par_chunks(chunk_groups * group * g.out_image_len()))
        .map(|(x_chunk, dy_chunk)| {
            let mut du = vec![0.0; du_len];
            let x_groups = x_chunk.chunks(group * g.image_len());
            for (x_group, dy_group) in x_groups.zip(dy_chunk.chunks(group * g.out_image_len())) {
                weight_gradient_group(g, &tiling, x_group, dy_group, &mut du);
            }
            du
        })
        .collect();
    let du = sum_in_order(partials).unwrap_or_else(|| vec![0.0; du_len]);
    untransform_weight_gradient(&du, g.c_out, g.c_in)
}

/// Adds one group's `dU = dM · Vᵀ` to `du`.
fn weight_gradient_group(
    g: &ConvGeometry,
    tiling: &Tiling,
    x_group: &[f32],
    dy_group: &[f32],
    du: &mut [f32],
) {
    let columns = x_group.len() / g.image_len() * tiling.per_image();
    let (v_len, m_len) = (TAPS * tap_stride(g.c_in, columns), TAPS * tap_stride(g.c_out, columns));
    with_scratch(v_len + m_len + tiling.work_len(), |scratch| {
        let (v, rest) = scratch.split_at_mut(v_len);
        let (dm, work) = rest.split_at_mut(m_len);
        transform_inputs(g, tiling, x_group, work, v);
        transform_output_gradients(g, tiling, dy_group, columns, work, dm);
        for tap in 0..TAPS {
            let dm_tap = Mat::row_major(
                &dm[tap * tap_stride(g.c_out, columns)..][..g.c_out * columns],
                g.c_out,
                columns,
            );
            let v_tap =
                Mat::row_major(&v[tap * tap_stride(g.c_in, columns)..][..g.c_in * columns], g.c_in, columns);
            let du_tap =
                MatMut::row_major(&mut du[tap * g.c_out * g.c_in..][..g.c_out * g.c_in], g.c_out, g.c_in);
            matmul(du_tap, dm_tap, v_tap.t(), Write::Accumulate, Parallelism::None);
        }
    })
}

/// `U = G w Gᵀ` for every kernel, laid out `(16, c_out, c_in)`.
fn transform_weights(w: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    let mut u = vec![0.0; TAPS * c_out * c_in];
    for (kernel_index, kernel) in w.chunks_exact(9).enumerate() {
        let rows: [[f32; 3]; 3] = std::array::from_fn(|r| std::array::from_fn(|c| kernel[3 * r + c]));
        // G · w, then (G · w) · Gᵀ.
        let gw = g_apply(rows);
        for (r, row) in gw.iter().enumerate() {
            let out = g_apply(*row);
            for (c, value) in out.iter().enumerate() {
                u[(4 * r + c) * c_out * c_in + kernel_index] = *value;
            }
        }
    }
    u
}

/// `G · v` for `G = [[1, 0, 0], [½, ½, ½], [½, -½, ½], [0, 0, 1]]`, on scalars or rows.
fn g_apply<T: Combine>(v: [T; 3]) -> [T; 4] {
    let [a, b, c] = v;
    let half_sum = a.add(c).scale(0.5);
    let half_b = b.scale(0.5);
    [a, half_sum.add(half_b), half_sum.sub(half_b), c]
}

/// `Gᵀ · v`, the adjoint of [`g_apply`].
fn g_adjoint<T: Combine>(v: [T; 4]) -> [T; 3] {
    let [a, b, c, d] = v;
    let half_sum = b.add(c).scale(0.5);
    [a.add(half_sum), b.sub(c).scale(0.5), half_sum.add(d)]
}

/// `dw = Gᵀ dU G` for every kernel, from `(16, c_out, c_in)` to `(c_out, c_in, 3, 3)`.
fn untransform_weight_gradient(du: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    let kernels = c_out * c_in;
    let mut dw = vec![0.0; kernels * 9];
    for (kernel_index, out) in dw.chunks_exact_mut(9).enumerate() {
        let tile: [[f32; 4]; 4] =
            std::array::from_fn(|r| std::array::from_fn(|c| du[(4 * r + c) * kernels + kernel_index]));
        let rows = g_adjoint(tile);
        for (r, row) in rows.iter().enumerate() {
            out[3 * r..3 * r + 3].copy_from_slice(&g_adjoint(*row));
        }
    }
    dw
}

/// What the transforms need of a scalar or a row of four: both get transformed the same way.
trait Combine: Copy {
    fn add(self, other: Self) -> Self;
    fn sub(self, other: Self) -> Self;
    fn scale(self, factor: f32) -> Self;
}

impl Combine for f32 {
    fn add(self, other: Self) -> Self {
        self + other
    }
    fn sub(self, other: Self) -> Self {
        self - other
    }
    fn scale(self, factor: f32) -> Self {
        self * factor
    }
}

impl<const N: usize> Combine for [f32; N] {
    fn add(self, other: Self) -> Self {
        std::array::from_fn(|i| self[i] + other[i])
    }
    fn sub(self, other: Self) -> Self {
        std::array::from_fn(|i| self[i] - other[i])
    }
    fn scale(self, factor: f32) -> Self {
        self.map(|v| v * factor)
    }
}

/// `V = Bᵀ d B` of every input tile of a group of images, laid out `(16, c_in, columns)` (taps [`tap_stride`] apart) with
/// column `image * tiles_per_image + tile_row * tiles_w + tile_col`. `plane` holds one padded
/// channel plane at a time, split into its even and odd columns.
///
/// Vectorised along a row of tiles: tile `j` reads padded columns `2j .. 2j + 4`, which are
/// even column `j`, odd `j`, even `j + 1` and odd `j + 1`, so every transformed position of a
/// tile row is a combination of shifted, contiguous row slices.
fn transform_inputs_for<const N: usize>(
    g: &ConvGeometry,
    t: &Tiling,
    x_group: &[f32],
    plane: &mut [f32],
    v: &mut [f32],
) {
    let columns = x_group.len() / g.image_len() * t.per_image();
    let n = tiles_w::<N>(t);
    let half = n + 1; // even (or odd) columns of a padded row
    let (evens, rest) = plane.split_at_mut(t.padded_h * half);
    let (odds, rest) = rest.split_at_mut(t.padded_h * half);
    let (padded_row, combos) = rest.split_at_mut(t.padded_w);
    for (image, x_image) in x_group.chunks_exact(g.image_len()).enumerate() {
        for (ci, x_plane) in x_image.chunks_exact(g.h_in * g.w_in).enumerate() {
            split_padded_plane::<N>(g, t, x_plane, padded_row, evens, odds);
            for th in 0..t.tiles_h {
                // Bᵀ over the four rows, for even and odd columns: combos[(2r + parity) * half ..].
                for (parity, plane) in [&*evens, &*odds].into_iter().enumerate() {
                    let row = |r: usize| &plane[(2 * th + r) * half..][..half];
                    let combo = |r: usize| (2 * r + parity) * half;
                    zip_map(&mut combos[combo(0)..][..half], row(0), row(2), |a, b| a - b);
                    zip_map(&mut combos[combo(1)..][..half], row(1), row(2), |a, b| a + b);
                    zip_map(&mut combos[combo(2)..][..half], row(2), row(1), |a, b| a - b);
                    zip_map(&mut combos[combo(3)..][..half], row(1), row(3), |a, b| a - b);
                }
                let first = image * t.per_image() + th * n;
                for r in 0..4 {
                    let even = &combos[2 * r * half..][..half];
                    let odd = &combos[(2 * r + 1) * half..][..half];
                    let (e0, e1, o0, o1) = (&even[..n], &even[1..], &odd[..n], &odd[1..]);
                    let out = |c: usize| (4 * r + c) * tap_stride(g.c_in, columns) + ci * columns + first;
                    zip_map(&mut v[out(0)..][..n], e0, e1, |a, b| a - b);
                    zip_map(&mut v[out(1)..][..n], o0, e1, |a, b| a + b);
                    zip_map(&mut v[out(2)..][..n], e1, o0, |a, b| a - b);
                    zip_map(&mut v[out(3)..][..n], o0, o1, |a, b| a - b);
                }
            }
        }
    }
}

/// Tiles per row: `N`, or the tiling's count when `N` is 0.
///
/// The transforms loop over rows of `tiles_w` values; on HardNet's 8x8 and 16x16 layers these
/// rows are 4 and 8 long (2 on the DesDis students' 4x4 layer), and loops of a length unknown at compile time spent more time in loop
/// control than in arithmetic. The dispatchers below compile the common widths with a constant
/// length, which the compiler unrolls into plain vector code.
fn tiles_w<const N: usize>(t: &Tiling) -> usize {
    debug_assert!(N == 0 || N == t.tiles_w);
    if N == 0 {
        t.tiles_w
    } else {
        N
    }
}

/// Calls `$f::<N>($args)` with `N` the tiling's row length if it is a common one, else 0.
macro_rules! dispatch_width {
    ($t:expr, $f:ident($($arg:expr),*)) => {
        match $t.tiles_w {
            2 => $f::<2>($($arg),*),
            4 => $f::<4>($($arg),*),
            8 => $f::<8>($($arg),*),
            16 => $f::<16>($($arg),*),
            _ => $f::<0>($($arg),*),
        }
    };
}

/// See [`transform_inputs_for`].
fn transform_inputs(g: &ConvGeometry, t: &Tiling, x_group: &[f32], plane: &mut [f32], v: &mut [f32]) {
    dispatch_width!(t, transform_inputs_for(g, t, x_group, plane, v))
}

/// See [`transform_outputs_for`].
fn transform_outputs(
    g: &ConvGeometry,
    t: &Tiling,
    m: &[f32],
    columns: usize,
    work: &mut [f32],
    y_group: &mut [MaybeUninit<f32>],
) {
    dispatch_width!(t, transform_outputs_for(g, t, m, columns, work, y_group))
}

/// See [`transform_output_gradients_for`].
fn transform_output_gradients(
    g: &ConvGeometry,
    t: &Tiling,
    dy_group: &[f32],
    columns: usize,
    work: &mut [f32],
    dm: &mut [f32],
) {
    dispatch_width!(t, transform_output_gradients_for(g, t, dy_group, columns, work, dm))
}

/// Scratch [`transform_inputs`] needs besides the products: even and odd halves of a padded
/// plane, one padded row, and the eight row combinations of a tile row.
fn input_plane_len(t: &Tiling) -> usize {
    let half = t.tiles_w + 1;
    2 * t.padded_h * half + t.padded_w + 8 * half
}

/// Writes the zero-padded `x_plane` as its even columns into `evens` and odd ones into `odds`,
/// both `(padded_h, tiles_w + 1)`.
fn split_padded_plane<const N: usize>(
    g: &ConvGeometry,
    t: &Tiling,
    x_plane: &[f32],
    padded_row: &mut [f32],
    evens: &mut [f32],
    odds: &mut [f32],
) {
    let half = tiles_w::<N>(t) + 1;
    if g.padding == 1 {
        let rows = evens.chunks_exact_mut(half).zip(odds.chunks_exact_mut(half));
        for (pr, (even, odd)) in rows.enumerate() {
            match pr.checked_sub(1).filter(|&r| r < g.h_in) {
                Some(source) => {
                    split_row_after_one_zero::<N>(&x_plane[source * g.w_in..][..g.w_in], even, odd)
                }
                None => {
                    even.fill(0.0);
                    odd.fill(0.0);
                }
            }
        }
        return;
    }
    let padded_row = &mut padded_row[..2 * half];
    let rows = evens.chunks_exact_mut(half).zip(odds.chunks_exact_mut(half));
    for (pr, (even, odd)) in rows.enumerate() {
        padded_row.fill(0.0);
        if let Some(source) = pr.checked_sub(g.padding).filter(|&r| r < g.h_in) {
            padded_row[g.padding..][..g.w_in].copy_from_slice(&x_plane[source * g.w_in..][..g.w_in]);
        }
        for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(padded_row.chunks_exact(2)) {
            (*e, *o) = (pair[0], pair[1]);
        }
    }
}

/// The padding-1 case of [`split_padded_plane`], straight from the source row (no staging copy,
/// the most common layout): padded column `c` is source column `c - 1`, so `even[j]` is source
/// column `2j - 1` and `odd[j]` source column `2j`, zero outside the row.
fn split_row_after_one_zero<const N: usize>(source: &[f32], even: &mut [f32], odd: &mut [f32]) {
    // A constant pair count (HardNet's even widths) lets the compiler emit plain shuffles.
    let pairs = if N > 0 && source.len() == 2 * N { N } else { source.len() / 2 };
    even[0] = 0.0;
    let pairs_out = odd[..pairs].iter_mut().zip(&mut even[1..=pairs]);
    for ((o, e), pair) in pairs_out.zip(source[..2 * pairs].chunks_exact(2)) {
        (*o, *e) = (pair[0], pair[1]);
    }
    // An odd width leaves one source column; then zeros to the end of both halves.
    let odd_rest = &mut odd[pairs..];
    let last = source.get(2 * pairs).copied();
    if let (Some(first), Some(v)) = (odd_rest.first_mut(), last) {
        *first = v;
    }
    let filled = usize::from(last.is_some()).min(odd_rest.len());
    odd_rest[filled..].fill(0.0);
    even[pairs + 1..].fill(0.0);
}

/// `out[j] = f(a[j], b[j])`.
fn zip_map(out: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) {
    for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
        *o = f(a, b);
    }
}

/// `out[j] = f(a[j], b[j], c[j])`.
fn zip_map3(out: &mut [f32], a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) {
    for (((o, &a), &b), &c) in out.iter_mut().zip(a).zip(b).zip(c) {
        *o = f(a, b, c);
    }
}

/// `Y = Aᵀ M A` for every output tile of a group, from `m` laid out as [`transform_inputs`]'s `v`
/// (with `c_out` rows) into `(images, c_out, h_out, w_out)`, dropping positions past the edge.
/// Vectorised along a row of tiles like [`transform_inputs`], with `Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]`.
fn transform_outputs_for<const N: usize>(
    g: &ConvGeometry,
    t: &Tiling,
    m: &[f32],
    columns: usize,
    work: &mut [f32],
    y_group: &mut [MaybeUninit<f32>],
) {
    let n = tiles_w::<N>(t);
    let (sums, rest) = work.split_at_mut(8 * n);
    let (even, rest) = rest.split_at_mut(n);
    let odd = &mut rest[..n];
    for (image, y_image) in y_group.chunks_exact_mut(g.out_image_len()).enumerate() {
        for (co, y_plane) in y_image.chunks_exact_mut(g.out_pixels()).enumerate() {
            for th in 0..t.tiles_h {
                let first = image * t.per_image() + th * n;
                let tap = |r: usize, c: usize| {
                    &m[(4 * r + c) * tap_stride(g.c_out, columns) + co * columns + first..][..n]
                };
                // Aᵀ over the rows: row rr of Aᵀ M, column c, at sums[(4 * rr + c) * n ..].
                for c in 0..4 {
                    zip_map3(&mut sums[c * n..][..n], tap(0, c), tap(1, c), tap(2, c), |a, b, d| a + b + d);
                    zip_map3(&mut sums[(4 + c) * n..][..n], tap(1, c), tap(2, c), tap(3, c), |a, b, d| {
                        a - b - d
                    });
                }
                for rr in 0..2 {
                    let oy = 2 * th + rr;
                    if oy >= g.h_out {
                        break;
                    }
                    let s = |c: usize| &sums[(4 * rr + c) * n..][..n];
                    zip_map3(even, s(0), s(1), s(2), |a, b, d| a + b + d);
                    zip_map3(odd, s(1), s(2), s(3), |a, b, d| a - b - d);
                    let y_row = &mut y_plane[oy * g.w_out..][..g.w_out];
                    for ((pair, &e), &o) in y_row.chunks_mut(2).zip(&*even).zip(&*odd) {
                        pair[0].write(e);
                        if let Some(second) = pair.get_mut(1) {
                            second.write(o);
                        }
                    }
                }
            }
        }
    }
}

/// `dM = A dY Aᵀ` for every output tile of a group (positions past the edge count as zero),
/// laid out as [`transform_outputs`]'s `m`, with `A = [[1, 0], [1, 1], [1, -1], [0, -1]]`.
fn transform_output_gradients_for<const N: usize>(
    g: &ConvGeometry,
    t: &Tiling,
    dy_group: &[f32],
    columns: usize,
    work: &mut [f32],
    dm: &mut [f32],
) {
    let n = tiles_w::<N>(t);
    // dY rows 2th and 2th + 1 split into even and odd columns, then the four rows of A dY.
    let (halves, rest) = work.split_at_mut(4 * n);
    let rows = &mut rest[..8 * n];
    for (image, dy_image) in dy_group.chunks_exact(g.out_image_len()).enumerate() {
        for (co, dy_plane) in dy_image.chunks_exact(g.out_pixels()).enumerate() {
            for th in 0..t.tiles_h {
                halves.fill(0.0);
                for rr in 0..2 {
                    let oy = 2 * th + rr;
                    if oy >= g.h_out {
                        break;
                    }
                    let (even, odd) = halves[2 * rr * n..][..2 * n].split_at_mut(n);
                    for ((pair, e), o) in dy_plane[oy * g.w_out..][..g.w_out].chunks(2).zip(even).zip(odd) {
                        *e = pair[0];
                        *o = pair.get(1).copied().unwrap_or(0.0);
                    }
                }
                let half = |k: usize| &halves[k * n..][..n];
                // Row r of A dY, even then odd columns, at rows[(2r + parity) * n ..].
                for parity in 0..2 {
                    let (top, bottom) = (half(parity), half(2 + parity));
                    rows[parity * n..][..n].copy_from_slice(top);
                    zip_map(&mut rows[(2 + parity) * n..][..n], top, bottom, |a, b| a + b);
                    zip_map(&mut rows[(4 + parity) * n..][..n], top, bottom, |a, b| a - b);
                    zip_map(&mut rows[(6 + parity) * n..][..n], bottom, bottom, |_, b| -b);
                }
                let first = image * t.per_image() + th * n;
                for r in 0..4 {
                    let (even, odd) = (&rows[2 * r * n..][..n], &rows[(2 * r + 1) * n..][..n]);
                    let out = |c: usize| (4 * r + c) * tap_stride(g.c_out, columns) + co * columns + first;
                    dm[out(0)..][..n].copy_from_slice(even);
                    zip_map(&mut dm[out(1)..][..n], even, odd, |a, b| a + b);
                    zip_map(&mut dm[out(2)..][..n], even, odd, |a, b| a - b);
                    zip_map(&mut dm[out(3)..][..n], odd, odd, |_, b| -b);
                }
            }
        }
    }
}
