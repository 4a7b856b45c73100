//! Connectors from patch features to language-model tokens: per-token linear (PaliGemma) and
//! two-layer MLP (LLaVA) projectors, or the learnable-query connectors of [`super::resampler`].

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::config::ConnectorConfig;
use super::linear::{Linear, linear};
use super::ops;
use super::resampler::{PerceiverResampler, QueryAdapter, ResampledOutput};

/// Any of the connectors.
#[derive(Debug, Clone)]
pub enum Connector {
    /// One linear layer per token.
    Linear(Linear),
    /// `fc2(gelu(fc1(x)))` per token.
    Mlp {
        /// First layer.
        fc1: Linear,
        /// Second layer.
        fc2: Linear,
    },
    /// Flamingo's resampler.
    Resampler(PerceiverResampler),
    /// Qwen-VL's adapter.
    QueryAdapter(QueryAdapter),
}

impl Connector {
    /// A connector from `num_inputs` tokens of `input_size` to tokens of `width`.
    pub fn new(
        cfg: &ConnectorConfig,
        input_size: usize,
        num_inputs: usize,
        width: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(match *cfg {
            ConnectorConfig::Linear => Self::Linear(linear(input_size, width, vb.pp("proj"))?),
            ConnectorConfig::Mlp { hidden_size } => Self::Mlp {
                fc1: linear(input_size, hidden_size, vb.pp("fc1"))?,
                fc2: linear(hidden_size, width, vb.pp("fc2"))?,
            },
            ConnectorConfig::PerceiverResampler { num_latents, depth, num_heads, intermediate_size } => {
                Self::Resampler(PerceiverResampler::new(
                    input_size,
                    width,
                    num_latents,
                    depth,
                    num_heads,
                    intermediate_size,
                    vb,
                )?)
            }
            ConnectorConfig::QueryAdapter { num_queries, num_heads } => {
                Self::QueryAdapter(QueryAdapter::new(input_size, width, num_inputs, num_queries, num_heads, vb)?)
            }
        })
    }

    /// Tokens out per frame, given `num_inputs` tokens in.
    pub fn output_tokens(cfg: &ConnectorConfig, num_inputs: usize) -> usize {
        match *cfg {
            ConnectorConfig::Linear | ConnectorConfig::Mlp { .. } => num_inputs,
            ConnectorConfig::PerceiverResampler { num_latents, .. } => num_latents,
            ConnectorConfig::QueryAdapter { num_queries, .. } => num_queries,
        }
    }

    /// `[n, tokens, input_size]` → `[n, output_tokens, width]`, with the learned queries' attention
    /// weights when captured (empty for the per-token projectors).
    pub fn forward(&self, tokens: &Tensor, capture: bool) -> Result<ResampledOutput> {
        match self {
            Self::Linear(proj) => Ok((tokens.apply(proj)?, Vec::new())),
            Self::Mlp { fc1, fc2 } => Ok((ops::gelu(&tokens.apply(fc1)?)?.apply(fc2)?, Vec::new())),
            Self::Resampler(resampler) => resampler.forward(tokens, capture),
            Self::QueryAdapter(adapter) => adapter.forward(tokens, capture),
        }
    }
}
