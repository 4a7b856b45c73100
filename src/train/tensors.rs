//! Training batches as model tensors: a [`Batch`]'s samples (or a shard of them) become a
//! [`VlaInput`] and the [`ActionTargets`] of each window's last frame, with every recorded
//! instruction tokenized once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use anyhow::{Context, Result, ensure};
use candle_core::{Device, Tensor};

use crate::data::batch::Batch;
use crate::data::episode::{ACTION_DIM, ROBOT_OBS_DIM, SCENE_OBS_DIM};
use crate::lang::tokenizer::Tokenizer;
use crate::vla::policy::rgb_tensor;
use crate::vla::scene_state::{SCENE_STATE_COMPONENTS, scene_state_target};
use crate::vla::steps_left::steps_left_target;
use crate::vla::{ActionTargets, VlaConfig, VlaInput};

/// Token ids and attention masks of instructions: the recorded ones encoded once, any other (an
/// instruction with words dropped) when a batch asks for it.
#[derive(Debug, Clone)]
pub struct EncodedInstructions {
    tokenizer: Tokenizer,
    by_text: HashMap<String, (Vec<u32>, Vec<u32>)>,
    max_text_len: usize,
}

impl EncodedInstructions {
    /// Encodes each distinct instruction to `max_text_len` tokens.
    pub fn new<'a>(
        tokenizer: &Tokenizer,
        instructions: impl IntoIterator<Item = &'a str>,
        max_text_len: usize,
    ) -> Result<Self> {
        let mut by_text = HashMap::new();
        for text in instructions {
            if by_text.contains_key(text) {
                continue;
            }
            let encoding = tokenizer.encode(text, max_text_len).with_context(|| format!("encoding `{text}`"))?;
            by_text.insert(text.to_string(), (encoding.ids, encoding.attention_mask));
        }
        Ok(Self { tokenizer: tokenizer.clone(), by_text, max_text_len })
    }

    fn get(&self, text: &str) -> Result<Cow<'_, (Vec<u32>, Vec<u32>)>> {
        if let Some(encoded) = self.by_text.get(text) {
            return Ok(Cow::Borrowed(encoded));
        }
        let encoding = self.tokenizer.encode(text, self.max_text_len).with_context(|| format!("encoding `{text}`"))?;
        Ok(Cow::Owned((encoding.ids, encoding.attention_mask)))
    }
}

/// Samples `samples` of `batch` as model input and targets for `config`: images `[n, H, 3, h, w]`
/// in [0, 1] (the gripper camera only if the model uses it), `robot_obs` `[n, H, 15]`, and the
/// action chunks `[n, H, chunk, 7]` with their mask `[n, H, chunk]`, one after each frame; all on `device`.
pub fn model_batch(
    batch: &Batch,
    samples: Range<usize>,
    config: &VlaConfig,
    instructions: &EncodedInstructions,
    device: &Device,
) -> Result<(VlaInput, ActionTargets)> {
    let (history, chunk) = (batch.history, config.formulation.chunk());
    ensure!(
        history == config.formulation.history_window,
        "batch windows have {history} frames, the model's history window is {}",
        config.formulation.history_window
    );
    ensure!(chunk <= batch.chunk, "batch carries {} actions per frame, the model predicts {chunk}", batch.chunk);
    ensure!(samples.end <= batch.size && !samples.is_empty(), "samples {samples:?} of a batch of {}", batch.size);
    let n = samples.len();
    let images = |rgb: &[u8], (width, height): (usize, usize)| -> Result<Tensor> {
        let frame_bytes = width * height * 3;
        let bytes = &rgb[samples.start * history * frame_bytes..samples.end * history * frame_bytes];
        Ok(rgb_tensor(bytes, &[n, history], height, width, device)?)
    };
    let static_images = images(&batch.static_images, batch.static_size)?;
    let gripper_images =
        if config.use_gripper_camera { Some(images(&batch.gripper_images, batch.gripper_size)?) } else { None };
    let obs = &batch.robot_obs[samples.start * history * ROBOT_OBS_DIM..samples.end * history * ROBOT_OBS_DIM];
    let robot_obs = Tensor::from_slice(obs, (n, history, ROBOT_OBS_DIM), device)?;

    let (mut ids, mut mask) = (Vec::new(), Vec::new());
    let steps = n * history * chunk;
    let (mut actions, mut action_mask) = (Vec::with_capacity(steps * ACTION_DIM), Vec::with_capacity(steps));
    for sample in samples.clone() {
        let encoded = instructions.get(&batch.instructions[sample])?;
        ids.extend_from_slice(&encoded.0);
        mask.extend_from_slice(&encoded.1);
        // The batch may carry longer chunks than the model predicts: the first `chunk` of each frame.
        for frame in sample * history..(sample + 1) * history {
            let first = frame * batch.chunk;
            actions.extend_from_slice(&batch.actions[first * ACTION_DIM..(first + chunk) * ACTION_DIM]);
            action_mask.extend(batch.action_mask[first..first + chunk].iter().map(|&real| f32::from(u8::from(real))));
        }
    }
    let text_len = instructions.max_text_len;
    let input = VlaInput {
        static_images,
        gripper_images,
        robot_obs,
        instruction_ids: Tensor::from_vec(ids, (n, text_len), device)?,
        instruction_mask: Tensor::from_vec(mask, (n, text_len), device)?,
    };
    let scene_state = match config.scene_state_loss {
        Some(_) => {
            let frames =
                &batch.scene_obs[samples.start * history * SCENE_OBS_DIM..samples.end * history * SCENE_OBS_DIM];
            let targets: Vec<f32> = frames.chunks_exact(SCENE_OBS_DIM).flat_map(scene_state_target).collect();
            Some(Tensor::from_vec(targets, (n, history, SCENE_STATE_COMPONENTS.len()), device)?)
        }
        None => None,
    };
    let steps_left = match config.steps_left_loss {
        Some(_) => {
            let frames = &batch.steps_left[samples.start * history..samples.end * history];
            let targets: Vec<f32> = frames.iter().map(|&steps| steps_left_target(steps)).collect();
            Some(Tensor::from_vec(targets, (n, history, 1), device)?)
        }
        None => None,
    };
    let targets = ActionTargets {
        actions: Tensor::from_vec(actions, (n, history, chunk, ACTION_DIM), device)?,
        mask: Tensor::from_vec(action_mask, (n, history, chunk), device)?,
        scene_state,
        steps_left,
    };
    Ok((input, targets))
}

#[cfg(test)]
mod tests {
    use candle_core::IndexOp;

    use super::*;
    use crate::lang::tokenizer;
    use crate::vla::presets::preset_with;

    #[test]
    fn shards_carry_their_samples_images_and_every_frames_chunk() {
        let mut config = preset_with("kosmos", "policy_head").unwrap();
        config.use_gripper_camera = false;
        config.formulation.history_window = 2;
        if let crate::vla::config::ActionSpace::Continuous { chunk, .. } = &mut config.formulation.action_space {
            *chunk = 2;
        }
        config.static_image_size = 2;
        config.scene_state_loss = Some(0.1);
        config.steps_left_loss = Some(0.1);
        let (size, history, chunk) = (3, 2, 3);
        let side = 2;
        let frame_bytes = side * side * 3;
        let batch = Batch {
            size,
            history,
            chunk,
            static_size: (side, side),
            gripper_size: (side, side),
            static_images: (0..size * history * frame_bytes).map(|i| (i / frame_bytes) as u8).collect(),
            gripper_images: vec![0; size * history * frame_bytes],
            robot_obs: (0..size * history * ROBOT_OBS_DIM).map(|i| (i / ROBOT_OBS_DIM) as f32).collect(),
            scene_obs: (0..size * history * SCENE_OBS_DIM).map(|i| (i % SCENE_OBS_DIM) as f32).collect(),
            steps_left: (0..size * history).map(|slot| 100 - slot).collect(),
            actions: (0..size * history * chunk * ACTION_DIM).map(|i| (i / ACTION_DIM) as f32).collect(),
            action_mask: (0..size * history * chunk).map(|i| i % chunk != 1).collect(),
            instructions: vec!["open the drawer".into(), "turn on the led".into(), "open the drawer".into()],
            tasks: vec![String::new(); size],
            origins: vec![(0, 0); size],
        };
        let tokenizer = tokenizer::train([], tokenizer::DEFAULT_VOCAB_SIZE).unwrap();
        // "turn on the led" was not recorded (as an instruction with words dropped): encoded on demand.
        let encoded = EncodedInstructions::new(&tokenizer, ["open the drawer"], 16).unwrap();
        let (input, targets) = model_batch(&batch, 1..3, &config, &encoded, &Device::Cpu).unwrap();
        assert_eq!(input.static_images.dims(), &[2, history, 3, side, side]);
        assert!(input.gripper_images.is_none(), "the model does not use the gripper camera");
        // Sample 1's second frame is frame slot 3, its pixels all 3 / 255.
        let pixel = input.static_images.i((0, 1, 2, 1, 0)).unwrap().to_scalar::<f32>().unwrap();
        assert!((pixel - 3.0 / 255.0).abs() < 1e-7);
        assert_eq!(input.robot_obs.i((1, 0, 0)).unwrap().to_scalar::<f32>().unwrap(), 4.0, "sample 2, frame 0");
        // Sample 1's frames are slots 2 and 3: chunk steps 6, 7 and 9, 10 (the first 2 of 3 per frame).
        assert_eq!(targets.actions.dims(), &[2, history, 2, ACTION_DIM]);
        let first_steps = targets.actions.i((0, .., .., 0)).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(first_steps, vec![vec![6.0, 7.0], vec![9.0, 10.0]]);
        assert_eq!(targets.mask.i(0).unwrap().to_vec2::<f32>().unwrap(), vec![vec![1.0, 0.0], vec![1.0, 0.0]]);
        // Component i of every frame's scene_obs is i here: the light bulb (4) stays 4, the blue
        // block's x (12, the 10th target) becomes 12 / 0.1 m.
        let scene_state = targets.scene_state.expect("the config asks for the scene-state loss");
        assert_eq!(scene_state.dims(), &[2, history, SCENE_STATE_COMPONENTS.len()]);
        assert_eq!(scene_state.i((1, 1, 4)).unwrap().to_scalar::<f32>().unwrap(), 4.0);
        assert!((scene_state.i((1, 1, 9)).unwrap().to_scalar::<f32>().unwrap() - 120.0).abs() < 1e-4);
        // Sample 1's frames are slots 2 and 3: 98 and 97 steps left, 50 steps a unit.
        let steps_left = targets.steps_left.expect("the config asks for the steps-left loss");
        assert_eq!(steps_left.i(0).unwrap().to_vec2::<f32>().unwrap(), vec![vec![1.96], vec![1.94]]);
        let ids = input.instruction_ids.to_vec2::<u32>().unwrap();
        assert_eq!(ids[0], tokenizer.encode("turn on the led", 16).unwrap().ids);
        assert_eq!(ids[1], tokenizer.encode("open the drawer", 16).unwrap().ids);
    }
}
