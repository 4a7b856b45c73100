//! The backbone zoo (DESIGN.md §5's table) in miniature, and the formulations of RoboVLMs §3.
//!
//! Sizes are for a 2-core CPU (see BENCHMARKS.md for their measured cost); what each architecture
//! is known for is kept: relative image-token counts (MoonDream 4× the others' patches, Qwen-VL's
//! query adapter as many queries as PaliGemma has patches — 256 each in the paper —, KosMos and
//! Flamingo resampled to a quarter of that, UForm's conv-hybrid tower + pixel-unshuffle to few
//! tokens), the fusion (tokens in the sequence vs Flamingo's gated cross-attention), the attention
//! mask (PaliGemma's prefix-LM), and each language model's block (Gemma: RMSNorm + GeGLU + MQA;
//! Llama: RMSNorm + SwiGLU; Phi: LayerNorm + parallel attention/MLP).

use std::path::Path;

use super::VlaError;
use super::config::{
    ActionSpace, ArmLoss, BackboneConfig, BlockKind, ConnectorConfig, ConvHybridConfig, DecoderConfig, FilmConfig,
    FormulationConfig, HeadConfig, HeadKind, HistoryFusion, MaskKind, MlpKind, NormKind, VisionConfig, VitConfig,
    VitStyle, VlaConfig, VlmConfig,
};
use super::ensemble::TemporalEnsembleConfig;

/// The backbone presets, in DESIGN.md §5's order, then the FiLM baseline.
pub const PRESETS: [&str; 8] = ["paligemma", "kosmos", "flamingo", "llava", "qwen-vl", "moondream", "uform", "film"];

/// The formulations [`formulation`] knows.
pub const FORMULATIONS: [&str; 7] = [
    "policy_head",
    "policy_head_gpt",
    "one_step",
    "one_step_mixture",
    "interleaved",
    "one_step_discrete",
    "interleaved_discrete",
];

/// RoboVLMs' setting: window 8 (static camera), chunk 10.
const HISTORY_WINDOW: usize = 8;
const ACTION_CHUNK: usize = 10;
const ACTION_BINS: usize = 256;
/// Candidate arm actions per step of `one_step_mixture` (robomimic's GMM default count).
const MIXTURE_COMPONENTS: usize = 5;
/// Width shared by the miniature language models and heads.
const WIDTH: usize = 64;

fn vit(style: VitStyle, patch_size: usize) -> VisionConfig {
    VisionConfig::Vit(VitConfig {
        style,
        patch_size,
        hidden_size: WIDTH,
        intermediate_size: 2 * WIDTH,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        layer_norm_eps: 1e-6,
    })
}

/// A 2-layer decoder of the given family; callers adjust what differs.
fn decoder(norm: NormKind, mlp: MlpKind, block: BlockKind) -> DecoderConfig {
    DecoderConfig {
        hidden_size: WIDTH,
        intermediate_size: 2 * WIDTH,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 4,
        norm,
        norm_eps: 1e-6,
        mlp,
        block,
        rope_theta: 10_000.0,
        mask: MaskKind::Causal,
        scale_embeddings: false,
        cross_attention_every: None,
    }
}

fn llama() -> DecoderConfig {
    decoder(NormKind::Rms, MlpKind::SwiGlu, BlockKind::Sequential)
}

fn backbone(name: &str) -> Option<BackboneConfig> {
    let vlm = |vision, pixel_unshuffle, connector, language_model| {
        Some(BackboneConfig::Vlm(VlmConfig { vision, pixel_unshuffle, connector, language_model }))
    };
    let mlp = ConnectorConfig::Mlp { hidden_size: WIDTH };
    match name {
        "paligemma" => vlm(
            vit(VitStyle::Siglip, 16),
            1,
            ConnectorConfig::Linear,
            DecoderConfig {
                num_kv_heads: 1,
                mask: MaskKind::PrefixLm,
                scale_embeddings: true,
                ..decoder(NormKind::Rms, MlpKind::GeGlu, BlockKind::Sequential)
            },
        ),
        "kosmos" => vlm(
            vit(VitStyle::Clip, 16),
            1,
            ConnectorConfig::PerceiverResampler {
                num_latents: 16,
                depth: 1,
                num_heads: 4,
                intermediate_size: 2 * WIDTH,
            },
            // Kosmos-2's Magneto decoder: LayerNorm and a GELU MLP.
            decoder(NormKind::Layer, MlpKind::Gelu, BlockKind::Sequential),
        ),
        "flamingo" => vlm(
            vit(VitStyle::Clip, 16),
            1,
            ConnectorConfig::PerceiverResampler {
                num_latents: 16,
                depth: 2,
                num_heads: 4,
                intermediate_size: 2 * WIDTH,
            },
            DecoderConfig { cross_attention_every: Some(1), ..llama() },
        ),
        "llava" => vlm(vit(VitStyle::Clip, 16), 1, mlp, llama()),
        "qwen-vl" => {
            vlm(vit(VitStyle::Clip, 16), 1, ConnectorConfig::QueryAdapter { num_queries: 64, num_heads: 4 }, llama())
        }
        "moondream" => {
            vlm(vit(VitStyle::Siglip, 8), 1, mlp, decoder(NormKind::Layer, MlpKind::Gelu, BlockKind::Parallel))
        }
        "uform" => vlm(
            VisionConfig::ConvHybrid(ConvHybridConfig {
                stage_channels: [16, 32],
                hidden_size: WIDTH,
                intermediate_size: 2 * WIDTH,
                num_attention_layers: 1,
                num_attention_heads: 4,
                layer_norm_eps: 1e-6,
            }),
            2,
            mlp,
            DecoderConfig { num_layers: 1, ..llama() },
        ),
        "film" => Some(BackboneConfig::Film(FilmConfig {
            text_embedding_dim: 32,
            stem_patch: 8,
            stage_channels: vec![32, 64],
            num_tokens: 8,
            keypoints: false,
            feature_size: WIDTH,
        })),
        _ => None,
    }
}

/// A formulation by name: `policy_head` (window 8, LSTM head, continuous chunk 10: RoboVLMs' best),
/// `policy_head_gpt`, `one_step` (MLP head), `one_step_mixture` (5 candidate arm actions per
/// step, the likeliest executed), `interleaved` (window 8 in one sequence, MLP head), and the
/// discrete `one_step_discrete` / `interleaved_discrete` (256 bins).
pub fn formulation(name: &str) -> Result<FormulationConfig, VlaError> {
    let head = |kind| HeadConfig { kind, hidden_size: WIDTH, num_layers: 1, num_heads: 4 };
    let continuous_with =
        |arm_loss| ActionSpace::Continuous { chunk: ACTION_CHUNK, arm_loss, gripper_loss_weight: 0.01 };
    let continuous = continuous_with(ArmLoss::Huber { delta: 1.0 });
    let mixture = continuous_with(ArmLoss::Mixture { components: MIXTURE_COMPONENTS });
    let discrete = ActionSpace::Discrete { bins: ACTION_BINS };
    let (history_window, history, head_kind, action_space) = match name {
        "policy_head" => (HISTORY_WINDOW, HistoryFusion::PolicyHead, HeadKind::Lstm, continuous),
        "policy_head_gpt" => (HISTORY_WINDOW, HistoryFusion::PolicyHead, HeadKind::Gpt, continuous),
        "one_step" => (1, HistoryFusion::PolicyHead, HeadKind::Mlp, continuous),
        "one_step_mixture" => (1, HistoryFusion::PolicyHead, HeadKind::Mlp, mixture),
        "interleaved" => (HISTORY_WINDOW, HistoryFusion::Interleaved, HeadKind::Mlp, continuous),
        "one_step_discrete" => (1, HistoryFusion::PolicyHead, HeadKind::Mlp, discrete),
        "interleaved_discrete" => (HISTORY_WINDOW, HistoryFusion::Interleaved, HeadKind::Mlp, discrete),
        _ => {
            return Err(VlaError::InvalidConfig(format!(
                "unknown formulation `{name}`; known: {}",
                FORMULATIONS.join(", ")
            )));
        }
    };
    Ok(FormulationConfig { history_window, history_spacing: 1, history, head: head(head_kind), action_space })
}

/// The config of preset `name` with formulation `formulation_name` (see [`formulation`]).
pub fn preset_with(name: &str, formulation_name: &str) -> Result<VlaConfig, VlaError> {
    let backbone = backbone(name).ok_or_else(|| {
        VlaError::InvalidConfig(format!(
            "unknown preset `{name}`; known: {}, or a config.json file",
            PRESETS.join(", ")
        ))
    })?;
    let formulation = formulation(formulation_name)?;
    let config = VlaConfig {
        preset: name.to_string(),
        seed: 0,
        vocab_size: crate::lang::tokenizer::DEFAULT_VOCAB_SIZE,
        max_text_len: 16,
        static_image_size: 128,
        gripper_image_size: 64,
        use_gripper_camera: false,
        robot_obs_dim: 15,
        robot_obs_norm: None,
        backbone,
        temporal_ensemble: temporal_ensemble(&formulation),
        formulation,
        scene_state_loss: None,
        steps_left_loss: None,
    };
    config.validate().map_err(VlaError::InvalidConfig)?;
    Ok(config)
}

/// A preset by name, or the model of a config file (a model folder's `config.json`, say, edited to
/// another width): its backbone, vocabulary and cameras, with formulation `formulation_name` and
/// no fitted normalisation.
pub fn resolve(name_or_file: &str, formulation_name: &str) -> Result<VlaConfig, VlaError> {
    let path = Path::new(name_or_file);
    if PRESETS.contains(&name_or_file) || !path.is_file() {
        return preset_with(name_or_file, formulation_name);
    }
    let file = super::read_config(path)?;
    let formulation = formulation(formulation_name)?;
    let config =
        VlaConfig { robot_obs_norm: None, temporal_ensemble: temporal_ensemble(&formulation), formulation, ..file };
    config.validate().map_err(|reason| VlaError::ConfigFile { path: path.to_path_buf(), reason })?;
    Ok(config)
}

/// Even ensembling of overlapping chunks, for formulations that predict chunks. Measured on the
/// `kosmos-wide` model of reports/kosmos-wide-v13 over 1000 chains: Avg. Len. 1.307 with the even
/// ensemble, 0.694 executing each chunk's first action, 0.926 to 1.226 weighing newer or older
/// predictions more (BENCHMARKS.md).
pub fn temporal_ensemble(formulation: &FormulationConfig) -> Option<TemporalEnsembleConfig> {
    (formulation.chunk() > 1).then_some(TemporalEnsembleConfig { decay: 0.0 })
}

/// The config of preset `name` with the default formulation (`policy_head`).
pub fn preset(name: &str) -> Result<VlaConfig, VlaError> {
    preset_with(name, "policy_head")
}

/// Whether `formulation_name` applies to preset `name` (the FiLM baseline has no language model to
/// interleave frames in or to emit discrete tokens).
pub fn supports(name: &str, formulation_name: &str) -> bool {
    preset_with(name, formulation_name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_gives_its_backbone_with_the_formulation_asked_for() {
        let dir = std::env::temp_dir().join(format!("vlasim-presets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut wide = preset_with("paligemma", "policy_head").unwrap();
        let BackboneConfig::Vlm(vlm) = &mut wide.backbone else { panic!("paligemma is a VLM") };
        vlm.language_model.hidden_size = 96;
        vlm.language_model.intermediate_size = 192;
        let file = dir.join("config.json");
        std::fs::write(&file, serde_json::to_string(&wide).unwrap()).unwrap();

        let resolved = resolve(file.to_str().unwrap(), "one_step").unwrap();
        assert_eq!(resolved.backbone, wide.backbone, "the file's backbone");
        assert_eq!(resolved.formulation, formulation("one_step").unwrap(), "the formulation asked for");
        assert_eq!(resolve("paligemma", "one_step").unwrap(), preset_with("paligemma", "one_step").unwrap());

        std::fs::write(&file, "{\"preset\": ").unwrap();
        let error = resolve(file.to_str().unwrap(), "one_step").unwrap_err().to_string();
        assert!(error.contains("config.json"), "the error names the file: {error}");
        let error = resolve("paligema", "one_step").unwrap_err().to_string();
        assert!(error.contains("unknown preset `paligema`"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
