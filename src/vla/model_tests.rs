//! Behaviour of the assembled model: shapes, masks, saving and loading, the policy's history cache,
//! discrete decoding and the attention maps.

use candle_core::{Device, IndexOp, Tensor};

use super::VlaError;
use super::attention_maps::{action_to_patches, attention_rollout};
use super::backbone::Slot;
use super::config::{RobotObsNorm, VlaConfig};
use super::model::{ActionOutput, ForwardOptions, Vla, VlaInput, actions_to_bins, bins_to_actions, huber};
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
    let model = Vla::new(config.clone(), &Device::Cpu).unwrap();
    let (input, _) = batch(&config, 2, 1);
    let output = model.forward(&input, ForwardOptions::default()).unwrap();
    let (arm, gripper) = continuous(&output.actions);
    assert_eq!(arm.dims(), &[2, 8, 10, 6], "a chunk after each of the 8 frames");
    assert_eq!(gripper.dims(), &[2, 8, 10]);
    assert!(arm.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() < 1.0, "tanh arm");

    let config = preset_with("paligemma", "one_step_discrete").unwrap();
    let model = Vla::new(config.clone(), &Device::Cpu).unwrap();
    let (input, _) = batch(&config, 2, 1);
    let greedy = model.forward(&input, ForwardOptions::default()).unwrap();
    let ActionOutput::Discrete { logits } = &greedy.actions else { panic!("discrete") };
    assert_eq!(logits.dims(), &[2, 7, 256]);
}

#[test]
fn greedy_decoding_agrees_with_teacher_forcing_on_its_own_choices() {
    let config = preset_with("llava", "one_step_discrete").unwrap();
    let model = Vla::new(config.clone(), &Device::Cpu).unwrap();
    let (input, _) = batch(&config, 2, 4);
    let greedy = model.forward(&input, ForwardOptions::default()).unwrap();
    let ActionOutput::Discrete { logits } = &greedy.actions else { panic!("discrete") };
    // As targets: `[B, T = 1, chunk = 1, 7]`.
    let chosen = bins_to_actions(&logits.argmax(2).unwrap(), 256).unwrap().unsqueeze(1).unwrap().unsqueeze(1).unwrap();
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
fn huber_is_quadratic_inside_delta_and_its_gradient_bounded_outside() {
    // The last error is an outlier (a block 94 m down, as before the floor, in units of 0.1 m): it costs linearly
    // and pulls on the prediction no harder than an error of delta.
    let error = candle_core::Var::new(&[-0.5f32, 0.0, 3.0, -940.0], &candle_core::Device::Cpu).unwrap();
    let loss = huber(error.as_tensor(), 1.0).unwrap();
    assert_eq!(loss.to_vec1::<f32>().unwrap(), [0.125, 0.0, 2.5, 939.5]);
    let gradients = loss.sum_all().unwrap().backward().unwrap();
    let gradient = gradients.get(error.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(gradient, [-0.5, 0.0, 1.0, -1.0]);
}

#[test]
fn prefix_lm_attends_bidirectionally_over_image_and_text_only() {
    let config = shrunk(preset_with("paligemma", "one_step").unwrap());
    let model = Vla::new(config.clone(), &Device::Cpu).unwrap();
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
    let model = Vla::new(config.clone(), &Device::Cpu).unwrap();
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
    let model = Vla::new(config.clone(), &Device::Cpu).unwrap();
    let dir = temp_dir("save");
    model.save(&dir).unwrap();
    let loaded = Vla::load(&dir, &Device::Cpu).unwrap();
    let (input, _) = batch(&config, 1, 5);
    let a = model.forward(&input, ForwardOptions::default()).unwrap();
    let b = loaded.forward(&input, ForwardOptions::default()).unwrap();
    assert_eq!(max_difference(continuous(&a.actions).0, continuous(&b.actions).0), 0.0);

    // A file written for another architecture: the first missing tensor is named.
    let other = Vla::new(shrunk(preset_with("llava", "policy_head").unwrap()), &Device::Cpu).unwrap();
    other.params().save(&dir.join("model.safetensors")).unwrap();
    let error = Vla::load(&dir, &Device::Cpu).unwrap_err();
    assert!(matches!(error, VlaError::MissingTensor { .. }), "{error}");
    assert!(
        error.to_string().contains("model.safetensors") && error.to_string().contains("missing tensor `backbone."),
        "{error}"
    );

    // Same architecture, another size: the mis-shaped tensor is named.
    let mut wider = config.clone();
    wider.formulation.head.hidden_size = 32;
    Vla::new(wider, &Device::Cpu).unwrap().params().save(&dir.join("model.safetensors")).unwrap();
    let error = Vla::load(&dir, &Device::Cpu).unwrap_err();
    assert!(matches!(&error, VlaError::TensorShape { name, .. } if name.starts_with("head.")), "{error}");

    std::fs::write(dir.join("model.safetensors"), b"not a safetensors file").unwrap();
    let error = Vla::load(&dir, &Device::Cpu).unwrap_err();
    assert!(matches!(error, VlaError::TensorFile { .. }), "{error}");

    std::fs::write(dir.join("config.json"), b"{\"preset\": 3}").unwrap();
    let error = Vla::load(&dir, &Device::Cpu).unwrap_err();
    assert!(error.to_string().contains("config.json"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Statistics that move every `robot_obs` dimension noticeably.
fn some_robot_obs_norm(dims: usize) -> RobotObsNorm {
    RobotObsNorm {
        mean: (0..dims).map(|d| 0.1 * d as f32 - 0.5).collect(),
        std: (0..dims).map(|d| 0.2 + 0.05 * d as f32).collect(),
    }
}

#[test]
fn robot_obs_norm_standardises_the_input_inside_the_model() {
    let plain_config = shrunk(preset_with("kosmos", "policy_head").unwrap());
    let norm = some_robot_obs_norm(plain_config.robot_obs_dim);
    let normalizing =
        Vla::new(VlaConfig { robot_obs_norm: Some(norm.clone()), ..plain_config.clone() }, &Device::Cpu).unwrap();
    let plain = Vla::new(plain_config.clone(), &Device::Cpu).unwrap();
    let (input, _) = batch(&plain_config, 2, 4);
    let dims = norm.mean.len();
    let mean = Tensor::from_slice(&norm.mean, (1, 1, dims), &candle_core::Device::Cpu).unwrap();
    let std = Tensor::from_slice(&norm.std, (1, 1, dims), &candle_core::Device::Cpu).unwrap();
    let standardised = input.robot_obs.broadcast_sub(&mean).unwrap().broadcast_div(&std).unwrap();
    let by_hand = VlaInput { robot_obs: standardised, ..input.clone() };
    let inside = normalizing.forward(&input, ForwardOptions::default()).unwrap();
    let outside = plain.forward(&by_hand, ForwardOptions::default()).unwrap();
    assert!(max_difference(continuous(&inside.actions).0, continuous(&outside.actions).0) < 1e-5);
    let raw = plain.forward(&input, ForwardOptions::default()).unwrap();
    assert!(max_difference(continuous(&inside.actions).0, continuous(&raw.actions).0) > 1e-4, "the norm has an effect");

    let mut old_json: serde_json::Value = serde_json::to_value(&plain_config).unwrap();
    assert!(old_json.as_object_mut().unwrap().remove("robot_obs_norm").is_none(), "None is not written");
    let reread: VlaConfig = serde_json::from_value(old_json).unwrap();
    assert_eq!(reread.robot_obs_norm, None, "configs from before the field read as raw robot_obs");
    let mut bad = normalizing.config().clone();
    bad.robot_obs_norm.as_mut().unwrap().std[3] = 0.0;
    assert!(bad.validate().unwrap_err().contains("robot_obs_norm"));
}

#[test]
fn policy_with_cached_features_matches_a_full_forward_pass() {
    for formulation in ["policy_head", "interleaved"] {
        let mut config = shrunk(preset_with("uform", formulation).unwrap());
        // With statistics, so the policy's per-frame path standardises as the full pass does.
        config.robot_obs_norm = Some(some_robot_obs_norm(config.robot_obs_dim));
        // The forward pass gives one chunk; the ensemble would mix in earlier ones.
        config.temporal_ensemble = None;
        let model = Vla::new(config.clone(), &Device::Cpu).unwrap();
        let (input, _) = batch(&config, 1, 6);
        let mut policy = VlaPolicy::new(model.clone());
        let ids = input.instruction_ids.i(0).unwrap().to_vec1::<u32>().unwrap();
        let mask = input.instruction_mask.i(0).unwrap().to_vec1::<u32>().unwrap();
        policy.reset(&ids, &mask).unwrap();
        let window = config.formulation.history_window;
        let mut action = [0f32; 7];
        for t in 0..window {
            let image = input.static_images.i((0, t)).unwrap();
            let gripper = input.gripper_images.as_ref().map(|images| images.i((0, t)).unwrap());
            let obs = input.robot_obs.i((0, t)).unwrap().to_vec1::<f32>().unwrap();
            action = policy.act(&image, gripper.as_ref(), &obs).unwrap();
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
        let model = Vla::new(config.clone(), &Device::Cpu).unwrap();
        let (input, _) = batch(&config, 1, 7);
        let capture = model
            .forward(&input, ForwardOptions { capture_attention: true, teacher_actions: None })
            .unwrap()
            .attention
            .unwrap();
        let backbone = &capture.backbone;
        let layers =
            [&backbone.vision, &backbone.connector, &backbone.language, &backbone.cross, &backbone.token_learner];
        for layer in layers.into_iter().flatten() {
            let sums = layer.sum(candle_core::D::Minus1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-4), "{preset}: every attention row sums to 1");
        }
        let window = config.formulation.history_window;
        let (map, grid) = action_to_patches(&capture, window - 1).unwrap().expect("every preset has a map");
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
