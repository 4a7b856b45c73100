//! A small conv-hybrid vision tower in the spirit of FastViT
//! ([Vasu et al. 2023](https://arxiv.org/abs/2303.14189)): convolutional stages at high resolution,
//! self-attention only on the coarse 1/16 grid, so it emits 4× fewer tokens than a patch-16 ViT's
//! 1/8-resolution would and spends little on attention.
//!
//! Departures from FastViT: plain residual 3×3 conv blocks instead of re-parameterised RepMixer blocks
//! (no batch norm: batches here are small and re-parameterisation is an inference-time trick), and
//! learned position embeddings instead of conditional (depthwise-conv) ones.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::{ConvHybridConfig, NormKind};
use super::norm::Norm;
use super::ops;
use super::vit::{EncoderLayer, PatchEmbedding, VisionOutput};

/// `x + pointwise(gelu(conv3×3(x)))` on an `[n, c, h, w]` map. Both convolutions run as matmuls
/// (the 3×3 one over [`ops::neighbourhoods_3x3`]): candle's CPU `conv2d` backward is direct loops,
/// which made a FiLM model with a stride-4 stem train at under 130 samples/s (BENCHMARKS.md). The
/// weights keep `conv2d`'s names and shapes.
#[derive(Debug, Clone)]
pub struct ConvBlock {
    /// `[c, c · 9]`, flattened from `[c, c, 3, 3]`.
    conv_weight: Tensor,
    conv_bias: Tensor,
    /// `[c, c]`, flattened from `[c, c, 1, 1]`.
    pointwise_weight: Tensor,
    pointwise_bias: Tensor,
}

impl ConvBlock {
    /// A block keeping `channels`, initialised as `candle_nn::conv2d` initialises.
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let (weight, bias) = conv_parameters(channels, 3, vb.pp("conv"))?;
        let (pointwise_weight, pointwise_bias) = conv_parameters(channels, 1, vb.pp("pointwise"))?;
        Ok(Self { conv_weight: weight, conv_bias: bias, pointwise_weight, pointwise_bias })
    }
}

/// A square `kernel`-sized conv's weight, flattened to `[c, c · kernel²]`, and bias.
fn conv_parameters(channels: usize, kernel: usize, vb: VarBuilder) -> Result<(Tensor, Tensor)> {
    let weight =
        vb.get_with_hints((channels, channels, kernel, kernel), "weight", candle_nn::init::DEFAULT_KAIMING_NORMAL)?;
    let bound = 1.0 / ((channels * kernel * kernel) as f64).sqrt();
    let bias = vb.get_with_hints(channels, "bias", candle_nn::Init::Uniform { lo: -bound, up: bound })?;
    Ok((weight.reshape((channels, channels * kernel * kernel))?, bias))
}

impl Module for ConvBlock {
    fn forward(&self, map: &Tensor) -> Result<Tensor> {
        let (n, channels, height, width) = map.dims4()?;
        let hidden =
            ops::add_bias(&ops::neighbourhoods_3x3(map)?.broadcast_matmul(&self.conv_weight.t()?)?, &self.conv_bias)?;
        let residual =
            ops::add_bias(&ops::gelu(&hidden)?.broadcast_matmul(&self.pointwise_weight.t()?)?, &self.pointwise_bias)?;
        map + residual.transpose(1, 2)?.reshape((n, channels, height, width))?
    }
}

/// `[n, h · w, c]` tokens → `[n, c, h, w]` map.
pub fn tokens_to_map(tokens: &Tensor, side: usize) -> Result<Tensor> {
    let (n, _, channels) = tokens.dims3()?;
    tokens.transpose(1, 2)?.contiguous()?.reshape((n, channels, side, side))
}

/// The FastViT-like tower.
#[derive(Debug, Clone)]
pub struct ConvHybridEncoder {
    stem: PatchEmbedding,
    stages: Vec<ConvBlock>,
    merges: Vec<PatchEmbedding>,
    position_embedding: Tensor,
    layers: Vec<EncoderLayer>,
    post_layernorm: Norm,
    grid: usize,
}

/// Downsampling of the stem (stride-4 patches) and of each of the two merges (2×).
const STEM_PATCH: usize = 4;
const MERGE_PATCH: usize = 2;

impl ConvHybridEncoder {
    /// A tower for `image_size`-pixel images (a multiple of 16).
    pub fn new(cfg: &ConvHybridConfig, image_size: usize, vb: VarBuilder) -> Result<Self> {
        let [c1, c2] = cfg.stage_channels;
        let grid = image_size / (STEM_PATCH * MERGE_PATCH * MERGE_PATCH);
        let layers = (0..cfg.num_attention_layers)
            .map(|i| {
                let vb = vb.pp("layers").pp(i);
                EncoderLayer::new(
                    cfg.hidden_size,
                    cfg.intermediate_size,
                    cfg.num_attention_heads,
                    cfg.layer_norm_eps,
                    vb,
                )
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            stem: PatchEmbedding::new(3, c1, STEM_PATCH, vb.pp("stem"))?,
            stages: vec![ConvBlock::new(c1, vb.pp("stages").pp(0))?, ConvBlock::new(c2, vb.pp("stages").pp(1))?],
            merges: vec![
                PatchEmbedding::new(c1, c2, MERGE_PATCH, vb.pp("merges").pp(0))?,
                PatchEmbedding::new(c2, cfg.hidden_size, MERGE_PATCH, vb.pp("merges").pp(1))?,
            ],
            position_embedding: vb.get_with_hints(
                (grid * grid, cfg.hidden_size),
                "position_embedding",
                candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 },
            )?,
            layers,
            post_layernorm: Norm::new(NormKind::Layer, cfg.hidden_size, cfg.layer_norm_eps, vb.pp("post_layernorm"))?,
            grid,
        })
    }

    /// Side of the output token grid.
    pub fn grid(&self) -> usize {
        self.grid
    }

    /// Images `[n, 3, size, size]` in [0, 1] → `[n, grid², hidden]` tokens.
    pub fn forward(&self, images: &Tensor, capture: bool) -> Result<VisionOutput> {
        let mut side = images.dim(2)? / STEM_PATCH;
        let mut map = tokens_to_map(&self.stem.forward(&images.affine(2.0, -1.0)?)?, side)?;
        let mut tokens = None;
        for (stage, merge) in self.stages.iter().zip(&self.merges) {
            side /= MERGE_PATCH;
            let merged = merge.forward(&map.apply(stage)?)?;
            map = tokens_to_map(&merged, side)?;
            tokens = Some(merged);
        }
        let mut xs = ops::add_bias(&tokens.expect("two stages"), &self.position_embedding)?;
        let mut attention = Vec::new();
        for layer in &self.layers {
            let (out, weights) = layer.forward(&xs, capture)?;
            xs = out;
            attention.extend(weights);
        }
        Ok(VisionOutput { tokens: xs.apply(&self.post_layernorm)?, grid: self.grid, attention })
    }
}
