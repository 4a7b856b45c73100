//! Every preset × formulation trains: one step gives every parameter a gradient, and a few steps on
//! a fixed batch lower the loss. This is what catches a non-differentiable op (DESIGN.md §2.4).

use super::config::VlaConfig;
use super::model::{ForwardOptions, Vla};
use super::presets::{FORMULATIONS, PRESETS, preset_with, supports};
use super::test_support::{batch, shrunk};
use crate::train::optim::{AdamW, AdamWConfig};

fn train_and_check(preset: &str, formulation: &str) {
    train_config_and_check(shrunk(preset_with(preset, formulation).expect("known preset and formulation")));
}

fn train_config_and_check(config: VlaConfig) {
    let (preset, formulation) = (config.preset.clone(), config.formulation.clone());
    let formulation = format!("{:?}/{}", formulation.history, formulation.history_window);
    let model = Vla::new(config.clone(), &candle_core::Device::Cpu).expect("presets build");
    let (input, targets) = batch(&config, 2, 3);
    let named = model.params().vars();
    let mut optimizer = AdamW::new(named.clone(), AdamWConfig { weight_decay: 0.0, ..AdamWConfig::default() }).unwrap();
    let mut untouched: Vec<&str> = named.iter().map(|(name, _)| name.as_str()).collect();
    let mut losses = Vec::new();
    // Flamingo's tanh gates start at 0, so the layers behind them get their first gradient once the
    // gates have moved: gradients are checked over the first two steps.
    for step in 0..6 {
        let options = ForwardOptions { capture_attention: false, teacher_actions: Some(&targets.actions) };
        let output = model.forward(&input, options).expect("forward");
        let loss = model.loss(&output, &targets).expect("loss");
        losses.push(loss.to_scalar::<f32>().expect("scalar loss"));
        let grads = loss.backward().expect("backward");
        if step < 2 {
            untouched.retain(|name| {
                let var = &named.iter().find(|(n, _)| n == name).expect("listed above").1;
                let nonzero = grads
                    .get(var)
                    .map(|g| g.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap() > 0.0);
                nonzero != Some(true)
            });
        }
        optimizer.step(&grads, 3e-3, None).expect("optimiser step");
    }
    assert!(untouched.is_empty(), "{preset}/{formulation}: no gradient reached {untouched:?}");
    assert!(losses.iter().all(|l| l.is_finite()), "{preset}/{formulation}: losses {losses:?}");
    assert!(losses[5] < losses[0], "{preset}/{formulation}: loss did not fall: {losses:?}");
}

macro_rules! preset_tests {
    ($($test:ident: $preset:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            for formulation in FORMULATIONS {
                if supports($preset, formulation) {
                    train_and_check($preset, formulation);
                }
            }
        }
    )*};
}

preset_tests! {
    paligemma_trains_in_every_formulation: "paligemma",
    kosmos_trains_in_every_formulation: "kosmos",
    flamingo_trains_in_every_formulation: "flamingo",
    llava_trains_in_every_formulation: "llava",
    qwen_vl_trains_in_every_formulation: "qwen-vl",
    moondream_trains_in_every_formulation: "moondream",
    uform_trains_in_every_formulation: "uform",
    film_trains_in_every_formulation: "film",
}

#[test]
fn every_preset_and_formulation_is_covered() {
    assert_eq!(PRESETS.len(), 8);
    for preset in PRESETS {
        assert!(supports(preset, "policy_head"), "{preset} supports the default formulation");
    }
    assert!(!supports("film", "interleaved") && !supports("film", "one_step_discrete"), "FiLM has no language model");
}

#[test]
fn models_with_the_gripper_camera_train() {
    for preset in ["paligemma", "qwen-vl", "uform", "film"] {
        let mut config = shrunk(preset_with(preset, "policy_head").expect("known preset"));
        config.use_gripper_camera = true;
        train_config_and_check(config);
    }
}

#[test]
fn film_with_keypoints_on_a_finer_stem_trains() {
    let mut config = shrunk(preset_with("film", "one_step").expect("known preset"));
    let super::config::BackboneConfig::Film(film) = &mut config.backbone else { unreachable!("film is film") };
    film.stem_patch = 4;
    film.keypoints = true;
    train_config_and_check(config);
}

#[test]
fn models_with_the_scene_state_loss_train() {
    for (preset, formulation) in [("paligemma", "one_step"), ("kosmos", "policy_head"), ("film", "one_step")] {
        let mut config = shrunk(preset_with(preset, formulation).expect("known preset"));
        config.scene_state_loss = Some(0.5);
        train_config_and_check(config);
    }
}

#[test]
fn models_with_the_steps_left_loss_train() {
    for (preset, formulation) in [("kosmos", "one_step"), ("paligemma", "policy_head")] {
        let mut config = shrunk(preset_with(preset, formulation).expect("known preset"));
        config.steps_left_loss = Some(0.5);
        train_config_and_check(config);
    }
}
