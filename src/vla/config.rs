//! The on-disk model description (`config.json` in a model folder): plain serde structs, every size
//! written out, and [`VlaConfig::validate`] that rejects combinations the model cannot build.

use serde::{Deserialize, Serialize};

use super::ensemble::TemporalEnsembleConfig;

/// Everything needed to build a [`super::Vla`]: backbone, formulation, input sizes and the init seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VlaConfig {
    /// The preset this config started from (`paligemma`, …, `film`); informational.
    pub preset: String,
    /// Seed of the initial weights.
    pub seed: u64,
    /// Instruction vocabulary size (the tokenizer's).
    pub vocab_size: usize,
    /// Instruction length in tokens, padding included (`Tokenizer::encode(text, max_len)`).
    pub max_text_len: usize,
    /// Side of the square static camera image, pixels.
    pub static_image_size: usize,
    /// Side of the square gripper camera image, pixels.
    pub gripper_image_size: usize,
    /// Whether the gripper camera is an input (its tokens follow the static camera's).
    pub use_gripper_camera: bool,
    /// Length of `robot_obs` (15 in CALVIN's layout).
    pub robot_obs_dim: usize,
    /// Per-dimension standardisation of `robot_obs`, applied inside the model (set by the trainer
    /// from its training split; absent in configs written before it existed: raw values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub robot_obs_norm: Option<RobotObsNorm>,
    /// The vision-language backbone, or the FiLM baseline.
    pub backbone: BackboneConfig,
    /// How history and actions are formulated.
    pub formulation: FormulationConfig,
    /// Temporal ensembling of the predicted chunks at inference (absent: each step executes the
    /// newest chunk's first action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal_ensemble: Option<TemporalEnsembleConfig>,
    /// Weight of the auxiliary scene-state loss next to the action loss (`super::scene_state`; the
    /// model then carries its read-out head). Training only; absent: actions only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scene_state_loss: Option<f64>,
    /// Weight of the auxiliary steps-left loss next to the action loss (`super::steps_left`; the
    /// model then carries its read-out head). Training only; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps_left_loss: Option<f64>,
}

/// `robot_obs` statistics: the model sees `(robot_obs - mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobotObsNorm {
    /// Per-dimension mean.
    pub mean: Vec<f32>,
    /// Per-dimension standard deviation (positive).
    pub std: Vec<f32>,
}

/// The network that turns one or more frames and the instruction into features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BackboneConfig {
    /// Vision tower → connector → language model, RoboVLMs' VLA construction.
    Vlm(VlmConfig),
    /// RT-1-style FiLM-conditioned conv encoder, no language model.
    Film(FilmConfig),
}

/// A vision-language model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VlmConfig {
    /// The vision tower.
    pub vision: VisionConfig,
    /// Pixel-unshuffle factor applied to the tower's patch grid before the connector (1 = none):
    /// `f × f` neighbouring patches become one token of `f²` times the width.
    pub pixel_unshuffle: usize,
    /// How patch features become language-model tokens.
    pub connector: ConnectorConfig,
    /// The language model.
    pub language_model: DecoderConfig,
}

/// A vision tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VisionConfig {
    /// Plain ViT (SigLIP or CLIP flavour).
    Vit(VitConfig),
    /// Convolutional stages then attention on a coarse grid (FastViT-like).
    ConvHybrid(ConvHybridConfig),
}

/// Which ViT recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VitStyle {
    /// SigLIP: no class token, post-layernorm on every patch, inputs scaled to [-1, 1].
    Siglip,
    /// CLIP: a class token and a pre-layernorm; patch tokens taken before the post-layernorm (as LLaVA
    /// does); inputs normalised with CLIP's channel statistics.
    Clip,
}

/// A ViT; field names follow HF's `SiglipVisionConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VitConfig {
    /// SigLIP or CLIP.
    pub style: VitStyle,
    /// Patch side, pixels.
    pub patch_size: usize,
    /// Token width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
}

/// A FastViT-like hybrid: a stride-4 patch stem, two conv stages each followed by a 2× patch merge,
/// then attention on the 16× downsampled grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvHybridConfig {
    /// Channels of the two conv stages (at 1/4 and 1/8 resolution).
    pub stage_channels: [usize; 2],
    /// Token width of the attention stage (at 1/16 resolution).
    pub hidden_size: usize,
    /// MLP width of the attention stage.
    pub intermediate_size: usize,
    /// Attention layers.
    pub num_attention_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
}

/// How patch features become language-model tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectorConfig {
    /// One linear layer per patch (PaliGemma).
    Linear,
    /// Two-layer GELU MLP per patch (LLaVA, MoonDream).
    Mlp {
        /// Hidden width.
        hidden_size: usize,
    },
    /// Flamingo's Perceiver resampler: learnable latents cross-attend to patches (and themselves).
    PerceiverResampler {
        /// Output tokens per frame.
        num_latents: usize,
        /// Resampler layers.
        depth: usize,
        /// Attention heads.
        num_heads: usize,
        /// Feed-forward width.
        intermediate_size: usize,
    },
    /// Qwen-VL's adapter: one cross-attention layer from learnable queries to the patches, with 2-D
    /// position embeddings on the keys.
    QueryAdapter {
        /// Output tokens per frame.
        num_queries: usize,
        /// Attention heads.
        num_heads: usize,
    },
}

/// Normalisation layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// RMSNorm (Gemma, Llama).
    Rms,
    /// LayerNorm (Phi, ViTs).
    Layer,
}

/// Feed-forward block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MlpKind {
    /// `down(gelu(gate) · up)` (Gemma).
    GeGlu,
    /// `down(silu(gate) · up)` (Llama).
    SwiGlu,
    /// `fc2(gelu(fc1))` (Phi, ViTs).
    Gelu,
}

/// How attention and feed-forward are arranged in a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// `x + attn(norm(x))`, then `+ mlp(norm(·))`.
    Sequential,
    /// Phi: `x + attn(norm(x)) + mlp(norm(x))` with one shared norm.
    Parallel,
}

/// Which earlier tokens each token of the language model sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskKind {
    /// Each token sees itself and the tokens before it.
    Causal,
    /// PaliGemma: the image + text prefix attends to itself fully; later tokens are causal.
    PrefixLm,
}

/// A decoder-only language model; one struct covers the Gemma, Llama and Phi variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderConfig {
    /// Token width.
    pub hidden_size: usize,
    /// Feed-forward width.
    pub intermediate_size: usize,
    /// Layers.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (1 = multi-query attention, `num_heads` = multi-head).
    pub num_kv_heads: usize,
    /// Normalisation.
    pub norm: NormKind,
    /// Normalisation epsilon.
    pub norm_eps: f64,
    /// Feed-forward block.
    pub mlp: MlpKind,
    /// Sequential or parallel (Phi) layers.
    pub block: BlockKind,
    /// RoPE base.
    pub rope_theta: f64,
    /// Attention mask.
    pub mask: MaskKind,
    /// Multiply token embeddings by `sqrt(hidden_size)` (Gemma).
    pub scale_embeddings: bool,
    /// Flamingo: a gated cross-attention layer to the image tokens before every n-th layer; the image
    /// tokens are then not part of the sequence.
    pub cross_attention_every: Option<usize>,
}

/// RT-1-style baseline: the instruction's bag of token embeddings FiLM-conditions every conv block of
/// the image encoder; a TokenLearner pools the map into a few tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilmConfig {
    /// Width of the instruction embedding.
    pub text_embedding_dim: usize,
    /// Side of the stem's square patches, the first stage's downsampling (RT-1's encoder: 8).
    #[serde(default = "FilmConfig::default_stem_patch")]
    pub stem_patch: usize,
    /// Channels of the conv stages; the first follows the patch stem, each later one a 2× merge.
    pub stage_channels: Vec<usize>,
    /// Tokens the TokenLearner pools the final map into.
    pub num_tokens: usize,
    /// Also give the head each TokenLearner map's expected image position, x and y in [-1, 1]: the
    /// spatial-softmax keypoints of [Levine et al. 2016](https://arxiv.org/abs/1504.00702), where
    /// things are as numbers rather than spread over pooled channels.
    #[serde(default)]
    pub keypoints: bool,
    /// Width of the per-frame feature given to the head.
    pub feature_size: usize,
}

impl FilmConfig {
    fn default_stem_patch() -> usize {
        8
    }

    /// Downsampling from the image to the final map.
    pub fn downsample(&self) -> usize {
        self.stem_patch << self.stage_channels.len().saturating_sub(1)
    }
}

/// How frames of history are fused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryFusion {
    /// The backbone sees one frame at a time; the policy head fuses the per-frame features.
    PolicyHead,
    /// All frames go into one language-model sequence, each followed by its own action token.
    Interleaved,
}

/// Kind of action head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadKind {
    /// MLP on the last frame's feature.
    Mlp,
    /// LSTM over the window of per-frame features.
    Lstm,
    /// Causal transformer over the window of per-frame features.
    Gpt,
}

/// The action head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadConfig {
    /// MLP, LSTM or GPT.
    pub kind: HeadKind,
    /// Width of the head.
    pub hidden_size: usize,
    /// Layers of the LSTM or GPT (the MLP always has two hidden layers).
    pub num_layers: usize,
    /// Attention heads of the GPT.
    pub num_heads: usize,
}

/// Arm regression loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ArmLoss {
    /// Huber with this transition point.
    Huber {
        /// Where the loss turns from quadratic to linear.
        delta: f64,
    },
    /// Mean squared error.
    Mse,
    /// A mixture of `components` Gaussians of one fixed scale per step, trained by its likelihood
    /// (`vla::mixture`): the head predicts each component's mean and weight, and the likeliest
    /// component's mean is executed, so where the demonstrations go two ways from one image the
    /// model commits to one instead of averaging them into standing still.
    Mixture {
        /// Candidate arm actions per predicted step.
        components: usize,
    },
}

impl ArmLoss {
    /// Candidate arm actions per step the head predicts, for a mixture.
    pub fn mixture_components(self) -> Option<usize> {
        match self {
            ArmLoss::Mixture { components } => Some(components),
            ArmLoss::Huber { .. } | ArmLoss::Mse => None,
        }
    }
}

/// Continuous or discrete actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActionSpace {
    /// tanh arm (6 per step) + gripper logit, for `chunk` steps; the first is executed.
    Continuous {
        /// Steps predicted at once.
        chunk: usize,
        /// Arm loss.
        arm_loss: ArmLoss,
        /// Weight of the gripper's BCE relative to the arm loss.
        gripper_loss_weight: f64,
    },
    /// Seven tokens of `bins` uniform bins over [-1, 1], emitted by the language model one after the
    /// other (greedy decoding); one action step.
    Discrete {
        /// Bins per dimension.
        bins: usize,
    },
}

/// How history and actions are formulated (RoboVLMs §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormulationConfig {
    /// Frames seen per prediction (1 = one-step).
    pub history_window: usize,
    /// Control steps from one frame of a window to the next (1 = consecutive frames). Training
    /// sets it to the run's frame stride, so a window of 8 over the images of every 4th frame
    /// spans 29 steps, and the policy keeps that spacing when it acts.
    #[serde(default = "consecutive", skip_serializing_if = "is_consecutive")]
    pub history_spacing: usize,
    /// How a window longer than 1 is fused.
    pub history: HistoryFusion,
    /// The head (unused by discrete actions, which the language model emits).
    pub head: HeadConfig,
    /// Continuous or discrete actions.
    pub action_space: ActionSpace,
}

fn consecutive() -> usize {
    1
}

fn is_consecutive(spacing: &usize) -> bool {
    *spacing == 1
}

impl FormulationConfig {
    /// Control steps from the oldest frame of a window to the newest, plus one.
    pub fn history_span(&self) -> usize {
        (self.history_window - 1) * self.history_spacing + 1
    }

    /// A history formulation with a window of `frames` instead of its own (each frame costs a
    /// backbone pass in training); a one-step formulation has no window to change.
    pub fn set_history_window(&mut self, frames: usize) -> Result<(), String> {
        require(self.history_window > 1, || {
            format!(
                "a history window of {frames} frames needs a history formulation (policy_head, policy_head_gpt, interleaved, …)"
            )
        })?;
        require(frames >= 2, || format!("a history window holds at least 2 frames, not {frames}"))?;
        self.history_window = frames;
        Ok(())
    }

    /// A continuous formulation predicting `steps` actions after each frame instead of its own
    /// chunk; discrete actions are one step each.
    pub fn set_chunk(&mut self, steps: usize) -> Result<(), String> {
        require(steps >= 1, || format!("a chunk holds at least 1 action, not {steps}"))?;
        match &mut self.action_space {
            ActionSpace::Continuous { chunk, .. } => {
                *chunk = steps;
                Ok(())
            }
            ActionSpace::Discrete { .. } => Err(format!(
                "a chunk of {steps} actions needs a continuous formulation; discrete actions are one step each"
            )),
        }
    }

    /// A continuous formulation weighting its gripper's BCE by `weight` against the arm's loss
    /// instead of its own weight; discrete actions have one loss over all tokens.
    pub fn set_gripper_loss_weight(&mut self, weight: f64) -> Result<(), String> {
        require(weight.is_finite() && weight > 0.0, || {
            format!("a gripper loss weight must be positive, not {weight}")
        })?;
        match &mut self.action_space {
            ActionSpace::Continuous { gripper_loss_weight, .. } => {
                *gripper_loss_weight = weight;
                Ok(())
            }
            ActionSpace::Discrete { .. } => Err(format!(
                "a gripper loss weight of {weight} needs a continuous formulation; discrete actions share one loss"
            )),
        }
    }

    /// Action steps per prediction.
    pub fn chunk(&self) -> usize {
        match self.action_space {
            ActionSpace::Continuous { chunk, .. } => chunk,
            ActionSpace::Discrete { .. } => 1,
        }
    }
}

fn require(condition: bool, reason: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(reason()) }
}

impl VlaConfig {
    /// Checks sizes and combinations; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let formulation = &self.formulation;
        require(formulation.history_window >= 1, || "formulation.history_window must be at least 1".into())?;
        require(formulation.history_spacing >= 1, || "formulation.history_spacing must be at least 1".into())?;
        require(self.max_text_len >= 2, || "max_text_len must leave room for <s> and </s>".into())?;
        if let Some(norm) = &self.robot_obs_norm {
            let sized = norm.mean.len() == self.robot_obs_dim && norm.std.len() == self.robot_obs_dim;
            require(sized, || format!("robot_obs_norm needs {} means and stds", self.robot_obs_dim))?;
            let positive =
                norm.std.iter().all(|s| s.is_finite() && *s > 0.0) && norm.mean.iter().all(|m| m.is_finite());
            require(positive, || "robot_obs_norm.std must be positive and every value finite".into())?;
        }
        if let Some(ensemble) = &self.temporal_ensemble {
            require(ensemble.decay.is_finite(), || "temporal_ensemble.decay must be a finite number".into())?;
        }
        let discrete = matches!(formulation.action_space, ActionSpace::Discrete { .. });
        for (name, weight) in [("scene_state_loss", self.scene_state_loss), ("steps_left_loss", self.steps_left_loss)] {
            let Some(weight) = weight else { continue };
            require(weight.is_finite() && weight > 0.0, || format!("{name} must be a positive number"))?;
            require(!discrete, || format!("{name} reads the continuous head's features: discrete actions have none"))?;
        }
        if let ActionSpace::Discrete { bins } = formulation.action_space {
            require(bins >= 2, || "formulation.action_space.bins must be at least 2".into())?;
        }
        if let ActionSpace::Continuous { chunk, arm_loss, .. } = formulation.action_space {
            require(chunk >= 1, || "formulation.action_space.chunk must be at least 1".into())?;
            if let Some(components) = arm_loss.mixture_components() {
                require(components >= 1, || "formulation.action_space.arm_loss.components must be at least 1".into())?;
            }
        }
        let window = formulation.history_window;
        let interleaved = window > 1 && formulation.history == HistoryFusion::Interleaved;
        if window > 1 && formulation.history == HistoryFusion::PolicyHead {
            require(formulation.head.kind != HeadKind::Mlp, || {
                "formulation.head.kind `mlp` sees one frame; a policy-head history needs `lstm` or `gpt`".into()
            })?;
        }
        if formulation.head.kind == HeadKind::Gpt {
            require(formulation.head.hidden_size.is_multiple_of(formulation.head.num_heads.max(1)), || {
                "formulation.head.hidden_size must be a multiple of num_heads".into()
            })?;
        }
        match &self.backbone {
            BackboneConfig::Film(film) => {
                require(!discrete, || "discrete actions are emitted by a language model; `film` has none".into())?;
                require(!interleaved, || "interleaved history needs a language model; `film` has none".into())?;
                require(!film.stage_channels.is_empty(), || "backbone.stage_channels must not be empty".into())?;
                require(film.stem_patch > 0, || "backbone.stem_patch must be positive".into())?;
                let downsample = film.downsample();
                require(self.static_image_size.is_multiple_of(downsample), || {
                    format!(
                        "static_image_size must be a multiple of {downsample} for {} stages",
                        film.stage_channels.len()
                    )
                })?;
                require(!self.use_gripper_camera || self.gripper_image_size.is_multiple_of(downsample), || {
                    format!("gripper_image_size must be a multiple of {downsample}")
                })?;
            }
            BackboneConfig::Vlm(vlm) => {
                require(!(discrete && window > 1 && formulation.history == HistoryFusion::PolicyHead), || {
                    "discrete actions are emitted by the language model; with history use `interleaved`".into()
                })?;
                let lm = &vlm.language_model;
                require(lm.hidden_size % lm.num_heads == 0 && (lm.hidden_size / lm.num_heads) % 2 == 0, || {
                    "language_model.hidden_size / num_heads must be an even integer (RoPE)".into()
                })?;
                require(lm.num_kv_heads >= 1 && lm.num_heads % lm.num_kv_heads == 0, || {
                    "language_model.num_heads must be a multiple of num_kv_heads".into()
                })?;
                require(lm.cross_attention_every.is_none_or(|n| n >= 1), || {
                    "language_model.cross_attention_every must be at least 1".into()
                })?;
                let (width, heads) = match &vlm.vision {
                    VisionConfig::Vit(vit) => (vit.hidden_size, vit.num_attention_heads),
                    VisionConfig::ConvHybrid(conv) => (conv.hidden_size, conv.num_attention_heads),
                };
                require(width % heads == 0, || "vision.hidden_size must be a multiple of its heads".into())?;
                let mut sizes = vec![("static_image_size", self.static_image_size)];
                if self.use_gripper_camera {
                    sizes.push(("gripper_image_size", self.gripper_image_size));
                }
                for (field, size) in sizes {
                    let step = match &vlm.vision {
                        VisionConfig::Vit(vit) => vit.patch_size,
                        VisionConfig::ConvHybrid(_) => 16,
                    };
                    require(size % step == 0, || {
                        format!("{field} {size} must be a multiple of the patch size {step}")
                    })?;
                    let grid = size / step;
                    require(vlm.pixel_unshuffle >= 1 && grid % vlm.pixel_unshuffle == 0, || {
                        format!("pixel_unshuffle {} must divide the {field} patch grid {grid}", vlm.pixel_unshuffle)
                    })?;
                }
                match &vlm.connector {
                    ConnectorConfig::PerceiverResampler { num_heads, .. }
                    | ConnectorConfig::QueryAdapter { num_heads, .. } => {
                        require(lm.hidden_size % num_heads == 0, || {
                            "connector.num_heads must divide language_model.hidden_size".into()
                        })?;
                    }
                    ConnectorConfig::Linear | ConnectorConfig::Mlp { .. } => {}
                }
            }
        }
        Ok(())
    }
}
