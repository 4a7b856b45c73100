//! What the GUI draws from an [`AttentionCapture`]: the action token's attention to the static
//! camera's patches (per head and head-averaged) and attention rollout
//! ([Abnar & Zuidema 2020](https://arxiv.org/abs/2005.00928)). These are attention weights, not
//! importance (DESIGN.md §6).
//!
//! Where the language model's image tokens are not patches (resampler, query adapter, Flamingo's
//! cross-attention), the action token's attention to those tokens is carried back to the patches
//! through the connector's last layer (head-averaged), so every preset yields a patch map.

use candle_core::{D, IndexOp, Result, Tensor};

use super::AttentionCapture;

/// Attention rollout over `layers` (each `[heads, n, n]`, one sample): the product, last layer first,
/// of `0.5 · mean_heads(A) + 0.5 · I` with rows renormalised, accounting for residual connections.
/// Returns `[n, n]`: how much each output token draws on each input token.
pub fn attention_rollout(layers: &[Tensor]) -> Result<Tensor> {
    let Some(first) = layers.first() else { candle_core::bail!("attention rollout needs at least one layer") };
    let n = first.dim(D::Minus1)?;
    let identity = Tensor::eye(n, first.dtype(), first.device())?;
    let mut rollout = identity.clone();
    for layer in layers {
        let mixed = ((layer.mean(0)? * 0.5)? + (&identity * 0.5)?)?;
        let mixed = mixed.broadcast_div(&mixed.sum_keepdim(D::Minus1)?)?;
        rollout = mixed.matmul(&rollout)?;
    }
    Ok(rollout)
}

/// Where the action token of the last frame of sequence `row` attends among the static camera's
/// patches in the last language-model layer (or, for Flamingo, the last cross-attention layer):
/// `[heads, grid · grid]`, with the grid side. Rows are as in the capture (policy-head models: row
/// `b · T + t` is frame `t` of sample `b`). `None` for the FiLM baseline, which has no attention.
pub fn action_to_patches(capture: &AttentionCapture, row: usize) -> Result<Option<(Tensor, usize)>> {
    let Some(layout) = &capture.layout else { return Ok(None) };
    let action = *layout.action.last().expect("every sequence has an action token");
    let frame = layout.action.len() - 1;
    let per_frame = layout.image_tokens_per_frame;
    let (weights, image_start) = match (capture.backbone.cross.last(), capture.backbone.language.last()) {
        (Some(cross), _) => (cross, frame * per_frame),
        (None, Some(language)) => (language, layout.image[frame].start),
        (None, None) => candle_core::bail!("the capture holds no language-model attention"),
    };
    // `[heads, image tokens]` from the action token.
    let to_tokens = weights.i((row, .., action, image_start..image_start + per_frame))?;
    let patches = layout.static_grid * layout.static_grid;
    let to_patches = match layout.static_patch_tokens {
        Some(count) => to_tokens.narrow(1, 0, count)?,
        None => {
            // Tokens are learned queries: compose with the connector's last layer, `[queries, keys]`
            // averaged over heads, whose first keys are the static camera's patches.
            let Some(connector) = capture.backbone.connector.last() else {
                candle_core::bail!("resampled tokens but no connector attention in the capture")
            };
            let frame_row = row * layout.action.len() + frame;
            let queries_to_patches = connector.i(frame_row)?.mean(0)?.narrow(1, 0, patches)?;
            to_tokens.matmul(&queries_to_patches)?
        }
    };
    Ok(Some((to_patches, layout.static_grid)))
}
