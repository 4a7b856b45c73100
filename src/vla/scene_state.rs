//! An auxiliary training objective: predict the scene's privileged state (CALVIN's `scene_obs`: the
//! articulations, the lights and each block's position) with a [`Readout`] of the features the
//! action head reads. The simulator knows that state exactly, so the read-out's error on held-out
//! episodes tells whether the features locate the blocks, and as a loss it pushes them to.
//!
//! The loss is Huber, not squared: before the physics had a floor, a block pushed off the desk fell
//! without end (a few frames of the demonstrations put one 94 m down), and squared, those few frames
//! outweighed every other target in a batch (BENCHMARKS.md). A block flung by a rare solver
//! blow-up can still leave the floor behind.

use candle_core::Result;
use candle_nn::VarBuilder;

use super::readout::Readout;

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

/// The scene-state read-out over features of width `feature_size`.
pub fn scene_state_head(feature_size: usize, vb: VarBuilder) -> Result<Readout> {
    Readout::new(feature_size, SCENE_STATE_COMPONENTS.len(), HUBER_DELTA, vb)
}
