//! Behaviour of the assembled model: shapes, masks, saving and loading, the policy's history cache,
//! discrete decoding and the attention maps.

use candle_core::{IndexOp, Tensor};

use super::VlaError;
use super::attention_maps::{action_to_patches, attention_rollout};
use super::backbone::Slot;
use super::model::{ActionOutput, ForwardOptions, Vla, actions_to_bins, bins_to_actions};
use super::policy::VlaPolicy;
use super::presets::{PRESETS, preset_with};
use super::test_support::{batch, shrunk};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vlasim-vla-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn continuous(output: &ActionOutput) -> (&Tensor, &Tensor) {
    match output {
        ActionOutput::Continuous(actions) => (&actions.arm, &actions.gripper_logits),
        ActionOutput::Discrete { .. } => panic!("expected continuous actions"),
    }
}

#[test]
fn outputs_have_the_documented_shapes() {
    let config = preset_with("paligemma", "policy_head").unwrap();
    let model = Vla::new(config.clone()).unwrap();
    let (input, _) = batch(&config, 2, 1);
    let output = model.forward(&input, ForwardOptions::default()).unwrap();
    let (arm, gripper) = continuous(&output.actions);
    assert_eq!(arm.dims(), &[2, 10, 6]);
    assert_eq!(gripper.dims(), &[2, 10]);
    assert!(arm.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() < 1.0, "tanh arm");

    let config = preset_with("paligemma", "one_step_discrete").unwrap();
    let model = Vla::new(config.clone()).unwrap();
    let (input, _) = batch(&config, 2, 1);
    let greedy = model.forward(&input, ForwardOptions::default()).unwrap();
    let ActionOutput::Discrete { logits } = &greedy.actions else { panic!("discrete") };
    assert_eq!(logits.dims(), &[2, 7, 256]);
}

#[test]
fn greedy_decoding_agrees_with_teacher_forcing_on_its_own_choices() {
    let config = preset_with("llava", "one_step_discrete").unwrap();
    let model = Vla::new(config.clone()).unwrap();
    let (input, _) = batch(&config, 2, 4);
    let greedy = model.forward(&input, ForwardOptions::default()).unwrap();
    let ActionOutput::Discrete { logits } = &greedy.actions else { panic!("discrete") };
    let chosen = bins_to_actions(&logits.argmax(2).unwrap(), 256).unwrap().unsqueeze(1).unwrap();
    let forced =
        model.forward(&input, ForwardOptions { capture_attention: false, teacher_actions: Some(&chosen) }).unwrap();
    let ActionOutput::Discrete { logits: forced_logits } = &forced.actions else { panic!("discrete") };
    assert!(max_difference(logits, forced_logits) < 1e-4);
}

#[test]
fn bins_cover_the_action_range() {
    let actions = Tensor::new(&[-1f32, -0.5, 0.0, 0.5, 1.0, 3.0], &candle_core::Device::Cpu).unwrap();
    let bins = actions_to_bins(&actions, 256).unwrap().to_vec1::<u32>().unwrap();
    assert_eq!(bins, vec![0, 64, 128, 191, 255, 255]);
    let back = bins_to_actions(&Tensor::new(&[0u32, 255], &candle_core::Device::Cpu).unwrap(), 256).unwrap();
    assert_eq!(back.to_vec1::<f32>().unwrap(), vec![-1.0, 1.0]);
}

#[test]
fn prefix_lm_attends_bidirectionally_over_image_and_text_only() {
    let config = shrunk(preset_with("paligemma", "one_step").unwrap());
    let model = Vla::new(config.clone()).unwrap();
    let (input, _) = batch(&config, 1, 2);
    let output = model.forward(&input, ForwardOptions { capture_attention: true, teacher_actions: None }).unwrap();
    let capture = output.attention.unwrap();
    let layout = capture.layout.unwrap();
    let weights = capture.backbone.language[0].i((0, 0)).unwrap().to_vec2::<f32>().unwrap();
    let first_text = layout.text.start;
    assert!(weights[0][first_text] > 0.0, "an image token sees the text after it (prefix)");
    assert!(matches!(layout.slots[layout.action[0]], Slot::Action { frame: 0 }));
    assert_eq!(weights[first_text - 1][layout.action[0]], 0.0, "the prefix does not see the action token");
    let padded = layout.text.end - 1;
    assert_eq!(weights[layout.action[0]][padded], 0.0, "padding is never attended to");

    let config = shrunk(preset_with("llava", "one_step").unwrap());
    let model = Vla::new(config.clone()).unwrap();
    let capture = model
        .forward(&input, ForwardOptions { capture_attention: true, teacher_actions: None })
        .unwrap()
        .attention
        .unwrap();
    let weights = capture.backbone.language[0].i((0, 0)).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(weights[0][1], 0.0, "a causal model's first token sees only itself");
}

#[test]
fn saved_models_load_to_the_same_outputs_and_bad_files_are_named() {
    let config = shrunk(preset_with("kosmos", "policy_head").unwrap());
    let model = Vla::new(config.clone()).unwrap();
    let dir = temp_dir("save");
    model.save(&dir).unwrap();
    let loaded = Vla::load(&dir).unwrap();
    let (input, _) = batch(&config, 1, 5);
    let a = model.forward(&input, ForwardOptions::default()).unwrap();
    let b = loaded.forward(&input, ForwardOptions::default()).unwrap();
    assert_eq!(max_difference(continuous(&a.actions).0, continuous(&b.actions).0), 0.0);

    // A file written for another architecture: the first missing tensor is named.
    let other = Vla::new(shrunk(preset_with("llava", "policy_head").unwrap())).unwrap();
    other.params().save(&dir.join("model.safetensors")).unwrap();
    let error = Vla::load(&dir).unwrap_err();
    assert!(matches!(error, VlaError::MissingTensor { .. }), "{error}");
    assert!(
        error.to_string().contains("model.safetensors") && error.to_string().contains("missing tensor `backbone."),
        "{error}"
    );

    // Same architecture, another size: the mis-shaped tensor is named.
    let mut wider = config.clone();
    wider.formulation.head.hidden_size = 32;
    Vla::new(wider).unwrap().params().save(&dir.join("model.safetensors")).unwrap();
    let error = Vla::load(&dir).unwrap_err();
    assert!(matches!(&error, VlaError::TensorShape { name, .. } if name.starts_with("head.")), "{error}");

    std::fs::write(dir.join("model.safetensors"), b"not a safetensors file").unwrap();
    let error = Vla::load(&dir).unwrap_err();
    assert!(matches!(error, VlaError::TensorFile { .. }), "{error}");

    std::fs::write(dir.join("config.json"), b"{\"preset\": 3}").unwrap();
    let error = Vla::load(&dir).unwrap_err();
    assert!(error.to_string().contains("config.json"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn policy_with_cached_features_matches_a_full_forward_pass() {
    for formulation in ["policy_head", "interleaved"] {
        let config = shrunk(preset_with("uform", formulation).unwrap());
        let model = Vla::new(config.clone()).unwrap();
        let (input, _) = batch(&config, 1, 6);
        let mut policy = VlaPolicy::new(model.clone());
        let ids = input.instruction_ids.i(0).unwrap().to_vec1::<u32>().unwrap();
        let mask = input.instruction_mask.i(0).unwrap().to_vec1::<u32>().unwrap();
        policy.reset(&ids, &mask).unwrap();
        let window = config.formulation.history_window;
        let mut action = [0f32; 7];
        for t in 0..window {
            let image = input.static_images.i((0, t)).unwrap();
            let obs = input.robot_obs.i((0, t)).unwrap().to_vec1::<f32>().unwrap();
            action = policy.act(&image, None, &obs).unwrap();
        }
        let expected = model.forward(&input, ForwardOptions::default()).unwrap().actions.first_action(0).unwrap();
        for (a, e) in action.iter().zip(expected) {
            assert!((a - e).abs() < 1e-4, "{formulation}: policy {action:?} vs forward {expected:?}");
        }
        assert!(action[6] == 1.0 || action[6] == -1.0);
    }
}

#[test]
fn every_preset_maps_the_action_tokens_attention_onto_the_patch_grid() {
    for preset in PRESETS {
        let config = shrunk(preset_with(preset, "policy_head").unwrap());
        let model = Vla::new(config.clone()).unwrap();
        let (input, _) = batch(&config, 1, 7);
        let capture = model
            .forward(&input, ForwardOptions { capture_attention: true, teacher_actions: None })
            .unwrap()
            .attention
            .unwrap();
        let window = config.formulation.history_window;
        let Some((map, grid)) = action_to_patches(&capture, window - 1).unwrap() else {
            assert_eq!(preset, "film", "only the FiLM baseline has no attention to map");
            continue;
        };
        assert_eq!(map.dim(1).unwrap(), grid * grid, "{preset}");
        let total = map.sum(1).unwrap().to_vec1::<f32>().unwrap();
        assert!(total.iter().all(|t| *t > 0.0 && *t <= 1.0 + 1e-5), "{preset}: attention mass {total:?}");
        if !capture.backbone.vision.is_empty() {
            let layers: Vec<Tensor> = capture.backbone.vision.iter().map(|w| w.i(0).unwrap()).collect();
            let rollout = attention_rollout(&layers).unwrap();
            let sums = rollout.sum(1).unwrap().to_vec1::<f32>().unwrap();
            assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-4), "{preset}: rollout rows are distributions");
        }
    }
}
