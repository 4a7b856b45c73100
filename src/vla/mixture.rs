//! A mixture-of-Gaussians arm output (robomimic's GMM policy head): for every predicted step,
//! `components` diagonal Gaussians over the 6 arm values and their weights. Trained by negative
//! log-likelihood; the arm executes the likeliest component's mean, so an image from which the
//! demonstrations go two ways (rising from a push or coming down onto a block) yields one of them
//! rather than their average.

use candle_core::{D, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear};

use super::heads::ARM_DIMS;

/// log σ = `LOG_SCALE_CENTRE + LOG_SCALE_SPAN · tanh(raw)`: σ between e⁻⁵ ≈ 0.007 (0.1 mm of a
/// 2 cm action unit) and 1 (the whole action range), starting at e^-2.5 ≈ 0.08.
const LOG_SCALE_CENTRE: f64 = -2.5;
const LOG_SCALE_SPAN: f64 = 2.5;

/// The layers that turn the head's hidden state into a mixture per step.
#[derive(Debug, Clone)]
pub struct MixtureOutput {
    means: Linear,
    log_scales: Linear,
    weights: Linear,
    chunk: usize,
    components: usize,
}

/// The mixtures predicted after each predicting frame.
#[derive(Debug, Clone)]
pub struct ArmMixture {
    /// `[b, frames, chunk, components, 6]` in (-1, 1).
    pub means: Tensor,
    /// `[b, frames, chunk, components, 6]`, log σ.
    pub log_scales: Tensor,
    /// `[b, frames, chunk, components]`, log-weights summing (in probability) to 1 per step.
    pub log_weights: Tensor,
}

impl MixtureOutput {
    /// Layers from a `hidden`-wide state to `components` Gaussians for each of `chunk` steps.
    pub fn new(hidden: usize, chunk: usize, components: usize, vb: VarBuilder) -> Result<Self> {
        let values = chunk * components * ARM_DIMS;
        Ok(Self {
            means: linear(hidden, values, vb.pp("arm"))?,
            log_scales: linear(hidden, values, vb.pp("arm_log_scale"))?,
            weights: linear(hidden, chunk * components, vb.pp("arm_weight"))?,
            chunk,
            components,
        })
    }

    /// `[b, frames, hidden]` → the mixture of every step after every frame.
    pub fn forward(&self, hidden: &Tensor) -> Result<ArmMixture> {
        let (batch, frames, _) = hidden.dims3()?;
        let shape = (batch, frames, self.chunk, self.components, ARM_DIMS);
        let means = hidden.apply(&self.means)?.tanh()?.reshape(shape)?;
        let log_scales =
            hidden.apply(&self.log_scales)?.tanh()?.affine(LOG_SCALE_SPAN, LOG_SCALE_CENTRE)?.reshape(shape)?;
        let weights = hidden.apply(&self.weights)?.reshape((batch, frames, self.chunk, self.components))?;
        let log_weights = candle_nn::ops::log_softmax(&weights, D::Minus1)?;
        Ok(ArmMixture { means, log_scales, log_weights })
    }
}

impl ArmMixture {
    /// The mean of each step's likeliest component, `[b, frames, chunk, 6]`: what the arm executes.
    pub fn likeliest_means(&self) -> Result<Tensor> {
        let (batch, frames, chunk, _, dims) = self.means.dims5()?;
        let likeliest = self.log_weights.argmax_keepdim(D::Minus1)?.unsqueeze(D::Minus1)?;
        let index = likeliest.broadcast_as((batch, frames, chunk, 1, dims))?.contiguous()?;
        self.means.contiguous()?.gather(&index, 3)?.squeeze(3)
    }

    /// −log p(`target`) per step, divided by the 6 arm dimensions so that it weighs against the
    /// gripper and scene-state losses as a per-value error does: `target` `[b, frames, chunk, 6]`
    /// → `[b, frames, chunk]`.
    pub fn negative_log_likelihood(&self, target: &Tensor) -> Result<Tensor> {
        let standardized = self.means.broadcast_sub(&target.unsqueeze(3)?)?.mul(&self.log_scales.neg()?.exp()?)?;
        let half_log_two_pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        let log_densities = ((standardized.sqr()? * -0.5)? - &self.log_scales)?.affine(1.0, -half_log_two_pi)?;
        let joint = (log_densities.sum(D::Minus1)? + &self.log_weights)?;
        log_sum_exp(&joint)?.affine(-1.0 / ARM_DIMS as f64, 0.0)
    }
}

/// `log Σ exp(x)` over the last dimension, shifted by the (constant) maximum for stability.
fn log_sum_exp(xs: &Tensor) -> Result<Tensor> {
    let max = xs.max_keepdim(D::Minus1)?.detach();
    (xs.broadcast_sub(&max)?.exp()?.sum_keepdim(D::Minus1)?.log()? + max)?.squeeze(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn mixture(means: &[f32], log_scales: &[f32], weights: &[f32]) -> ArmMixture {
        let components = weights.len();
        let shape = (1, 1, 1, components, ARM_DIMS);
        let device = Device::Cpu;
        let weights = Tensor::from_slice(weights, (1, 1, 1, components), &device).unwrap();
        ArmMixture {
            means: Tensor::from_slice(means, shape, &device).unwrap(),
            log_scales: Tensor::from_slice(log_scales, shape, &device).unwrap(),
            log_weights: candle_nn::ops::log_softmax(&weights, D::Minus1).unwrap(),
        }
    }

    #[test]
    fn one_unit_gaussian_gives_the_textbook_log_likelihood() {
        let one = mixture(&[0.0; ARM_DIMS], &[0.0; ARM_DIMS], &[0.0]);
        let target = Tensor::from_slice(&[1f32; ARM_DIMS], (1, 1, 1, ARM_DIMS), &Device::Cpu).unwrap();
        let nll = one.negative_log_likelihood(&target).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Per dimension: ½·1² + ½·ln 2π.
        let expected = 0.5 + 0.5 * (2.0 * std::f32::consts::PI).ln();
        assert!((nll[0] - expected).abs() < 1e-5, "{nll:?} against {expected}");
    }

    #[test]
    fn the_likeliest_component_is_executed_and_explains_its_targets_best() {
        let mut means = vec![0.5f32; ARM_DIMS];
        means.extend([-0.5f32; ARM_DIMS]);
        let two = mixture(&means, &[-2.0; 2 * ARM_DIMS], &[0.0, 1.0]);
        let executed = two.likeliest_means().unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(executed, vec![-0.5; ARM_DIMS], "the second component weighs more");
        let nll = |value: f32| {
            let target = Tensor::from_slice(&[value; ARM_DIMS], (1, 1, 1, ARM_DIMS), &Device::Cpu).unwrap();
            two.negative_log_likelihood(&target).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()[0]
        };
        assert!(nll(-0.5) < nll(0.5) && nll(0.5) < nll(0.0), "both modes beat the point between them");
    }
}
