//! What the GUI draws from an [`AttentionCapture`]: the action token's attention to the static
//! camera's patches (per head and head-averaged) and attention rollout
//! ([Abnar & Zuidema 2020](https://arxiv.org/abs/2005.00928)). These are attention weights, not
//! importance (DESIGN.md §6).
//!
//! Where the language model's image tokens are not patches (resampler, query adapter, Flamingo's
//! cross-attention), the action token's attention to those tokens is carried back to the patches
//! through the connector's last layer (head-averaged), so every preset yields a patch map. The FiLM
//! baseline has no action token: its maps are the TokenLearner's, one per pooled token, over the
//! final conv map's cells.

use candle_core::{D, IndexOp, Result, Tensor};

use super::AttentionCapture;
use super::backbone::TokenLayout;
use crate::sim::camera::Image;

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
/// `b · T + t` is frame `t` of sample `b`). For the FiLM baseline, frame `row`'s TokenLearner maps
/// `[tokens, grid · grid]`; `None` for a capture without either.
pub fn action_to_patches(capture: &AttentionCapture, row: usize) -> Result<Option<(Tensor, usize)>> {
    let Some(layout) = &capture.layout else {
        let Some(maps) = capture.backbone.token_learner.last() else { return Ok(None) };
        let cells = maps.dim(2)?;
        let grid = (cells as f64).sqrt().round() as usize;
        return Ok(Some((maps.i(row)?, grid)));
    };
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
    Ok(Some((tokens_to_patches(capture, layout, row, to_tokens)?, layout.static_grid)))
}

/// Attention rollout through the language model from the action token of the last frame of
/// sequence `row` to the static camera's patches: `[1, grid · grid]`. `None` for FiLM and for
/// cross-attention fusion, whose image tokens never enter the self-attention being rolled out.
pub fn rollout_to_patches(capture: &AttentionCapture, row: usize) -> Result<Option<Tensor>> {
    let Some(layout) = &capture.layout else { return Ok(None) };
    if !capture.backbone.cross.is_empty() || capture.backbone.language.is_empty() {
        return Ok(None);
    }
    let layers = capture.backbone.language.iter().map(|layer| layer.i(row)).collect::<Result<Vec<_>>>()?;
    let rollout = attention_rollout(&layers)?;
    let action = *layout.action.last().expect("every sequence has an action token");
    let image = layout.image[layout.action.len() - 1].clone();
    let to_tokens = rollout.i((action..action + 1, image))?;
    Ok(Some(tokens_to_patches(capture, layout, row, to_tokens)?))
}

/// Carries `[k, image tokens]` weights of the last frame of sequence `row` back to the static
/// camera's patches, `[k, grid · grid]`.
fn tokens_to_patches(
    capture: &AttentionCapture,
    layout: &TokenLayout,
    row: usize,
    to_tokens: Tensor,
) -> Result<Tensor> {
    let patches = layout.static_grid * layout.static_grid;
    match layout.static_patch_tokens {
        Some(count) => to_tokens.narrow(1, 0, count),
        None => {
            // Tokens are learned queries: compose with the connector's last layer, `[queries, keys]`
            // averaged over heads, whose first keys are the static camera's patches.
            let Some(connector) = capture.backbone.connector.last() else {
                candle_core::bail!("resampled tokens but no connector attention in the capture")
            };
            let frame_row = row * layout.action.len() + layout.action.len() - 1;
            let queries_to_patches = connector.i(frame_row)?.mean(0)?.narrow(1, 0, patches)?;
            to_tokens.matmul(&queries_to_patches)
        }
    }
}

/// Whose attention a [`PatchAttention`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionSource {
    /// The action token's, one map per head of the last layer.
    ActionToken,
    /// The FiLM baseline's TokenLearner, one map per pooled token.
    TokenLearner,
}

/// The action token's attention over the static camera's patches at the newest frame of a
/// batch-1 capture (the FiLM baseline: its TokenLearner maps), as plain numbers for drawing.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchAttention {
    /// Whose attention the maps are.
    pub source: AttentionSource,
    /// Side of the patch grid.
    pub grid: usize,
    /// Last layer, one row-major `grid²` map per head.
    pub heads: Vec<Vec<f32>>,
    /// Attention rollout, when the fusion allows one (see [`rollout_to_patches`]).
    pub rollout: Option<Vec<f32>>,
    /// The occlusion check over the same grid (`VlaPolicy::occlusion`), when asked for.
    pub occlusion: Option<Vec<f32>>,
}

impl PatchAttention {
    /// The maps of a batch-1 capture's newest frame.
    pub fn of_newest_frame(capture: &AttentionCapture) -> Result<Option<PatchAttention>> {
        let backbone = &capture.backbone;
        let sequences = match (backbone.cross.last(), backbone.language.last(), backbone.token_learner.last()) {
            (Some(weights), _, _) | (None, Some(weights), _) | (None, None, Some(weights)) => weights.dim(0)?,
            (None, None, None) => return Ok(None),
        };
        // Batch 1: the newest frame is in the last sequence (policy head: one frame per sequence).
        let row = sequences - 1;
        let Some((heads, grid)) = action_to_patches(capture, row)? else { return Ok(None) };
        let rollout = match rollout_to_patches(capture, row)? {
            Some(map) => Some(map.squeeze(0)?.to_vec1::<f32>()?),
            None => None,
        };
        let source = match capture.layout {
            Some(_) => AttentionSource::ActionToken,
            None => AttentionSource::TokenLearner,
        };
        Ok(Some(PatchAttention { source, grid, heads: heads.to_vec2::<f32>()?, rollout, occlusion: None }))
    }

    /// The heads' average.
    pub fn head_mean(&self) -> Vec<f32> {
        let mut mean = vec![0.0; self.grid * self.grid];
        for head in &self.heads {
            for (m, w) in mean.iter_mut().zip(head) {
                *m += w / self.heads.len() as f32;
            }
        }
        mean
    }
}

/// Heat colour of `t` in [0, 1]: black → red → yellow → white ("hot"), legible over the scene.
pub fn heat_colour(t: f32) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0) * 3.0;
    let channel = |x: f32| (x.clamp(0.0, 1.0) * 255.0).round() as u8;
    [channel(t), channel(t - 1.0), channel(t - 2.0)]
}

/// `image` with `map` (a row-major `grid²` map over its patch grid, scaled to its own maximum)
/// blended over it in [`heat_colour`]s at `opacity` (0: image only, 1: map only). Each patch is
/// one flat block: the model attends to patches, not pixels.
pub fn overlay(image: &Image, map: &[f32], grid: usize, opacity: f32) -> Image {
    let peak = map.iter().copied().fold(f32::MIN_POSITIVE, f32::max);
    let opacity = opacity.clamp(0.0, 1.0);
    let (width, height) = (image.width as usize, image.height as usize);
    let mut blended = image.clone();
    for y in 0..height {
        for x in 0..width {
            let cell = (y * grid / height) * grid + x * grid / width;
            let heat = heat_colour(map.get(cell).copied().unwrap_or(0.0) / peak);
            let pixel = &mut blended.rgb[(y * width + x) * 3..][..3];
            for (value, hot) in pixel.iter_mut().zip(heat) {
                *value = (f32::from(*value) * (1.0 - opacity) + f32::from(hot) * opacity).round() as u8;
            }
        }
    }
    blended
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overlay_paints_the_hottest_patch_brightest() {
        let image = Image { width: 4, height: 4, rgb: vec![40; 4 * 4 * 3] };
        let map = [0.0, 0.0, 0.0, 2.0];
        let shown = overlay(&image, &map, 2, 0.5);
        let pixel = |x: usize, y: usize| &shown.rgb[(y * 4 + x) * 3..][..3];
        assert_eq!(pixel(3, 3), &[148, 148, 148], "the peak is white at half opacity");
        assert_eq!(pixel(0, 0), &[20, 20, 20], "zero attention is black at half opacity");
        assert_eq!(overlay(&image, &map, 2, 0.0), image, "opacity 0 leaves the image");
        assert_eq!(heat_colour(0.5), [255, 128, 0]);
    }
}
