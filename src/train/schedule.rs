//! How a run optimises — the part of the recipe `vlasim train` and `vlasim pretrain` share — and
//! its learning-rate schedule: linear warm-up, then constant (RoboVLMs' CALVIN recipe) or cosine
//! decay to a floor.

use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};

/// The optimiser's settings of a run (flattened into its recipe file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Optimisation {
    /// Optimiser steps of the whole run.
    pub steps: u64,
    /// Samples per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup_steps: u64,
    /// What follows the warm-up.
    pub decay: Decay,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Global gradient-norm limit (none when absent).
    pub grad_clip: Option<f64>,
    /// Steps between validation passes (and train-loss history points).
    pub eval_every: u64,
    /// Steps between checkpoints.
    pub checkpoint_every: u64,
    /// Decay of the weights' exponential moving average, which validation and checkpoints use
    /// instead of the trained weights (none: the trained weights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_decay: Option<f64>,
}

impl Optimisation {
    /// Refuses settings no run can follow.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.steps > 0 && self.batch_size > 0, "steps and batch size must be positive");
        ensure!(self.eval_every > 0 && self.checkpoint_every > 0, "eval-every and checkpoint-every must be positive");
        if let Some(decay) = self.ema_decay {
            ensure!((0.0..1.0).contains(&decay), "the EMA decay must be in [0, 1), not {decay}");
        }
        Ok(())
    }

    /// The learning rate of every step: warm-up, then the decay down to 0 at the last step.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            peak_lr: self.lr,
            warmup_steps: self.warmup_steps,
            total_steps: self.steps,
            decay: self.decay,
            floor: 0.0,
        }
    }
}

/// What follows the warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    /// Stay at the peak.
    Constant,
    /// Half a cosine from the peak down to `floor × peak` at the last step.
    Cosine,
}

/// A learning rate for every step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Learning rate after warm-up.
    pub peak_lr: f64,
    /// Steps of linear warm-up from 0.
    pub warmup_steps: u64,
    /// Steps of the whole run.
    pub total_steps: u64,
    /// What follows the warm-up.
    pub decay: Decay,
    /// Cosine decay ends at this fraction of the peak.
    pub floor: f64,
}

impl Schedule {
    /// Learning rate of step `step` (0-based).
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.peak_lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.decay {
            Decay::Constant => self.peak_lr,
            Decay::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                self.peak_lr * (self.floor + (1.0 - self.floor) * cosine)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_rises_linearly_then_decays_as_asked() {
        let cosine = Schedule { peak_lr: 1e-3, warmup_steps: 10, total_steps: 110, decay: Decay::Cosine, floor: 0.1 };
        assert!((cosine.lr(0) - 1e-4).abs() < 1e-12);
        assert!((cosine.lr(9) - 1e-3).abs() < 1e-12);
        assert!((cosine.lr(10) - 1e-3).abs() < 1e-12);
        assert!((cosine.lr(60) - 0.55e-3).abs() < 1e-9, "half way: {}", cosine.lr(60));
        assert!((cosine.lr(110) - 1e-4).abs() < 1e-12);
        assert!((cosine.lr(500) - 1e-4).abs() < 1e-12, "stays at the floor past the end");
        let rates: Vec<f64> = (10..=110).map(|s| cosine.lr(s)).collect();
        assert!(rates.windows(2).all(|w| w[1] <= w[0]));
        let constant = Schedule { decay: Decay::Constant, ..cosine };
        assert_eq!(constant.lr(5), cosine.lr(5));
        assert_eq!(constant.lr(100), 1e-3);
    }
}
