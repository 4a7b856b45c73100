//! AdamW with decoupled weight decay and global-norm gradient clipping, written out by hand:
//! candle has no gradient clipping, and an optimiser whose moments are plain `f32` buffers can be
//! saved with a checkpoint and resumed exactly. The update runs as one fused pass over each
//! parameter on the CPU, instead of the dozen element-wise tensor ops (each a full pass, DESIGN.md
//! §2.10) it would take in candle; a model on a GPU sends its parameters and gradients over and back
//! each step (a few MB for the zoo's sizes).
//!
//! It can also keep an exponential moving average of the weights (Polyak averaging, as in
//! Diffusion Policy's and timm's "EMA" models): the last steps' weights averaged, so that the
//! noise of each step's small batch leaves the weights a checkpoint saves.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var, backprop::GradStore};
use serde::{Deserialize, Serialize};

/// AdamW's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay, applied to matrices only (not to biases, norm gains or embeddings
    /// of one dimension), as is usual for transformers.
    pub weight_decay: f64,
    /// Keep an exponential moving average of the weights with this decay (none: no average).
    pub ema_decay: Option<f64>,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, ema_decay: None }
    }
}

/// The decay of the weights' average after `steps` steps: `decay`, but less while few steps
/// have been averaged (timm's and Diffusion Policy's warm-up), so that the initial weights fade
/// quickly.
fn ema_decay_after(decay: f64, steps: u64) -> f32 {
    decay.min((1.0 + steps as f64) / (10.0 + steps as f64)) as f32
}

/// One trained parameter with its moments.
struct Slot {
    name: String,
    var: Var,
    decay: bool,
    first_moment: Vec<f32>,
    second_moment: Vec<f32>,
    /// The weights' moving average, when the optimiser keeps one; while swapped in, the trained
    /// values instead.
    average: Option<Vec<f32>>,
}

/// What one optimiser step saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
    /// Parameters that got no gradient this step (they are left unchanged).
    pub missing_grads: usize,
}

/// AdamW over named parameters.
pub struct AdamW {
    config: AdamWConfig,
    slots: Vec<Slot>,
    steps: u64,
    /// Whether the parameters hold the average (see [`AdamW::swap_average`]).
    average_swapped_in: bool,
}

/// Why optimiser state could not be saved or restored.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// candle failed (reading a tensor, writing the file).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The saved state does not fit the parameters.
    #[error("{path}: optimiser state for `{name}` {problem}")]
    Mismatch { path: String, name: String, problem: String },
}

impl AdamW {
    /// An optimiser for `params` (name, variable), in the given order; their average, if kept,
    /// starts at their values.
    pub fn new(params: Vec<(String, Var)>, config: AdamWConfig) -> candle_core::Result<AdamW> {
        let slots = params
            .into_iter()
            .map(|(name, var)| {
                let count = var.elem_count();
                let average = match config.ema_decay {
                    Some(_) => Some(values(&var)?),
                    None => None,
                };
                Ok(Slot {
                    decay: var.rank() >= 2,
                    name,
                    var,
                    first_moment: vec![0.0; count],
                    second_moment: vec![0.0; count],
                    average,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(AdamW { config, slots, steps: 0, average_swapped_in: false })
    }

    /// Optimiser steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Clips the gradients to global norm `max_grad_norm` (if given) and takes one step at
    /// learning rate `lr`.
    pub fn step(&mut self, grads: &GradStore, lr: f64, max_grad_norm: Option<f64>) -> candle_core::Result<StepStats> {
        if self.average_swapped_in {
            candle_core::bail!("the parameters hold the weights' average: swap the trained ones back before a step");
        }
        let mut gradients: Vec<Option<Vec<f32>>> = Vec::with_capacity(self.slots.len());
        let mut squared_norm = 0.0f64;
        for slot in &self.slots {
            let gradient = match grads.get(slot.var.as_tensor()) {
                Some(g) => Some(g.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?),
                None => None,
            };
            if let Some(g) = &gradient {
                squared_norm += g.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>();
            }
            gradients.push(gradient);
        }
        let grad_norm = squared_norm.sqrt();
        let clip = match max_grad_norm {
            Some(max) if grad_norm > max => (max / (grad_norm + 1e-6)) as f32,
            _ => 1.0,
        };

        self.steps += 1;
        let AdamWConfig { beta1, beta2, eps, weight_decay, ema_decay } = self.config;
        let bias1 = 1.0 - beta1.powf(self.steps as f64);
        let bias2 = 1.0 - beta2.powf(self.steps as f64);
        let (beta1, beta2) = (beta1 as f32, beta2 as f32);
        let step_size = (lr / bias1) as f32;
        let bias2_sqrt = bias2.sqrt() as f32;
        let eps = eps as f32;
        let average_decay = ema_decay.map(|decay| ema_decay_after(decay, self.steps));
        let mut missing_grads = 0;
        for (slot, gradient) in self.slots.iter_mut().zip(gradients) {
            let Some(gradient) = gradient else {
                missing_grads += 1;
                continue;
            };
            let decay = if slot.decay { (1.0 - lr * weight_decay) as f32 } else { 1.0 };
            let mut values = values(&slot.var)?;
            for (((value, g), m), v) in
                values.iter_mut().zip(gradient).zip(&mut slot.first_moment).zip(&mut slot.second_moment)
            {
                let g = g * clip;
                *m = beta1 * *m + (1.0 - beta1) * g;
                *v = beta2 * *v + (1.0 - beta2) * g * g;
                *value = *value * decay - step_size * *m / (v.sqrt() / bias2_sqrt + eps);
            }
            if let (Some(average), Some(keep)) = (&mut slot.average, average_decay) {
                for (mean, value) in average.iter_mut().zip(&values) {
                    *mean = keep * *mean + (1.0 - keep) * value;
                }
            }
            let shape = slot.var.shape().clone();
            slot.var.set(&Tensor::from_vec(values, shape, slot.var.device())?)?;
        }
        Ok(StepStats { grad_norm, missing_grads })
    }

    /// Exchanges the parameters' values with their average (nothing without one): the first call
    /// puts the average in the model, to validate or save it; the second puts the trained values
    /// back, for the next step.
    pub fn swap_average(&mut self) -> candle_core::Result<()> {
        if self.config.ema_decay.is_none() {
            return Ok(());
        }
        for slot in &mut self.slots {
            let average = slot.average.as_mut().expect("kept for every slot when averaging");
            let current = values(&slot.var)?;
            let shape = slot.var.shape().clone();
            slot.var.set(&Tensor::from_slice(average, shape, slot.var.device())?)?;
            *average = current;
        }
        self.average_swapped_in = !self.average_swapped_in;
        Ok(())
    }

    /// Saves the moments and the step count, and when averaging the average and the trained
    /// values (whichever the parameters hold now), for resuming.
    pub fn save(&self, path: &Path) -> candle_core::Result<()> {
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for slot in &self.slots {
            let shape = slot.var.shape().clone();
            tensors.insert(format!("m.{}", slot.name), Tensor::from_slice(&slot.first_moment, &shape, &Device::Cpu)?);
            tensors.insert(format!("v.{}", slot.name), Tensor::from_slice(&slot.second_moment, &shape, &Device::Cpu)?);
            if let Some(kept) = &slot.average {
                let held = values(&slot.var)?;
                let (average, trained) = if self.average_swapped_in { (&held, kept) } else { (kept, &held) };
                tensors.insert(format!("average.{}", slot.name), Tensor::from_slice(average, &shape, &Device::Cpu)?);
                tensors.insert(format!("trained.{}", slot.name), Tensor::from_slice(trained, &shape, &Device::Cpu)?);
            }
        }
        // u64 as two u32 halves: safetensors in candle has no u64 for every backend.
        let steps = [(self.steps >> 32) as u32, self.steps as u32];
        tensors.insert("steps".into(), Tensor::from_slice(&steps, 2, &Device::Cpu)?);
        candle_core::safetensors::save(&tensors, path)
    }

    /// Restores what [`AdamW::save`] wrote for the same parameters, with the trained values in
    /// the parameters.
    pub fn load(&mut self, path: &Path) -> Result<(), OptimError> {
        let mut tensors = candle_core::safetensors::load(path, &Device::Cpu)?;
        let display = path.display().to_string();
        let mismatch = |name: &str, problem: String| OptimError::Mismatch {
            path: display.clone(),
            name: name.to_string(),
            problem,
        };
        let steps = tensors.remove("steps").ok_or_else(|| mismatch("steps", "is missing".into()))?.to_vec1::<u32>()?;
        let [high, low] = steps[..] else {
            return Err(mismatch("steps", format!("has {} values, expected 2", steps.len())));
        };
        let averaging = self.config.ema_decay.is_some();
        for slot in &mut self.slots {
            let mut take = |prefix: &str| -> Result<Vec<f32>, OptimError> {
                let key = format!("{prefix}.{}", slot.name);
                let tensor = tensors.remove(&key).ok_or_else(|| mismatch(&key, "is missing".into()))?;
                if tensor.shape() != slot.var.shape() {
                    return Err(mismatch(
                        &key,
                        format!("has shape {:?}, the parameter {:?}", tensor.dims(), slot.var.dims()),
                    ));
                }
                Ok(tensor.flatten_all()?.to_vec1::<f32>()?)
            };
            slot.first_moment = take("m")?;
            slot.second_moment = take("v")?;
            if averaging {
                slot.average = Some(take("average")?);
                let trained = take("trained")?;
                let shape = slot.var.shape().clone();
                slot.var.set(&Tensor::from_vec(trained, shape, slot.var.device())?)?;
            }
        }
        self.average_swapped_in = false;
        if let Some(extra) = tensors.keys().next() {
            return Err(mismatch(extra, "belongs to no parameter of this model".into()));
        }
        self.steps = (u64::from(high) << 32) | u64::from(low);
        Ok(())
    }
}

/// A parameter's values, flat.
fn values(var: &Var) -> candle_core::Result<Vec<f32>> {
    var.as_tensor().flatten_all()?.to_vec1::<f32>()
}

#[cfg(test)]
mod tests {
    use candle_core::D;

    use super::*;

    fn var(values: &[f32], shape: &[usize]) -> Var {
        Var::from_tensor(&Tensor::from_slice(values, shape, &Device::Cpu).unwrap()).unwrap()
    }

    /// Loss sum((w·x - y)²) + sum(b²) over fixed data: a convex problem with a known minimum.
    fn loss(weight: &Var, bias: &Var) -> Tensor {
        let x = Tensor::new(&[[1.0f32, 2.0], [3.0, -1.0], [0.5, 0.5]], &Device::Cpu).unwrap();
        let y = Tensor::new(&[[1.0f32, 0.0], [0.0, 1.0], [0.5, 0.5]], &Device::Cpu).unwrap();
        let error = x.matmul(weight.as_tensor()).unwrap().sub(&y).unwrap();
        let fit = error.sqr().unwrap().sum(D::Minus1).unwrap().sum_all().unwrap();
        fit.add(&bias.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap()
    }

    fn params() -> (Var, Var) {
        (var(&[0.5, -0.5, 0.25, 1.0], &[2, 2]), var(&[1.0, -2.0], &[2]))
    }

    #[test]
    fn first_step_matches_adamw_by_hand() {
        let (weight, bias) = params();
        let config = AdamWConfig { weight_decay: 0.1, ..AdamWConfig::default() };
        let mut optim = AdamW::new(vec![("w".into(), weight.clone()), ("b".into(), bias.clone())], config).unwrap();
        let grads = loss(&weight, &bias).backward().unwrap();
        let stats = optim.step(&grads, 0.01, None).unwrap();
        assert_eq!(stats.missing_grads, 0);
        // After one step Adam moves every parameter by lr·sign(g) (m̂/√v̂ = g/|g|); decay scales
        // matrices by (1 - lr·wd) first and leaves vectors alone.
        let bias_grad = [2.0f32, -4.0];
        let expected_bias: Vec<f32> =
            [1.0f32, -2.0].iter().zip(bias_grad).map(|(b, g)| b - 0.01 * g.signum()).collect();
        let got = bias.as_tensor().to_vec1::<f32>().unwrap();
        for (g, e) in got.iter().zip(&expected_bias) {
            assert!((g - e).abs() < 1e-6, "{got:?} vs {expected_bias:?}");
        }
        let weight_grad = grads.get(weight.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let got = weight.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for ((w, g), new) in [0.5f32, -0.5, 0.25, 1.0].iter().zip(weight_grad).zip(got) {
            let expected = w * (1.0 - 0.01 * 0.1) - 0.01 * g.signum();
            assert!((new - expected).abs() < 1e-6, "{new} vs {expected}");
        }
        let norm = stats.grad_norm;
        assert!(norm > 4.4, "the norm counts every gradient: {norm}");
    }

    #[test]
    fn minimises_a_convex_loss_and_clipping_bounds_the_step() {
        let (weight, bias) = params();
        let mut optim = AdamW::new(
            vec![("w".into(), weight.clone()), ("b".into(), bias.clone())],
            AdamWConfig { weight_decay: 0.0, ..AdamWConfig::default() },
        )
        .unwrap();
        let initial = loss(&weight, &bias).to_scalar::<f32>().unwrap();
        for _ in 0..400 {
            let grads = loss(&weight, &bias).backward().unwrap();
            optim.step(&grads, 0.05, Some(1.0)).unwrap();
        }
        let last = loss(&weight, &bias).to_scalar::<f32>().unwrap();
        assert!(last < 0.3 && last < initial / 20.0, "loss {initial} -> {last}");
        assert_eq!(optim.steps(), 400);
    }

    #[test]
    fn resuming_from_saved_state_continues_exactly() {
        for ema_decay in [None, Some(0.9)] {
            let config = AdamWConfig { ema_decay, ..AdamWConfig::default() };
            let run = |resume_at: Option<usize>| {
                let (weight, bias) = params();
                let named = || vec![("w".to_string(), weight.clone()), ("b".to_string(), bias.clone())];
                let mut optim = AdamW::new(named(), config).unwrap();
                let path = std::env::temp_dir().join(format!("vlasim-adamw-{}.safetensors", std::process::id()));
                for step in 0..20 {
                    if resume_at == Some(step) {
                        // As a checkpoint saves: with the average in the parameters.
                        optim.swap_average().unwrap();
                        optim.save(&path).unwrap();
                        optim = AdamW::new(named(), config).unwrap();
                        optim.load(&path).unwrap();
                        std::fs::remove_file(&path).unwrap();
                    }
                    let grads = loss(&weight, &bias).backward().unwrap();
                    optim.step(&grads, 0.02, Some(0.5)).unwrap();
                }
                let trained = values(&weight).unwrap();
                optim.swap_average().unwrap();
                (trained, values(&weight).unwrap())
            };
            assert_eq!(run(None), run(Some(7)), "EMA decay {ema_decay:?}");
        }
    }

    #[test]
    fn the_average_trails_the_trained_weights_and_swaps_in_and_out() {
        let (weight, bias) = params();
        let config = AdamWConfig { weight_decay: 0.0, ema_decay: Some(0.95), ..AdamWConfig::default() };
        let mut optim = AdamW::new(vec![("w".into(), weight.clone()), ("b".into(), bias.clone())], config).unwrap();
        let mut expected = values(&bias).unwrap();
        for step in 1..=40 {
            let grads = loss(&weight, &bias).backward().unwrap();
            optim.step(&grads, 0.01, None).unwrap();
            let keep = ema_decay_after(0.95, step);
            for (mean, value) in expected.iter_mut().zip(values(&bias).unwrap()) {
                *mean = keep * *mean + (1.0 - keep) * value;
            }
        }
        let trained = values(&bias).unwrap();
        optim.swap_average().unwrap();
        let average = values(&bias).unwrap();
        for ((a, e), t) in average.iter().zip(&expected).zip(&trained) {
            assert!((a - e).abs() < 1e-6, "{average:?} against {expected:?}");
            // The bias shrinks towards 0 step by step, so the average of its path lies further out.
            assert!(a.abs() > t.abs() + 1e-3, "the average {a} trails the trained {t}");
        }
        let grads = loss(&weight, &bias).backward().unwrap();
        let error = optim.step(&grads, 0.01, None).unwrap_err().to_string();
        assert!(error.contains("swap the trained ones back"), "{error}");
        optim.swap_average().unwrap();
        assert_eq!(values(&bias).unwrap(), trained, "the second swap restores the trained values");
    }

    #[test]
    fn state_for_other_parameters_is_refused_with_the_name() {
        let (weight, bias) = params();
        let optim = AdamW::new(vec![("w".into(), weight)], AdamWConfig::default()).unwrap();
        let path = std::env::temp_dir().join(format!("vlasim-adamw-mismatch-{}.safetensors", std::process::id()));
        optim.save(&path).unwrap();
        let mut other = AdamW::new(vec![("w".into(), bias)], AdamWConfig::default()).unwrap();
        let error = other.load(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(error.contains("`m.w` has shape [2, 2], the parameter [2]"), "{error}");
    }
}
