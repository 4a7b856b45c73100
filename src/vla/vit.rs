//! Vision transformers: SigLIP-style ([Zhai et al. 2023](https://arxiv.org/abs/2303.15343)) and
//! CLIP-style ([Radford et al. 2021](https://arxiv.org/abs/2103.00020)), with HF's tensor names
//! (`embeddings.patch_embedding`, `encoder.layers.N.layer_norm1`, …) except that the attention's q, k
//! and v projections are fused into `self_attn.qkv_proj` (see [`super::hf_siglip`] for the mapping).
//!
//! Departure from CLIP: GELU (tanh) instead of quick-GELU, so one fused kernel serves every tower.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::attention::{Attention, AttentionShape};
use super::config::{MlpKind, NormKind, VitConfig, VitStyle};
use super::mlp::Mlp;
use super::norm::Norm;
use super::ops;

/// A stride-`patch` convolution written as patchify + one matmul (faster on CPU than im2col), with
/// the conv's weight layout `[out, in, patch, patch]` so HF checkpoints load unchanged.
#[derive(Debug, Clone)]
pub struct PatchEmbedding {
    weight: Tensor,
    bias: Tensor,
    patch: usize,
}

impl PatchEmbedding {
    /// `in_channels` → `out_channels` with `patch × patch` non-overlapping patches.
    pub fn new(in_channels: usize, out_channels: usize, patch: usize, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(
            (out_channels, in_channels, patch, patch),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let bias = vb.get_with_hints(out_channels, "bias", candle_nn::init::ZERO)?;
        Ok(Self { weight, bias, patch })
    }

    /// `[n, c, h, w]` → `[n, (h / patch) · (w / patch), out]`, patches in row-major order.
    pub fn forward(&self, images: &Tensor) -> Result<Tensor> {
        let (n, channels, height, width) = images.dims4()?;
        let p = self.patch;
        let (rows, cols) = (height / p, width / p);
        let patches = images
            .reshape((n, channels, rows, p, cols, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .reshape((n * rows * cols, channels * p * p))?;
        let out_channels = self.weight.dim(0)?;
        let weight = self.weight.reshape((out_channels, channels * p * p))?;
        ops::add_bias(&patches.matmul(&weight.t()?)?, &self.bias)?.reshape((n, rows * cols, out_channels))
    }
}

/// A pre-norm transformer encoder layer (LayerNorm, bidirectional attention, GELU MLP).
#[derive(Debug, Clone)]
pub struct EncoderLayer {
    layer_norm1: Norm,
    self_attn: Attention,
    layer_norm2: Norm,
    mlp: Mlp,
}

impl EncoderLayer {
    /// A layer of width `hidden` with `heads` heads and an MLP of `intermediate`.
    pub fn new(hidden: usize, intermediate: usize, heads: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let shape = AttentionShape { hidden_size: hidden, num_heads: heads, num_kv_heads: heads, bias: true };
        Ok(Self {
            layer_norm1: Norm::new(NormKind::Layer, hidden, eps, vb.pp("layer_norm1"))?,
            self_attn: Attention::new_self(shape, vb.pp("self_attn"))?,
            layer_norm2: Norm::new(NormKind::Layer, hidden, eps, vb.pp("layer_norm2"))?,
            mlp: Mlp::new(MlpKind::Gelu, hidden, intermediate, vb.pp("mlp"))?,
        })
    }

    /// `[n, tokens, hidden]` → same, plus the attention weights when `capture`.
    pub fn forward(&self, xs: &Tensor, capture: bool) -> Result<(Tensor, Option<Tensor>)> {
        let (attended, weights) = self.self_attn.forward(&xs.apply(&self.layer_norm1)?, None, None, None, capture)?;
        let xs = (xs + attended)?;
        let xs = (&xs + xs.apply(&self.layer_norm2)?.apply(&self.mlp)?)?;
        Ok((xs, weights))
    }
}

/// Patch tokens of a batch of images and, when captured, each layer's attention weights.
#[derive(Debug, Clone)]
pub struct VisionOutput {
    /// `[n, rows · cols, hidden]`.
    pub tokens: Tensor,
    /// Side of the square patch grid.
    pub grid: usize,
    /// Per layer `[n, heads, tokens, tokens]` (CLIP's class token first).
    pub attention: Vec<Tensor>,
}

/// CLIP's per-channel pixel statistics.
const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// A SigLIP- or CLIP-style ViT for square images of one size.
#[derive(Debug, Clone)]
pub struct VisionTransformer {
    style: VitStyle,
    patch_embedding: PatchEmbedding,
    position_embedding: Tensor,
    class_embedding: Option<Tensor>,
    pre_layrnorm: Option<Norm>,
    layers: Vec<EncoderLayer>,
    post_layernorm: Option<Norm>,
    grid: usize,
}

impl VisionTransformer {
    /// A tower for `image_size`-pixel images; `vb` is the tower's root (`embeddings`, `encoder`, …).
    pub fn new(cfg: &VitConfig, image_size: usize, vb: VarBuilder) -> Result<Self> {
        let hidden = cfg.hidden_size;
        let grid = image_size / cfg.patch_size;
        let clip = cfg.style == VitStyle::Clip;
        let embeddings = vb.pp("embeddings");
        let positions = grid * grid + usize::from(clip);
        let small_normal = candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let vb = vb.pp("encoder").pp("layers").pp(i);
                EncoderLayer::new(hidden, cfg.intermediate_size, cfg.num_attention_heads, cfg.layer_norm_eps, vb)
            })
            .collect::<Result<_>>()?;
        let norm = |name: &str| Norm::new(NormKind::Layer, hidden, cfg.layer_norm_eps, vb.pp(name));
        Ok(Self {
            style: cfg.style,
            patch_embedding: PatchEmbedding::new(3, hidden, cfg.patch_size, embeddings.pp("patch_embedding"))?,
            position_embedding: embeddings.pp("position_embedding").get_with_hints(
                (positions, hidden),
                "weight",
                small_normal,
            )?,
            class_embedding: clip
                .then(|| embeddings.get_with_hints(hidden, "class_embedding", small_normal))
                .transpose()?,
            pre_layrnorm: clip.then(|| norm("pre_layrnorm")).transpose()?,
            layers,
            post_layernorm: (!clip).then(|| norm("post_layernorm")).transpose()?,
            grid,
        })
    }

    /// Side of the patch grid.
    pub fn grid(&self) -> usize {
        self.grid
    }

    /// Images `[n, 3, size, size]` with values in [0, 1] → patch tokens.
    pub fn forward(&self, images: &Tensor, capture: bool) -> Result<VisionOutput> {
        let device = images.device();
        let pixels = match self.style {
            VitStyle::Siglip => images.affine(2.0, -1.0)?,
            VitStyle::Clip => {
                let mean = Tensor::from_slice(&CLIP_MEAN, (1, 3, 1, 1), device)?;
                let inverse_std = Tensor::from_slice(&CLIP_STD.map(|s| 1.0 / s), (1, 3, 1, 1), device)?;
                images.broadcast_sub(&mean)?.broadcast_mul(&inverse_std)?
            }
        };
        let mut xs = self.patch_embedding.forward(&pixels)?;
        if let Some(class) = &self.class_embedding {
            let n = xs.dim(0)?;
            let class = class.reshape((1, 1, ()))?.broadcast_as((n, 1, class.dim(0)?))?;
            xs = Tensor::cat(&[&class, &xs], 1)?;
        }
        xs = ops::add_bias(&xs, &self.position_embedding)?;
        if let Some(norm) = &self.pre_layrnorm {
            xs = xs.apply(norm)?;
        }
        let mut attention = Vec::new();
        for layer in &self.layers {
            let (out, weights) = layer.forward(&xs, capture)?;
            xs = out;
            attention.extend(weights);
        }
        let tokens = match &self.post_layernorm {
            Some(norm) => xs.apply(norm)?,
            None => xs.narrow(1, 1, self.grid * self.grid)?,
        };
        Ok(VisionOutput { tokens, grid: self.grid, attention })
    }
}

/// `[n, grid², c]` → `[n, (grid / f)², f² · c]`: each `f × f` block of neighbouring tokens becomes one
/// token (pixel-unshuffle / space-to-depth on the token grid), cutting the token count by `f²`.
pub fn pixel_unshuffle(tokens: &Tensor, grid: usize, factor: usize) -> Result<Tensor> {
    if factor == 1 {
        return Ok(tokens.clone());
    }
    let (n, _, channels) = tokens.dims3()?;
    let coarse = grid / factor;
    tokens.reshape((n, coarse, factor, coarse, factor, channels))?.permute((0, 1, 3, 2, 4, 5))?.reshape((
        n,
        coarse * coarse,
        factor * factor * channels,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_unshuffle_groups_neighbouring_tokens() {
        // A 4×4 grid of tokens whose single feature is the token's index.
        let tokens = Tensor::arange(0f32, 16.0, &candle_core::Device::Cpu).unwrap().reshape((1, 16, 1)).unwrap();
        let out = pixel_unshuffle(&tokens, 4, 2).unwrap();
        assert_eq!(out.dims(), &[1, 4, 4]);
        let first = out.get(0).unwrap().get(0).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(first, vec![0.0, 1.0, 4.0, 5.0], "the top-left 2×2 block");
        let last = out.get(0).unwrap().get(3).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(last, vec![10.0, 11.0, 14.0, 15.0], "the bottom-right 2×2 block");
    }
}
