//! LayerNorm and RMSNorm modules over the fused, differentiable kernels of [`super::ops`].

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::NormKind;
use super::ops;

/// A LayerNorm (`weight`, `bias`) or RMSNorm (`weight`) over the last dimension.
#[derive(Debug, Clone)]
pub struct Norm {
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f64,
}

impl Norm {
    /// A norm of `size` features, initialised to the identity (weight 1, bias 0).
    pub fn new(kind: NormKind, size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(size, "weight", candle_nn::init::ONE)?;
        let bias = match kind {
            NormKind::Layer => Some(vb.get_with_hints(size, "bias", candle_nn::init::ZERO)?),
            NormKind::Rms => None,
        };
        Ok(Self { weight, bias, eps })
    }
}

impl Module for Norm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match &self.bias {
            Some(bias) => ops::layer_norm(xs, &self.weight, bias, self.eps),
            None => ops::rms_norm(xs, &self.weight, self.eps),
        }
    }
}
