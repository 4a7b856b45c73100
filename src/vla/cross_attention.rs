//! Flamingo's gated cross-attention dense layer ([Alayrac et al. 2022](https://arxiv.org/abs/2204.14198),
//! §2.2): text tokens attend to the resampled image tokens, and both the attention and the
//! feed-forward outputs pass through `tanh(gate)` with the gates initialised at 0, so the layer starts
//! as the identity and the language model's behaviour is unchanged at the start of training.
//!
//! NOTE: with the gates at exactly 0, the first backward pass gives gradients to the gates only;
//! everything feeding the layer (resampler, vision tower) gets its first gradient once the gates move.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::attention::{Attention, AttentionShape};
use super::config::{MlpKind, NormKind};
use super::mlp::Mlp;
use super::norm::Norm;
use super::ops::AttentionMask;

/// A gated cross-attention + feed-forward layer inserted before a decoder layer.
#[derive(Debug, Clone)]
pub struct GatedCrossAttention {
    norm_attn: Norm,
    attn: Attention,
    attn_gate: Tensor,
    norm_ff: Norm,
    ff: Mlp,
    ff_gate: Tensor,
}

impl GatedCrossAttention {
    /// A layer of width `hidden` (the image tokens have the same width).
    pub fn new(hidden: usize, intermediate: usize, heads: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let shape = AttentionShape { hidden_size: hidden, num_heads: heads, num_kv_heads: heads, bias: false };
        let zero = candle_nn::init::ZERO;
        Ok(Self {
            norm_attn: Norm::new(NormKind::Layer, hidden, eps, vb.pp("norm_attn"))?,
            attn: Attention::new_cross(shape, hidden, vb.pp("attn"))?,
            attn_gate: vb.get_with_hints(1, "attn_gate", zero)?,
            norm_ff: Norm::new(NormKind::Layer, hidden, eps, vb.pp("norm_ff"))?,
            ff: Mlp::new(MlpKind::Gelu, hidden, intermediate, vb.pp("ff"))?,
            ff_gate: vb.get_with_hints(1, "ff_gate", zero)?,
        })
    }

    /// `xs` `[n, s, hidden]` attends to `media` `[n, m, hidden]` where `mask` allows.
    pub fn forward(
        &self,
        xs: &Tensor,
        media: &Tensor,
        mask: &AttentionMask,
        capture: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (attended, weights) =
            self.attn.forward(&xs.apply(&self.norm_attn)?, Some(media), Some(mask), None, capture)?;
        let xs = (xs + attended.broadcast_mul(&self.attn_gate.tanh()?)?)?;
        let fed = xs.apply(&self.norm_ff)?.apply(&self.ff)?.broadcast_mul(&self.ff_gate.tanh()?)?;
        Ok(((xs + fed)?, weights))
    }
}
