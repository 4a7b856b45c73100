//! Deterministic tiny batches for the tests.

use candle_core::{Device, Tensor};

use super::config::VlaConfig;
use super::model::{ACTION_DIMS, ActionTargets, VlaInput};
use super::scene_state::SCENE_STATE_COMPONENTS;
use crate::sim::rng::Rng;

/// Values drawn uniformly from `[low, high)`.
pub fn uniform(shape: &[usize], low: f64, high: f64, rng: &mut Rng) -> Tensor {
    let count = shape.iter().product();
    let values: Vec<f32> = (0..count).map(|_| rng.uniform(low, high) as f32).collect();
    Tensor::from_vec(values, shape, &Device::Cpu).expect("the shape matches the value count")
}

/// A batch of `batch` samples for `config`: random images and `robot_obs`, instructions with some
/// padding, and target actions with the last chunk step of sample 0 masked out.
pub fn batch(config: &VlaConfig, batch: usize, seed: u64) -> (VlaInput, ActionTargets) {
    let mut rng = Rng::new(seed);
    let window = config.formulation.history_window;
    let size = config.static_image_size;
    let gripper = config.gripper_image_size;
    let length = config.max_text_len;
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for sample in 0..batch {
        let real = length - 1 - sample % 3;
        for position in 0..length {
            let is_real = position < real;
            ids.push(if is_real { 4 + rng.below(config.vocab_size - 4) as u32 } else { 0 });
            mask.push(u32::from(is_real));
        }
    }
    let chunk = config.formulation.chunk();
    let mut flat = uniform(&[batch * window * chunk, ACTION_DIMS], -1.0, 1.0, &mut rng)
        .flatten_all()
        .and_then(|xs| xs.to_vec1::<f32>())
        .expect("sized above");
    for step in flat.chunks_exact_mut(ACTION_DIMS) {
        step[ACTION_DIMS - 1] = if step[ACTION_DIMS - 1] >= 0.0 { 1.0 } else { -1.0 };
    }
    // Sample 0's frames each end one step early, as near an episode's end.
    let mut step_mask = vec![1f32; batch * window * chunk];
    if chunk > 1 {
        for frame in 0..window {
            step_mask[frame * chunk + chunk - 1] = 0.0;
        }
    }
    let input = VlaInput {
        static_images: uniform(&[batch, window, 3, size, size], 0.0, 1.0, &mut rng),
        gripper_images: config
            .use_gripper_camera
            .then(|| uniform(&[batch, window, 3, gripper, gripper], 0.0, 1.0, &mut rng)),
        robot_obs: uniform(&[batch, window, config.robot_obs_dim], -1.0, 1.0, &mut rng),
        instruction_ids: Tensor::from_vec(ids, (batch, length), &Device::Cpu).expect("sized above"),
        instruction_mask: Tensor::from_vec(mask, (batch, length), &Device::Cpu).expect("sized above"),
    };
    let targets = ActionTargets {
        actions: Tensor::from_vec(flat, (batch, window, chunk, ACTION_DIMS), &Device::Cpu).expect("sized above"),
        mask: Tensor::from_vec(step_mask, (batch, window, chunk), &Device::Cpu).expect("sized above"),
        scene_state: config
            .scene_state_loss
            .map(|_| uniform(&[batch, window, SCENE_STATE_COMPONENTS.len()], -3.0, 3.0, &mut rng)),
        steps_left: config.steps_left_loss.map(|_| uniform(&[batch, window, 1], 0.0, 3.0, &mut rng)),
    };
    (input, targets)
}

/// `config` with a short window and chunk so every formulation trains quickly in a test; the code
/// paths are the same as at full size.
pub fn shrunk(mut config: VlaConfig) -> VlaConfig {
    if config.formulation.history_window > 1 {
        config.formulation.history_window = 3;
    }
    if let super::config::ActionSpace::Continuous { chunk, .. } = &mut config.formulation.action_space {
        *chunk = 4;
    }
    config
}
