//! The two backbones that turn frames and an instruction into features: a vision-language model
//! (vision tower → connector → language model, with the learnable action token) and the RT-1-style
//! FiLM baseline. This file owns the language-model sequence layout and its attention masks.
//!
//! Sequence layout for `k` frames (`k` = 1 per sequence for one-step and policy-head formulations,
//! the whole window for interleaved):
//! - prefix fusion: `[image₁, text, LRN₁, image₂, LRN₂, …, imageₖ, LRNₖ, a₁ … aⱼ]`;
//! - Flamingo: `[text, LRN₁, …, LRNₖ, a₁ … aⱼ]`, the images reached through gated cross-attention,
//!   text and LRN₁ seeing frame 1, LRNᵢ frame i, action tokens the last frame;
//!
//! where LRNᵢ is the learnable action token plus a projection of frame i's `robot_obs`, and `a₁ … aⱼ`
//! the discrete action tokens already known (teacher forcing or greedy decoding). Vision-language
//! pre-training answers a prompt about one frame instead: `[image, prompt, answer]` (Flamingo:
//! `[prompt, answer]`), the answer read out through the token embedding (tied LM head). Masks are
//! causal; with a prefix-LM (PaliGemma) the prefix (everything before LRN₁, or before the answer)
//! attends to itself fully. Padded instruction tokens are never attended to.

use std::ops::Range;

use candle_core::{Result, Tensor};
use candle_nn::{Embedding, VarBuilder, embedding};

use super::config::{FilmConfig, MaskKind, VisionConfig, VlaConfig, VlmConfig};
use super::conv_encoder::ConvHybridEncoder;
use super::decoder::{CrossAttentionMedia, Decoder};
use super::film::{FilmEncoder, FilmText};
use super::linear::{Linear, linear};
use super::ops::{self, AttentionMask};
use super::projector::Connector;
use super::vit::{VisionOutput, VisionTransformer, pixel_unshuffle};

/// Longest teacher-forced answer of vision-language pre-training, in tokens (a scene caption takes
/// about 45).
pub const MAX_ANSWER_TOKENS: usize = 64;

/// Frames in a flat batch: `n` = sequences × frames per sequence.
#[derive(Debug, Clone)]
pub struct Frames {
    /// `[n, 3, s, s]` in [0, 1].
    pub static_images: Tensor,
    /// `[n, 3, g, g]` in [0, 1], when the model uses the gripper camera.
    pub gripper_images: Option<Tensor>,
    /// `[n, robot_obs_dim]`.
    pub robot_obs: Tensor,
}

/// A tokenized instruction per sequence.
#[derive(Debug, Clone)]
pub struct Text {
    /// `[sequences, max_text_len]` u32.
    pub ids: Tensor,
    /// `[sequences, max_text_len]` u32, 1 for real tokens.
    pub mask: Tensor,
}

/// A ViT or the conv-hybrid tower.
#[derive(Debug, Clone)]
enum VisionTower {
    Vit(VisionTransformer),
    ConvHybrid(ConvHybridEncoder),
}

impl VisionTower {
    fn new(cfg: &VisionConfig, image_size: usize, vb: VarBuilder) -> Result<Self> {
        Ok(match cfg {
            VisionConfig::Vit(vit) => Self::Vit(VisionTransformer::new(vit, image_size, vb)?),
            VisionConfig::ConvHybrid(conv) => Self::ConvHybrid(ConvHybridEncoder::new(conv, image_size, vb)?),
        })
    }

    fn width(cfg: &VisionConfig) -> usize {
        match cfg {
            VisionConfig::Vit(vit) => vit.hidden_size,
            VisionConfig::ConvHybrid(conv) => conv.hidden_size,
        }
    }

    fn grid(&self) -> usize {
        match self {
            Self::Vit(vit) => vit.grid(),
            Self::ConvHybrid(conv) => conv.grid(),
        }
    }

    fn forward(&self, images: &Tensor, capture: bool) -> Result<VisionOutput> {
        match self {
            Self::Vit(vit) => vit.forward(images, capture),
            Self::ConvHybrid(conv) => conv.forward(images, capture),
        }
    }
}

/// What occupies each position of the language-model sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// An image token of frame `frame`.
    Image {
        /// Frame index within the sequence.
        frame: usize,
    },
    /// Instruction token `index` (possibly padding).
    Text {
        /// Index in the instruction.
        index: usize,
    },
    /// The learnable action token of frame `frame`.
    Action {
        /// Frame index within the sequence.
        frame: usize,
    },
    /// Discrete action token `index` (0-based).
    ActionToken {
        /// Action dimension.
        index: usize,
    },
    /// Answer token `index` of vision-language pre-training (teacher-forced).
    Answer {
        /// Index in the answer.
        index: usize,
    },
}

/// Where things are in the language-model sequence; the same for every sequence of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLayout {
    /// One entry per position.
    pub slots: Vec<Slot>,
    /// Per frame, the positions of its image tokens (empty with cross-attention fusion).
    pub image: Vec<Range<usize>>,
    /// Per frame, the position of its action token.
    pub action: Vec<usize>,
    /// Positions of the instruction (or the pre-training prompt).
    pub text: Range<usize>,
    /// Positions of the pre-training answer (empty in a VLA's sequence).
    pub answer: Range<usize>,
    /// Language-model image tokens per frame (with cross-attention: media tokens per frame).
    pub image_tokens_per_frame: usize,
    /// Of those, the static camera's when tokens map one-to-one to its patch grid, else `None`
    /// (resampled or query-adapted tokens are not patches).
    pub static_patch_tokens: Option<usize>,
    /// Side of the static camera's patch grid (after pixel-unshuffle).
    pub static_grid: usize,
}

impl TokenLayout {
    fn new(frames: usize, text_len: usize, action_tokens: usize, vlm: &VlmBackbone) -> Self {
        let mut slots = Vec::new();
        let mut image = Vec::new();
        let mut action = Vec::new();
        let mut text = 0..0;
        let push_text = |slots: &mut Vec<Slot>, text: &mut Range<usize>| {
            let start = slots.len();
            slots.extend((0..text_len).map(|index| Slot::Text { index }));
            *text = start..slots.len();
        };
        if vlm.cross_attention {
            push_text(&mut slots, &mut text);
        }
        for frame in 0..frames {
            if !vlm.cross_attention {
                let start = slots.len();
                slots.extend((0..vlm.tokens_per_frame).map(|_| Slot::Image { frame }));
                image.push(start..slots.len());
                if frame == 0 {
                    push_text(&mut slots, &mut text);
                }
            }
            action.push(slots.len());
            slots.push(Slot::Action { frame });
        }
        slots.extend((0..action_tokens).map(|index| Slot::ActionToken { index }));
        let end = slots.len();
        Self {
            slots,
            image,
            action,
            text,
            answer: end..end,
            image_tokens_per_frame: vlm.tokens_per_frame,
            static_patch_tokens: vlm.static_patch_tokens,
            static_grid: vlm.static_grid,
        }
    }

    /// The pre-training sequence: one frame's image (unless cross-attended), the prompt, the answer.
    fn answering(prompt_len: usize, answer_len: usize, vlm: &VlmBackbone) -> Self {
        let mut slots = Vec::new();
        let mut image = Vec::new();
        if !vlm.cross_attention {
            slots.extend((0..vlm.tokens_per_frame).map(|_| Slot::Image { frame: 0 }));
            image.push(0..slots.len());
        }
        let text = slots.len()..slots.len() + prompt_len;
        slots.extend((0..prompt_len).map(|index| Slot::Text { index }));
        let answer = slots.len()..slots.len() + answer_len;
        slots.extend((0..answer_len).map(|index| Slot::Answer { index }));
        Self {
            slots,
            image,
            action: Vec::new(),
            text,
            answer,
            image_tokens_per_frame: vlm.tokens_per_frame,
            static_patch_tokens: vlm.static_patch_tokens,
            static_grid: vlm.static_grid,
        }
    }

    /// Self-attention mask for sequences whose instruction masks are `text_mask` (`[n][len]`).
    fn self_mask(&self, kind: MaskKind, text_mask: &[Vec<u32>]) -> AttentionMask {
        let length = self.slots.len();
        let prefix = match kind {
            MaskKind::PrefixLm => self.action.first().copied().unwrap_or(self.answer.start),
            MaskKind::Causal => 0,
        };
        AttentionMask::from_fn(text_mask.len(), length, length, |sample, query, key| {
            let visible = key <= query || (query < prefix && key < prefix);
            let padding = matches!(self.slots[key], Slot::Text { index } if text_mask[sample][index] == 0);
            visible && (!padding || key == query)
        })
    }

    /// Cross-attention mask from each position to `frames` × `per_frame` media tokens.
    fn media_mask(&self, frames: usize, per_frame: usize) -> AttentionMask {
        AttentionMask::from_fn(1, self.slots.len(), frames * per_frame, |_, query, key| {
            let frame = match self.slots[query] {
                Slot::Text { .. } | Slot::Image { .. } | Slot::Answer { .. } => 0,
                Slot::Action { frame } => frame,
                Slot::ActionToken { .. } => frames - 1,
            };
            key / per_frame == frame
        })
    }
}

/// Attention weights captured during one backbone pass (each list: one tensor per layer).
#[derive(Debug, Clone, Default)]
pub struct BackboneAttention {
    /// Static camera's vision tower, `[frames, heads, tokens, tokens]` (CLIP-style towers put their
    /// class token first; the conv-hybrid tower's tokens are its 1/16 grid, before pixel-unshuffle).
    pub vision: Vec<Tensor>,
    /// Resampler / query adapter, `[frames, heads, queries, keys]` (keys start with the patches).
    pub connector: Vec<Tensor>,
    /// Language model self-attention, `[sequences, heads, positions, positions]`.
    pub language: Vec<Tensor>,
    /// Flamingo's gated cross-attention, `[sequences, heads, positions, media tokens]`.
    pub cross: Vec<Tensor>,
    /// The FiLM baseline's TokenLearner over the static camera, `[frames, tokens, grid²]`: each
    /// token's spatial softmax over the final conv map, the only attention that model has.
    pub token_learner: Vec<Tensor>,
}

/// Image tokens ready for the language model, with the captured vision-side attention.
#[derive(Debug, Clone)]
pub struct EncodedFrames {
    /// `[n, tokens_per_frame, hidden]`.
    tokens: Tensor,
    /// `[n, hidden]`: the action token plus the projected `robot_obs` of each frame.
    action_tokens: Tensor,
    vision_attention: Vec<Tensor>,
    connector_attention: Vec<Tensor>,
}

/// The language model's output for a batch of sequences.
#[derive(Debug, Clone)]
pub struct LanguageOutput {
    /// `[sequences, positions, hidden]`.
    pub hidden: Tensor,
    /// Where things are.
    pub layout: TokenLayout,
    /// Captured attention (empty lists when not captured).
    pub attention: BackboneAttention,
}

/// Vision tower(s), connector and language model.
#[derive(Debug, Clone)]
pub struct VlmBackbone {
    static_tower: VisionTower,
    gripper_tower: Option<VisionTower>,
    pixel_unshuffle: usize,
    connector: Connector,
    decoder: Decoder,
    action_token: Tensor,
    robot_obs_proj: Linear,
    /// Discrete actions: embeddings of the 256 bins (fed back in) and the logits over them.
    action_embeddings: Option<Embedding>,
    action_logits: Option<Linear>,
    mask_kind: MaskKind,
    cross_attention: bool,
    tokens_per_frame: usize,
    static_patch_tokens: Option<usize>,
    static_grid: usize,
}

impl VlmBackbone {
    /// Builds the backbone of `config` (whose backbone is `vlm`).
    pub fn new(config: &VlaConfig, vlm: &VlmConfig, discrete_bins: Option<usize>, vb: VarBuilder) -> Result<Self> {
        let static_tower = VisionTower::new(&vlm.vision, config.static_image_size, vb.pp("vision"))?;
        let gripper_tower = config
            .use_gripper_camera
            .then(|| VisionTower::new(&vlm.vision, config.gripper_image_size, vb.pp("gripper_vision")))
            .transpose()?;
        let factor = vlm.pixel_unshuffle;
        let static_grid = static_tower.grid() / factor;
        let static_patches = static_grid * static_grid;
        let gripper_patches = gripper_tower.as_ref().map_or(0, |tower| (tower.grid() / factor).pow(2));
        let num_inputs = static_patches + gripper_patches;
        let input_size = VisionTower::width(&vlm.vision) * factor * factor;
        let lm = &vlm.language_model;
        let hidden = lm.hidden_size;
        let connector = Connector::new(&vlm.connector, input_size, num_inputs, hidden, vb.pp("connector"))?;
        let tokens_per_frame = Connector::output_tokens(&vlm.connector, num_inputs);
        let cross_attention = lm.cross_attention_every.is_some();
        let text_len = config.max_text_len;
        let window = config.formulation.history_window;
        let in_sequence = if cross_attention { 0 } else { tokens_per_frame };
        let acting = window * (in_sequence + 1) + text_len + super::model::ACTION_DIMS;
        let answering = in_sequence + text_len + MAX_ANSWER_TOKENS;
        let max_positions = acting.max(answering);
        Ok(Self {
            static_tower,
            gripper_tower,
            pixel_unshuffle: factor,
            connector,
            decoder: Decoder::new(lm, config.vocab_size, max_positions, vb.pp("language_model"))?,
            action_token: vb.get_with_hints(
                hidden,
                "action_token",
                candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 },
            )?,
            robot_obs_proj: linear(config.robot_obs_dim, hidden, vb.pp("robot_obs_proj"))?,
            action_embeddings: discrete_bins
                .map(|bins| embedding(bins, hidden, vb.pp("action_embeddings")))
                .transpose()?,
            action_logits: discrete_bins.map(|bins| linear(hidden, bins, vb.pp("action_logits"))).transpose()?,
            mask_kind: lm.mask,
            cross_attention,
            tokens_per_frame,
            static_patch_tokens: (tokens_per_frame == num_inputs).then_some(static_patches),
            static_grid,
        })
    }

    /// Language-model image tokens per frame.
    pub fn tokens_per_frame(&self) -> usize {
        self.tokens_per_frame
    }

    /// Runs the vision side on a flat batch of frames.
    pub fn encode_frames(&self, frames: &Frames, capture: bool) -> Result<EncodedFrames> {
        let factor = self.pixel_unshuffle;
        let static_out = self.static_tower.forward(&frames.static_images, capture)?;
        let mut patches = pixel_unshuffle(&static_out.tokens, static_out.grid, factor)?;
        if let (Some(tower), Some(images)) = (&self.gripper_tower, &frames.gripper_images) {
            let gripper_out = tower.forward(images, false)?;
            patches = Tensor::cat(&[&patches, &pixel_unshuffle(&gripper_out.tokens, gripper_out.grid, factor)?], 1)?;
        } else if self.gripper_tower.is_some() {
            candle_core::bail!("this model uses the gripper camera, but no gripper images were given");
        }
        let (tokens, connector_attention) = self.connector.forward(&patches, capture)?;
        let action_tokens = ops::add_bias(&frames.robot_obs.apply(&self.robot_obs_proj)?, &self.action_token)?;
        Ok(EncodedFrames { tokens, action_tokens, vision_attention: static_out.attention, connector_attention })
    }

    /// Runs the language model over sequences of `frames_per_sequence` encoded frames each, the
    /// instruction, and the discrete action tokens `action_bins` (`[sequences, j]` u32) already known.
    pub fn language(
        &self,
        encoded: &EncodedFrames,
        frames_per_sequence: usize,
        text: &Text,
        action_bins: Option<&Tensor>,
        capture: bool,
    ) -> Result<LanguageOutput> {
        let k = frames_per_sequence;
        let (frames, per_frame, hidden) = encoded.tokens.dims3()?;
        let sequences = frames / k;
        let known_actions = match action_bins {
            Some(bins) => bins.dim(1)?,
            None => 0,
        };
        let text_len = text.ids.dim(1)?;
        let layout = TokenLayout::new(k, text_len, known_actions, self);
        let images = encoded.tokens.reshape((sequences, k, per_frame, hidden))?;
        let action_tokens = encoded.action_tokens.reshape((sequences, k, 1, hidden))?;
        let text_embeddings = self.decoder.embed(&text.ids)?;
        let mut pieces = Vec::new();
        if self.cross_attention {
            pieces.push(text_embeddings.clone());
        }
        for frame in 0..k {
            if !self.cross_attention {
                pieces.push(images.narrow(1, frame, 1)?.squeeze(1)?);
                if frame == 0 {
                    pieces.push(text_embeddings.clone());
                }
            }
            pieces.push(action_tokens.narrow(1, frame, 1)?.squeeze(1)?);
        }
        if let (Some(bins), Some(embeddings)) = (action_bins, &self.action_embeddings) {
            pieces.push(bins.apply(embeddings)?);
        }
        let sequence = Tensor::cat(&pieces, 1)?;
        let text_mask = text.mask.to_vec2::<u32>()?;
        let mask = layout.self_mask(self.mask_kind, &text_mask);
        let media_tokens = images.reshape((sequences, k * per_frame, hidden))?;
        let media_mask = layout.media_mask(k, per_frame);
        let media = self.cross_attention.then_some(CrossAttentionMedia { tokens: &media_tokens, mask: &media_mask });
        let out = self.decoder.forward(&sequence, &mask, media, capture)?;
        let attention = BackboneAttention {
            vision: encoded.vision_attention.clone(),
            connector: encoded.connector_attention.clone(),
            language: out.self_attention,
            cross: out.cross_attention,
            token_learner: Vec::new(),
        };
        Ok(LanguageOutput { hidden: out.hidden, layout, attention })
    }

    /// Vision-language pre-training: logits over the vocabulary `[n, answer_len, vocab]` after each
    /// answer token, for frames `encoded` (one per sequence), prompts `prompt` and the teacher-forced
    /// answers `answer_ids` `[n, answer_len]` (up to [`MAX_ANSWER_TOKENS`]).
    pub fn answer_logits(&self, encoded: &EncodedFrames, prompt: &Text, answer_ids: &Tensor) -> Result<Tensor> {
        let per_frame = encoded.tokens.dim(1)?;
        let answer_len = answer_ids.dim(1)?;
        if answer_len > MAX_ANSWER_TOKENS {
            candle_core::bail!("answers of {answer_len} tokens; at most {MAX_ANSWER_TOKENS} fit");
        }
        let layout = TokenLayout::answering(prompt.ids.dim(1)?, answer_len, self);
        let mut pieces = Vec::new();
        if !self.cross_attention {
            pieces.push(encoded.tokens.clone());
        }
        pieces.push(self.decoder.embed(&prompt.ids)?);
        pieces.push(self.decoder.embed(answer_ids)?);
        let sequence = Tensor::cat(&pieces, 1)?;
        let mask = layout.self_mask(self.mask_kind, &prompt.mask.to_vec2::<u32>()?);
        let media_mask = layout.media_mask(1, per_frame);
        let media = self.cross_attention.then_some(CrossAttentionMedia { tokens: &encoded.tokens, mask: &media_mask });
        let out = self.decoder.forward(&sequence, &mask, media, false)?;
        self.decoder.tied_logits(&out.hidden.narrow(1, layout.answer.start, answer_len)?)
    }

    /// Logits over action bins `[sequences, positions, bins]` for the hidden states of `positions`.
    pub fn action_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        match &self.action_logits {
            Some(logits) => hidden.apply(logits),
            None => candle_core::bail!("this model predicts continuous actions"),
        }
    }
}

/// The FiLM baseline: per-frame features from FiLM-conditioned conv encoders.
#[derive(Debug, Clone)]
pub struct FilmBackbone {
    text: FilmText,
    static_encoder: FilmEncoder,
    gripper_encoder: Option<FilmEncoder>,
    feature: Linear,
    robot_obs_proj: Linear,
    tokens_per_camera: usize,
}

impl FilmBackbone {
    /// Builds the baseline of `config` (whose backbone is `film`).
    pub fn new(config: &VlaConfig, film: &FilmConfig, vb: VarBuilder) -> Result<Self> {
        let cameras = 1 + usize::from(config.use_gripper_camera);
        let token_width = FilmEncoder::token_width(film);
        Ok(Self {
            text: FilmText::new(film, config.vocab_size, vb.pp("text"))?,
            static_encoder: FilmEncoder::new(film, vb.pp("static_encoder"))?,
            gripper_encoder: config
                .use_gripper_camera
                .then(|| FilmEncoder::new(film, vb.pp("gripper_encoder")))
                .transpose()?,
            feature: linear(cameras * film.num_tokens * token_width, film.feature_size, vb.pp("feature"))?,
            robot_obs_proj: linear(config.robot_obs_dim, film.feature_size, vb.pp("robot_obs_proj"))?,
            tokens_per_camera: film.num_tokens,
        })
    }

    /// TokenLearner tokens per camera.
    pub fn tokens_per_camera(&self) -> usize {
        self.tokens_per_camera
    }

    /// The instruction embedding `[sequences, text_embedding_dim]`; constant within an episode.
    pub fn encode_text(&self, text: &Text) -> Result<Tensor> {
        self.text.forward(&text.ids, &text.mask)
    }

    /// Frames `[n, …]` with their instruction embeddings `[n, text_embedding_dim]` → features `[n,
    /// feature_size]`, and the static camera's TokenLearner maps `[n, num_tokens, grid²]`.
    pub fn features(&self, frames: &Frames, text_embedding: &Tensor) -> Result<(Tensor, Tensor)> {
        let (static_tokens, static_maps) = self.static_encoder.forward(&frames.static_images, text_embedding)?;
        let mut tokens = vec![static_tokens];
        match (&self.gripper_encoder, &frames.gripper_images) {
            (Some(encoder), Some(images)) => tokens.push(encoder.forward(images, text_embedding)?.0),
            (Some(_), None) => {
                candle_core::bail!("this model uses the gripper camera, but no gripper images were given")
            }
            (None, _) => {}
        }
        let tokens = Tensor::cat(&tokens, 1)?;
        let n = tokens.dim(0)?;
        let features =
            (tokens.reshape((n, ()))?.apply(&self.feature)? + frames.robot_obs.apply(&self.robot_obs_proj)?)?;
        Ok((features, static_maps))
    }
}

/// Repeats each row of `xs` (`[b, …]`) `times` times: `[b · times, …]`, rows of one sample together.
pub fn repeat_rows(xs: &Tensor, times: usize) -> Result<Tensor> {
    if times == 1 {
        return Ok(xs.clone());
    }
    let rows = xs.dim(0)?;
    let index: Vec<u32> = (0..rows as u32).flat_map(|row| std::iter::repeat_n(row, times)).collect();
    xs.index_select(&Tensor::new(index, xs.device())?, 0)
}
