//! The assembled VLA: a backbone, a formulation (one-step / policy-head history / interleaved;
//! continuous chunk / discrete tokens) and the losses, plus saving and loading an HF-style folder.

use std::path::Path;

use candle_core::{D, DType, Device, IndexOp, Result, Tensor, Var};

use super::VlaError;
use super::backbone::{BackboneAttention, FilmBackbone, Frames, Text, TokenLayout, VlmBackbone, repeat_rows};
use super::config::{ActionSpace, ArmLoss, BackboneConfig, HistoryFusion, VlaConfig};
use super::ensemble::{PredictedStep, executed};
use super::heads::{ARM_DIMS, ActionHead, ContinuousActions};
use super::params::ParamStore;
use super::readout::Readout;
use super::scene_state::scene_state_head;
use super::steps_left::steps_left_head;

/// Dimensions of an action: 6 arm + gripper.
pub const ACTION_DIMS: usize = 7;
/// File names inside a model folder.
pub const CONFIG_FILE: &str = "config.json";
/// Weights inside a model folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// A batch of model inputs. `T` is the history window (1 for one-step).
#[derive(Debug, Clone)]
pub struct VlaInput {
    /// `[B, T, 3, 128, 128]` f32 in [0, 1] (normalised inside the model).
    pub static_images: Tensor,
    /// `[B, T, 3, 64, 64]` f32 in [0, 1]; required when the config uses the gripper camera.
    pub gripper_images: Option<Tensor>,
    /// `[B, T, 15]` f32.
    pub robot_obs: Tensor,
    /// `[B, L]` u32 token ids from `Tokenizer::encode(text, max_text_len)`.
    pub instruction_ids: Tensor,
    /// `[B, L]` u32, 1 for real tokens.
    pub instruction_mask: Tensor,
}

/// Options of [`Vla::forward`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardOptions<'a> {
    /// Return every attention layer's weights.
    pub capture_attention: bool,
    /// Discrete actions only: target actions `[B, T, chunk, 7]` (as in [`ActionTargets`]) whose
    /// last frame's first step is fed back as the previous tokens (teacher forcing, for training). Without them the tokens are decoded greedily.
    pub teacher_actions: Option<&'a Tensor>,
}

/// Predicted actions.
#[derive(Debug, Clone)]
pub enum ActionOutput {
    /// An action chunk.
    Continuous(ContinuousActions),
    /// `[B, 7, bins]` logits, one token per action dimension.
    Discrete {
        /// The logits.
        logits: Tensor,
    },
}

/// Every attention layer's weights from one forward pass, and where the tokens are.
#[derive(Debug, Clone)]
pub struct AttentionCapture {
    /// Vision tower, language model and connector attention. With a policy head each frame is its
    /// own sequence: row `b · T + t` is frame `t` of sample `b`.
    pub backbone: BackboneAttention,
    /// GPT policy head, `[B, heads, T, T]` per layer.
    pub head: Vec<Tensor>,
    /// The language-model sequence layout (`None` for the FiLM baseline).
    pub layout: Option<TokenLayout>,
}

/// The model's output.
#[derive(Debug, Clone)]
pub struct VlaOutput {
    /// The actions.
    pub actions: ActionOutput,
    /// Attention weights, when asked for.
    pub attention: Option<AttentionCapture>,
    /// The per-frame features `[B, F, d]` the continuous head read (none for discrete actions).
    pub features: Option<Tensor>,
}

/// Targets for [`Vla::loss`].
#[derive(Debug, Clone)]
pub struct ActionTargets {
    /// `[B, T, chunk, 7]`, the chunk after each frame of the window: arm in [-1, 1], gripper -1
    /// (close) or +1 (open).
    pub actions: Tensor,
    /// `[B, T, chunk]` f32: 1 for real steps, 0 for padding past the episode's end.
    pub mask: Tensor,
    /// `[B, T, 15]` scene-state targets (`scene_state::scene_state_target`), for models with the
    /// scene-state loss.
    pub scene_state: Option<Tensor>,
    /// `[B, T, 1]` steps-left targets (`steps_left::steps_left_target`), for models with the
    /// steps-left loss.
    pub steps_left: Option<Tensor>,
}

#[derive(Debug, Clone)]
// One per model, built once: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Backbone {
    Vlm(VlmBackbone),
    Film(FilmBackbone),
}

/// A vision-language-action model.
#[derive(Debug, Clone)]
pub struct Vla {
    config: VlaConfig,
    params: ParamStore,
    backbone: Backbone,
    /// Continuous actions only.
    head: Option<ActionHead>,
    /// With the auxiliary scene-state loss only.
    scene_state_head: Option<Readout>,
    /// With the auxiliary steps-left loss only.
    steps_left_head: Option<Readout>,
}

/// Bin of each value in [-1, 1] among `bins` uniform bins (the gripper's ±1 land in the end bins).
pub fn actions_to_bins(actions: &Tensor, bins: usize) -> Result<Tensor> {
    let top = (bins - 1) as f64;
    actions.clamp(-1.0, 1.0)?.affine(top / 2.0, top / 2.0)?.round()?.to_dtype(DType::U32)
}

/// Centre value in [-1, 1] of each bin.
pub fn bins_to_actions(bins: &Tensor, count: usize) -> Result<Tensor> {
    let top = (count - 1) as f64;
    bins.to_dtype(DType::F32)?.affine(2.0 / top, -1.0)
}

impl Vla {
    /// A freshly initialised model (weights from `config.seed`) on `device`.
    pub fn new(config: VlaConfig, device: &Device) -> std::result::Result<Self, VlaError> {
        config.validate().map_err(VlaError::InvalidConfig)?;
        let params = ParamStore::new(config.seed, device);
        let vb = params.var_builder();
        let formulation = &config.formulation;
        let discrete_bins = match formulation.action_space {
            ActionSpace::Discrete { bins } => Some(bins),
            ActionSpace::Continuous { .. } => None,
        };
        let (backbone, feature_size) = match &config.backbone {
            BackboneConfig::Vlm(vlm) => (
                Backbone::Vlm(VlmBackbone::new(&config, vlm, discrete_bins, vb.pp("backbone"))?),
                vlm.language_model.hidden_size,
            ),
            BackboneConfig::Film(film) => {
                (Backbone::Film(FilmBackbone::new(&config, film, vb.pp("backbone"))?), film.feature_size)
            }
        };
        let head = match formulation.action_space {
            ActionSpace::Continuous { chunk, arm_loss, .. } => Some(ActionHead::new(
                &formulation.head,
                feature_size,
                formulation.history_window,
                chunk,
                arm_loss.mixture_components(),
                vb.pp("head"),
            )?),
            ActionSpace::Discrete { .. } => None,
        };
        let scene_state_head =
            config.scene_state_loss.map(|_| scene_state_head(feature_size, vb.pp("scene_state_head"))).transpose()?;
        let steps_left_head =
            config.steps_left_loss.map(|_| steps_left_head(feature_size, vb.pp("steps_left_head"))).transpose()?;
        Ok(Self { config, params, backbone, head, scene_state_head, steps_left_head })
    }

    /// The config the model was built from.
    pub fn config(&self) -> &VlaConfig {
        &self.config
    }

    /// Where the model runs: its inputs must live there too.
    pub fn device(&self) -> &Device {
        self.params.device()
    }

    /// The parameters (for the optimiser: `params().vars()`).
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// Trainable variables, sorted by name.
    pub fn vars(&self) -> Vec<Var> {
        self.params.vars().into_iter().map(|(_, var)| var).collect()
    }

    /// The vision-language backbone (none for the FiLM baseline).
    pub(super) fn vlm_backbone(&self) -> Option<&VlmBackbone> {
        match &self.backbone {
            Backbone::Vlm(vlm) => Some(vlm),
            Backbone::Film(_) => None,
        }
    }

    /// Language-model image tokens per frame (for FiLM: its TokenLearner tokens per camera).
    pub fn image_tokens(&self) -> usize {
        match &self.backbone {
            Backbone::Vlm(vlm) => vlm.tokens_per_frame(),
            Backbone::Film(film) => film.tokens_per_camera(),
        }
    }

    fn frames(&self, input: &VlaInput) -> Result<(usize, usize, Frames)> {
        let (batch, window, _, _, _) = input.static_images.dims5()?;
        if window != self.config.formulation.history_window {
            candle_core::bail!(
                "inputs carry {window} frames but the model's history window is {}",
                self.config.formulation.history_window
            );
        }
        let flat = |xs: &Tensor| -> Result<Tensor> {
            let dims = xs.dims();
            xs.reshape([&[batch * window], &dims[2..]].concat())
        };
        let frames = Frames {
            static_images: flat(&input.static_images)?,
            gripper_images: input.gripper_images.as_ref().map(flat).transpose()?,
            robot_obs: self.normalize_robot_obs(&flat(&input.robot_obs)?)?,
        };
        Ok((batch, window, frames))
    }

    /// `[n, robot_obs_dim]` standardised with the config's statistics (unchanged without them).
    fn normalize_robot_obs(&self, robot_obs: &Tensor) -> Result<Tensor> {
        let Some(norm) = &self.config.robot_obs_norm else {
            return Ok(robot_obs.clone());
        };
        let dims = norm.mean.len();
        let mean = Tensor::from_slice(&norm.mean, (1, dims), robot_obs.device())?;
        let std = Tensor::from_slice(&norm.std, (1, dims), robot_obs.device())?;
        robot_obs.broadcast_sub(&mean)?.broadcast_div(&std)
    }

    /// Predicts actions for a batch.
    pub fn forward(&self, input: &VlaInput, options: ForwardOptions) -> Result<VlaOutput> {
        let capture = options.capture_attention;
        let (batch, window, frames) = self.frames(input)?;
        let text = Text { ids: input.instruction_ids.clone(), mask: input.instruction_mask.clone() };
        match &self.backbone {
            Backbone::Film(film) => {
                let text_embedding = repeat_rows(&film.encode_text(&text)?, window)?;
                let (features, token_maps) = film.features(&frames, &text_embedding)?;
                let features = features.reshape((batch, window, ()))?;
                let capture = capture.then(|| AttentionCapture {
                    backbone: BackboneAttention { token_learner: vec![token_maps], ..BackboneAttention::default() },
                    head: Vec::new(),
                    layout: None,
                });
                self.continuous_head(&features, capture)
            }
            Backbone::Vlm(vlm) => {
                let interleaved = self.config.formulation.history == HistoryFusion::Interleaved;
                let (frames_per_sequence, text) = if interleaved {
                    (window, text)
                } else {
                    (1, Text { ids: repeat_rows(&text.ids, window)?, mask: repeat_rows(&text.mask, window)? })
                };
                let encoded = vlm.encode_frames(&frames, capture)?;
                match self.config.formulation.action_space {
                    ActionSpace::Continuous { .. } => {
                        let out = vlm.language(&encoded, frames_per_sequence, &text, None, capture)?;
                        let last_action = *out.layout.action.last().expect("every sequence has an action token");
                        let features =
                            out.hidden.i((.., last_action, ..))?.reshape((batch, window / frames_per_sequence, ()))?;
                        let capture = capture.then(|| AttentionCapture {
                            backbone: out.attention,
                            head: Vec::new(),
                            layout: Some(out.layout),
                        });
                        self.continuous_head(&features, capture)
                    }
                    ActionSpace::Discrete { bins } => {
                        let known = match options.teacher_actions {
                            Some(actions) => {
                                let last = actions.dim(1)? - 1;
                                Some(actions_to_bins(&actions.i((.., last, 0, 0..ACTION_DIMS - 1))?, bins)?)
                            }
                            None => None,
                        };
                        match known {
                            Some(known) => {
                                let out = vlm.language(&encoded, frames_per_sequence, &text, Some(&known), capture)?;
                                let first = *out.layout.action.last().expect("every sequence has an action token");
                                let logits = vlm.action_logits(&out.hidden.narrow(1, first, ACTION_DIMS)?)?;
                                let attention = capture.then(|| AttentionCapture {
                                    backbone: out.attention,
                                    head: Vec::new(),
                                    layout: Some(out.layout),
                                });
                                Ok(VlaOutput { actions: ActionOutput::Discrete { logits }, attention, features: None })
                            }
                            None => self.greedy_decode(vlm, &encoded, frames_per_sequence, &text, capture),
                        }
                    }
                }
            }
        }
    }

    fn continuous_head(&self, features: &Tensor, capture: Option<AttentionCapture>) -> Result<VlaOutput> {
        let head = self.head.as_ref().expect("continuous action spaces build a head");
        let (actions, head_attention) = head.forward(features, capture.is_some())?;
        let attention = capture.map(|mut capture| {
            capture.head = head_attention;
            capture
        });
        Ok(VlaOutput { actions: ActionOutput::Continuous(actions), attention, features: Some(features.clone()) })
    }

    /// Emits the 7 action tokens one at a time, each the arg-max given the ones before (re-running
    /// the language model per token: no KV cache yet; the vision side runs once).
    fn greedy_decode(
        &self,
        vlm: &VlmBackbone,
        encoded: &super::backbone::EncodedFrames,
        frames_per_sequence: usize,
        text: &Text,
        capture: bool,
    ) -> Result<VlaOutput> {
        let mut known: Option<Tensor> = None;
        let mut step_logits = Vec::with_capacity(ACTION_DIMS);
        let mut attention = None;
        for step in 0..ACTION_DIMS {
            let last = step + 1 == ACTION_DIMS;
            let out = vlm.language(encoded, frames_per_sequence, text, known.as_ref(), capture && last)?;
            let position = out.layout.action.last().expect("every sequence has an action token") + step;
            let logits = vlm.action_logits(&out.hidden.i((.., position, ..))?)?;
            let choice = logits.argmax_keepdim(D::Minus1)?;
            known = Some(match known {
                Some(previous) => Tensor::cat(&[&previous, &choice], 1)?,
                None => choice,
            });
            step_logits.push(logits);
            if capture && last {
                attention =
                    Some(AttentionCapture { backbone: out.attention, head: Vec::new(), layout: Some(out.layout) });
            }
        }
        let logits = Tensor::stack(&step_logits, 1)?;
        Ok(VlaOutput { actions: ActionOutput::Discrete { logits }, attention, features: None })
    }

    /// Training loss: Huber, MSE or the mixture's loss on the arm + weighted BCE on the gripper
    /// over the real chunk steps of every predicting frame (the window's last `frames` frames),
    /// plus the weighted scene-state and steps-left losses the config has; cross-entropy over the
    /// 7 tokens of the last frame's first step for discrete actions.
    pub fn loss(&self, output: &VlaOutput, targets: &ActionTargets) -> Result<Tensor> {
        let window = targets.actions.dim(1)?;
        match (&output.actions, &self.config.formulation.action_space) {
            (ActionOutput::Continuous(predicted), ActionSpace::Continuous { arm_loss, gripper_loss_weight, .. }) => {
                let (_, frames, chunk, _) = predicted.arm.dims4()?;
                let actions = targets.actions.narrow(1, window - frames, frames)?.narrow(2, 0, chunk)?;
                let mask =
                    targets.mask.narrow(1, window - frames, frames)?.narrow(2, 0, chunk)?.to_dtype(DType::F32)?;
                let target_arm = actions.narrow(3, 0, ARM_DIMS)?;
                let error = || &predicted.arm - &target_arm;
                let per_step = match (*arm_loss, &predicted.mixture) {
                    (ArmLoss::Mse, _) => error()?.sqr()?.mean(D::Minus1)?,
                    (ArmLoss::Huber { delta }, _) => huber(&error()?, delta)?.mean(D::Minus1)?,
                    (ArmLoss::Mixture { .. }, Some(mixture)) => mixture.loss(&target_arm)?,
                    (ArmLoss::Mixture { .. }, None) => candle_core::bail!("a mixture loss needs the head's mixture"),
                };
                let real_steps = mask.sum_all()?.clamp(1.0, f64::INFINITY)?;
                let arm = (per_step * &mask)?.sum_all()?.div(&real_steps)?;
                let opened = actions.i((.., .., .., ARM_DIMS))?.gt(0.0)?.to_dtype(DType::F32)?;
                let logits = &predicted.gripper_logits;
                // Numerically stable BCE with logits: max(x, 0) − x·z + log(1 + exp(−|x|)).
                let bce = ((logits.relu()? - (logits * &opened)?)? + (logits.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
                let gripper = (bce * &mask)?.sum_all()?.div(&real_steps)?;
                let actions_loss = (arm + (gripper * *gripper_loss_weight)?)?;
                let readouts = [
                    ("scene-state", &self.scene_state_head, self.config.scene_state_loss, &targets.scene_state),
                    ("steps-left", &self.steps_left_head, self.config.steps_left_loss, &targets.steps_left),
                ];
                let mut loss = actions_loss;
                for (name, head, weight, target) in readouts {
                    let (Some(head), Some(weight)) = (head, weight) else { continue };
                    let (Some(features), Some(target)) = (&output.features, target) else {
                        candle_core::bail!("the {name} loss needs the features and the {name} targets")
                    };
                    loss = (loss + (head.loss(features, target)? * weight)?)?;
                }
                Ok(loss)
            }
            (ActionOutput::Discrete { logits }, ActionSpace::Discrete { bins }) => {
                let target = actions_to_bins(&targets.actions.i((.., window - 1, 0, ..))?, *bins)?;
                let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
                let picked = log_probs.gather(&target.unsqueeze(D::Minus1)?, D::Minus1)?.squeeze(D::Minus1)?;
                let step_mask = targets.mask.i((.., window - 1, 0..1))?.to_dtype(DType::F32)?;
                let real = (step_mask.sum_all()? * ACTION_DIMS as f64)?.clamp(1.0, f64::INFINITY)?;
                picked.broadcast_mul(&step_mask)?.sum_all()?.neg()?.div(&real)
            }
            _ => candle_core::bail!("the output does not match the model's action space"),
        }
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (created if missing).
    pub fn save(&self, dir: &Path) -> std::result::Result<(), VlaError> {
        std::fs::create_dir_all(dir).map_err(|cause| VlaError::Io { path: dir.to_path_buf(), cause })?;
        let config_path = dir.join(CONFIG_FILE);
        let json = serde_json::to_string_pretty(&self.config).expect("configs are plain data and always serialise");
        std::fs::write(&config_path, json).map_err(|cause| VlaError::Io { path: config_path, cause })?;
        self.params.save(&dir.join(WEIGHTS_FILE))
    }

    /// Loads a folder written by [`Vla::save`]. A missing, extra or mis-shaped tensor is an error
    /// naming it and the file.
    pub fn load(dir: &Path, device: &Device) -> std::result::Result<Self, VlaError> {
        let config = super::read_config(&dir.join(CONFIG_FILE))?;
        let model = Self::new(config, device)?;
        model.params.load(&dir.join(WEIGHTS_FILE))?;
        Ok(model)
    }

    /// The FiLM backbone's instruction embedding, for policies that cache it per episode.
    pub(crate) fn film_text(&self, text: &Text) -> Result<Option<Tensor>> {
        match &self.backbone {
            Backbone::Film(film) => film.encode_text(text).map(Some),
            Backbone::Vlm(_) => Ok(None),
        }
    }

    /// Per-frame features `[n, d]` of a flat batch of frames sharing one instruction (policy-head and
    /// one-step formulations only); `film_text` is the cached FiLM instruction embedding `[1, e]`.
    pub(crate) fn frame_features(&self, frames: &Frames, text: &Text, film_text: Option<&Tensor>) -> Result<Tensor> {
        let frames = &Frames { robot_obs: self.normalize_robot_obs(&frames.robot_obs)?, ..frames.clone() };
        let n = frames.robot_obs.dim(0)?;
        match &self.backbone {
            Backbone::Film(film) => {
                let embedding = match film_text {
                    Some(cached) => cached.clone(),
                    None => film.encode_text(text)?,
                };
                Ok(film.features(frames, &repeat_rows(&embedding, n)?)?.0)
            }
            Backbone::Vlm(vlm) => {
                let text = Text { ids: repeat_rows(&text.ids, n)?, mask: repeat_rows(&text.mask, n)? };
                let out = vlm.language(&vlm.encode_frames(frames, false)?, 1, &text, None, false)?;
                out.hidden.i((.., *out.layout.action.last().expect("every sequence has an action token"), ..))
            }
        }
    }

    /// The continuous head over a window of per-frame features `[1, T, d]`.
    pub(crate) fn head_actions(&self, features: &Tensor) -> Result<ContinuousActions> {
        self.continuous_head(features, None)?.actions.into_continuous()
    }
}

impl ActionOutput {
    fn into_continuous(self) -> Result<ContinuousActions> {
        match self {
            Self::Continuous(actions) => Ok(actions),
            Self::Discrete { .. } => candle_core::bail!("expected continuous actions"),
        }
    }

    /// The first predicted action of sample `b` as 7 floats: arm in [-1, 1], gripper ±1.
    pub fn first_action(&self, b: usize) -> Result<[f32; ACTION_DIMS]> {
        Ok(executed(self.chunk(b)?[0]))
    }

    /// Every step predicted for sample `b` at the window's newest frame, the gripper as a score.
    pub fn chunk(&self, b: usize) -> Result<Vec<PredictedStep>> {
        match self {
            Self::Continuous(actions) => {
                let last = actions.arm.dim(1)? - 1;
                let arm = actions.arm.i((b, last))?.to_vec2::<f32>()?;
                let gripper = actions.gripper_logits.i((b, last))?.to_vec1::<f32>()?;
                Ok(arm
                    .iter()
                    .zip(gripper)
                    .map(|(arm, logit)| {
                        let mut step = [0f32; ACTION_DIMS];
                        step[..ARM_DIMS].copy_from_slice(arm);
                        step[ARM_DIMS] = logit;
                        step
                    })
                    .collect())
            }
            Self::Discrete { logits } => {
                let bins = logits.dim(D::Minus1)?;
                let values = bins_to_actions(&logits.i(b)?.argmax(D::Minus1)?, bins)?.to_vec1::<f32>()?;
                let mut step = [0f32; ACTION_DIMS];
                step.copy_from_slice(&values);
                Ok(vec![step])
            }
        }
    }
}

/// Element-wise Huber loss of `error`: quadratic inside `delta`, linear outside, so a few huge
/// errors cannot dominate the gradient.
pub fn huber(error: &Tensor, delta: f64) -> Result<Tensor> {
    // q (e − q / 2) with q = clamp(e, −δ, δ): e² / 2 inside, δ (|e| − δ / 2) outside, and no |e|
    // whose subgradient at 0 would make the gradient of a zero error non-zero.
    let clamped = error.clamp(-delta, delta)?;
    clamped.mul(&(error - (&clamped * 0.5)?)?)
}
