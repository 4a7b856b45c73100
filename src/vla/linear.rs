//! candle_nn's linear layer with its bias added by [`ops::add_bias`]: the same parameters, names and
//! initialisation, and the same values, but the bias gradient is a sum of rows instead of candle's
//! element-at-a-time broadcast reduction, which took 15–19 % of a training step's CPU time (BENCHMARKS.md).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::ops;

/// `xs · weightᵀ (+ bias)` over the last dimension.
#[derive(Debug, Clone)]
pub struct Linear {
    product: candle_nn::Linear,
    bias: Option<Tensor>,
}

impl Linear {
    /// A layer from a `[out, in]` weight and an optional `[out]` bias.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { product: candle_nn::Linear::new(weight, None), bias }
    }

    fn from_candle(layer: candle_nn::Linear) -> Self {
        Self::new(layer.weight().clone(), layer.bias().cloned())
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let product = xs.apply(&self.product)?;
        match &self.bias {
            Some(bias) => ops::add_bias(&product, bias),
            None => Ok(product),
        }
    }
}

/// `in_dim → out_dim` with a bias (`weight`, `bias`), initialised as `candle_nn::linear`.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    candle_nn::linear(in_dim, out_dim, vb).map(Linear::from_candle)
}

/// `in_dim → out_dim` without a bias (`weight`).
pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    candle_nn::linear_no_bias(in_dim, out_dim, vb).map(Linear::from_candle)
}

/// `in_dim → out_dim`, with a bias if `bias`.
pub fn linear_b(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    candle_nn::linear_b(in_dim, out_dim, bias, vb).map(Linear::from_candle)
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Var};
    use candle_nn::VarMap;

    use super::*;

    #[test]
    fn it_computes_what_candles_linear_does_and_trains_weight_and_bias() {
        let params = VarMap::new();
        let vb = VarBuilder::from_varmap(&params, DType::F32, &Device::Cpu);
        let layer = linear(4, 3, vb.pp("proj")).unwrap();
        let reference = candle_nn::Linear::new(layer.product.weight().clone(), layer.bias.clone());
        let xs =
            Var::from_tensor(&Tensor::arange(0f32, 24.0, &Device::Cpu).unwrap().reshape((2, 3, 4)).unwrap()).unwrap();
        let ours = xs.apply(&layer).unwrap();
        let theirs = xs.apply(&reference).unwrap();
        assert_eq!(ours.to_vec3::<f32>().unwrap(), theirs.to_vec3::<f32>().unwrap(), "the same values");

        let grads = ours.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let reference_grads = theirs.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let mut names: Vec<_> = params.data().lock().unwrap().keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["proj.bias", "proj.weight"], "candle_nn's names");
        for (name, var) in params.data().lock().unwrap().iter() {
            let ours = grads.get(var).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let theirs = reference_grads.get(var).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for (a, b) in ours.iter().zip(&theirs) {
                assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{name}: {a} against {b}");
            }
        }
        let input_grad = grads.get(&xs).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let reference_input_grad = reference_grads.get(&xs).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(input_grad, reference_input_grad, "the input's gradient");
    }
}
