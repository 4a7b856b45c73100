//! A mixture arm output (multiple-hypothesis regression with a learnt choice): for every predicted
//! step, `components` candidate arm actions and their weights. The arm executes the likeliest
//! candidate, so an image from which the demonstrations go two ways (rising from a push or coming
//! down onto a block) yields one of them rather than their average.
//!
//! The components are Gaussians of one fixed scale, not learnt per value as robomimic's GMM head
//! learns them: trained by likelihood, such a head made the rotations (nearly always 0) sharp and
//! gave x and y a scale near the whole action range, where the gradient on their means is divided
//! by the variance, so it never learnt where to go (Avg. Len. 0.002; see BENCHMARKS.md).

use candle_core::{D, Result, Tensor};
use candle_nn::VarBuilder;

use super::heads::ARM_DIMS;
use super::linear::{Linear, linear};

/// Every component's standard deviation per arm value, in action units (1 = the largest step):
/// demonstrations closer than this to a candidate share it, farther ones pull another.
const COMPONENT_SCALE: f64 = 0.1;

/// The layers that turn the head's hidden state into a mixture per step.
#[derive(Debug, Clone)]
pub struct MixtureOutput {
    means: Linear,
    weights: Linear,
    chunk: usize,
    components: usize,
}

/// The mixtures predicted after each predicting frame.
#[derive(Debug, Clone)]
pub struct ArmMixture {
    /// `[b, frames, chunk, components, 6]` in (-1, 1).
    pub means: Tensor,
    /// `[b, frames, chunk, components]`, log-weights summing (in probability) to 1 per step.
    pub log_weights: Tensor,
}

impl MixtureOutput {
    /// Layers from a `hidden`-wide state to `components` candidates for each of `chunk` steps.
    pub fn new(hidden: usize, chunk: usize, components: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            means: linear(hidden, chunk * components * ARM_DIMS, vb.pp("arm"))?,
            weights: linear(hidden, chunk * components, vb.pp("arm_weight"))?,
            chunk,
            components,
        })
    }

    /// `[b, frames, hidden]` → the mixture of every step after every frame.
    pub fn forward(&self, hidden: &Tensor) -> Result<ArmMixture> {
        let (batch, frames, _) = hidden.dims3()?;
        let means =
            hidden.apply(&self.means)?.tanh()?.reshape((batch, frames, self.chunk, self.components, ARM_DIMS))?;
        let weights = hidden.apply(&self.weights)?.reshape((batch, frames, self.chunk, self.components))?;
        let log_weights = candle_nn::ops::log_softmax(&weights, D::Minus1)?;
        Ok(ArmMixture { means, log_weights })
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

    /// The loss per step for `target` `[b, frames, chunk, 6]` → `[b, frames, chunk]`. Its
    /// gradient is the mixture's negative log-likelihood's, rescaled in two parts so that each
    /// weighs against the gripper and scene-state losses as the point head's error does: for the
    /// means, the variance times the likelihood's (with one component, half the squared error per
    /// value, as the point head's Huber loss below δ); for the weights, the likelihood's own (a
    /// cross-entropy towards each component's share of explaining `target`).
    pub fn loss(&self, target: &Tensor) -> Result<Tensor> {
        let variance = COMPONENT_SCALE * COMPONENT_SCALE;
        let log_densities =
            self.means.broadcast_sub(&target.unsqueeze(3)?)?.sqr()?.sum(D::Minus1)?.affine(-0.5 / variance, 0.0)?;
        let log_joint = |log_weights: &Tensor| &log_densities + log_weights;
        let means_loss =
            log_sum_exp(&log_joint(&self.log_weights.detach())?)?.affine(-variance / ARM_DIMS as f64, 0.0)?;
        let responsibilities = candle_nn::ops::softmax_last_dim(&log_joint(&self.log_weights)?.detach())?;
        let weights_loss = (responsibilities * &self.log_weights)?.sum(D::Minus1)?.neg()?;
        means_loss + weights_loss
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
    use candle_core::{DType, Device, IndexOp, Var};

    fn arm(values: &[f32], samples: usize) -> Tensor {
        let rows: Vec<f32> = values.iter().flat_map(|&v| [v; ARM_DIMS]).collect();
        Tensor::from_slice(&rows, (samples, 1, 1, ARM_DIMS), &Device::Cpu).unwrap()
    }

    #[test]
    fn one_component_is_half_the_squared_error() {
        let one = ArmMixture {
            means: arm(&[0.0], 1).unsqueeze(3).unwrap(),
            log_weights: Tensor::zeros((1, 1, 1, 1), DType::F32, &Device::Cpu).unwrap(),
        };
        let loss = one.loss(&arm(&[0.4], 1)).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!((loss[0] - 0.5 * 0.4 * 0.4).abs() < 1e-6, "{loss:?}");
    }

    /// Three demonstrations go to +0.5, one to −0.5 from the same input: two components learn
    /// both ways and their shares, and the arm executes the commoner way, where a point head
    /// would learn their average, 0.25.
    #[test]
    fn two_components_learn_both_ways_and_their_shares() {
        let samples = 4;
        let targets = arm(&[0.5, 0.5, 0.5, -0.5], samples);
        let means = Var::from_tensor(&arm(&[0.1, -0.1], 2).reshape((1, 1, 1, 2, ARM_DIMS)).unwrap()).unwrap();
        let logits = Var::zeros((1, 1, 1, 2), DType::F32, &Device::Cpu).unwrap();
        let mixture = || ArmMixture {
            means: means.broadcast_as((samples, 1, 1, 2, ARM_DIMS)).unwrap(),
            log_weights: candle_nn::ops::log_softmax(&logits.broadcast_as((samples, 1, 1, 2)).unwrap(), D::Minus1)
                .unwrap(),
        };
        for _ in 0..400 {
            let grads = mixture().loss(&targets).unwrap().mean_all().unwrap().backward().unwrap();
            for var in [&means, &logits] {
                var.set(&(var.as_tensor() - grads.get(var).unwrap()).unwrap()).unwrap();
            }
        }
        let learnt = means.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(learnt[..ARM_DIMS].iter().all(|m| (m - 0.5).abs() < 0.01), "{learnt:?}");
        assert!(learnt[ARM_DIMS..].iter().all(|m| (m + 0.5).abs() < 0.01), "{learnt:?}");
        let shares =
            mixture().log_weights.exp().unwrap().i(0).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!((shares[0] - 0.75).abs() < 0.02 && (shares[1] - 0.25).abs() < 0.02, "{shares:?}");
        let executed =
            mixture().likeliest_means().unwrap().i(0).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(executed.iter().all(|m| (m - 0.5).abs() < 0.01), "{executed:?}");
    }
}
