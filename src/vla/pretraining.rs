//! Vision-language pre-training of a VLA's backbone (RoboVLMs' Finding 5): next-token prediction of
//! captions and answers about one frame of the policy cameras, read out through the language
//! model's token embedding (a tied LM head, so pre-training adds no parameters). Only the vision
//! tower, connector and language model learn; `vlasim train --init` then makes the VLA.

use candle_core::{D, DType, Result, Tensor};

use super::Vla;
use super::backbone::{Frames, Text};

/// A batch of frames with a prompt and the answer to predict, tokenized.
#[derive(Debug, Clone)]
pub struct AnswerBatch {
    /// `[n, 3, s, s]` in [0, 1].
    pub static_images: Tensor,
    /// `[n, 3, g, g]` in [0, 1]; required when the model uses the gripper camera.
    pub gripper_images: Option<Tensor>,
    /// The prompts (`[n, max_text_len]` ids and mask).
    pub prompt: Text,
    /// `[n, len + 1]` u32: `<s> answer </s>` padded; tokens `0..len` are fed, `1..=len` predicted.
    pub answer_ids: Tensor,
    /// `[n, len + 1]` u32, 1 for real tokens.
    pub answer_mask: Tensor,
}

impl Vla {
    /// Mean cross-entropy of the next answer token over the real answer tokens of `batch`.
    pub fn answer_loss(&self, batch: &AnswerBatch) -> Result<Tensor> {
        let Some(vlm) = self.vlm_backbone() else {
            candle_core::bail!("the FiLM baseline has no language model to pre-train");
        };
        let n = batch.static_images.dim(0)?;
        // The action token is not part of the answering sequence; any robot state will do.
        let robot_obs = Tensor::zeros((n, self.config().robot_obs_dim), DType::F32, batch.static_images.device())?;
        let frames = Frames {
            static_images: batch.static_images.clone(),
            gripper_images: batch.gripper_images.clone(),
            robot_obs,
        };
        let encoded = vlm.encode_frames(&frames, false)?;
        let len = batch.answer_ids.dim(1)? - 1;
        let fed = batch.answer_ids.narrow(1, 0, len)?;
        let predicted = batch.answer_ids.narrow(1, 1, len)?.contiguous()?;
        let real = batch.answer_mask.narrow(1, 1, len)?.to_dtype(DType::F32)?;
        let logits = vlm.answer_logits(&encoded, &batch.prompt, &fed)?;
        let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let picked = log_probs.gather(&predicted.unsqueeze(D::Minus1)?, D::Minus1)?.squeeze(D::Minus1)?;
        let count = real.sum_all()?.clamp(1.0, f64::INFINITY)?;
        (picked * real)?.sum_all()?.neg()?.div(&count)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, IndexOp};

    use super::*;
    use crate::sim::rng::Rng;
    use crate::train::optim::{AdamW, AdamWConfig};
    use crate::vla::presets::{PRESETS, preset_with};
    use crate::vla::test_support::uniform;

    /// Two frames with prompts of 5 and 3 real tokens and answers of `answer` (`<s>` first).
    fn answer_batch(config: &crate::vla::VlaConfig, answer: [u32; 6]) -> AnswerBatch {
        let mut rng = Rng::new(5);
        let (n, size, gripper, length) = (2, config.static_image_size, config.gripper_image_size, config.max_text_len);
        let prompt_ids: Vec<u32> =
            (0..n * length).map(|i| if i % length < 5 - 2 * (i / length) { 7 + i as u32 % 50 } else { 0 }).collect();
        let prompt_mask: Vec<u32> = prompt_ids.iter().map(|&id| u32::from(id != 0)).collect();
        let row = |ids: [u32; 6]| ids.to_vec();
        AnswerBatch {
            static_images: uniform(&[n, 3, size, size], 0.0, 1.0, &mut rng),
            gripper_images: config.use_gripper_camera.then(|| uniform(&[n, 3, gripper, gripper], 0.0, 1.0, &mut rng)),
            prompt: Text {
                ids: Tensor::from_vec(prompt_ids, (n, length), &Device::Cpu).unwrap(),
                mask: Tensor::from_vec(prompt_mask, (n, length), &Device::Cpu).unwrap(),
            },
            answer_ids: Tensor::from_vec([row(answer), row(answer)].concat(), (n, 6), &Device::Cpu).unwrap(),
            answer_mask: Tensor::from_vec(vec![1u32, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0], (n, 6), &Device::Cpu).unwrap(),
        }
    }

    #[test]
    fn the_answer_loss_trains_every_backbone_parameter_but_the_action_inputs() {
        for preset in PRESETS.iter().filter(|&&p| p != "film") {
            let model = Vla::new(preset_with(preset, "one_step").unwrap(), &Device::Cpu).unwrap();
            let batch = answer_batch(model.config(), [2, 40, 41, 42, 3, 0]);
            let named = model.params().vars();
            // The action token, robot_obs projection and the head are not in the answering sequence.
            let acting = |name: &str| ["action_token", "robot_obs_proj", "head."].iter().any(|p| name.contains(p));
            let mut untouched: Vec<&str> =
                named.iter().map(|(name, _)| name.as_str()).filter(|name| !acting(name)).collect();
            let mut optimizer =
                AdamW::new(named.clone(), AdamWConfig { weight_decay: 0.0, ..AdamWConfig::default() }).unwrap();
            let mut losses = Vec::new();
            // Flamingo's tanh gates start at 0: what lies behind them is reached at the second step.
            for step in 0..6 {
                let loss = model.answer_loss(&batch).unwrap();
                losses.push(loss.to_scalar::<f32>().unwrap());
                let grads = loss.backward().unwrap();
                if step < 2 {
                    untouched.retain(|name| {
                        let var = &named.iter().find(|(n, _)| n == name).unwrap().1;
                        let reached = grads.get(var).is_some_and(|g| {
                            g.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap() > 0.0
                        });
                        !reached
                    });
                }
                optimizer.step(&grads, 3e-3, None).unwrap();
            }
            assert!(untouched.is_empty(), "{preset}: no gradient reached {untouched:?}");
            // Logits of unit scale at the start: cross-entropy a little above ln(vocabulary), not
            // the tens of nats unscaled tied embeddings give.
            let uniform = (model.config().vocab_size as f32).ln();
            assert!(
                losses[0] > uniform - 1.0 && losses[0] < uniform + 3.0,
                "{preset}: {losses:?}, ln(vocab) {uniform}"
            );
            assert!(losses[5] < losses[0], "{preset}: the loss did not fall: {losses:?}");
        }
    }

    #[test]
    fn answers_are_predicted_causally_even_under_a_prefix_lm() {
        for preset in ["paligemma", "flamingo"] {
            let model = Vla::new(preset_with(preset, "one_step").unwrap(), &Device::Cpu).unwrap();
            let vlm = model.vlm_backbone().unwrap();
            let batch = answer_batch(model.config(), [2, 40, 41, 42, 3, 0]);
            let n = 2;
            let robot_obs = Tensor::zeros((n, model.config().robot_obs_dim), DType::F32, &Device::Cpu).unwrap();
            let frames = Frames {
                static_images: batch.static_images.clone(),
                gripper_images: batch.gripper_images.clone(),
                robot_obs,
            };
            let encoded = vlm.encode_frames(&frames, false).unwrap();
            let logits = |answer: [u32; 5]| {
                let ids = Tensor::from_vec([answer, answer].concat(), (n, 5), &Device::Cpu).unwrap();
                vlm.answer_logits(&encoded, &batch.prompt, &ids).unwrap()
            };
            let original = logits([2, 40, 41, 42, 3]);
            let changed = logits([2, 40, 99, 42, 3]);
            let difference = |position: usize| {
                (original.i((.., position, ..)).unwrap() - changed.i((.., position, ..)).unwrap())
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            };
            assert_eq!((difference(0), difference(1)), (0.0, 0.0), "{preset}: earlier positions saw a later token");
            assert!(difference(2) > 0.0 && difference(4) > 0.0, "{preset}: later positions must see it");
        }
    }
}
