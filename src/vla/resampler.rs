//! Learnable-query connectors that turn any number of patch tokens into a fixed, small number:
//! Flamingo's Perceiver resampler ([Alayrac et al. 2022](https://arxiv.org/abs/2204.14198), §2.1) and
//! Qwen-VL's single-layer query adapter ([Bai et al. 2023](https://arxiv.org/abs/2308.12966), §2.1).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::attention::{Attention, AttentionShape};
use super::config::{MlpKind, NormKind};
use super::linear::{Linear, linear};
use super::mlp::Mlp;
use super::norm::Norm;
use super::ops;

const NORM_EPS: f64 = 1e-5;

fn learned_queries(count: usize, width: usize, name: &str, vb: &VarBuilder) -> Result<Tensor> {
    vb.get_with_hints((count, width), name, candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 })
}

/// `[count, width]` → `[n, count, width]`.
fn repeat_for_batch(queries: &Tensor, n: usize) -> Result<Tensor> {
    let (count, width) = queries.dims2()?;
    queries.unsqueeze(0)?.broadcast_as((n, count, width))?.contiguous()
}

/// One resampler layer: latents attend to `[media; latents]`, then a feed-forward block.
#[derive(Debug, Clone)]
struct ResamplerLayer {
    norm_media: Norm,
    norm_latents: Norm,
    attn: Attention,
    norm_ff: Norm,
    ff: Mlp,
}

/// Flamingo's Perceiver resampler: `num_latents` learned latents, `depth` layers.
#[derive(Debug, Clone)]
pub struct PerceiverResampler {
    proj_in: Linear,
    latents: Tensor,
    layers: Vec<ResamplerLayer>,
    norm: Norm,
}

/// Resampled tokens and, when captured, per layer the latents' attention `[n, heads, latents, keys]`
/// whose first keys are the input tokens.
pub type ResampledOutput = (Tensor, Vec<Tensor>);

impl PerceiverResampler {
    /// Resamples `input_size`-wide tokens into `num_latents` tokens of `width`.
    pub fn new(
        input_size: usize,
        width: usize,
        num_latents: usize,
        depth: usize,
        num_heads: usize,
        intermediate_size: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let shape = AttentionShape { hidden_size: width, num_heads, num_kv_heads: num_heads, bias: false };
        let layers = (0..depth)
            .map(|i| {
                let vb = vb.pp("layers").pp(i);
                Ok(ResamplerLayer {
                    norm_media: Norm::new(NormKind::Layer, width, NORM_EPS, vb.pp("norm_media"))?,
                    norm_latents: Norm::new(NormKind::Layer, width, NORM_EPS, vb.pp("norm_latents"))?,
                    attn: Attention::new_cross(shape, width, vb.pp("attn"))?,
                    norm_ff: Norm::new(NormKind::Layer, width, NORM_EPS, vb.pp("norm_ff"))?,
                    ff: Mlp::new(MlpKind::Gelu, width, intermediate_size, vb.pp("ff"))?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            proj_in: linear(input_size, width, vb.pp("proj_in"))?,
            latents: learned_queries(num_latents, width, "latents", &vb)?,
            layers,
            norm: Norm::new(NormKind::Layer, width, NORM_EPS, vb.pp("norm"))?,
        })
    }

    /// `[n, tokens, input_size]` → `[n, num_latents, width]`.
    pub fn forward(&self, tokens: &Tensor, capture: bool) -> Result<ResampledOutput> {
        let media = tokens.apply(&self.proj_in)?;
        let mut latents = repeat_for_batch(&self.latents, media.dim(0)?)?;
        let mut attention = Vec::new();
        for layer in &self.layers {
            let normed_latents = latents.apply(&layer.norm_latents)?;
            // Flamingo: keys and values are the media *and* the latents themselves.
            let memory = Tensor::cat(&[&media.apply(&layer.norm_media)?, &normed_latents], 1)?;
            let (attended, weights) = layer.attn.forward(&normed_latents, Some(&memory), None, None, capture)?;
            latents = (latents + attended)?;
            latents = (&latents + latents.apply(&layer.norm_ff)?.apply(&layer.ff)?)?;
            attention.extend(weights);
        }
        Ok((latents.apply(&self.norm)?, attention))
    }
}

/// Qwen-VL's adapter: learned queries, one cross-attention layer to the patch tokens (plus learned
/// position embeddings on the keys, where Qwen-VL uses fixed 2-D sin-cos ones), then a norm.
#[derive(Debug, Clone)]
pub struct QueryAdapter {
    proj_in: Linear,
    queries: Tensor,
    key_position_embedding: Tensor,
    ln_q: Norm,
    ln_kv: Norm,
    attn: Attention,
    ln_post: Norm,
}

impl QueryAdapter {
    /// `num_queries` queries of `width` over `num_keys` tokens of `input_size`.
    pub fn new(
        input_size: usize,
        width: usize,
        num_keys: usize,
        num_queries: usize,
        num_heads: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let shape = AttentionShape { hidden_size: width, num_heads, num_kv_heads: num_heads, bias: true };
        Ok(Self {
            proj_in: linear(input_size, width, vb.pp("proj_in"))?,
            queries: learned_queries(num_queries, width, "queries", &vb)?,
            key_position_embedding: learned_queries(num_keys, width, "key_position_embedding", &vb)?,
            ln_q: Norm::new(NormKind::Layer, width, NORM_EPS, vb.pp("ln_q"))?,
            ln_kv: Norm::new(NormKind::Layer, width, NORM_EPS, vb.pp("ln_kv"))?,
            attn: Attention::new_cross(shape, width, vb.pp("attn"))?,
            ln_post: Norm::new(NormKind::Layer, width, NORM_EPS, vb.pp("ln_post"))?,
        })
    }

    /// `[n, num_keys, input_size]` → `[n, num_queries, width]`.
    pub fn forward(&self, tokens: &Tensor, capture: bool) -> Result<ResampledOutput> {
        let keys = ops::add_bias(&tokens.apply(&self.proj_in)?.apply(&self.ln_kv)?, &self.key_position_embedding)?;
        let queries = repeat_for_batch(&self.queries, keys.dim(0)?)?.apply(&self.ln_q)?;
        let (attended, weights) = self.attn.forward(&queries, Some(&keys), None, None, capture)?;
        Ok((attended.apply(&self.ln_post)?, weights.into_iter().collect()))
    }
}
