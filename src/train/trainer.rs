//! The VLA training loop: AdamW with a warm-up schedule and gradient clipping on random-shift
//! augmented batches, a held-out validation split, checkpoints, and exact resumption. The step
//! loop itself, with its data-parallel shards, is [`super::steps`].
//!
//! Resuming replays nothing: the sampler is a function of `(seed, step)` ([`Sampler::skip`]), and
//! the weights, AdamW's moments and the loss history come from the checkpoint, so an interrupted
//! and resumed run ends with the same weights as an uninterrupted one.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, anyhow, bail, ensure};
use candle_core::Tensor;
use rayon::ThreadPool;

use super::Compute;
use super::checkpoint::{
    self, DataRecord, OPTIMIZER_FILE, Progress, Recipe, TOKENIZER_FILE, TRAINING_FILE, TrainingRecord,
};
use super::steps::{Batches, Loop, RunRecord, batch_loss, optimizer, worker_pool};
use super::tensors::{EncodedInstructions, model_batch};
use crate::data::batch::{Batch, BatchSettings, Sampler};
use crate::data::episode::ROBOT_OBS_DIM;
use crate::data::reader::{Dataset, Selection};
use crate::lang::tokenizer::{self, DEFAULT_VOCAB_SIZE, Tokenizer};
use crate::vla::config::RobotObsNorm;
use crate::vla::model::WEIGHTS_FILE;
use crate::vla::presets;
use crate::vla::{ForwardOptions, Vla, VlaConfig};

/// Smallest `robot_obs` standard deviation used. The expert holds the gripper level, so roll and
/// pitch vary by under 0.01 rad in the demonstrations; standardised by that, the 0.05 rad tilt of a
/// start pose or of a policy's own drift reads as 5-8 standard deviations, far outside what training
/// showed. 0.05 is one rotation action step (and 5 cm for positions).
const MIN_ROBOT_OBS_STD: f64 = 0.05;
/// Offset of the validation sampler's seed from the run's, so its draws are independent.
const VALIDATION_SEED_OFFSET: u64 = 0x5E_ED0F_7A11;

/// A run to start or resume.
#[derive(Debug, Clone)]
pub struct TrainJob {
    /// The dataset folders, read as one in this order.
    pub data: Vec<PathBuf>,
    /// The checkpoint folder (= the model folder).
    pub out: PathBuf,
    /// The recipe.
    pub recipe: Recipe,
    /// The model to train from scratch (its `robot_obs_norm` is filled from the training split);
    /// when resuming, it must match the checkpoint's.
    pub model: VlaConfig,
    /// Where the run computes.
    pub compute: Compute,
    /// Continue from the checkpoint in `out`.
    pub resume: bool,
}

/// What the loop reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainEvent {
    /// A new run copied `tensors` of the model's `of` parameters from the `--init` folder.
    Initialised { tensors: usize, of: usize },
    /// A run starts (or resumes) at `step`.
    Started { step: u64, steps: u64, train_windows: usize, parameters: usize },
    /// A step finished.
    Step { step: u64, loss: f64, loss_ema: f64, lr: f64, samples_per_sec: f64 },
    /// A validation pass finished (`None` without validation episodes).
    Validated { step: u64, train_loss: f64, validation_loss: Option<f64> },
    /// A checkpoint was written.
    Saved { step: u64 },
}

/// How a run ended: the trained model (as saved in the checkpoint) and its record.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The model after the last step.
    pub model: Vla,
    /// `training.json` as last saved.
    pub record: TrainingRecord,
    /// Whether the stop flag ended the run before its last step.
    pub stopped: bool,
}

/// Per-dimension mean and standard deviation of `robot_obs` over `episodes`.
pub fn robot_obs_norm(dataset: &Dataset, episodes: &[usize]) -> RobotObsNorm {
    let mut sum = [0f64; ROBOT_OBS_DIM];
    let mut squares = [0f64; ROBOT_OBS_DIM];
    let mut count = 0usize;
    for &e in episodes {
        for frame in dataset.episodes[e].robot_obs.chunks_exact(ROBOT_OBS_DIM) {
            for (d, &value) in frame.iter().enumerate() {
                sum[d] += f64::from(value);
                squares[d] += f64::from(value) * f64::from(value);
            }
            count += 1;
        }
    }
    let n = count.max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let std = squares.iter().zip(&mean).map(|(q, m)| (q / n - m * m).max(0.0).sqrt().max(MIN_ROBOT_OBS_STD));
    RobotObsNorm { mean: mean.iter().map(|&m| m as f32).collect(), std: std.map(|s| s as f32).collect() }
}

/// The model's loss on samples `samples` of `batch`.
fn shard_loss(model: &Vla, batch: &Batch, samples: Range<usize>, instructions: &EncodedInstructions) -> Result<Tensor> {
    let (input, targets) = model_batch(batch, samples, model.config(), instructions, model.device())?;
    let options = ForwardOptions { capture_attention: false, teacher_actions: Some(&targets.actions) };
    Ok(model.loss(&model.forward(&input, options)?, &targets)?)
}

/// Mean loss over the fixed validation batches.
fn validation_loss(
    model: &Vla,
    batches: &[Batch],
    instructions: &EncodedInstructions,
    workers: &ThreadPool,
) -> Result<Option<f64>> {
    if batches.is_empty() {
        return Ok(None);
    }
    let mut total = 0.0;
    for batch in batches {
        total += batch_loss(batch.size, workers, &|samples| shard_loss(model, batch, samples, instructions))?;
    }
    Ok(Some(total / batches.len() as f64))
}

/// Trains (or resumes) `job`, checkpointing into `job.out`; a set `stop` flag ends the run after
/// the current step with a checkpoint. A new run uses `tokenizer`, or without one the `init`
/// folder's, or trains the default tokenizer on the training phrasings and the dataset's
/// instructions; a resumed run uses the checkpoint's.
pub fn train(
    job: &TrainJob,
    tokenizer: Option<Tokenizer>,
    stop: &AtomicBool,
    report: &mut dyn FnMut(&TrainEvent),
) -> Result<Trained> {
    let recipe = &job.recipe;
    recipe.optimisation.validate()?;
    ensure!((0.0..1.0).contains(&recipe.validation_share), "the validation share must be in [0, 1)");
    ensure!((0.0..1.0).contains(&recipe.word_dropout), "the word dropout must be in [0, 1)");
    // The objective is the recipe's: it decides whether the model carries the read-out heads.
    let mut model_config = VlaConfig {
        scene_state_loss: recipe.scene_state_loss,
        steps_left_loss: recipe.steps_left_loss,
        ..job.model.clone()
    };
    let in_formulation = |reason| anyhow!("formulation `{}`: {reason}", recipe.formulation);
    if let Some(frames) = recipe.history_window {
        model_config.formulation.set_history_window(frames).map_err(in_formulation)?;
    }
    if let Some(steps) = recipe.chunk {
        model_config.formulation.set_chunk(steps).map_err(in_formulation)?;
        model_config.temporal_ensemble = presets::temporal_ensemble(&model_config.formulation);
    }
    if let Some(weight) = recipe.gripper_loss_weight {
        model_config.formulation.set_gripper_loss_weight(weight).map_err(in_formulation)?;
    }
    // A history window is drawn from the frames whose images are kept, so its frames are the
    // stride apart; the config records that, so the policy spaces its window the same way.
    let formulation = &mut model_config.formulation;
    if formulation.history_window > 1 {
        ensure!(
            formulation.history_spacing == 1 || formulation.history_spacing == recipe.frame_stride,
            "the model spaces its history {} steps apart; the frame stride {} decides that in training",
            formulation.history_spacing,
            recipe.frame_stride
        );
        formulation.history_spacing = recipe.frame_stride;
    }
    if let Err(reason) = model_config.validate() {
        bail!("the recipe does not fit the model: {reason}");
    }
    let selection = Selection {
        scenes: recipe.scenes.clone(),
        share: recipe.data_share,
        seed: recipe.seed,
        gripper_camera: model_config.use_gripper_camera,
        frame_stride: recipe.frame_stride,
    };
    let datasets = checkpoint::describe_datasets(&job.data);
    let dataset =
        Dataset::open_all(&job.data, &selection).with_context(|| format!("reading the dataset {datasets}"))?;
    // Positions in `dataset.episodes`; the record names episodes by their `index` (across the datasets).
    let (train_episodes, validation_episodes) = dataset.split(recipe.validation_share, recipe.seed);
    let episode_indices = |positions: &[usize]| positions.iter().map(|&p| dataset.episodes[p].index).collect();
    let data = DataRecord {
        paths: job.data.clone(),
        episodes: dataset.episodes.len(),
        frames: dataset.frames(),
        train_episodes: episode_indices(&train_episodes),
        validation_episodes: episode_indices(&validation_episodes),
    };

    ensure!(!train_episodes.is_empty(), "the dataset {datasets} has no episodes to train on");

    let (model, tokenizer, mut progress, optimizer_state) = if job.resume {
        ensure!(tokenizer.is_none(), "a resumed run uses the checkpoint's tokenizer; give none");
        checkpoint::recover(&job.out)?;
        let saved = checkpoint::read_record(&job.out)?;
        checkpoint::ensure_same_recipe(&job.out.join(TRAINING_FILE), &saved.recipe, recipe)?;
        if (saved.data.episodes, saved.data.frames) != (data.episodes, data.frames) {
            bail!(
                "the dataset {datasets} has {} episodes and {} frames; the run trained on {} and {}",
                data.episodes,
                data.frames,
                saved.data.episodes,
                saved.data.frames
            );
        }
        let model = Vla::load(&job.out, &job.compute.device)
            .with_context(|| format!("loading the model from {}", job.out.display()))?;
        // The normalisation is fitted by the run and the ensembling only matters at inference.
        let trained =
            |config: &VlaConfig| VlaConfig { robot_obs_norm: None, temporal_ensemble: None, ..config.clone() };
        ensure!(
            trained(model.config()) == trained(&model_config),
            "{} holds a different model than the preset and formulation given",
            job.out.display()
        );
        let tokenizer = Tokenizer::load(&job.out.join(TOKENIZER_FILE))?;
        (model, tokenizer, saved.progress, Some(job.out.join(OPTIMIZER_FILE)))
    } else {
        let mut config = model_config.clone();
        config.robot_obs_norm = Some(robot_obs_norm(&dataset, &train_episodes));
        // Token embeddings learnt with one tokenizer mean nothing under another: a run from
        // `init` keeps its tokenizer unless told otherwise.
        let tokenizer = match (tokenizer, &recipe.init) {
            (Some(tokenizer), _) => tokenizer,
            (None, Some(init)) => Tokenizer::load(&init.join(TOKENIZER_FILE))?,
            (None, None) => {
                tokenizer::train(dataset.episodes.iter().map(|e| e.instruction.as_str()), DEFAULT_VOCAB_SIZE)?
            }
        };
        let model = Vla::new(config, &job.compute.device)?;
        if let Some(init) = &recipe.init {
            let weights = init.join(WEIGHTS_FILE);
            let tensors = model.params().init_from(&weights)?;
            report(&TrainEvent::Initialised { tensors, of: model.params().vars().len() });
        }
        (model, tokenizer, Progress::default(), None)
    };
    let config = model.config().clone();
    ensure!(
        tokenizer.vocab_size() <= config.vocab_size,
        "the tokenizer has {} tokens, the model's vocabulary only {}",
        tokenizer.vocab_size(),
        config.vocab_size
    );
    let first = &dataset.episodes[train_episodes[0]];
    ensure!(
        (first.static_frames.width, first.static_frames.height) == (config.static_image_size, config.static_image_size)
            && (!config.use_gripper_camera
                || (first.gripper_frames.width, first.gripper_frames.height)
                    == (config.gripper_image_size, config.gripper_image_size)),
        "the dataset's cameras are {}×{} and {}×{}, the model takes {}² and {}²",
        first.static_frames.width,
        first.static_frames.height,
        first.gripper_frames.width,
        first.gripper_frames.height,
        config.static_image_size,
        config.gripper_image_size
    );

    let mut optimizer = optimizer(&model, &recipe.optimisation, optimizer_state, progress.step)?;

    let settings = BatchSettings {
        batch_size: recipe.optimisation.batch_size,
        history: config.formulation.history_window,
        history_spacing: config.formulation.history_spacing,
        chunk: config.formulation.chunk(),
        static_shift_px: recipe.static_shift_px,
        gripper_shift_px: recipe.gripper_shift_px,
        word_dropout: recipe.word_dropout,
    };
    let mut sampler = Sampler::new(&dataset, &train_episodes, settings, recipe.seed)?;
    sampler.skip(progress.step);
    let validation_batches: Vec<Batch> = if validation_episodes.is_empty() {
        Vec::new()
    } else {
        let unshifted = BatchSettings { static_shift_px: 0, gripper_shift_px: 0, word_dropout: 0.0, ..settings };
        let seed = recipe.seed.wrapping_add(VALIDATION_SEED_OFFSET);
        let mut validation = Sampler::new(&dataset, &validation_episodes, unshifted, seed)?;
        (0..recipe.validation_batches).map(|_| validation.next_batch()).collect()
    };
    let instructions = EncodedInstructions::new(
        &tokenizer,
        dataset.episodes.iter().map(|e| e.instruction.as_str()),
        config.max_text_len,
    )?;

    let workers = worker_pool(job.compute.workers, "train-worker")?;
    progress.workers = job.compute.workers;
    let mut record = TrainingRecord { recipe: recipe.clone(), data, progress };
    report(&TrainEvent::Started {
        step: record.progress.step,
        steps: recipe.optimisation.steps,
        train_windows: sampler.windows(),
        parameters: model.params().parameter_count(),
    });
    let run = Loop {
        model: &model,
        tokenizer: &tokenizer,
        optimisation: &recipe.optimisation,
        workers: &workers,
        out: &job.out,
        record_file: TRAINING_FILE,
    };
    let mut batches = DemoBatches { sampler, batch: Batch::default(), validation: validation_batches, instructions };
    let stopped = run.run(&mut optimizer, &mut batches, &mut record, stop, report)?;
    Ok(Trained { model, record, stopped })
}

/// Demonstration windows for the VLA loop: the sampler's next batch each step.
struct DemoBatches<'a> {
    sampler: Sampler<'a>,
    batch: Batch,
    validation: Vec<Batch>,
    instructions: EncodedInstructions,
}

impl Batches for DemoBatches<'_> {
    fn draw(&mut self, _step: u64) -> Result<usize> {
        // The sampler was skipped to the run's step when it was made.
        self.sampler.fill(&mut self.batch);
        Ok(self.batch.size)
    }

    fn shard_loss(&self, model: &Vla, samples: Range<usize>) -> Result<Tensor> {
        shard_loss(model, &self.batch, samples, &self.instructions)
    }

    fn validation_loss(&self, model: &Vla, workers: &ThreadPool) -> Result<Option<f64>> {
        validation_loss(model, &self.validation, &self.instructions, workers)
    }
}

impl RunRecord for TrainingRecord {
    fn progress(&mut self) -> &mut Progress {
        &mut self.progress
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::data::episode::{ACTION_DIM, SCENE_OBS_DIM};
    use crate::data::reader::{EpisodeData, Frames, PixelFormat};
    use crate::sim::rng::Rng;
    use crate::train::steps::batch_gradients;
    use crate::vla::config::ActionSpace;
    use crate::vla::presets::preset_with;

    /// An episode of `length` frames of noise, its images `image_size` square (both cameras).
    fn noise_episode(length: usize, image_size: usize, instruction: &str, rng: &mut Rng) -> EpisodeData {
        let mut values = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
        let (robot_obs, scene_obs, actions) =
            (values(length * ROBOT_OBS_DIM), values(length * SCENE_OBS_DIM), values(length * ACTION_DIM));
        let mut frames = || {
            let mut frames = Frames::empty(image_size, image_size, 1, PixelFormat::Rgb);
            for _ in 0..length {
                frames.push(&(0..image_size * image_size * 3).map(|_| rng.below(256) as u8).collect::<Vec<_>>());
            }
            frames
        };
        let (static_frames, gripper_frames) = (frames(), frames());
        EpisodeData {
            index: 0,
            task: "turn_on_led".into(),
            instruction: instruction.into(),
            scene: "d".into(),
            source: "demo".into(),
            seed: 0,
            robot_obs,
            scene_obs,
            actions,
            static_frames,
            gripper_frames,
        }
    }

    /// What "two workers compute the same step" means: the batch's gradient, summed from two
    /// unequal shards, is the one-shard gradient up to rounding. (Comparing weights after AdamW steps
    /// instead amplifies that rounding: AdamW moves every component by about the learning rate,
    /// whatever its gradient's size, so a near-zero component may go either way.) Every action
    /// step is real here: a shard's loss averages over its own real steps, so where shards hold
    /// different shares of steps past an episode's end, the sharded loss weighs their samples
    /// slightly differently (measured: 8e-5 of the loss on this batch with those steps masked).
    #[test]
    fn two_workers_compute_the_gradients_of_one() {
        let mut config = preset_with("uform", "policy_head").unwrap();
        config.formulation.history_window = 2;
        if let ActionSpace::Continuous { chunk, .. } = &mut config.formulation.action_space {
            *chunk = 2;
        }
        config.gripper_image_size = config.static_image_size;
        config.scene_state_loss = Some(0.1);
        let model = Vla::new(config.clone(), &Device::Cpu).unwrap();
        let mut rng = Rng::new(4);
        let instructions = ["turn on the led", "open the drawer"];
        let episodes = instructions.map(|text| noise_episode(3, config.static_image_size, text, &mut rng)).to_vec();
        let dataset = Dataset { roots: vec!["noise".into()], episodes };
        let settings = BatchSettings { batch_size: 7, history: 2, chunk: 2, ..BatchSettings::default() };
        let mut batch = Sampler::new(&dataset, &[0, 1], settings, 1).unwrap().next_batch();
        batch.action_mask.fill(true);
        let tokenizer = tokenizer::train(instructions, DEFAULT_VOCAB_SIZE).unwrap();
        let encoded = EncodedInstructions::new(&tokenizer, instructions, config.max_text_len).unwrap();
        let loss = |samples: Range<usize>| shard_loss(&model, &batch, samples, &encoded);

        let (one_loss, one) = batch_gradients(&model, batch.size, &worker_pool(1, "one").unwrap(), &loss).unwrap();
        let (two_loss, two) = batch_gradients(&model, batch.size, &worker_pool(2, "two").unwrap(), &loss).unwrap();
        assert!((one_loss - two_loss).abs() <= 1e-6 * one_loss.abs(), "loss {one_loss} against {two_loss}");
        for (name, var) in model.params().vars() {
            let (a, b) = (one.get(var.as_tensor()).unwrap(), two.get(var.as_tensor()).unwrap());
            let scale = a.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            let largest = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(largest <= 1e-5 * scale + 1e-9, "{name}: gradients differ by {largest} (largest {scale})");
        }
    }
}
