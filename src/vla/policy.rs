//! Closed-loop control with a [`Vla`]: one observation in, one action out, the history window kept
//! inside. With a policy head (or one-step) each frame's backbone features are computed once and
//! cached, so a step costs one backbone pass plus the head; the FiLM baseline's instruction embedding
//! is computed once per episode. Interleaved models re-run the whole window (no KV cache).
//!
//! A window is `T` frames `history_spacing` steps apart, the newest last. At the start of an
//! episode, before the window's span exists, it is filled by repeating the first frame (training
//! windows at an episode's start are padded the same way).

use std::collections::VecDeque;

use candle_core::{Device, IndexOp, Result, Tensor};

use super::backbone::{Frames, Text};
use super::config::{ActionSpace, HistoryFusion};
use super::ensemble::{PredictedStep, TemporalEnsemble, executed};
use super::model::{ACTION_DIMS, ForwardOptions, Vla, VlaInput};
use super::{ActionOutput, AttentionCapture};
use crate::sim::camera::Image;

/// An RGB camera image as a `[3, h, w]` f32 tensor in [0, 1] on `device`, the layout the models take.
pub fn image_tensor(image: &Image, device: &Device) -> Result<Tensor> {
    rgb_tensor(&image.rgb, &[], image.height as usize, image.width as usize, device)
}

/// Row-major RGB bytes `[leading…, h, w, 3]` as a channel-first f32 tensor `[leading…, 3, h, w]`
/// in [0, 1] on `device`: camera images and training batches become model input the same way.
pub fn rgb_tensor(rgb: &[u8], leading: &[usize], height: usize, width: usize, device: &Device) -> Result<Tensor> {
    let pixels = Tensor::from_slice(rgb, [leading, &[height, width, 3]].concat(), device)?;
    let rank = leading.len();
    let mut order: Vec<usize> = (0..rank).collect();
    order.extend([rank + 2, rank, rank + 1]);
    pixels.permute(order)?.to_dtype(candle_core::DType::F32)? / 255.0
}

/// A model plus its episode state.
#[derive(Debug)]
pub struct VlaPolicy {
    model: Vla,
    text: Option<Text>,
    film_text: Option<Tensor>,
    /// The frames of the window's span, `[1, …]` each, the newest last.
    frames: VecDeque<Frames>,
    /// Their backbone features `[1, d]` (policy-head and one-step continuous models only).
    features: VecDeque<Tensor>,
    /// The chunks predicted so far, when the config asks for temporal ensembling.
    ensemble: Option<TemporalEnsemble>,
}

impl VlaPolicy {
    /// A policy with no instruction yet.
    pub fn new(model: Vla) -> Self {
        let ensemble = model.config().temporal_ensemble.map(TemporalEnsemble::new);
        Self { model, text: None, film_text: None, frames: VecDeque::new(), features: VecDeque::new(), ensemble }
    }

    /// The model.
    pub fn model(&self) -> &Vla {
        &self.model
    }

    /// Starts an episode: the instruction's token ids and attention mask (`Tokenizer::encode` with
    /// the model's `max_text_len`); clears the history.
    pub fn reset(&mut self, instruction_ids: &[u32], instruction_mask: &[u32]) -> Result<()> {
        let length = self.model.config().max_text_len;
        if instruction_ids.len() != length || instruction_mask.len() != length {
            candle_core::bail!("instructions must be encoded to the model's max_text_len {length}");
        }
        let text = Text {
            ids: Tensor::from_slice(instruction_ids, (1, length), self.model.device())?,
            mask: Tensor::from_slice(instruction_mask, (1, length), self.model.device())?,
        };
        self.film_text = self.model.film_text(&text)?;
        self.text = Some(text);
        self.frames.clear();
        self.features.clear();
        if let Some(ensemble) = &mut self.ensemble {
            ensemble.clear();
        }
        Ok(())
    }

    fn uses_feature_cache(&self) -> bool {
        let formulation = &self.model.config().formulation;
        let per_frame = formulation.history_window == 1 || formulation.history == HistoryFusion::PolicyHead;
        per_frame && matches!(formulation.action_space, ActionSpace::Continuous { .. })
    }

    /// Adds an observation to the window: static image `[3, 128, 128]`, optional gripper image
    /// `[3, 64, 64]` (both in [0, 1]) and `robot_obs`.
    fn push(&mut self, static_image: &Tensor, gripper_image: Option<&Tensor>, robot_obs: &[f32]) -> Result<()> {
        let frame = Frames {
            static_images: static_image.unsqueeze(0)?,
            gripper_images: gripper_image.map(|image| image.unsqueeze(0)).transpose()?,
            robot_obs: Tensor::from_slice(robot_obs, (1, robot_obs.len()), self.model.device())?,
        };
        let span = self.model.config().formulation.history_span();
        if self.uses_feature_cache() {
            let text = self.text.as_ref().expect("checked by act");
            let feature = self.model.frame_features(&frame, text, self.film_text.as_ref())?;
            slide(&mut self.features, feature, span);
        }
        slide(&mut self.frames, frame, span);
        Ok(())
    }

    /// The window's entries of `span` (the frames or their features): every `history_spacing`-th
    /// from the newest back, oldest first.
    fn window<'a, T>(&self, span: &'a VecDeque<T>) -> impl Iterator<Item = &'a T> {
        span.iter().step_by(self.model.config().formulation.history_spacing)
    }

    /// The window as a batch-1 model input.
    fn window_input(&self) -> Result<VlaInput> {
        let text = self.text.as_ref().expect("checked by act");
        let stack = |pick: &dyn Fn(&Frames) -> Tensor| -> Result<Tensor> {
            Tensor::stack(&self.window(&self.frames).map(pick).collect::<Vec<_>>(), 1)
        };
        Ok(VlaInput {
            static_images: stack(&|f| f.static_images.clone())?,
            gripper_images: match self.frames.front().and_then(|f| f.gripper_images.as_ref()) {
                Some(_) => {
                    Some(stack(&|f| f.gripper_images.clone().expect("every frame of a window has the same cameras"))?)
                }
                None => None,
            },
            robot_obs: stack(&|f| f.robot_obs.clone())?,
            instruction_ids: text.ids.clone(),
            instruction_mask: text.mask.clone(),
        })
    }

    /// One control step: the first action of the predicted chunk, or the temporal ensemble of the
    /// chunks predicted so far (arm in [-1, 1], gripper ±1).
    pub fn act(
        &mut self,
        static_image: &Tensor,
        gripper_image: Option<&Tensor>,
        robot_obs: &[f32],
    ) -> Result<[f32; ACTION_DIMS]> {
        Ok(executed(self.predict(static_image, gripper_image, robot_obs)?))
    }

    /// Like [`VlaPolicy::act`], with the gripper still a score: what an ensemble of models
    /// averages before deciding.
    pub fn predict(
        &mut self,
        static_image: &Tensor,
        gripper_image: Option<&Tensor>,
        robot_obs: &[f32],
    ) -> Result<PredictedStep> {
        if self.text.is_none() {
            candle_core::bail!("call reset with an instruction before act");
        }
        self.push(static_image, gripper_image, robot_obs)?;
        if self.uses_feature_cache() {
            let features = Tensor::stack(&self.window(&self.features).collect::<Vec<_>>(), 1)?;
            let actions = self.model.head_actions(&features)?;
            return self.current_step(&ActionOutput::Continuous(actions));
        }
        let output = self.model.forward(&self.window_input()?, ForwardOptions::default())?;
        self.current_step(&output.actions)
    }

    /// The step to execute now given this step's prediction, the gripper as a score.
    fn current_step(&mut self, actions: &ActionOutput) -> Result<PredictedStep> {
        let chunk = actions.chunk(0)?;
        Ok(match &mut self.ensemble {
            Some(ensemble) => ensemble.push(chunk),
            None => chunk[0],
        })
    }

    /// Like [`VlaPolicy::predict`], also returning every attention layer's weights over the
    /// current window (runs the full model on the window: slower than `predict`).
    pub fn predict_with_attention(
        &mut self,
        static_image: &Tensor,
        gripper_image: Option<&Tensor>,
        robot_obs: &[f32],
    ) -> Result<(PredictedStep, AttentionCapture)> {
        if self.text.is_none() {
            candle_core::bail!("call reset with an instruction before act");
        }
        self.push(static_image, gripper_image, robot_obs)?;
        let options = ForwardOptions { capture_attention: true, teacher_actions: None };
        let output = self.model.forward(&self.window_input()?, options)?;
        let step = self.current_step(&output.actions)?;
        Ok((step, output.attention.expect("attention was asked for")))
    }

    /// The occlusion check (DESIGN.md §6): for each cell of a `grid × grid` partition of the
    /// newest static image, how far the action moves (L2 over the 7 dimensions) when that cell
    /// is filled with the image's mean colour, everything else in the window unchanged. All cells
    /// run as one batch. Row-major `grid²` distances; call after `act`.
    pub fn occlusion(&self, grid: usize) -> Result<Vec<f32>> {
        if self.frames.is_empty() {
            candle_core::bail!("the occlusion check needs an observation: call act first");
        }
        let input = self.window_input()?;
        let (_, window, channels, height, width) = input.static_images.dims5()?;
        let cells = grid * grid;
        // Row 0 is the image as seen; row 1 + c hides cell c.
        let mut keep = vec![1f32; (cells + 1) * height * width];
        for cell in 0..cells {
            let (rows, columns) = (cell / grid, cell % grid);
            for y in rows * height / grid..(rows + 1) * height / grid {
                for x in columns * width / grid..(columns + 1) * width / grid {
                    keep[((cell + 1) * height + y) * width + x] = 0.0;
                }
            }
        }
        let keep = Tensor::from_vec(keep, (cells + 1, 1, height, width), self.model.device())?;
        let newest = input.static_images.i((0, window - 1))?;
        let mean = newest.mean_keepdim(1)?.mean_keepdim(2)?;
        let hidden = keep
            .broadcast_mul(&newest.unsqueeze(0)?)?
            .broadcast_add(&keep.affine(-1.0, 1.0)?.broadcast_mul(&mean.unsqueeze(0)?)?)?;
        let batch = cells + 1;
        let repeat = |xs: &Tensor| -> Result<Tensor> {
            let mut dims = xs.dims().to_vec();
            dims[0] = batch;
            xs.broadcast_as(dims)?.contiguous()
        };
        let earlier = repeat(&input.static_images.narrow(1, 0, window - 1)?)?;
        let static_images = Tensor::cat(&[&earlier, &hidden.reshape((batch, 1, channels, height, width))?], 1)?;
        let variants = VlaInput {
            static_images,
            gripper_images: input.gripper_images.as_ref().map(repeat).transpose()?,
            robot_obs: repeat(&input.robot_obs)?,
            instruction_ids: repeat(&input.instruction_ids)?,
            instruction_mask: repeat(&input.instruction_mask)?,
        };
        let actions = self.model.forward(&variants, ForwardOptions::default())?.actions;
        let seen = actions.first_action(0)?;
        (1..batch)
            .map(|row| {
                let moved = actions.first_action(row)?;
                Ok(seen.iter().zip(moved).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt())
            })
            .collect()
    }
}

/// Adds `newest` to `span`, which holds the last `length` entries; an empty one fills with copies
/// of `newest` first, as an episode's first frame stands in for the frames before it.
fn slide<T: Clone>(span: &mut VecDeque<T>, newest: T, length: usize) {
    while span.len() < length {
        span.push_back(newest.clone());
    }
    span.pop_front();
    span.push_back(newest);
}

#[cfg(test)]
mod tests {
    use candle_core::IndexOp;

    use super::*;
    use crate::vla::attention_maps::action_to_patches;
    use crate::vla::config::{FormulationConfig, VlaConfig};
    use crate::vla::presets::preset_with;
    use crate::vla::test_support::{batch, shrunk};

    #[test]
    fn camera_images_become_channel_first_unit_tensors() {
        let image = Image { width: 2, height: 1, rgb: vec![255, 0, 51, 0, 255, 102] };
        let tensor = image_tensor(&image, &Device::Cpu).unwrap();
        assert_eq!(tensor.dims(), &[3, 1, 2]);
        let bytes = |x: usize| -> Vec<u8> {
            tensor.i((.., 0, x)).unwrap().to_vec1::<f32>().unwrap().iter().map(|v| (v * 255.0).round() as u8).collect()
        };
        assert_eq!((bytes(0), bytes(1)), (vec![255, 0, 51], vec![0, 255, 102]), "pixel x's channels, scaled to [0, 1]");
    }

    /// A window of 3 frames 2 steps apart, over 5 observations: the policy acts on frames 0, 2, 4
    /// (after the first two, on 0, 0, 1: the first frame stands in for the steps before it, as
    /// in training windows), whether it caches features (policy head) or re-runs the window
    /// (interleaved).
    #[test]
    fn a_spaced_history_acts_on_every_other_frame() {
        for formulation in ["policy_head", "interleaved"] {
            let mut config = shrunk(preset_with("kosmos", formulation).unwrap());
            config.temporal_ensemble = None;
            config.formulation.history_spacing = 2;
            let observations = VlaConfig {
                formulation: FormulationConfig { history_window: 5, ..config.formulation.clone() },
                ..config.clone()
            };
            let (seen, _) = batch(&observations, 1, 6);
            let model = Vla::new(config.clone(), &Device::Cpu).unwrap();
            let ids = seen.instruction_ids.i(0).unwrap().to_vec1::<u32>().unwrap();
            let mask = seen.instruction_mask.i(0).unwrap().to_vec1::<u32>().unwrap();
            let on_frames = |frames: [usize; 3]| {
                let pick = |xs: &Tensor| Tensor::stack(&frames.map(|t| xs.i((.., t)).unwrap()), 1).unwrap();
                let input = VlaInput {
                    static_images: pick(&seen.static_images),
                    gripper_images: seen.gripper_images.as_ref().map(pick),
                    robot_obs: pick(&seen.robot_obs),
                    ..seen.clone()
                };
                model.forward(&input, ForwardOptions::default()).unwrap().actions.first_action(0).unwrap()
            };
            let mut policy = VlaPolicy::new(model.clone());
            policy.reset(&ids, &mask).unwrap();
            let mut acted = Vec::new();
            for t in 0..5 {
                let image = seen.static_images.i((0, t)).unwrap();
                let gripper = seen.gripper_images.as_ref().map(|g| g.i((0, t)).unwrap());
                let obs = seen.robot_obs.i((0, t)).unwrap().to_vec1::<f32>().unwrap();
                acted.push(policy.act(&image, gripper.as_ref(), &obs).unwrap());
            }
            for (step, frames) in [(1, [0, 0, 1]), (4, [0, 2, 4])] {
                let expected = on_frames(frames);
                let close = acted[step].iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-4);
                assert!(close, "{formulation}, step {step}: {:?} against frames {frames:?}: {expected:?}", acted[step]);
            }
        }
    }

    #[test]
    fn the_occlusion_check_measures_each_cell() {
        let config = shrunk(preset_with("kosmos", "policy_head").unwrap());
        let (input, _) = batch(&config, 1, 4);
        let ids = input.instruction_ids.i(0).unwrap().to_vec1::<u32>().unwrap();
        let mask = input.instruction_mask.i(0).unwrap().to_vec1::<u32>().unwrap();
        let mut policy = VlaPolicy::new(Vla::new(config, &Device::Cpu).unwrap());
        policy.reset(&ids, &mask).unwrap();
        assert!(policy.occlusion(4).is_err(), "nothing observed yet");
        for t in 0..3 {
            let image = input.static_images.i((0, t)).unwrap();
            let gripper = input.gripper_images.as_ref().map(|g| g.i((0, t)).unwrap());
            let obs = input.robot_obs.i((0, t)).unwrap().to_vec1::<f32>().unwrap();
            policy.act(&image, gripper.as_ref(), &obs).unwrap();
        }
        let changes = policy.occlusion(4).unwrap();
        assert_eq!(changes.len(), 16);
        assert!(changes.iter().all(|c| c.is_finite() && *c >= 0.0), "{changes:?}");
        assert!(changes.iter().any(|c| *c > 0.0), "hiding part of the image changes an untrained model's action");
        assert_eq!(policy.occlusion(4).unwrap(), changes, "the check does not disturb the history");
    }

    #[test]
    fn acting_with_attention_gives_the_same_action_and_a_patch_map() {
        let config = shrunk(preset_with("paligemma", "policy_head").unwrap());
        let model = Vla::new(config.clone(), &Device::Cpu).unwrap();
        let (input, _) = batch(&config, 1, 9);
        let ids = input.instruction_ids.i(0).unwrap().to_vec1::<u32>().unwrap();
        let mask = input.instruction_mask.i(0).unwrap().to_vec1::<u32>().unwrap();
        let image = input.static_images.i((0, 0)).unwrap();
        let gripper = input.gripper_images.as_ref().map(|images| images.i((0, 0)).unwrap());
        let obs = input.robot_obs.i((0, 0)).unwrap().to_vec1::<f32>().unwrap();
        let mut plain = VlaPolicy::new(model.clone());
        let mut watched = VlaPolicy::new(model);
        plain.reset(&ids, &mask).unwrap();
        watched.reset(&ids, &mask).unwrap();
        let action = plain.predict(&image, gripper.as_ref(), &obs).unwrap();
        let (watched_action, capture) = watched.predict_with_attention(&image, gripper.as_ref(), &obs).unwrap();
        for (a, b) in action.iter().zip(watched_action) {
            assert!((a - b).abs() < 1e-4);
        }
        let window = config.formulation.history_window;
        let (map, grid) = action_to_patches(&capture, window - 1).unwrap().expect("a VLM has attention");
        assert_eq!((map.dims(), grid), (&[4usize, 64][..], 8));
    }
}
