//! The decoder-only language models, as one configurable implementation: Gemma-style (RMSNorm, GeGLU,
//! RoPE, multi-query attention; [Gemma Team 2024](https://arxiv.org/abs/2403.08295)), Llama-style
//! (RMSNorm, SwiGLU, RoPE, multi-head; [Touvron et al. 2023](https://arxiv.org/abs/2302.13971)) and
//! Phi-style (LayerNorm, GELU MLP in parallel with attention; [Li et al. 2023](https://arxiv.org/abs/2309.05463)),
//! with optional Flamingo gated cross-attention layers. The mask (causal or prefix-LM) comes from the
//! caller, who knows which tokens form the prefix.

use candle_core::{D, Result, Tensor};
use candle_nn::{Embedding, VarBuilder, embedding};

use super::attention::{Attention, AttentionShape};
use super::config::{BlockKind, DecoderConfig, NormKind};
use super::cross_attention::GatedCrossAttention;
use super::mlp::Mlp;
use super::norm::Norm;
use super::ops::{AttentionMask, RotaryTables};

/// One decoder layer, sequential or parallel.
#[derive(Debug, Clone)]
pub struct DecoderLayer {
    input_layernorm: Norm,
    self_attn: Attention,
    /// `None` in a parallel (Phi) layer, where attention and MLP share `input_layernorm`.
    post_attention_layernorm: Option<Norm>,
    mlp: Mlp,
}

impl DecoderLayer {
    /// A layer as `cfg` describes.
    pub fn new(cfg: &DecoderConfig, vb: VarBuilder) -> Result<Self> {
        let shape = AttentionShape {
            hidden_size: cfg.hidden_size,
            num_heads: cfg.num_heads,
            num_kv_heads: cfg.num_kv_heads,
            // Phi's projections have biases; Gemma's and Llama's do not.
            bias: cfg.norm == NormKind::Layer,
        };
        let norm = |name: &str| Norm::new(cfg.norm, cfg.hidden_size, cfg.norm_eps, vb.pp(name));
        Ok(Self {
            input_layernorm: norm("input_layernorm")?,
            self_attn: Attention::new_self(shape, vb.pp("self_attn"))?,
            post_attention_layernorm: (cfg.block == BlockKind::Sequential)
                .then(|| norm("post_attention_layernorm"))
                .transpose()?,
            mlp: Mlp::new(cfg.mlp, cfg.hidden_size, cfg.intermediate_size, vb.pp("mlp"))?,
        })
    }

    /// `[n, s, hidden]` → same, with the self-attention weights when `capture`.
    pub fn forward(
        &self,
        xs: &Tensor,
        mask: &AttentionMask,
        rotary: &RotaryTables,
        capture: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let normed = xs.apply(&self.input_layernorm)?;
        let (attended, weights) = self.self_attn.forward(&normed, None, Some(mask), Some(rotary), capture)?;
        let xs = match &self.post_attention_layernorm {
            Some(norm) => {
                let xs = (xs + attended)?;
                (&xs + xs.apply(norm)?.apply(&self.mlp)?)?
            }
            None => ((xs + attended)? + normed.apply(&self.mlp)?)?,
        };
        Ok((xs, weights))
    }
}

/// Image tokens for Flamingo's cross-attention and which of them each sequence position may see.
#[derive(Debug, Clone, Copy)]
pub struct CrossAttentionMedia<'a> {
    /// `[n, m, hidden]`.
    pub tokens: &'a Tensor,
    /// `[n, s, m]`.
    pub mask: &'a AttentionMask,
}

/// Hidden states and, when captured, per layer the self-attention `[n, heads, s, s]` and the gated
/// cross-attention `[n, heads, s, m]` weights.
#[derive(Debug, Clone)]
pub struct DecoderOutput {
    /// Final-normed hidden states `[n, s, hidden]`.
    pub hidden: Tensor,
    /// Self-attention weights, one per layer.
    pub self_attention: Vec<Tensor>,
    /// Cross-attention weights, one per gated layer.
    pub cross_attention: Vec<Tensor>,
}

/// A decoder-only language model with its token embedding.
#[derive(Debug, Clone)]
pub struct Decoder {
    embed_tokens: Embedding,
    embedding_scale: f64,
    layers: Vec<DecoderLayer>,
    /// Before layer `i`, Flamingo's gated cross-attention when `cross_attention_every` divides `i`.
    cross_layers: Vec<Option<GatedCrossAttention>>,
    norm: Norm,
    rotary: RotaryTables,
}

impl Decoder {
    /// A language model over `vocab_size` tokens and sequences of up to `max_positions`.
    pub fn new(cfg: &DecoderConfig, vocab_size: usize, max_positions: usize, vb: VarBuilder) -> Result<Self> {
        let layers =
            (0..cfg.num_layers).map(|i| DecoderLayer::new(cfg, vb.pp("layers").pp(i))).collect::<Result<_>>()?;
        let cross_layers = (0..cfg.num_layers)
            .map(|i| match cfg.cross_attention_every {
                Some(every) if i % every == 0 => {
                    let vb = vb.pp("cross_layers").pp(i);
                    GatedCrossAttention::new(cfg.hidden_size, cfg.intermediate_size, cfg.num_heads, cfg.norm_eps, vb)
                        .map(Some)
                }
                _ => Ok(None),
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            embed_tokens: embedding(vocab_size, cfg.hidden_size, vb.pp("embed_tokens"))?,
            embedding_scale: if cfg.scale_embeddings { (cfg.hidden_size as f64).sqrt() } else { 1.0 },
            layers,
            cross_layers,
            norm: Norm::new(cfg.norm, cfg.hidden_size, cfg.norm_eps, vb.pp("norm"))?,
            rotary: RotaryTables::new(cfg.hidden_size / cfg.num_heads, max_positions, cfg.rope_theta)?,
        })
    }

    /// Token ids `[n, l]` → embeddings `[n, l, hidden]` (scaled by `sqrt(hidden)` for Gemma).
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let embeddings = ids.apply(&self.embed_tokens)?;
        if self.embedding_scale == 1.0 { Ok(embeddings) } else { embeddings * self.embedding_scale }
    }

    /// Hidden states `[n, s, hidden]` → logits over the vocabulary `[n, s, vocab]`, through the
    /// token embedding (a tied LM head, as Gemma and PaliGemma use), scaled by `1/sqrt(hidden)` as
    /// T5 does: the embeddings start at unit variance, which would make the first logits huge.
    pub fn tied_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let width = hidden.dim(D::Minus1)? as f64;
        hidden.broadcast_matmul(&self.embed_tokens.embeddings().t()?)? / width.sqrt()
    }

    /// Runs the layers over `embeddings` `[n, s, hidden]` (positions 0..s).
    pub fn forward(
        &self,
        embeddings: &Tensor,
        mask: &AttentionMask,
        media: Option<CrossAttentionMedia>,
        capture: bool,
    ) -> Result<DecoderOutput> {
        let mut xs = embeddings.clone();
        let mut self_attention = Vec::new();
        let mut cross_attention = Vec::new();
        for (layer, cross) in self.layers.iter().zip(&self.cross_layers) {
            if let (Some(cross), Some(media)) = (cross, media) {
                let (out, weights) = cross.forward(&xs, media.tokens, media.mask, capture)?;
                xs = out;
                cross_attention.extend(weights);
            }
            let (out, weights) = layer.forward(&xs, mask, &self.rotary, capture)?;
            xs = out;
            self_attention.extend(weights);
        }
        Ok(DecoderOutput { hidden: xs.apply(&self.norm)?, self_attention, cross_attention })
    }
}
