//! RT-1-style baseline without a language model ([Brohan et al. 2022](https://arxiv.org/abs/2212.06817)):
//! the instruction, as a bag of learned token embeddings, FiLM-conditions
//! ([Perez et al. 2018](https://arxiv.org/abs/1709.07871)) every conv stage of the image encoder, and a
//! TokenLearner ([Ryoo et al. 2021](https://arxiv.org/abs/2106.11297)) pools the last map into a few
//! tokens that are flattened into the per-frame feature.
//!
//! Departures from RT-1: a learned bag of words instead of the Universal Sentence Encoder, a few
//! residual conv blocks instead of EfficientNet-B3; FiLM starts as the identity, as in RT-1.

use candle_core::{D, Result, Tensor};
use candle_nn::{Embedding, VarBuilder, embedding};

use super::config::FilmConfig;
use super::conv_encoder::{ConvBlock, tokens_to_map};
use super::linear::{Linear, linear, linear_no_bias};
use super::ops;
use super::vit::PatchEmbedding;

/// The FiLM encoder's 2× merges between stages.
const MERGE_PATCH: usize = 2;

/// The instruction embedding: mean of the real tokens' embeddings, then a GELU layer. Constant within
/// an episode, so a policy computes it once.
#[derive(Debug, Clone)]
pub struct FilmText {
    embed_tokens: Embedding,
    proj: Linear,
}

impl FilmText {
    /// Embeddings for `vocab_size` tokens of width `cfg.text_embedding_dim`.
    pub fn new(cfg: &FilmConfig, vocab_size: usize, vb: VarBuilder) -> Result<Self> {
        let width = cfg.text_embedding_dim;
        Ok(Self {
            embed_tokens: embedding(vocab_size, width, vb.pp("embed_tokens"))?,
            proj: linear(width, width, vb.pp("proj"))?,
        })
    }

    /// Token ids `[b, l]` (u32) and mask `[b, l]` (u32, 1 = real) → `[b, text_embedding_dim]`.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let mask = mask.to_dtype(candle_core::DType::F32)?.unsqueeze(D::Minus1)?;
        let summed = ids.apply(&self.embed_tokens)?.broadcast_mul(&mask)?.sum(1)?;
        let mean = summed.broadcast_div(&mask.sum(1)?.clamp(1.0, f64::INFINITY)?)?;
        ops::gelu(&mean.apply(&self.proj)?)
    }
}

/// One FiLM-conditioned image encoder (one camera).
#[derive(Debug, Clone)]
pub struct FilmEncoder {
    stem: PatchEmbedding,
    blocks: Vec<ConvBlock>,
    /// Per stage, text → `[γ; β]`; zero-initialised so every stage starts unconditioned.
    film: Vec<Linear>,
    merges: Vec<PatchEmbedding>,
    token_maps: Linear,
    stem_patch: usize,
    keypoints: bool,
}

impl FilmEncoder {
    /// An encoder for square images; the stages downsample by the stem's patch, then 2 per further stage.
    pub fn new(cfg: &FilmConfig, vb: VarBuilder) -> Result<Self> {
        let channels = &cfg.stage_channels;
        let zero = candle_nn::init::ZERO;
        let film = channels
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let vb = vb.pp("film").pp(i);
                let weight = vb.get_with_hints((2 * c, cfg.text_embedding_dim), "weight", zero)?;
                let bias = vb.get_with_hints(2 * c, "bias", zero)?;
                Ok(Linear::new(weight, Some(bias)))
            })
            .collect::<Result<_>>()?;
        let last = *channels.last().expect("validated: at least one stage");
        Ok(Self {
            stem: PatchEmbedding::new(3, channels[0], cfg.stem_patch, vb.pp("stem"))?,
            blocks: channels
                .iter()
                .enumerate()
                .map(|(i, &c)| ConvBlock::new(c, vb.pp("blocks").pp(i)))
                .collect::<Result<_>>()?,
            film,
            merges: channels
                .windows(2)
                .enumerate()
                .map(|(i, pair)| PatchEmbedding::new(pair[0], pair[1], MERGE_PATCH, vb.pp("merges").pp(i)))
                .collect::<Result<_>>()?,
            token_maps: linear_no_bias(last, cfg.num_tokens, vb.pp("token_learner"))?,
            stem_patch: cfg.stem_patch,
            keypoints: cfg.keypoints,
        })
    }

    /// Width of each token: the last stage's channels, plus the keypoint's x and y.
    pub fn token_width(cfg: &FilmConfig) -> usize {
        cfg.stage_channels.last().expect("validated: at least one stage") + if cfg.keypoints { 2 } else { 0 }
    }

    /// Images `[n, 3, s, s]` in [0, 1] and text `[n, text_embedding_dim]` → tokens `[n, num_tokens,
    /// token_width]` and the TokenLearner's maps `[n, num_tokens, side²]` (each a softmax over the
    /// final map's cells, row-major) they were pooled with.
    pub fn forward(&self, images: &Tensor, text: &Tensor) -> Result<(Tensor, Tensor)> {
        let mut side = images.dim(2)? / self.stem_patch;
        let mut map = tokens_to_map(&self.stem.forward(&images.affine(2.0, -1.0)?)?, side)?;
        for (i, (block, film)) in self.blocks.iter().zip(&self.film).enumerate() {
            map = map.apply(block)?;
            let channels = map.dim(1)?;
            let gamma_beta = text.apply(film)?.unsqueeze(2)?.unsqueeze(3)?;
            let gamma = (gamma_beta.narrow(1, 0, channels)? + 1.0)?;
            let beta = gamma_beta.narrow(1, channels, channels)?;
            map = map.broadcast_mul(&gamma)?.broadcast_add(&beta)?;
            if let Some(merge) = self.merges.get(i) {
                side /= MERGE_PATCH;
                map = tokens_to_map(&merge.forward(&map)?, side)?;
            }
        }
        // TokenLearner: one spatial softmax map per output token, each pooling the feature map.
        let (n, channels, _, _) = map.dims4()?;
        let features = map.reshape((n, channels, side * side))?.transpose(1, 2)?.contiguous()?;
        let maps = ops::scaled_masked_softmax(&features.apply(&self.token_maps)?.transpose(1, 2)?, 1.0, None)?;
        let tokens = maps.matmul(&features)?;
        if !self.keypoints {
            return Ok((tokens, maps));
        }
        let keypoints = maps.broadcast_matmul(&cell_centres(side, images.device())?)?;
        Ok((Tensor::cat(&[&tokens, &keypoints], 2)?, maps))
    }
}

/// The centres of a `side × side` map's cells, row-major, as `[side², 2]` (x, y) in [-1, 1].
fn cell_centres(side: usize, device: &candle_core::Device) -> Result<Tensor> {
    let coordinate = |i: usize| (2 * i + 1) as f32 / side as f32 - 1.0;
    let centres: Vec<f32> =
        (0..side * side).flat_map(|cell| [coordinate(cell % side), coordinate(cell / side)]).collect();
    Tensor::from_vec(centres, (side * side, 2), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_centres_run_along_rows_then_down() {
        let centres = cell_centres(2, &candle_core::Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(centres, vec![vec![-0.5, -0.5], vec![0.5, -0.5], vec![-0.5, 0.5], vec![0.5, 0.5]]);
    }
}
