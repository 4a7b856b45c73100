//! An auxiliary training objective: predict the scene's privileged state (CALVIN's `scene_obs`: the
//! articulations, the lights and each block's position) linearly from the features the action head
//! reads. The simulator knows that state exactly, so the read-out's error on held-out episodes
//! tells whether the features locate the blocks, and as a loss it pushes them to. Training only:
//! inference never runs the head.
//!
//! The loss is Huber, not squared: before the physics had a floor, a block pushed off the desk fell
//! without end (a few frames of the demonstrations put one 94 m down), and squared, those few frames
//! outweighed every other target in a batch (BENCHMARKS.md). A block flung by a rare solver
//! blow-up can still leave the floor behind.

use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};

use super::linear::{Linear, linear};
use super::model::huber;

/// The `scene_obs` components predicted: sliding door, drawer, button, switch, light bulb, LED,
/// then the red, blue and pink blocks' positions (their Euler angles wrap around; left out).
pub const SCENE_STATE_COMPONENTS: [usize; 15] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 14, 18, 19, 20];
/// Where the light bulb's and the LED's on/off (0/1) sit in `scene_obs`.
const LIGHTS: [usize; 2] = [4, 5];
/// Metres per target unit: positions and travels come out O(1), like the lights' 0/1.
const METRES_PER_UNIT: f32 = 0.1;
/// Where the loss turns from quadratic to linear, in target units (1 m, about the desk's size): every
/// error on the desk stays quadratic, as with the squared error that found the blocks best
/// (BENCHMARKS.md; at 10 cm the grasps landed further off), at half its pull (e²/2), while a block
/// flung off the desk pulls no harder than a 1 m error.
const HUBER_DELTA: f64 = 10.0;

/// The target of one frame's 24-D `scene_obs`.
pub fn scene_state_target(scene_obs: &[f32]) -> [f32; SCENE_STATE_COMPONENTS.len()] {
    SCENE_STATE_COMPONENTS.map(|i| if LIGHTS.contains(&i) { scene_obs[i] } else { scene_obs[i] / METRES_PER_UNIT })
}

/// The linear read-out of the scene state from per-frame features.
#[derive(Debug, Clone)]
pub struct SceneStateHead {
    readout: Linear,
}

impl SceneStateHead {
    /// A head over features of width `feature_size`.
    pub fn new(feature_size: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self { readout: linear(feature_size, SCENE_STATE_COMPONENTS.len(), vb.pp("readout"))? })
    }

    /// Mean Huber loss of the prediction from `features` `[B, F, d]` against the targets of the
    /// window's last `F` frames (`targets` `[B, T, 15]`, from [`scene_state_target`]).
    pub fn loss(&self, features: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let frames = features.dim(1)?;
        let window = targets.dim(1)?;
        let targets = targets.narrow(1, window - frames, frames)?;
        huber(&(self.readout.forward(features)? - targets)?, HUBER_DELTA)?.mean_all()
    }
}
