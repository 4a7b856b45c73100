//! Temporal ensembling of action chunks (ACT, Zhao et al. 2023): every control step the model
//! predicts the next `chunk` actions, so up to `chunk` predictions made at earlier steps cover the
//! current one. Executing their weighted mean instead of the newest prediction's first action
//! smooths the trajectory and lets one bad frame move the arm only by its share.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::heads::ARM_DIMS;
use super::model::ACTION_DIMS;

/// One predicted step: the arm's 6 values in [-1, 1] and the gripper's score (> 0 opens: a logit
/// for continuous models, the decoded value for discrete ones).
pub type PredictedStep = [f32; ACTION_DIMS];

/// How the predicted chunks are combined (absent from a config: the newest chunk's first action).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemporalEnsembleConfig {
    /// A prediction made `age` steps ago weighs `exp(-decay · age)`: 0 averages evenly, larger
    /// values trust the newest observation more.
    pub decay: f32,
}

/// The pending predictions of one episode.
#[derive(Debug, Clone)]
pub struct TemporalEnsemble {
    config: TemporalEnsembleConfig,
    /// Chunks predicted at the last steps, newest at the back: chunk `j` from the back was
    /// predicted `j` steps ago, so its step `j` is the current one.
    chunks: VecDeque<Vec<PredictedStep>>,
}

impl TemporalEnsemble {
    /// An ensemble with nothing predicted yet.
    pub fn new(config: TemporalEnsembleConfig) -> Self {
        Self { config, chunks: VecDeque::new() }
    }

    /// Forgets every prediction (a new episode).
    pub fn clear(&mut self) {
        self.chunks.clear();
    }

    /// Adds this step's predicted chunk; returns the weighted mean of the predictions covering
    /// the current step (the gripper still a score: [`executed`] makes it an action).
    pub fn push(&mut self, chunk: Vec<PredictedStep>) -> PredictedStep {
        self.chunks.push_front(chunk);
        // A chunk predicted `age` steps ago covers the current step while age < its length.
        while self.chunks.back().is_some_and(|oldest| oldest.len() < self.chunks.len()) {
            self.chunks.pop_back();
        }
        let mut sum = [0f32; ACTION_DIMS];
        let mut total_weight = 0f32;
        for (age, chunk) in self.chunks.iter().enumerate() {
            let weight = (-self.config.decay * age as f32).exp();
            for (s, value) in sum.iter_mut().zip(chunk[age]) {
                *s += weight * value;
            }
            total_weight += weight;
        }
        sum.map(|s| s / total_weight)
    }
}

/// A predicted step as an executable action: the arm as predicted, the gripper's score as ±1.
pub fn executed(step: PredictedStep) -> [f32; ACTION_DIMS] {
    let mut action = step;
    action[ARM_DIMS] = if step[ARM_DIMS] >= 0.0 { 1.0 } else { -1.0 };
    action
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(arm: f32, gripper: f32) -> PredictedStep {
        [arm, 0.0, 0.0, 0.0, 0.0, 0.0, gripper]
    }

    #[test]
    fn averages_every_prediction_that_covers_the_step() {
        let mut ensemble = TemporalEnsemble::new(TemporalEnsembleConfig { decay: 0.0 });
        let first = ensemble.push(vec![step(0.6, 1.0), step(0.3, -5.0), step(0.9, -5.0)]);
        assert_eq!(first, step(0.6, 1.0), "one prediction: its first step");
        let second = ensemble.push(vec![step(-0.1, 2.0), step(0.0, 0.0), step(0.0, 0.0)]);
        assert!((second[0] - 0.1).abs() < 1e-6, "(0.3 + -0.1) / 2, got {}", second[0]);
        assert_eq!(second[ARM_DIMS], -1.5, "the mean score (-5 + 2) / 2");
        assert_eq!(executed(second)[ARM_DIMS], -1.0, "a negative score closes");
        let third = ensemble.push(vec![step(0.3, 1.0), step(0.0, 0.0), step(0.0, 0.0)]);
        assert!((third[0] - 0.4).abs() < 1e-6, "(0.9 + 0.0 + 0.3) / 3, got {}", third[0]);
        let fourth = ensemble.push(vec![step(0.2, 1.0), step(0.0, 0.0), step(0.0, 0.0)]);
        assert!((fourth[0] - 0.2 / 3.0).abs() < 1e-6, "the first chunk no longer reaches step 4, got {}", fourth[0]);
    }

    #[test]
    fn decay_favours_the_newest_prediction() {
        let mut ensemble = TemporalEnsemble::new(TemporalEnsembleConfig { decay: 1.0 });
        ensemble.push(vec![step(0.0, 1.0), step(1.0, 1.0)]);
        let action = ensemble.push(vec![step(0.0, 1.0), step(0.0, 1.0)]);
        let old_share = (-1f32).exp() / (1.0 + (-1f32).exp());
        assert!((action[0] - old_share).abs() < 1e-6, "{} against {old_share}", action[0]);
        ensemble.clear();
        assert_eq!(ensemble.push(vec![step(0.5, -1.0)]), step(0.5, -1.0), "cleared: only the new chunk");
    }
}
