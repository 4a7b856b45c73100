//! Multi-head attention that can return its weights: self-attention with fused QKV (optionally
//! multi-query / grouped-query, optionally rotary) and cross-attention to a memory.
//!
//! candle-transformers' attention layers never return their weights; these do, as `[batch, heads,
//! queries, keys]`, for the GUI's attention maps (DESIGN.md §6).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::linear::{Linear, linear_b};
use super::ops::{self, AttentionMask, RotaryTables};

/// Shape of an attention layer.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    /// Width of the queries' stream (and of the output).
    pub hidden_size: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads; fewer than `num_heads` shares each among a group of query heads (1 = MQA).
    pub num_kv_heads: usize,
    /// Whether the projections have biases.
    pub bias: bool,
}

impl AttentionShape {
    fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }
}

/// Where keys and values come from.
#[derive(Debug, Clone)]
enum Projections {
    /// Self-attention: one `[q; k; v]` matmul.
    SelfAttention { qkv_proj: Linear },
    /// Cross-attention: queries from the stream, keys and values from a memory of `memory_size` features.
    CrossAttention { q_proj: Linear, kv_proj: Linear },
}

/// An attention layer (self or cross).
#[derive(Debug, Clone)]
pub struct Attention {
    shape: AttentionShape,
    projections: Projections,
    out_proj: Linear,
}

/// Attention output and, when asked for, its weights `[batch, heads, queries, keys]`.
pub type AttentionOutput = (Tensor, Option<Tensor>);

impl Attention {
    /// Self-attention: parameters `qkv_proj`, `out_proj`.
    pub fn new_self(shape: AttentionShape, vb: VarBuilder) -> Result<Self> {
        let qkv_size = (shape.num_heads + 2 * shape.num_kv_heads) * shape.head_dim();
        let qkv_proj = linear_b(shape.hidden_size, qkv_size, shape.bias, vb.pp("qkv_proj"))?;
        let out_proj = linear_b(shape.num_heads * shape.head_dim(), shape.hidden_size, shape.bias, vb.pp("out_proj"))?;
        Ok(Self { shape, projections: Projections::SelfAttention { qkv_proj }, out_proj })
    }

    /// Cross-attention from the stream to a memory of `memory_size` features: `q_proj`, `kv_proj`, `out_proj`.
    pub fn new_cross(shape: AttentionShape, memory_size: usize, vb: VarBuilder) -> Result<Self> {
        let head_dim = shape.head_dim();
        let q_proj = linear_b(shape.hidden_size, shape.num_heads * head_dim, shape.bias, vb.pp("q_proj"))?;
        let kv_proj = linear_b(memory_size, 2 * shape.num_kv_heads * head_dim, shape.bias, vb.pp("kv_proj"))?;
        let out_proj = linear_b(shape.num_heads * head_dim, shape.hidden_size, shape.bias, vb.pp("out_proj"))?;
        Ok(Self { shape, projections: Projections::CrossAttention { q_proj, kv_proj }, out_proj })
    }

    /// `[batch, tokens, heads · head_dim]` → `[batch, heads, tokens, head_dim]`, contiguous.
    fn split_heads(xs: &Tensor, heads: usize) -> Result<Tensor> {
        let (batch, tokens, _) = xs.dims3()?;
        xs.reshape((batch, tokens, heads, ()))?.transpose(1, 2)?.contiguous()
    }

    /// Attends `xs` (`[batch, queries, hidden]`) to itself (`memory` `None`) or to `memory`
    /// (`[batch, keys, memory_size]`). `rotary` rotates queries and keys (self-attention only).
    pub fn forward(
        &self,
        xs: &Tensor,
        memory: Option<&Tensor>,
        mask: Option<&AttentionMask>,
        rotary: Option<&RotaryTables>,
        capture: bool,
    ) -> Result<AttentionOutput> {
        let AttentionShape { num_heads, num_kv_heads, .. } = self.shape;
        let head_dim = self.shape.head_dim();
        let (batch, queries, _) = xs.dims3()?;
        let (q, k, v) = match (&self.projections, memory) {
            (Projections::SelfAttention { qkv_proj }, None) => {
                let qkv = xs.apply(qkv_proj)?;
                let q = qkv.narrow(2, 0, num_heads * head_dim)?;
                let k = qkv.narrow(2, num_heads * head_dim, num_kv_heads * head_dim)?;
                let v = qkv.narrow(2, (num_heads + num_kv_heads) * head_dim, num_kv_heads * head_dim)?;
                (q, k, v)
            }
            (Projections::CrossAttention { q_proj, kv_proj }, Some(memory)) => {
                let kv = memory.apply(kv_proj)?;
                let k = kv.narrow(2, 0, num_kv_heads * head_dim)?;
                let v = kv.narrow(2, num_kv_heads * head_dim, num_kv_heads * head_dim)?;
                (xs.apply(q_proj)?, k, v)
            }
            _ => candle_core::bail!("attention: a memory is required by cross-attention and refused by self-attention"),
        };
        let mut q = Self::split_heads(&q, num_heads)?;
        let mut k = Self::split_heads(&k, num_kv_heads)?;
        let v = Self::split_heads(&v, num_kv_heads)?;
        if let Some(tables) = rotary {
            q = ops::rotary_embedding(&q, tables)?;
            k = ops::rotary_embedding(&k, tables)?;
        }
        let keys = k.dim(2)?;
        // Grouped queries share their key/value head: viewing `[b, h, q, d]` as `[b, kv, (h / kv) · q, d]`
        // multiplies every group by its one key matrix without copying it per head.
        let group = num_heads / num_kv_heads;
        let q = q.reshape((batch, num_kv_heads, group * queries, head_dim))?;
        let scores = q.matmul(&k.t()?)?.reshape((batch, num_heads, queries, keys))?;
        let weights = ops::scaled_masked_softmax(&scores, 1.0 / (head_dim as f64).sqrt(), mask)?;
        let mixed = weights
            .reshape((batch, num_kv_heads, group * queries, keys))?
            .matmul(&v)?
            .reshape((batch, num_heads, queries, head_dim))?
            .transpose(1, 2)?
            .reshape((batch, queries, num_heads * head_dim))?;
        let out = mixed.apply(&self.out_proj)?;
        Ok((out, capture.then_some(weights)))
    }
}

impl Module for Attention {
    /// Unmasked self-attention without weights.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(Attention::forward(self, xs, None, None, None, false)?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vla::params::ParamStore;

    #[test]
    fn weights_are_distributions_that_respect_the_mask() {
        let store = ParamStore::new(1, &candle_core::Device::Cpu);
        let shape = AttentionShape { hidden_size: 16, num_heads: 4, num_kv_heads: 1, bias: false };
        let attention = Attention::new_self(shape, store.var_builder()).unwrap();
        let xs = Tensor::randn(0f32, 1.0, (2, 5, 16), &candle_core::Device::Cpu).unwrap();
        let mask = AttentionMask::from_fn(2, 5, 5, |_, q, k| k <= q);
        let rotary = RotaryTables::new(4, 8, 10_000.0).unwrap();
        let (out, weights) = attention.forward(&xs, None, Some(&mask), Some(&rotary), true).unwrap();
        assert_eq!(out.dims(), &[2, 5, 16]);
        let weights = weights.expect("weights were asked for");
        assert_eq!(weights.dims(), &[2, 4, 5, 5]);
        let sums = weights.sum(3).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5));
        let row = weights.get(0).unwrap().get(2).unwrap().get(1).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(&row[2..], &[0.0, 0.0, 0.0], "query 1 sees keys 0 and 1 only");
    }
}
