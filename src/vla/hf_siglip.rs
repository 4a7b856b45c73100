//! Loads a real SigLIP vision tower from a Hugging Face folder (`config.json` + `model.safetensors`
//! as written by `transformers` for `SiglipModel` or `SiglipVisionModel`) as the vision encoder of a
//! preset. Our ViT uses HF's tensor names except for the fused `self_attn.qkv_proj`, which is built
//! here from HF's `q_proj`, `k_proj` and `v_proj`. Position embeddings trained for another image
//! size are resized bilinearly to our patch grid (as HF's `interpolate_pos_encoding` does).
//! Tensors the tower does not use (the text model, the pooling head) are ignored; a missing or
//! mis-shaped one is an error naming it.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::Deserialize;

use super::VlaError;
use super::config::{BackboneConfig, VisionConfig, VitConfig, VitStyle};
use super::model::{CONFIG_FILE, Vla, WEIGHTS_FILE};
use super::presets;

/// The fields of HF's `SiglipVisionConfig` that shape the tower.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SiglipVisionConfig {
    /// Token width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Heads.
    pub num_attention_heads: usize,
    /// Image side the position embeddings were trained for.
    pub image_size: usize,
    /// Patch side.
    pub patch_size: usize,
    /// Layer-norm epsilon.
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
}

fn default_layer_norm_eps() -> f64 {
    1e-6
}

/// `config.json` of a `SiglipModel` (nested `vision_config`) or a `SiglipVisionModel` (flat).
#[derive(Deserialize)]
#[serde(untagged)]
enum HfConfigFile {
    Nested { vision_config: SiglipVisionConfig },
    Flat(SiglipVisionConfig),
}

/// Reads the vision config from an HF folder's `config.json`.
pub fn read_config(dir: &Path) -> Result<SiglipVisionConfig, VlaError> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|cause| VlaError::Io { path: path.clone(), cause })?;
    let file: HfConfigFile = serde_json::from_str(&text).map_err(|e| VlaError::ConfigFile {
        path: path.clone(),
        reason: format!("not a SigLIP config (need hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, image_size, patch_size): {e}"),
    })?;
    Ok(match file {
        HfConfigFile::Nested { vision_config } => vision_config,
        HfConfigFile::Flat(config) => config,
    })
}

/// Our ViT description of a SigLIP tower.
impl From<&SiglipVisionConfig> for VitConfig {
    fn from(hf: &SiglipVisionConfig) -> Self {
        VitConfig {
            style: VitStyle::Siglip,
            patch_size: hf.patch_size,
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_hidden_layers: hf.num_hidden_layers,
            num_attention_heads: hf.num_attention_heads,
            layer_norm_eps: hf.layer_norm_eps,
        }
    }
}

/// Bilinear resize of a `[src², d]` position-embedding grid to `[dst², d]` (align-corners off, as
/// PyTorch's `interpolate`).
fn resize_positions(table: &Tensor, src: usize, dst: usize) -> candle_core::Result<Tensor> {
    if src == dst {
        return Ok(table.clone());
    }
    let width = table.dim(1)?;
    let values = table.to_vec2::<f32>()?;
    let source_coordinate = |i: usize| ((i as f32 + 0.5) * src as f32 / dst as f32 - 0.5).clamp(0.0, (src - 1) as f32);
    let mut out = Vec::with_capacity(dst * dst * width);
    for row in 0..dst {
        let y = source_coordinate(row);
        let (y0, fy) = (y.floor() as usize, y.fract());
        let y1 = (y0 + 1).min(src - 1);
        for col in 0..dst {
            let x = source_coordinate(col);
            let (x0, fx) = (x.floor() as usize, x.fract());
            let x1 = (x0 + 1).min(src - 1);
            let corner = |r: usize, c: usize| &values[r * src + c];
            let corners = (corner(y0, x0), corner(y0, x1), corner(y1, x0), corner(y1, x1));
            for (((top_left, top_right), bottom_left), bottom_right) in
                corners.0.iter().zip(corners.1).zip(corners.2).zip(corners.3)
            {
                let top = top_left * (1.0 - fx) + top_right * fx;
                let bottom = bottom_left * (1.0 - fx) + bottom_right * fx;
                out.push(top * (1.0 - fy) + bottom * fy);
            }
        }
    }
    Tensor::from_vec(out, (dst * dst, width), table.device())
}

/// Our parameter name under the tower → the HF tensors it is made of (several: concatenated on dim 0).
fn hf_sources(name: &str, prefix: &str) -> Vec<String> {
    match name.split_once("self_attn.qkv_proj.") {
        Some((layer, kind)) => {
            ["q_proj", "k_proj", "v_proj"].iter().map(|p| format!("{prefix}{layer}self_attn.{p}.{kind}")).collect()
        }
        None => vec![format!("{prefix}{name}")],
    }
}

/// Builds preset `preset_name` with formulation `formulation_name`, its vision tower replaced by the
/// SigLIP tower in `dir` (sizes from its config, weights from its safetensors). The other parts keep
/// their seeded initialisation. Only ViT-based presets have a SigLIP-shaped tower to replace.
pub fn vla_with_siglip(preset_name: &str, formulation_name: &str, dir: &Path) -> Result<Vla, VlaError> {
    let hf = read_config(dir)?;
    let mut config = presets::preset_with(preset_name, formulation_name)?;
    match &mut config.backbone {
        BackboneConfig::Vlm(vlm) if matches!(vlm.vision, VisionConfig::Vit(_)) => {
            vlm.vision = VisionConfig::Vit((&hf).into())
        }
        _ => {
            return Err(VlaError::InvalidConfig(format!(
                "preset `{preset_name}` has no ViT vision tower to load SigLIP into"
            )));
        }
    }
    let model = Vla::new(config, &Device::Cpu)?;
    load_vision_weights(&model, &hf, dir)?;
    Ok(model)
}

/// Copies the SigLIP weights of `dir` into `model`'s static-camera vision tower.
pub fn load_vision_weights(model: &Vla, hf: &SiglipVisionConfig, dir: &Path) -> Result<(), VlaError> {
    let file = dir.join(WEIGHTS_FILE);
    let tensors: HashMap<String, Tensor> = candle_core::safetensors::load(&file, &Device::Cpu)
        .map_err(|cause| VlaError::TensorFile { file: file.clone(), cause })?;
    // `SiglipModel` and `SiglipVisionModel` both write `vision_model.…`; accept a bare tower too.
    let prefix = if tensors.keys().any(|k| k.starts_with("vision_model.")) { "vision_model." } else { "" };
    let tower = "backbone.vision.";
    let source_grid = hf.image_size / hf.patch_size;
    let candle_error = |cause| VlaError::TensorFile { file: file.clone(), cause };
    for (name, var) in model.params().vars() {
        let Some(local) = name.strip_prefix(tower) else { continue };
        let sources = hf_sources(local, prefix);
        // Fused tensors stack their sources on dim 0, so each source has 1/n of the rows.
        let mut expected = var.dims().to_vec();
        expected[0] /= sources.len();
        let mut parts = Vec::with_capacity(sources.len());
        for source in &sources {
            let tensor = tensors.get(source).ok_or_else(|| VlaError::MissingTensor {
                file: file.clone(),
                name: source.clone(),
                expected: expected.clone(),
            })?;
            let mut part = tensor.to_dtype(candle_core::DType::F32).map_err(candle_error)?;
            let is_positions = local == "embeddings.position_embedding.weight";
            if is_positions && part.dims() == [source_grid * source_grid, expected[1]] {
                let target_grid = (expected[0] as f64).sqrt().round() as usize;
                part = resize_positions(&part, source_grid, target_grid).map_err(candle_error)?;
            }
            if part.dims() != expected.as_slice() {
                return Err(VlaError::TensorShape {
                    file: file.clone(),
                    name: source.clone(),
                    expected,
                    found: tensor.dims().to_vec(),
                });
            }
            parts.push(part);
        }
        let weights =
            Tensor::cat(&parts, 0).and_then(|weights| weights.to_device(var.device())).map_err(candle_error)?;
        var.set(&weights).map_err(candle_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::rng::Rng;
    use crate::vla::test_support::uniform;

    const HIDDEN: usize = 32;
    const INTERMEDIATE: usize = 64;
    const LAYERS: usize = 2;
    const PATCH: usize = 16;
    /// Trained for 64-pixel images (a 4×4 grid); our static camera's 128 pixels need 8×8.
    const HF_IMAGE: usize = 64;

    /// A random checkpoint with HF's `SiglipModel` names, including tensors the tower ignores.
    fn hf_tensors() -> HashMap<String, Tensor> {
        let mut rng = Rng::new(11);
        let mut tensors = HashMap::new();
        let mut put = |name: String, shape: &[usize]| {
            tensors.insert(name, uniform(shape, -0.1, 0.1, &mut rng));
        };
        let grid = HF_IMAGE / PATCH;
        put("vision_model.embeddings.patch_embedding.weight".into(), &[HIDDEN, 3, PATCH, PATCH]);
        put("vision_model.embeddings.patch_embedding.bias".into(), &[HIDDEN]);
        put("vision_model.embeddings.position_embedding.weight".into(), &[grid * grid, HIDDEN]);
        for layer in 0..LAYERS {
            let p = format!("vision_model.encoder.layers.{layer}");
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                put(format!("{p}.self_attn.{proj}.weight"), &[HIDDEN, HIDDEN]);
                put(format!("{p}.self_attn.{proj}.bias"), &[HIDDEN]);
            }
            for norm in ["layer_norm1", "layer_norm2"] {
                put(format!("{p}.{norm}.weight"), &[HIDDEN]);
                put(format!("{p}.{norm}.bias"), &[HIDDEN]);
            }
            put(format!("{p}.mlp.fc1.weight"), &[INTERMEDIATE, HIDDEN]);
            put(format!("{p}.mlp.fc1.bias"), &[INTERMEDIATE]);
            put(format!("{p}.mlp.fc2.weight"), &[HIDDEN, INTERMEDIATE]);
            put(format!("{p}.mlp.fc2.bias"), &[HIDDEN]);
        }
        put("vision_model.post_layernorm.weight".into(), &[HIDDEN]);
        put("vision_model.post_layernorm.bias".into(), &[HIDDEN]);
        put("vision_model.head.probe".into(), &[1, 1, HIDDEN]);
        put("text_model.embeddings.token_embedding.weight".into(), &[10, HIDDEN]);
        tensors
    }

    fn write_checkpoint(name: &str, tensors: &HashMap<String, Tensor>) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vlasim-siglip-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = serde_json::json!({
            "model_type": "siglip",
            "text_config": { "hidden_size": HIDDEN },
            "vision_config": {
                "hidden_size": HIDDEN, "intermediate_size": INTERMEDIATE, "num_hidden_layers": LAYERS,
                "num_attention_heads": 2, "image_size": HF_IMAGE, "patch_size": PATCH,
                "layer_norm_eps": 1e-6, "hidden_act": "gelu_pytorch_tanh", "model_type": "siglip_vision_model"
            }
        });
        std::fs::write(dir.join(CONFIG_FILE), config.to_string()).unwrap();
        candle_core::safetensors::save(tensors, dir.join(WEIGHTS_FILE)).unwrap();
        dir
    }

    fn var(model: &Vla, name: &str) -> Tensor {
        model.params().vars().into_iter().find(|(n, _)| n == name).unwrap().1.as_tensor().clone()
    }

    #[test]
    fn a_hf_siglip_checkpoint_becomes_the_vision_tower() {
        let tensors = hf_tensors();
        let dir = write_checkpoint("ok", &tensors);
        let model = vla_with_siglip("paligemma", "one_step", &dir).unwrap();
        let hf = |name: &str| tensors[&format!("vision_model.{name}")].clone();
        let fused = var(&model, "backbone.vision.encoder.layers.1.self_attn.qkv_proj.weight");
        let expected = Tensor::cat(
            &[
                hf("encoder.layers.1.self_attn.q_proj.weight"),
                hf("encoder.layers.1.self_attn.k_proj.weight"),
                hf("encoder.layers.1.self_attn.v_proj.weight"),
            ],
            0,
        )
        .unwrap();
        assert_eq!(fused.to_vec2::<f32>().unwrap(), expected.to_vec2::<f32>().unwrap());
        let patch = var(&model, "backbone.vision.embeddings.patch_embedding.weight");
        assert_eq!(
            patch.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            hf("embeddings.patch_embedding.weight").flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        assert_eq!(var(&model, "backbone.vision.embeddings.position_embedding.weight").dims(), &[64, HIDDEN]);
        let (input, _) = crate::vla::test_support::batch(model.config(), 1, 2);
        let output = model.forward(&input, Default::default()).unwrap();
        assert!(output.actions.first_action(0).unwrap().iter().all(|v| v.is_finite()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_and_misshaped_tensors_are_named() {
        let mut tensors = hf_tensors();
        let removed = "vision_model.encoder.layers.1.mlp.fc2.weight";
        tensors.remove(removed);
        let dir = write_checkpoint("missing", &tensors);
        let error = vla_with_siglip("paligemma", "one_step", &dir).unwrap_err();
        assert!(matches!(&error, VlaError::MissingTensor { name, .. } if name == removed), "{error}");
        assert!(error.to_string().contains(removed));
        std::fs::remove_dir_all(&dir).unwrap();

        let mut tensors = hf_tensors();
        let reshaped = "vision_model.encoder.layers.0.self_attn.k_proj.weight";
        tensors.insert(
            reshaped.into(),
            Tensor::zeros((HIDDEN, HIDDEN + 1), candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
        let dir = write_checkpoint("shape", &tensors);
        let error = vla_with_siglip("paligemma", "one_step", &dir).unwrap_err();
        assert!(
            matches!(&error, VlaError::TensorShape { name, found, .. } if name == reshaped && found == &[HIDDEN, HIDDEN + 1]),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn position_embeddings_are_resized_bilinearly_like_pytorch() {
        // Values 2·row + col on a 2×2 grid; PyTorch's bilinear (align_corners=False) to 4×4 samples rows
        // and columns at 0, 0.25, 0.75, 1 (clamped at the borders).
        let table = Tensor::new(&[[0f32], [1.0], [2.0], [3.0]], &Device::Cpu).unwrap();
        let resized = resize_positions(&table, 2, 4).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let coordinates = [0.0, 0.25, 0.75, 1.0];
        let expected: Vec<f32> =
            coordinates.iter().flat_map(|y| coordinates.iter().map(move |x| 2.0 * y + x)).collect();
        assert_eq!(resized, expected);
    }
}
