//! Policy heads (RoboVLMs §3.2): from per-frame features `[b, t, d]` to an action chunk — an MLP on
//! the last frame, or an LSTM or a GPT (causal transformer) over the history window — each ending in
//! a tanh arm output (6 per step; or weighted candidates of them, `mixture.rs`) and a gripper
//! logit (1 per step).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::config::{BlockKind, DecoderConfig, HeadConfig, HeadKind, MaskKind, MlpKind, NormKind};
use super::decoder::DecoderLayer;
use super::linear::{Linear, linear, linear_no_bias};
use super::mixture::{ArmMixture, MixtureOutput};
use super::norm::Norm;
use super::ops::{self, AttentionMask, RotaryTables};

/// Arm dimensions of an action (Δposition, ΔEuler).
pub const ARM_DIMS: usize = 6;

/// An LSTM layer with PyTorch's parameter names and gate order (input, forget, cell, output).
#[derive(Debug, Clone)]
struct LstmLayer {
    weight_ih: Linear,
    weight_hh: Linear,
    hidden: usize,
}

/// `sigmoid(x) = (1 + tanh(x / 2)) / 2`: differentiable through candle's `tanh`.
fn sigmoid(xs: &Tensor) -> Result<Tensor> {
    (xs * 0.5)?.tanh()?.affine(0.5, 0.5)
}

impl LstmLayer {
    fn new(input: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        let weight_ih = linear(input, 4 * hidden, vb.pp("ih"))?;
        let weight_hh = linear_no_bias(hidden, 4 * hidden, vb.pp("hh"))?;
        Ok(Self { weight_ih, weight_hh, hidden })
    }

    /// `[b, t, input]` → `[b, t, hidden]`, starting from zero state.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (batch, steps, _) = xs.dims3()?;
        let hidden = self.hidden;
        // The input projections of all steps in one matmul; only the recurrent part is sequential.
        let projected = xs.apply(&self.weight_ih)?;
        let mut h = Tensor::zeros((batch, hidden), xs.dtype(), xs.device())?;
        let mut c = h.clone();
        let mut outputs = Vec::with_capacity(steps);
        for step in 0..steps {
            let gates = (projected.narrow(1, step, 1)?.squeeze(1)? + h.apply(&self.weight_hh)?)?;
            let input_gate = sigmoid(&gates.narrow(1, 0, hidden)?)?;
            let forget_gate = sigmoid(&gates.narrow(1, hidden, hidden)?)?;
            let cell_input = gates.narrow(1, 2 * hidden, hidden)?.tanh()?;
            let output_gate = sigmoid(&gates.narrow(1, 3 * hidden, hidden)?)?;
            c = ((forget_gate * &c)? + (input_gate * cell_input)?)?;
            h = (output_gate * c.tanh()?)?;
            outputs.push(h.clone());
        }
        Tensor::stack(&outputs, 1)
    }
}

/// How the head fuses the window.
#[derive(Debug, Clone)]
enum Trunk {
    Mlp { fc1: Linear, fc2: Linear },
    Lstm { layers: Vec<LstmLayer> },
    Gpt { proj_in: Linear, position_embedding: Tensor, layers: Vec<DecoderLayer>, norm: Norm, rotary: RotaryTables },
}

/// The arm's values per step: one point, or a mixture to pick the likeliest mean from.
#[derive(Debug, Clone)]
enum ArmOutput {
    Point(Linear),
    Mixture(MixtureOutput),
}

/// A continuous-action head.
#[derive(Debug, Clone)]
pub struct ActionHead {
    trunk: Trunk,
    arm: ArmOutput,
    gripper: Linear,
    chunk: usize,
}

/// Chunks of continuous actions, one per predicting frame: every frame of the window for the LSTM
/// and GPT heads (each sees the frames up to its own, so training supervises them all, as
/// RoboVLMs does), the last frame for the MLP head. The last frame's chunk is the one executed.
#[derive(Debug, Clone)]
pub struct ContinuousActions {
    /// `[b, frames, chunk, 6]` in (-1, 1): what the arm executes.
    pub arm: Tensor,
    /// `[b, frames, chunk]`; > 0 means open.
    pub gripper_logits: Tensor,
    /// The mixture `arm` holds the likeliest means of, for a mixture head.
    pub mixture: Option<ArmMixture>,
}

/// The GPT head: a GPT-2-like causal transformer over the window (LayerNorm, GELU MLP), with RoPE.
fn gpt_config(cfg: &HeadConfig) -> DecoderConfig {
    DecoderConfig {
        hidden_size: cfg.hidden_size,
        intermediate_size: 2 * cfg.hidden_size,
        num_layers: cfg.num_layers,
        num_heads: cfg.num_heads,
        num_kv_heads: cfg.num_heads,
        norm: NormKind::Layer,
        norm_eps: 1e-5,
        mlp: MlpKind::Gelu,
        block: BlockKind::Sequential,
        rope_theta: 10_000.0,
        mask: MaskKind::Causal,
        scale_embeddings: false,
        cross_attention_every: None,
    }
}

impl ActionHead {
    /// A head over features of `input` for windows of up to `window` frames, predicting `chunk` steps
    /// of one arm value each, or `mixture_components` weighted candidates of them.
    pub fn new(
        cfg: &HeadConfig,
        input: usize,
        window: usize,
        chunk: usize,
        mixture_components: Option<usize>,
        vb: VarBuilder,
    ) -> Result<Self> {
        let hidden = cfg.hidden_size;
        let trunk = match cfg.kind {
            HeadKind::Mlp => {
                Trunk::Mlp { fc1: linear(input, hidden, vb.pp("fc1"))?, fc2: linear(hidden, hidden, vb.pp("fc2"))? }
            }
            HeadKind::Lstm => Trunk::Lstm {
                layers: (0..cfg.num_layers)
                    .map(|i| LstmLayer::new(if i == 0 { input } else { hidden }, hidden, vb.pp("lstm").pp(i)))
                    .collect::<Result<_>>()?,
            },
            HeadKind::Gpt => {
                let gpt = gpt_config(cfg);
                Trunk::Gpt {
                    proj_in: linear(input, hidden, vb.pp("proj_in"))?,
                    position_embedding: vb.get_with_hints(
                        (window, hidden),
                        "position_embedding",
                        candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 },
                    )?,
                    layers: (0..cfg.num_layers)
                        .map(|i| DecoderLayer::new(&gpt, vb.pp("layers").pp(i)))
                        .collect::<Result<_>>()?,
                    norm: Norm::new(NormKind::Layer, hidden, gpt.norm_eps, vb.pp("norm"))?,
                    rotary: RotaryTables::new(hidden / cfg.num_heads, window, gpt.rope_theta)?,
                }
            }
        };
        let arm = match mixture_components {
            Some(components) => ArmOutput::Mixture(MixtureOutput::new(hidden, chunk, components, vb.clone())?),
            None => ArmOutput::Point(linear(hidden, chunk * ARM_DIMS, vb.pp("arm"))?),
        };
        Ok(Self { trunk, arm, gripper: linear(hidden, chunk, vb.pp("gripper"))?, chunk })
    }

    /// Features `[b, t, input]` → the chunks predicted after each predicting frame (see
    /// [`ContinuousActions`]), plus the GPT's attention weights per layer when captured.
    pub fn forward(&self, features: &Tensor, capture: bool) -> Result<(ContinuousActions, Vec<Tensor>)> {
        let (batch, steps, _) = features.dims3()?;
        let mut attention = Vec::new();
        let hidden = match &self.trunk {
            Trunk::Mlp { fc1, fc2 } => {
                let last = features.narrow(1, steps - 1, 1)?;
                ops::gelu(&ops::gelu(&last.apply(fc1)?)?.apply(fc2)?)?
            }
            Trunk::Lstm { layers } => {
                let mut xs = features.clone();
                for layer in layers {
                    xs = layer.forward(&xs)?;
                }
                xs
            }
            Trunk::Gpt { proj_in, position_embedding, layers, norm, rotary } => {
                let mut xs = ops::add_bias(&features.apply(proj_in)?, &position_embedding.narrow(0, 0, steps)?)?;
                let mask = AttentionMask::from_fn(1, steps, steps, |_, query, key| key <= query);
                for layer in layers {
                    let (out, weights) = layer.forward(&xs, &mask, rotary, capture)?;
                    xs = out;
                    attention.extend(weights);
                }
                xs.apply(norm)?
            }
        };
        let frames = hidden.dim(1)?;
        let (arm, mixture) = match &self.arm {
            ArmOutput::Point(arm) => (hidden.apply(arm)?.tanh()?.reshape((batch, frames, self.chunk, ARM_DIMS))?, None),
            ArmOutput::Mixture(output) => {
                let mixture = output.forward(&hidden)?;
                (mixture.likeliest_means()?, Some(mixture))
            }
        };
        let gripper_logits = hidden.apply(&self.gripper)?;
        Ok((ContinuousActions { arm, gripper_logits, mixture }, attention))
    }
}
