//! An auxiliary training objective: predict how many steps are left until the demonstration's
//! task is done, with a [`Readout`] of the features the action head reads. A one-step policy sees
//! one image, and near a block or a waypoint the images of the approach, of the last corrections
//! and of leaving look alike; trained on the actions alone, it has stalled there (BENCHMARKS.md:
//! the hovering arm, the DART-noise run). The steps left tell those phases apart, and the loss
//! pushes the features to tell them apart too. Every episode of a dataset ends where its task is
//! done (a play window included), so its last frame has 0 steps left.

use candle_core::Result;
use candle_nn::VarBuilder;

use super::readout::Readout;

/// Steps per target unit: a subtask's demonstration takes about 40–100 steps, so targets come out O(1).
const STEPS_PER_UNIT: f32 = 50.0;
/// Where the loss turns from quadratic to linear, in target units (50 steps): the last steps of a
/// task, where the phases change, weigh most; a long play window's start no more than 50 steps' error.
const HUBER_DELTA: f64 = 1.0;

/// The target of a frame `steps_left` steps before its episode's last.
pub fn steps_left_target(steps_left: usize) -> f32 {
    steps_left as f32 / STEPS_PER_UNIT
}

/// The steps-left read-out over features of width `feature_size`.
pub fn steps_left_head(feature_size: usize, vb: VarBuilder) -> Result<Readout> {
    Readout::new(feature_size, 1, HUBER_DELTA, vb)
}
