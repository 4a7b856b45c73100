//! Fused CPU kernels with a backward pass: masked softmax, layer/RMS norm, GELU, rotary embeddings,
//! the 3×3 neighbourhoods a convolution multiplies (im2col), and the addition of a bias.
//!
//! Why: candle's own fused versions (`softmax_last_dim`, `layer_norm`, `rms_norm`, `rope`) have no
//! backward, so training through them silently leaves everything upstream without a gradient
//! (DESIGN.md §2.4), and their differentiable compositions cost five to ten element-wise passes each on
//! a CPU where element-wise ops run at ~200 M elements/s (§2.10). candle's `conv2d` has a backward, but
//! on the CPU it runs as direct loops: training steps through it were 1.6–3× slower than through the
//! matmul a convolution becomes after im2col (BENCHMARKS.md). Each kernel here is one pass forward and
//! one pass backward, single-threaded (the tensors are small; parallelism belongs at the top level).
//!
//! On a GPU (`--device cuda|metal`) the same functions run the differentiable compositions of
//! [`portable`] instead: element-wise passes are cheap there, and the fused kernels are CPU code.
//! The tests compare both forms' values and gradients.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Storage, Tensor, bail};

/// Additive score offset for a key a query may not see; `exp` of it underflows to exactly 0.
pub const MASKED: f32 = -1e9;

/// Below this, `exp` is about f32's smallest normal number (1e-38), nothing beside the row's largest term
/// (exp(0) = 1): such weights are 0. Masked scores land here, and glibc's `expf` reports each
/// underflow through a slow path (`__math_uflowf`, 3 % of a MoonDream training step in a profile).
const NEGLIGIBLE_EXPONENT: f32 = -87.0;

/// Which keys each query may attend to, shared by all heads: `[batch, queries, keys]` of 0 (allowed) or
/// [`MASKED`]. A batch of 1 is shared by every sample.
#[derive(Debug, Clone)]
pub struct AttentionMask {
    offsets: Arc<Vec<f32>>,
    batch: usize,
    queries: usize,
    keys: usize,
}

impl AttentionMask {
    /// A mask from `allowed(sample, query, key)`.
    pub fn from_fn(batch: usize, queries: usize, keys: usize, allowed: impl Fn(usize, usize, usize) -> bool) -> Self {
        let mut offsets = Vec::with_capacity(batch * queries * keys);
        for sample in 0..batch {
            for query in 0..queries {
                offsets.extend((0..keys).map(|key| if allowed(sample, query, key) { 0.0 } else { MASKED }));
            }
        }
        Self { offsets: Arc::new(offsets), batch, queries, keys }
    }

    /// `(batch, queries, keys)`.
    pub fn dims(&self) -> (usize, usize, usize) {
        (self.batch, self.queries, self.keys)
    }
}

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else { bail!("{op}: only f32 tensors are supported") };
    let Some((start, end)) = layout.contiguous_offsets() else { bail!("{op}: the input must be contiguous") };
    Ok(&data[start..end])
}

/// Calls `read` with the values of `tensors` on the CPU, row-major, read in place: a backward pass
/// reads its inputs without copying them (`to_vec1` copies took ~3 % of a training step).
fn with_values<R>(tensors: &[&Tensor], read: impl FnOnce(&[&[f32]]) -> Result<R>) -> Result<R> {
    let tensors = tensors.iter().map(|tensor| tensor.contiguous()).collect::<Result<Vec<_>>>()?;
    let storages: Vec<_> = tensors.iter().map(Tensor::storage_and_layout).collect();
    let values = storages
        .iter()
        .map(|(storage, layout)| match &**storage {
            Storage::Cpu(storage) => contiguous_f32(storage, layout, "backward"),
            _ => bail!("the fused kernels' backward passes run on the CPU"),
        })
        .collect::<Result<Vec<_>>>()?;
    read(&values)
}

/// `softmax(scale · scores + mask)` over the last dimension.
struct ScaledMaskedSoftmax {
    scale: f32,
    mask: Option<AttentionMask>,
}

impl ScaledMaskedSoftmax {
    /// The mask row for row `row` of scores shaped `[batch, heads, queries, keys]`.
    fn mask_row(&self, row: usize, shape: &Shape) -> Option<&[f32]> {
        let mask = self.mask.as_ref()?;
        let dims = shape.dims();
        let queries = dims[dims.len() - 2];
        let rows_per_sample = shape.elem_count() / dims[dims.len() - 1] / dims[0];
        let sample = if mask.batch == 1 { 0 } else { row / rows_per_sample };
        let query = row % queries;
        let start = (sample * mask.queries + query) * mask.keys;
        Some(&mask.offsets[start..start + mask.keys])
    }
}

impl CustomOp1 for ScaledMaskedSoftmax {
    fn name(&self) -> &'static str {
        "scaled-masked-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let scores = contiguous_f32(storage, layout, self.name())?;
        let shape = layout.shape();
        let width = shape.dims()[shape.rank() - 1];
        let mut out = vec![0f32; scores.len()];
        for (row, (input, output)) in scores.chunks_exact(width).zip(out.chunks_exact_mut(width)).enumerate() {
            match self.mask_row(row, shape) {
                Some(mask) => {
                    output.iter_mut().zip(input.iter().zip(mask)).for_each(|(o, (s, m))| *o = s * self.scale + m)
                }
                None => output.iter_mut().zip(input).for_each(|(o, s)| *o = s * self.scale),
            }
            let max = output.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for o in output.iter_mut() {
                let shifted = *o - max;
                *o = if shifted < NEGLIGIBLE_EXPONENT { 0.0 } else { shifted.exp() };
                sum += *o;
            }
            let inverse = 1.0 / sum;
            output.iter_mut().for_each(|o| *o *= inverse);
        }
        Ok((CpuStorage::F32(out), shape.clone()))
    }

    fn bwd(&self, _scores: &Tensor, probs: &Tensor, grad_probs: &Tensor) -> Result<Option<Tensor>> {
        let width = probs.dim(candle_core::D::Minus1)?;
        let grad = with_values(&[probs, grad_probs], |values| {
            let (y, g) = (values[0], values[1]);
            let mut grad = vec![0f32; y.len()];
            for ((y, g), out) in y.chunks_exact(width).zip(g.chunks_exact(width)).zip(grad.chunks_exact_mut(width)) {
                let dot: f32 = y.iter().zip(g).map(|(y, g)| y * g).sum();
                out.iter_mut().zip(y.iter().zip(g)).for_each(|(o, (y, g))| *o = self.scale * y * (g - dot));
            }
            Ok(grad)
        })?;
        Ok(Some(Tensor::from_vec(grad, probs.shape(), probs.device())?))
    }
}

/// `softmax(scale · scores + mask)` over the last dimension of `scores` (`[batch, heads, queries, keys]`
/// when masked; any shape otherwise).
pub fn scaled_masked_softmax(scores: &Tensor, scale: f64, mask: Option<&AttentionMask>) -> Result<Tensor> {
    if let Some(mask) = mask {
        let (batch, _heads, queries, keys) = scores.dims4()?;
        if (mask.batch != 1 && mask.batch != batch) || mask.queries != queries || mask.keys != keys {
            bail!("attention mask {:?} does not fit scores {:?}", mask.dims(), scores.shape());
        }
    }
    if !scores.device().is_cpu() {
        return portable::scaled_masked_softmax(scores, scale, mask);
    }
    scores.contiguous()?.apply_op1(ScaledMaskedSoftmax { scale: scale as f32, mask: mask.cloned() })
}

/// Layer norm (`centre`) or RMS norm over the last dimension, with a per-feature scale and shift.
struct Normalize {
    eps: f32,
    centre: bool,
}

impl Normalize {
    /// `(mean, 1 / std)` of one row.
    fn statistics(&self, row: &[f32]) -> (f32, f32) {
        let width = row.len() as f32;
        let mean = if self.centre { row.iter().sum::<f32>() / width } else { 0.0 };
        let variance = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / width;
        (mean, 1.0 / (variance + self.eps).sqrt())
    }
}

impl CustomOp3 for Normalize {
    fn name(&self) -> &'static str {
        "normalize"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xs_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let xs_data = contiguous_f32(xs, xs_layout, self.name())?;
        let weight = contiguous_f32(weight, weight_layout, self.name())?;
        let bias = contiguous_f32(bias, bias_layout, self.name())?;
        let width = weight.len();
        let mut out = vec![0f32; xs_data.len()];
        for (input, output) in xs_data.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
            let (mean, inv_std) = self.statistics(input);
            for (((o, x), w), b) in output.iter_mut().zip(input).zip(weight).zip(bias) {
                *o = (x - mean) * inv_std * w + b;
            }
        }
        Ok((CpuStorage::F32(out), xs_layout.shape().clone()))
    }

    fn bwd(
        &self,
        xs: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (grad_x, grad_w, grad_b) = with_values(&[xs, weight, grad_res], |values| {
            let (x, w, g) = (values[0], values[1], values[2]);
            let width = w.len();
            let mut grad_x = vec![0f32; x.len()];
            let mut grad_w = vec![0f32; width];
            let mut grad_b = vec![0f32; width];
            let mut normalized = vec![0f32; width];
            let mut grad_normalized = vec![0f32; width];
            for ((x, g), out) in x.chunks_exact(width).zip(g.chunks_exact(width)).zip(grad_x.chunks_exact_mut(width)) {
                let (mean, inv_std) = self.statistics(x);
                for i in 0..width {
                    normalized[i] = (x[i] - mean) * inv_std;
                    grad_normalized[i] = g[i] * w[i];
                    grad_w[i] += g[i] * normalized[i];
                    grad_b[i] += g[i];
                }
                let n = width as f32;
                let mean_grad = if self.centre { grad_normalized.iter().sum::<f32>() / n } else { 0.0 };
                let mean_grad_dot = grad_normalized.iter().zip(&normalized).map(|(g, y)| g * y).sum::<f32>() / n;
                for i in 0..width {
                    out[i] = inv_std * (grad_normalized[i] - mean_grad - normalized[i] * mean_grad_dot);
                }
            }
            Ok((grad_x, grad_w, grad_b))
        })?;
        let device = xs.device();
        Ok((
            Some(Tensor::from_vec(grad_x, xs.shape(), device)?),
            Some(Tensor::from_vec(grad_w, weight.shape(), device)?),
            Some(Tensor::from_vec(grad_b, weight.shape(), device)?),
        ))
    }
}

/// Layer norm over the last dimension: `(x - mean) / sqrt(var + eps) · weight + bias`.
pub fn layer_norm(xs: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if !xs.device().is_cpu() {
        return candle_nn::ops::layer_norm_slow(xs, weight, bias, eps as f32);
    }
    xs.contiguous()?.apply_op3(weight, bias, Normalize { eps: eps as f32, centre: true })
}

/// RMS norm over the last dimension: `x / sqrt(mean(x²) + eps) · weight`.
pub fn rms_norm(xs: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    if !xs.device().is_cpu() {
        return candle_nn::ops::rms_norm_slow(xs, weight, eps as f32);
    }
    let no_shift = weight.zeros_like()?;
    xs.contiguous()?.apply_op3(weight, &no_shift, Normalize { eps: eps as f32, centre: false })
}

/// `tanh` through one `exp`: glibc's `tanhf` (via `expm1f`) was the largest single cost of a
/// training step in a profile. Within 1e-7 of `tanhf` (absolute).
fn fast_tanh(x: f32) -> f32 {
    // Past |x| = 9, tanh is ±1 in f32; clamping also keeps `exp` finite.
    let e = (2.0 * x.clamp(-9.0, 9.0)).exp();
    (e - 1.0) / (e + 1.0)
}

/// GELU, tanh approximation (`gelu_pytorch_tanh` in HF configs).
struct Gelu;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_CUBIC: f32 = 0.044_715;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "gelu-tanh"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = contiguous_f32(storage, layout, self.name())?;
        let out =
            xs.iter().map(|&x| 0.5 * x * (1.0 + fast_tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)))).collect();
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, xs: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let grad = with_values(&[xs, grad_res], |values| {
            let (x, g) = (values[0], values[1]);
            Ok(x.iter()
                .zip(g)
                .map(|(&x, &g)| {
                    let tanh = fast_tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x));
                    let inner_derivative = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * x * x);
                    g * (0.5 * (1.0 + tanh) + 0.5 * x * (1.0 - tanh * tanh) * inner_derivative)
                })
                .collect())
        })?;
        Ok(Some(Tensor::from_vec(grad, xs.shape(), xs.device())?))
    }
}

/// GELU with the tanh approximation, one pass each way.
pub fn gelu(xs: &Tensor) -> Result<Tensor> {
    if !xs.device().is_cpu() {
        return xs.gelu();
    }
    xs.contiguous()?.apply_op1(Gelu)
}

/// Rotary position embedding tables: `cos`/`sin` of `position · θ^(-2i/d)`, `[positions, head_dim / 2]`.
#[derive(Debug, Clone)]
pub struct RotaryTables {
    cos: Arc<Vec<f32>>,
    sin: Arc<Vec<f32>>,
    half_dim: usize,
    max_positions: usize,
}

impl RotaryTables {
    /// Tables for `max_positions` positions of heads of `head_dim` (even) features.
    pub fn new(head_dim: usize, max_positions: usize, theta: f64) -> Result<Self> {
        if !head_dim.is_multiple_of(2) {
            bail!("rotary embeddings need an even head dimension, got {head_dim}");
        }
        let half_dim = head_dim / 2;
        let mut cos = Vec::with_capacity(max_positions * half_dim);
        let mut sin = Vec::with_capacity(max_positions * half_dim);
        for position in 0..max_positions {
            for i in 0..half_dim {
                let angle = position as f64 * theta.powf(-((2 * i) as f64) / head_dim as f64);
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        Ok(Self { cos: Arc::new(cos), sin: Arc::new(sin), half_dim, max_positions })
    }
}

/// Rotates the two halves of each head (HF's `rotate_half` convention) by `direction · angle`; the
/// backward pass is the same rotation in the opposite direction.
struct Rotate {
    tables: RotaryTables,
    direction: f32,
}

impl Rotate {
    fn apply(&self, xs: &[f32], positions: usize) -> Vec<f32> {
        let half = self.tables.half_dim;
        let mut out = vec![0f32; xs.len()];
        for (index, (input, output)) in xs.chunks_exact(2 * half).zip(out.chunks_exact_mut(2 * half)).enumerate() {
            let table = (index % positions) * half;
            for i in 0..half {
                let (cos, sin) = (self.tables.cos[table + i], self.direction * self.tables.sin[table + i]);
                output[i] = input[i] * cos - input[i + half] * sin;
                output[i + half] = input[i + half] * cos + input[i] * sin;
            }
        }
        out
    }
}

impl CustomOp1 for Rotate {
    fn name(&self) -> &'static str {
        "rotary-embedding"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = contiguous_f32(storage, layout, self.name())?;
        let dims = layout.shape().dims();
        Ok((CpuStorage::F32(self.apply(xs, dims[dims.len() - 2])), layout.shape().clone()))
    }

    fn bwd(&self, _xs: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let positions = res.dim(candle_core::D::Minus2)?;
        let inverse = Rotate { tables: self.tables.clone(), direction: -self.direction };
        let grad = with_values(&[grad_res], |values| Ok(inverse.apply(values[0], positions)))?;
        Ok(Some(Tensor::from_vec(grad, res.shape(), res.device())?))
    }
}

/// Applies rotary embeddings to `xs` shaped `[batch, heads, positions, head_dim]`, positions 0, 1, …
pub fn rotary_embedding(xs: &Tensor, tables: &RotaryTables) -> Result<Tensor> {
    let (_, _, positions, head_dim) = xs.dims4()?;
    if head_dim != 2 * tables.half_dim || positions > tables.max_positions {
        bail!(
            "rotary tables for head_dim {} and {} positions cannot rotate {:?}",
            2 * tables.half_dim,
            tables.max_positions,
            xs.shape()
        );
    }
    if !xs.device().is_cpu() {
        return portable::rotary_embedding(xs, tables);
    }
    xs.contiguous()?.apply_op1(Rotate { tables: tables.clone(), direction: 1.0 })
}

/// Every pixel's zero-padded 3×3 neighbourhood: `[n, c, h, w]` → `[n, h · w, c · 9]`, column
/// `channel · 9 + 3 · dy + dx` (the layout of a conv weight `[out, c, 3, 3]` flattened), so a 3×3
/// "same" convolution is one matmul. The backward pass adds each column back onto its pixel.
struct Neighbourhoods3x3;

impl Neighbourhoods3x3 {
    /// `(n, c, h, w)` of the input.
    fn dims(layout_dims: &[usize]) -> Result<(usize, usize, usize, usize)> {
        match *layout_dims {
            [n, c, h, w] => Ok((n, c, h, w)),
            _ => bail!("3x3 neighbourhoods need an [n, c, h, w] map, got {layout_dims:?}"),
        }
    }

    /// Calls `visit(input index, column index)` for every in-bounds tap.
    fn for_each_tap(n: usize, c: usize, h: usize, w: usize, mut visit: impl FnMut(usize, usize)) {
        let columns = c * 9;
        for sample in 0..n {
            for y in 0..h {
                for x in 0..w {
                    let row = (sample * h * w + y * w + x) * columns;
                    for channel in 0..c {
                        let plane = (sample * c + channel) * h * w;
                        for dy in 0..3 {
                            let Some(source_y) = (y + dy).checked_sub(1).filter(|&sy| sy < h) else { continue };
                            for dx in 0..3 {
                                let Some(source_x) = (x + dx).checked_sub(1).filter(|&sx| sx < w) else { continue };
                                visit(plane + source_y * w + source_x, row + channel * 9 + dy * 3 + dx);
                            }
                        }
                    }
                }
            }
        }
    }
}

impl CustomOp1 for Neighbourhoods3x3 {
    fn name(&self) -> &'static str {
        "neighbourhoods-3x3"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = contiguous_f32(storage, layout, self.name())?;
        let (n, c, h, w) = Self::dims(layout.shape().dims())?;
        let mut out = vec![0f32; n * h * w * c * 9];
        Self::for_each_tap(n, c, h, w, |input, column| out[column] = xs[input]);
        Ok((CpuStorage::F32(out), Shape::from((n, h * w, c * 9))))
    }

    fn bwd(&self, xs: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let (n, c, h, w) = Self::dims(xs.dims())?;
        let grad = with_values(&[grad_res], |values| {
            let mut grad = vec![0f32; n * c * h * w];
            Self::for_each_tap(n, c, h, w, |input, column| grad[input] += values[0][column]);
            Ok(grad)
        })?;
        Ok(Some(Tensor::from_vec(grad, xs.shape(), xs.device())?))
    }
}

/// `[n, c, h, w]` → `[n, h · w, c · 9]`: each pixel's zero-padded 3×3 neighbourhood (see
/// [`Neighbourhoods3x3`]).
pub fn neighbourhoods_3x3(map: &Tensor) -> Result<Tensor> {
    if !map.device().is_cpu() {
        return portable::neighbourhoods_3x3(map);
    }
    map.contiguous()?.apply_op1(Neighbourhoods3x3)
}

/// `xs + bias`, `bias` shaped as the trailing dimensions of `xs` and added at every leading index.
/// candle's `broadcast_add` sums the bias gradient over the leading dimensions one element at a time
/// (a division per element and dimension): 15–19 % of a training step for the shipped model
/// (BENCHMARKS.md); here it is a sum of rows.
struct AddBias;

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "add-bias"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xs_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let bias = contiguous_f32(bias, bias_layout, self.name())?;
        let mut out = contiguous_f32(xs, xs_layout, self.name())?.to_vec();
        for row in out.chunks_exact_mut(bias.len()) {
            for (o, b) in row.iter_mut().zip(bias) {
                *o += b;
            }
        }
        Ok((CpuStorage::F32(out), xs_layout.shape().clone()))
    }

    fn bwd(
        &self,
        _xs: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad_bias = with_values(&[grad_res], |values| {
            let mut sums = vec![0f32; bias.elem_count()];
            for row in values[0].chunks_exact(sums.len()) {
                for (sum, g) in sums.iter_mut().zip(row) {
                    *sum += g;
                }
            }
            Ok(sums)
        })?;
        Ok((Some(grad_res.clone()), Some(Tensor::from_vec(grad_bias, bias.shape(), bias.device())?)))
    }
}

/// `xs + bias` for a `bias` shaped as the trailing dimensions of `xs` (a linear layer's bias, a
/// position embedding), with a backward pass that sums rows.
pub fn add_bias(xs: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if !xs.dims().ends_with(bias.dims()) {
        bail!("add_bias: a bias of shape {:?} is not the trailing dimensions of {:?}", bias.dims(), xs.dims());
    }
    if !xs.device().is_cpu() || bias.elem_count() == 0 {
        return xs.broadcast_add(bias);
    }
    xs.contiguous()?.apply_op2(&bias.contiguous()?, AddBias)
}

/// The differentiable compositions of candle's element-wise ops that the kernels above fuse: what
/// runs on a GPU, and the reference the tests check the kernels against.
mod portable {
    use candle_core::{D, Result, Tensor};

    use super::{AttentionMask, RotaryTables};

    pub fn scaled_masked_softmax(scores: &Tensor, scale: f64, mask: Option<&AttentionMask>) -> Result<Tensor> {
        let scaled = scores.affine(scale, 0.0)?;
        let logits = match mask {
            Some(mask) => {
                let offsets =
                    Tensor::from_slice(&mask.offsets, (mask.batch, 1, mask.queries, mask.keys), scores.device())?;
                scaled.broadcast_add(&offsets)?
            }
            None => scaled,
        };
        candle_nn::ops::softmax(&logits, D::Minus1)
    }

    pub fn rotary_embedding(xs: &Tensor, tables: &RotaryTables) -> Result<Tensor> {
        let positions = xs.dim(D::Minus2)?;
        let values = positions * tables.half_dim;
        let shape = (positions, tables.half_dim);
        let cos = Tensor::from_slice(&tables.cos[..values], shape, xs.device())?;
        let sin = Tensor::from_slice(&tables.sin[..values], shape, xs.device())?;
        candle_nn::rotary_emb::rope_slow(&xs.contiguous()?, &cos, &sin)
    }

    pub fn neighbourhoods_3x3(map: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = map.dims4()?;
        let padded = map.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
        let mut taps = Vec::with_capacity(9);
        for dy in 0..3 {
            for dx in 0..3 {
                taps.push(padded.narrow(2, dy, h)?.narrow(3, dx, w)?);
            }
        }
        Tensor::stack(&taps, 2)?.reshape((n, c * 9, h * w))?.transpose(1, 2)?.contiguous()
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    fn random(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = crate::sim::rng::Rng::new(seed);
        let count = shape.iter().product();
        let values: Vec<f32> = (0..count).map(|_| rng.normal() as f32).collect();
        Tensor::from_vec(values, shape, &Device::Cpu).expect("shape matches the value count")
    }

    fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// Checks a fused function against its slow differentiable form: values, and gradients of
    /// `sum(out · probe)` with respect to every input.
    fn check(inputs: &[Tensor], fused: impl Fn(&[Tensor]) -> Tensor, slow: impl Fn(&[Tensor]) -> Tensor) {
        let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
        let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let fast_out = fused(&tensors);
        let slow_out = slow(&tensors);
        assert!(max_difference(&fast_out, &slow_out) < 1e-4, "values differ");
        let probe = random(fast_out.dims(), 99);
        let fast_grads = (&fast_out * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let slow_grads = (&slow_out * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        for (i, var) in vars.iter().enumerate() {
            let fast = fast_grads.get(var).expect("fused gradient exists");
            let slow = slow_grads.get(var).expect("slow gradient exists");
            let scale = slow.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap().max(1.0);
            assert!(max_difference(fast, slow) / scale < 1e-4, "gradient of input {i} differs");
        }
    }

    #[test]
    fn neighbourhoods_match_the_padded_slices_and_make_a_convolution() {
        let map = random(&[2, 3, 5, 4], 7);
        check(
            std::slice::from_ref(&map),
            |x| neighbourhoods_3x3(&x[0]).unwrap(),
            |x| portable::neighbourhoods_3x3(&x[0]).unwrap(),
        );
        let weight = random(&[6, 3, 3, 3], 8);
        let by_matmul = neighbourhoods_3x3(&map)
            .unwrap()
            .broadcast_matmul(&weight.reshape((6, 27)).unwrap().t().unwrap())
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((2, 6, 5, 4))
            .unwrap();
        let by_conv = map.conv2d(&weight, 1, 1, 1, 1).unwrap();
        assert!(max_difference(&by_matmul, &by_conv) < 1e-4, "im2col + matmul is candle's 3×3 convolution");
    }

    #[test]
    fn masked_softmax_matches_the_differentiable_form() {
        let mask = AttentionMask::from_fn(2, 5, 7, |b, q, k| k <= q + b);
        check(
            &[random(&[2, 3, 5, 7], 1)],
            |x| scaled_masked_softmax(&x[0], 0.5, Some(&mask)).unwrap(),
            |x| portable::scaled_masked_softmax(&x[0], 0.5, Some(&mask)).unwrap(),
        );
        let shared = AttentionMask::from_fn(1, 5, 7, |_, q, k| k <= q);
        check(
            &[random(&[2, 3, 5, 7], 3)],
            |x| scaled_masked_softmax(&x[0], 2.0, Some(&shared)).unwrap(),
            |x| portable::scaled_masked_softmax(&x[0], 2.0, Some(&shared)).unwrap(),
        );
        check(
            &[random(&[4, 9], 2)],
            |x| scaled_masked_softmax(&x[0], 1.0, None).unwrap(),
            |x| portable::scaled_masked_softmax(&x[0], 1.0, None).unwrap(),
        );
    }

    #[test]
    fn norms_match_the_differentiable_forms() {
        let xs = (random(&[3, 4, 16], 3) * 3.0).unwrap();
        check(
            &[xs.clone(), random(&[16], 4), random(&[16], 5)],
            |x| layer_norm(&x[0], &x[1], &x[2], 1e-5).unwrap(),
            |x| candle_nn::ops::layer_norm_slow(&x[0], &x[1], &x[2], 1e-5).unwrap(),
        );
        check(
            &[xs, random(&[16], 6)],
            |x| rms_norm(&x[0], &x[1], 1e-6).unwrap(),
            |x| candle_nn::ops::rms_norm_slow(&x[0], &x[1], 1e-6).unwrap(),
        );
    }

    #[test]
    fn a_bias_is_added_at_every_leading_index_and_its_gradient_sums_them() {
        check(
            &[random(&[2, 3, 5], 4), random(&[5], 5)],
            |x| add_bias(&x[0], &x[1]).unwrap(),
            |x| x[0].broadcast_add(&x[1]).unwrap(),
        );
        check(
            &[random(&[2, 3, 5], 6), random(&[3, 5], 7)],
            |x| add_bias(&x[0], &x[1]).unwrap(),
            |x| x[0].broadcast_add(&x[1]).unwrap(),
        );
        let error = add_bias(&random(&[2, 3], 8), &random(&[2], 9)).unwrap_err().to_string();
        assert!(error.contains("not the trailing dimensions"), "{error}");
    }

    #[test]
    fn gelu_matches_candles_differentiable_gelu() {
        check(&[(random(&[5, 33], 7) * 2.0).unwrap()], |x| gelu(&x[0]).unwrap(), |x| x[0].gelu().unwrap());
    }

    #[test]
    fn rotary_embedding_matches_the_rotate_half_form() {
        let (positions, head_dim) = (6, 8);
        let tables = RotaryTables::new(head_dim, 10, 10_000.0).unwrap();
        check(
            &[random(&[2, 3, positions, head_dim], 8)],
            |x| rotary_embedding(&x[0], &tables).unwrap(),
            |x| portable::rotary_embedding(&x[0], &tables).unwrap(),
        );
    }
}
