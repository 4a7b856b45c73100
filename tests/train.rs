//! `vlasim train` end to end on a tiny collected dataset with a shrunk model: the loss falls, the
//! checkpoint folder loads back to the same outputs, an interrupted and resumed run ends with the
//! same weights as an uninterrupted one, and a corrupt checkpoint is an error naming the file.
//! `vlasim pretrain` on a tiny corpus lowers the answer loss on unseen scenes, resumes exactly, and
//! a VLA run starts from its backbone and tokenizer. `vlasim compare --presets` trains the missing
//! presets with one recipe, then reports them; `vlasim study` pre-trains, fine-tunes and reports.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{Device, Tensor};
use common::{collect_into, out_dir, small_settings};
use vlasim::data::batch::{BatchSettings, Sampler};
use vlasim::data::reader::Dataset;
use vlasim::eval::EvalResults;
use vlasim::lang::tokenizer::Tokenizer;
use vlasim::train::Compute;
use vlasim::train::checkpoint::{self, Recipe};
use vlasim::train::pretrainer::{self, PRETRAINING_FILE, PretrainJob, PretrainRecipe, PretrainingRecord};
use vlasim::train::schedule::{Decay, Optimisation};
use vlasim::train::tensors::{EncodedInstructions, model_batch};
use vlasim::train::trainer::{self, TrainEvent, TrainJob, Trained};
use vlasim::vla::config::ActionSpace;
use vlasim::vla::{ActionOutput, ForwardOptions, Vla, VlaConfig, presets};

/// Three demonstrations and a play window, collected once for all tests.
fn dataset() -> &'static Path {
    static DATASET: OnceLock<PathBuf> = OnceLock::new();
    DATASET.get_or_init(|| {
        let dir = out_dir("train-demos");
        collect_into(&dir, &small_settings(&["turn_on_led", "push_red_block_left", "open_drawer"]), 1);
        dir
    })
}

/// The smallest preset with a two-frame window and a two-step chunk: the same code paths as at
/// full size, fast enough for a test.
fn tiny_model() -> VlaConfig {
    let mut config = presets::preset_with("uform", "policy_head").expect("known preset");
    config.formulation.history_window = 2;
    if let ActionSpace::Continuous { chunk, .. } = &mut config.formulation.action_space {
        *chunk = 2;
    }
    config
}

/// The optimiser settings of the test runs.
fn optimisation(steps: u64, batch_size: usize) -> Optimisation {
    Optimisation {
        steps,
        batch_size,
        lr: 3e-3,
        warmup_steps: 3,
        decay: Decay::Cosine,
        weight_decay: 0.01,
        grad_clip: Some(1.0),
        eval_every: 10,
        checkpoint_every: 1000,
        ema_decay: None,
    }
}

fn recipe(steps: u64) -> Recipe {
    Recipe {
        preset: "uform".into(),
        formulation: "policy_head".into(),
        history_window: None,
        chunk: None,
        gripper_loss_weight: None,
        optimisation: optimisation(steps, 6),
        validation_share: 0.25,
        validation_batches: 1,
        static_shift_px: 4,
        gripper_shift_px: 2,
        seed: 3,
        scenes: Vec::new(),
        data_share: 1.0,
        frame_stride: 1,
        init: None,
        scene_state_loss: None,
        steps_left_loss: None,
        word_dropout: 0.0,
    }
}

fn job(out: &Path, recipe: Recipe, workers: usize, resume: bool) -> TrainJob {
    TrainJob {
        data: vec![dataset().to_path_buf()],
        out: out.to_path_buf(),
        recipe,
        model: tiny_model(),
        compute: Compute { device: Device::Cpu, workers },
        resume,
    }
}

fn run(job: &TrainJob, stop_after: Option<u64>) -> anyhow::Result<Trained> {
    let stop = AtomicBool::new(false);
    trainer::train(job, None, &stop, &mut |event| {
        if let TrainEvent::Step { step, .. } = event
            && Some(*step) == stop_after
        {
            stop.store(true, Ordering::SeqCst);
        }
    })
}

fn weights(model: &Vla) -> Vec<(String, Vec<f32>)> {
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    model.params().vars().into_iter().map(|(name, var)| (name, flat(var.as_tensor()))).collect()
}

fn arm_actions(model: &Vla, data: &Path, tokenizer: &Tokenizer) -> Vec<f32> {
    let dataset = Dataset::open(data).unwrap();
    let config = model.config();
    let settings = BatchSettings {
        batch_size: 3,
        history: 2,
        history_spacing: 1,
        chunk: 2,
        static_shift_px: 0,
        gripper_shift_px: 0,
        word_dropout: 0.0,
    };
    let batch = Sampler::new(&dataset, &[0, 1], settings, 0).unwrap().next_batch();
    let texts = EncodedInstructions::new(tokenizer, batch.instructions.iter().map(String::as_str), config.max_text_len)
        .unwrap();
    let (input, _) = model_batch(&batch, 0..3, config, &texts, &Device::Cpu).unwrap();
    match model.forward(&input, ForwardOptions::default()).unwrap().actions {
        ActionOutput::Continuous(actions) => actions.arm.flatten_all().unwrap().to_vec1().unwrap(),
        ActionOutput::Discrete { .. } => panic!("policy_head is continuous"),
    }
}

#[test]
fn loss_falls_and_the_checkpoint_folder_loads_back() {
    let out = out_dir("train-falls");
    let trained = run(&job(&out, recipe(40), 1, false), None).expect("train");
    assert!(!trained.stopped);
    let history = &trained.record.progress.train_loss;
    assert_eq!(history.iter().map(|p| p.step).collect::<Vec<_>>(), vec![10, 20, 30, 40]);
    assert!(history[3].loss < 0.8 * history[0].loss, "training loss did not fall: {history:?}");
    assert_eq!(trained.record.progress.validation_loss.len(), 4, "validation after each interval");
    let data = &trained.record.data;
    assert_eq!(data.train_episodes.len() + data.validation_episodes.len(), data.episodes);
    assert!(!data.validation_episodes.is_empty());

    let loaded = Vla::load(&out, &Device::Cpu).expect("the checkpoint is a model folder");
    assert!(loaded.config().robot_obs_norm.is_some(), "robot_obs statistics travel with the model");
    assert_eq!(weights(&loaded), weights(&trained.model));
    let tokenizer = Tokenizer::load(&out.join(checkpoint::TOKENIZER_FILE)).expect("tokenizer.json loads");
    assert_eq!(arm_actions(&loaded, dataset(), &tokenizer), arm_actions(&trained.model, dataset(), &tokenizer));
    let record = checkpoint::read_record(&out).expect("training.json");
    // JSON keeps the losses to the last bit or two only; the recipe, the data and the counts exactly.
    assert_eq!((&record.recipe, &record.data), (&trained.record.recipe, &trained.record.data));
    assert_eq!(record.progress.samples_seen, trained.record.progress.samples_seen);
    assert!(!out.with_file_name("train-falls.partial").exists(), "no staging folder left behind");

    // A new run can start from this model folder: every tensor matches, so it starts from these weights.
    let refined = out_dir("train-init");
    let mut started = None;
    let job = job(&refined, Recipe { init: Some(out.clone()), ..recipe(1) }, 1, false);
    trainer::train(&job, None, &AtomicBool::new(false), &mut |event| {
        if let TrainEvent::Initialised { tensors, of } = event {
            started = Some((*tensors, *of));
        }
    })
    .expect("a run from --init");
    let count = trained.model.params().vars().len();
    assert_eq!(started, Some((count, count)));
    let record = checkpoint::read_record(&refined).unwrap();
    assert_eq!(record.recipe.init.as_deref(), Some(out.as_path()), "training.json names where it started");
}

#[test]
fn a_history_over_every_other_frame_is_spaced_two_steps_apart_in_the_model() {
    let out = out_dir("train-spaced");
    let trained = run(&job(&out, Recipe { frame_stride: 2, ..recipe(4) }, 1, false), None).expect("train");
    assert_eq!(trained.model.config().formulation.history_spacing, 2);
    let loaded = Vla::load(&out, &Device::Cpu).expect("the checkpoint loads");
    assert_eq!(loaded.config().formulation.history_spacing, 2, "config.json keeps the spacing the policy acts with");

    let mut misspaced = tiny_model();
    misspaced.formulation.history_spacing = 3;
    let job = TrainJob {
        model: misspaced,
        ..job(&out_dir("train-misspaced"), Recipe { frame_stride: 2, ..recipe(4) }, 1, false)
    };
    let error = run(&job, None).expect_err("a spacing other than the stride").to_string();
    assert!(error.contains("spaces its history 3 steps apart"), "{error}");
}

/// `recipe` on the discrete one-step formulation, which has one loss over all action tokens.
fn discrete_job(name: &str, recipe: Recipe) -> TrainJob {
    let recipe = Recipe { formulation: "one_step_discrete".into(), ..recipe };
    TrainJob {
        model: presets::preset_with("uform", "one_step_discrete").unwrap(),
        ..job(&out_dir(name), recipe, 1, false)
    }
}

#[test]
fn the_recipe_can_lengthen_or_drop_the_action_chunk() {
    let out = out_dir("train-chunk");
    let trained = run(&job(&out, Recipe { chunk: Some(20), ..recipe(2) }, 1, false), None).expect("train");
    assert_eq!(trained.model.config().formulation.chunk(), 20);
    let loaded = Vla::load(&out, &Device::Cpu).unwrap();
    assert_eq!(loaded.config().formulation.chunk(), 20, "config.json keeps the chunk the policy acts with");
    assert!(loaded.config().temporal_ensemble.is_some(), "overlapping chunks are ensembled");
    assert_eq!(checkpoint::read_record(&out).unwrap().recipe.chunk, Some(20), "training.json records it");

    let single =
        run(&job(&out_dir("train-chunk-one"), Recipe { chunk: Some(1), ..recipe(2) }, 1, false), None).expect("train");
    assert_eq!(single.model.config().formulation.chunk(), 1);
    assert!(single.model.config().temporal_ensemble.is_none(), "one action per frame leaves nothing to ensemble");

    let discrete = discrete_job("train-chunk-discrete", Recipe { chunk: Some(5), ..recipe(2) });
    let error = run(&discrete, None).expect_err("discrete actions have no chunk").to_string();
    assert!(error.contains("needs a continuous formulation"), "{error}");
}

#[test]
fn the_recipe_can_weight_the_gripper_loss() {
    let out = out_dir("train-gripper-weight");
    run(&job(&out, Recipe { gripper_loss_weight: Some(1.0), ..recipe(2) }, 1, false), None).expect("train");
    let loaded = Vla::load(&out, &Device::Cpu).unwrap();
    let ActionSpace::Continuous { gripper_loss_weight, .. } = loaded.config().formulation.action_space else {
        panic!("a continuous formulation")
    };
    assert_eq!(gripper_loss_weight, 1.0, "config.json keeps the weight trained with");
    assert_eq!(
        checkpoint::read_record(&out).unwrap().recipe.gripper_loss_weight,
        Some(1.0),
        "training.json records it"
    );

    let negative =
        job(&out_dir("train-gripper-negative"), Recipe { gripper_loss_weight: Some(-1.0), ..recipe(2) }, 1, false);
    let error = run(&negative, None).expect_err("a negative weight").to_string();
    assert!(error.contains("must be positive"), "{error}");

    let discrete = discrete_job("train-gripper-discrete", Recipe { gripper_loss_weight: Some(1.0), ..recipe(2) });
    let error = run(&discrete, None).expect_err("discrete actions share one loss").to_string();
    assert!(error.contains("needs a continuous formulation"), "{error}");
}

#[test]
fn the_recipe_can_shorten_or_lengthen_the_history_window() {
    let out = out_dir("train-window");
    let trained = run(&job(&out, Recipe { history_window: Some(3), ..recipe(2) }, 1, false), None).expect("train");
    assert_eq!(trained.model.config().formulation.history_window, 3);
    assert_eq!(Vla::load(&out, &Device::Cpu).unwrap().config().formulation.history_window, 3);
    assert_eq!(checkpoint::read_record(&out).unwrap().recipe.history_window, Some(3), "training.json records it");

    let one_step = TrainJob {
        model: presets::preset_with("uform", "one_step").unwrap(),
        ..job(
            &out_dir("train-window-one-step"),
            Recipe { history_window: Some(3), formulation: "one_step".into(), ..recipe(2) },
            1,
            false,
        )
    };
    let error = run(&one_step, None).expect_err("a one-step formulation has no window").to_string();
    assert!(error.contains("needs a history formulation"), "{error}");
}

#[test]
fn the_read_out_losses_train_read_outs_that_the_checkpoint_keeps() {
    let out = out_dir("train-read-outs");
    let with_loss = Recipe { scene_state_loss: Some(0.5), steps_left_loss: Some(0.25), ..recipe(20) };
    let trained = run(&job(&out, with_loss.clone(), 1, false), None).expect("train");
    let history = &trained.record.progress.train_loss;
    assert!(history[1].loss < history[0].loss, "training loss did not fall: {history:?}");
    let loaded = Vla::load(&out, &Device::Cpu).expect("the checkpoint is a model folder");
    let objective = (loaded.config().scene_state_loss, loaded.config().steps_left_loss);
    assert_eq!(objective, (Some(0.5), Some(0.25)), "config.json records the objective");
    let names: Vec<String> = loaded.params().vars().into_iter().map(|(name, _)| name).collect();
    for head in ["scene_state_head.", "steps_left_head."] {
        assert!(names.iter().any(|name| name.starts_with(head)), "the read-out {head} is saved: {names:?}");
    }
    assert_eq!(weights(&loaded), weights(&trained.model));

    let resumed = job(&out, Recipe { optimisation: optimisation(30, 6), steps_left_loss: None, ..with_loss }, 1, true);
    let error = format!("{:#}", run(&resumed, None).expect_err("another objective is another recipe"));
    assert!(error.contains("different recipe"), "{error}");
}

#[test]
fn an_interrupted_and_resumed_run_ends_with_the_same_weights() {
    let steps = 9;
    let straight = run(&job(&out_dir("train-straight"), recipe(steps), 2, false), None).expect("uninterrupted run");
    let out = out_dir("train-resumed");
    let first = run(&job(&out, recipe(steps), 2, false), Some(4)).expect("first session");
    assert!(first.stopped);
    assert_eq!(first.record.progress.step, 4);
    let resumed = run(&job(&out, recipe(steps), 2, true), None).expect("resumed session");
    assert!(!resumed.stopped);
    assert_eq!(resumed.record.progress.samples_seen, steps * 6);
    assert!(weights(&resumed.model) == weights(&straight.model), "resuming changed the weights");
    assert_eq!(resumed.record.progress.train_loss, straight.record.progress.train_loss);
    assert_eq!(resumed.record.progress.validation_loss, straight.record.progress.validation_loss);

    let mut other = recipe(steps);
    other.optimisation.lr *= 2.0;
    let error = run(&job(&out, other, 2, true), None).unwrap_err();
    assert!(format!("{error:#}").contains("different recipe"), "{error:#}");
}

#[test]
fn the_weights_average_is_validated_saved_and_resumed_exactly() {
    let steps = 9;
    let averaged = |recipe: Recipe| Recipe {
        optimisation: Optimisation { ema_decay: Some(0.8), ..recipe.optimisation },
        ..recipe
    };
    let plain_out = out_dir("train-ema-plain");
    let plain = run(&job(&plain_out, recipe(steps), 2, false), None).expect("run without an average");
    let straight_out = out_dir("train-ema-straight");
    let straight = run(&job(&straight_out, averaged(recipe(steps)), 2, false), None).expect("uninterrupted run");
    assert_eq!(
        straight.record.progress.train_loss, plain.record.progress.train_loss,
        "the average leaves training alone"
    );
    assert_ne!(
        straight.record.progress.validation_loss, plain.record.progress.validation_loss,
        "validation sees the average"
    );
    assert!(weights(&straight.model) != weights(&plain.model), "the run ends with the average in the model");
    let saved = Vla::load(&straight_out, &Device::Cpu).unwrap();
    assert!(weights(&saved) == weights(&straight.model), "the checkpoint holds the average");

    let out = out_dir("train-ema-resumed");
    assert!(run(&job(&out, averaged(recipe(steps)), 2, false), Some(4)).expect("first session").stopped);
    let resumed = run(&job(&out, averaged(recipe(steps)), 2, true), None).expect("resumed session");
    assert!(weights(&resumed.model) == weights(&straight.model), "resuming changed the average");
    assert_eq!(resumed.record.progress.validation_loss, straight.record.progress.validation_loss);
    let error = run(&job(&out, recipe(steps), 2, true), None).unwrap_err();
    assert!(format!("{error:#}").contains("different recipe"), "{error:#}");
}

#[test]
fn a_corrupt_checkpoint_is_an_error_naming_the_file() {
    let out = out_dir("train-corrupt");
    run(&job(&out, recipe(2), 1, false), Some(1)).expect("train");
    for file in ["model.safetensors", "optimizer.safetensors", "training.json", "config.json"] {
        let path = out.join(file);
        let original = std::fs::read(&path).unwrap();
        std::fs::write(&path, &original[..original.len() / 2]).unwrap();
        let error = run(&job(&out, recipe(2), 1, true), None).expect_err("a truncated file cannot resume");
        assert!(format!("{error:#}").contains(file), "the error names {file}: {error:#}");
        std::fs::write(&path, original).unwrap();
    }
}

#[test]
fn the_shipped_training_records_read_and_write_back_the_same_json() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models");
    for entry in std::fs::read_dir(&models).expect("assets/models") {
        let path = entry.unwrap().path().join(checkpoint::TRAINING_FILE);
        let text = std::fs::read_to_string(&path).expect("a shipped model keeps its training record");
        let record: checkpoint::TrainingRecord = serde_json::from_str(&text).expect("the record reads");
        let written: serde_json::Value = serde_json::to_value(&record).unwrap();
        assert_eq!(written, serde_json::from_str::<serde_json::Value>(&text).unwrap(), "{}", path.display());
    }
}

fn pretrain_recipe(steps: u64) -> PretrainRecipe {
    PretrainRecipe {
        preset: "uform".into(),
        formulation: "policy_head".into(),
        corpus_seed: 0,
        samples: 16,
        optimisation: optimisation(steps, 8),
        validation_samples: 8,
        seed: 1,
    }
}

fn pretrain(out: &Path, recipe: PretrainRecipe, resume: bool, stop_after: Option<u64>) -> pretrainer::Pretrained {
    let job = PretrainJob {
        out: out.to_path_buf(),
        recipe,
        model: tiny_model(),
        compute: Compute { device: Device::Cpu, workers: 2 },
        resume,
    };
    let stop = AtomicBool::new(false);
    pretrainer::pretrain(&job, None, &stop, &mut |event| {
        if let TrainEvent::Step { step, .. } = event
            && Some(*step) == stop_after
        {
            stop.store(true, Ordering::SeqCst);
        }
    })
    .expect("pretrain")
}

#[test]
fn pretraining_learns_resumes_and_hands_its_backbone_to_a_vla_run() {
    let out = out_dir("pretrain");
    let pretrained = pretrain(&out, pretrain_recipe(30), false, None);
    let progress = &pretrained.record.progress;
    let (train, validation) = (&progress.train_loss, &progress.validation_loss);
    assert_eq!(train.iter().map(|p| p.step).collect::<Vec<_>>(), vec![10, 20, 30]);
    assert!(train[2].loss < 0.7 * train[0].loss, "the answer loss did not fall: {train:?}");
    assert!(validation[2].loss < validation[0].loss, "nor on unseen scenes: {validation:?}");
    let record: PretrainingRecord = checkpoint::read(&out, PRETRAINING_FILE).expect("pretraining.json");
    // JSON keeps the losses to the last bit or two only; the recipe and the counts exactly.
    assert_eq!(record.recipe, pretrained.record.recipe);
    assert_eq!((record.progress.step, record.progress.samples_seen), (30, 240));

    let resumed_out = out_dir("pretrain-resumed");
    assert!(pretrain(&resumed_out, pretrain_recipe(30), false, Some(12)).stopped);
    let resumed = pretrain(&resumed_out, pretrain_recipe(30), true, None);
    assert!(weights(&resumed.model) == weights(&pretrained.model), "resuming changed the weights");

    // The VLA run starts from every pre-trained tensor and keeps the tokenizer they were learnt with.
    let refined = out_dir("pretrain-init");
    let mut started = None;
    let job = job(&refined, Recipe { init: Some(out.clone()), ..recipe(1) }, 1, false);
    trainer::train(&job, None, &AtomicBool::new(false), &mut |event| {
        if let TrainEvent::Initialised { tensors, of } = event {
            started = Some((*tensors, *of));
        }
    })
    .expect("a run from the pre-trained folder");
    let count = pretrained.model.params().vars().len();
    assert_eq!(started, Some((count, count)));
    let tokenizer = |dir: &Path| std::fs::read(dir.join(checkpoint::TOKENIZER_FILE)).unwrap();
    assert!(tokenizer(&refined) == tokenizer(&out), "the run keeps the pre-trained tokenizer");
}

/// A `training.json` in `dir` with a two-step one-step recipe on the tiny dataset.
fn reference_record(dir: &Path) -> (PathBuf, checkpoint::TrainingRecord) {
    std::fs::create_dir_all(dir).unwrap();
    let record = checkpoint::TrainingRecord {
        recipe: Recipe { optimisation: optimisation(2, 2), formulation: "one_step".into(), ..recipe(2) },
        data: checkpoint::DataRecord {
            paths: vec![dataset().to_path_buf()],
            episodes: 0,
            frames: 0,
            train_episodes: Vec::new(),
            validation_episodes: Vec::new(),
        },
        progress: Default::default(),
    };
    let path = dir.join("training.json");
    std::fs::write(&path, serde_json::to_string(&record).unwrap()).unwrap();
    (path, record)
}

/// `vlasim ARGS`; its stdout.
fn vlasim(args: &[&std::ffi::OsStr]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vlasim")).args(args).output().expect("run vlasim");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn compare_trains_the_missing_presets_with_one_recipe_and_reports_them() {
    let dir = out_dir("compare-presets");
    let models = dir.join("models");
    let (reference, record) = reference_record(&dir);
    let report = dir.join("backbones.md");
    let compare = |chains: &str| {
        let fixed = ["compare", "--presets", "uform,kosmos", "--chains", chains, "--workers", "1", "--threads", "1"];
        let mut args: Vec<&std::ffi::OsStr> = fixed.iter().map(|a| a.as_ref()).collect();
        args.extend(["--recipe".as_ref(), reference.as_os_str(), "--models".as_ref(), models.as_os_str()]);
        args.extend(["--out".as_ref(), report.as_os_str()]);
        vlasim(&args)
    };
    let first = compare("2");
    for preset in ["uform", "kosmos"] {
        let trained = checkpoint::read_record(&models.join(preset)).expect("trained into MODELS/<preset>");
        assert_eq!(trained.recipe, Recipe { preset: preset.into(), ..record.recipe.clone() }, "the same recipe");
        assert_eq!(trained.progress.step, 2);
    }
    let table = std::fs::read_to_string(&report).unwrap();
    assert!(table.contains("| uform |") && table.contains("| kosmos |"), "{table}");
    assert!(first.contains("training uform"), "{first}");
    let second = compare("2");
    assert!(
        second.contains("trained already") && second.contains("reusing"),
        "a second run trains and evaluates nothing: {second}"
    );
    let saved_chains = |file: &str| EvalResults::load(&models.join("uform").join(file)).unwrap().chains.len();
    let on_one_chain = compare("1");
    assert!(on_one_chain.contains("keeping its results.json"), "{on_one_chain}");
    assert_eq!(saved_chains("results.json"), 2, "another evaluation never replaces results.json");
    assert_eq!(saved_chains("results-d-1.json"), 1, "it goes beside it");
    let again = compare("1");
    assert!(again.contains("results-d-1.json") && !again.contains("evaluating"), "and is reused: {again}");
}

#[test]
fn the_pretraining_study_pretrains_fine_tunes_evaluates_and_reports() {
    let dir = out_dir("study");
    let (reference, _) = reference_record(&dir);
    let (runs, report) = (dir.join("runs"), dir.join("pretraining.md"));
    let study_with = |extra: &[&str]| {
        let fixed = [
            "study",
            "--presets",
            "uform",
            "--scales",
            "0,8",
            "--settings",
            "seen",
            "--pretrain-steps",
            "2",
            "--pretrain-batch",
            "2",
            "--chains",
            "1",
            "--threads",
            "1",
        ];
        let mut args: Vec<&std::ffi::OsStr> = fixed.iter().map(|a| a.as_ref()).collect();
        args.extend(["--recipe".as_ref(), reference.as_os_str(), "--runs".as_ref(), runs.as_os_str()]);
        args.extend(["--out".as_ref(), report.as_os_str()]);
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        std::process::Command::new(env!("CARGO_BIN_EXE_vlasim")).args(args).output().expect("run vlasim")
    };
    let study = || {
        let output = study_with(&[]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let first = study();
    let pretrained: PretrainingRecord = checkpoint::read(&runs.join("pt-uform-8"), PRETRAINING_FILE).unwrap();
    assert_eq!((pretrained.recipe.samples, pretrained.progress.step), (8, 2));
    let scratch = checkpoint::read_record(&runs.join("uform-0-seen")).unwrap();
    let fine_tuned = checkpoint::read_record(&runs.join("uform-8-seen")).unwrap();
    assert_eq!(scratch.recipe.init, None);
    assert_eq!(fine_tuned.recipe.init, Some(runs.join("pt-uform-8")), "scale 8 starts from its pre-training");
    let table = std::fs::read_to_string(&report).unwrap();
    let rows: Vec<&str> = table.lines().filter(|line| line.starts_with("| uform | seen |")).collect();
    let [avg_len, paired] = rows[..] else {
        panic!("a row in the Avg. Len. table and one in the paired table: {table}")
    };
    assert_eq!((avg_len.matches('±').count(), avg_len.contains('—')), (2, false), "both scales evaluated: {avg_len}");
    assert_eq!((paired.matches('±').count(), paired.contains('—')), (1, false), "scale 8 against 0: {paired}");
    assert!(first.contains("pre-training uform"), "{first}");
    assert!(table.contains("](pretraining.png)"), "the report shows its plot: {table}");
    let plot = std::fs::read(dir.join("pretraining.png")).expect("the study draws its plot");
    assert!(plot.starts_with(b"\x89PNG"), "a PNG");
    let second = study();
    assert!(second.contains("trained already") && !second.contains("pre-train"), "all finished: {second}");
    let kept = dir.join("pretraining");
    for (run, file) in
        [("pt-uform-8", PRETRAINING_FILE), ("uform-0-seen", "results.json"), ("uform-8-seen", "results.json")]
    {
        assert!(kept.join(run).join(file).is_file(), "the report keeps {run}'s {file}");
    }
    std::fs::remove_dir_all(&runs).unwrap();
    let on_a_fresh_machine = study();
    assert_eq!(on_a_fresh_machine.matches("restored from").count(), 2, "{on_a_fresh_machine}");
    assert!(!on_a_fresh_machine.contains("pre-train") && !on_a_fresh_machine.contains("evaluating"));
    assert!(!runs.join("uform-8-seen").join("model.safetensors").exists(), "weights are not kept");
    assert_eq!(std::fs::read_to_string(&report).unwrap(), table, "the same report from the kept runs");
    assert_eq!(std::fs::read(dir.join("pretraining.png")).unwrap(), plot, "and the same plot");
    let wider = study_with(&["--settings", "unseen", "--report-only"]);
    assert!(wider.status.success(), "{}", String::from_utf8_lossy(&wider.stderr));
    assert!(!String::from_utf8_lossy(&wider.stdout).contains("training"), "the report only");
    let wider_table = std::fs::read_to_string(&report).unwrap();
    assert!(wider_table.contains(avg_len), "{wider_table}");
    assert!(wider_table.contains("| uform | unseen | — | — |"), "not run: {wider_table}");
    let longer = study_with(&["--steps", "3"]);
    let error = String::from_utf8_lossy(&longer.stderr);
    assert!(!longer.status.success(), "a finished run of two steps is no three-step run");
    assert!(error.contains("uform-0-seen") && error.contains("different recipe"), "{error}");
}
