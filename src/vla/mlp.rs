//! Feed-forward blocks: plain GELU MLP (ViTs, Phi) and gated GeGLU (Gemma) / SwiGLU (Llama), the gated
//! ones with the gate and up projections fused into one matmul.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::MlpKind;
use super::linear::{Linear, linear, linear_no_bias};
use super::ops;

/// A transformer feed-forward block.
#[derive(Debug, Clone)]
pub struct Mlp {
    kind: MlpKind,
    /// `fc1` for [`MlpKind::Gelu`]; the fused `[gate; up]` projection for the gated kinds.
    fc1: Linear,
    /// Projection back to the model width.
    fc2: Linear,
}

impl Mlp {
    /// `hidden → intermediate → hidden`. Gated kinds have no biases (as Gemma and Llama).
    pub fn new(kind: MlpKind, hidden: usize, intermediate: usize, vb: VarBuilder) -> Result<Self> {
        let (fc1, fc2) = match kind {
            MlpKind::Gelu => (linear(hidden, intermediate, vb.pp("fc1"))?, linear(intermediate, hidden, vb.pp("fc2"))?),
            MlpKind::GeGlu | MlpKind::SwiGlu => (
                linear_no_bias(hidden, 2 * intermediate, vb.pp("fc1"))?,
                linear_no_bias(intermediate, hidden, vb.pp("fc2"))?,
            ),
        };
        Ok(Self { kind, fc1, fc2 })
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let hidden = xs.apply(&self.fc1)?;
        let activated = match self.kind {
            MlpKind::Gelu => ops::gelu(&hidden)?,
            MlpKind::GeGlu | MlpKind::SwiGlu => {
                let intermediate = hidden.dim(D::Minus1)? / 2;
                let gate = hidden.narrow(D::Minus1, 0, intermediate)?;
                let up = hidden.narrow(D::Minus1, intermediate, intermediate)?;
                let gate = if self.kind == MlpKind::GeGlu { ops::gelu(&gate)? } else { gate.silu()? };
                (gate * up)?
            }
        };
        activated.apply(&self.fc2)
    }
}
