//! The VLA training loop: AdamW with a warm-up schedule and gradient clipping on random-shift
//! augmented batches, a held-out validation split, checkpoints, and exact resumption.
//!
//! Data parallelism: candle's CPU ops are slow multi-threaded at these sizes (DESIGN.md §2.10), so
//! candle runs single-threaded and the batch is split into `workers` shards, each run forward and
//! backward on a thread of the run's own rayon pool; the shard gradients are summed, weighted by
//! shard size, and one optimiser step is taken.
//!
//! Resuming replays nothing: the sampler is a function of `(seed, step)` ([`Sampler::skip`]), and
//! the weights, AdamW's moments and the loss history come from the checkpoint, so an interrupted
//! and resumed run ends with the same weights as an uninterrupted one.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use candle_core::Tensor;
use candle_core::backprop::GradStore;
use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

use super::checkpoint::{
    self, DataRecord, LossPoint, OPTIMIZER_FILE, Progress, Recipe, TOKENIZER_FILE, TRAINING_FILE, TrainingRecord,
};
use super::optim::{AdamW, AdamWConfig};
use super::schedule::Schedule;
use super::tensors::{EncodedInstructions, model_batch};
use crate::data::batch::{Batch, BatchSettings, Sampler};
use crate::data::episode::ROBOT_OBS_DIM;
use crate::data::reader::{Dataset, Selection};
use crate::lang::tokenizer::{self, DEFAULT_VOCAB_SIZE, Tokenizer};
use crate::vla::config::RobotObsNorm;
use crate::vla::model::WEIGHTS_FILE;
use crate::vla::{ForwardOptions, Vla, VlaConfig};

/// Smallest `robot_obs` standard deviation used: a near-constant dimension is not blown up.
const MIN_ROBOT_OBS_STD: f64 = 1e-3;
/// Offset of the validation sampler's seed from the run's, so its draws are independent.
const VALIDATION_SEED_OFFSET: u64 = 0x5E_ED0F_7A11;

/// A run to start or resume.
#[derive(Debug, Clone)]
pub struct TrainJob {
    /// The dataset folder.
    pub data: PathBuf,
    /// The checkpoint folder (= the model folder).
    pub out: PathBuf,
    /// The recipe.
    pub recipe: Recipe,
    /// The model to train from scratch (its `robot_obs_norm` is filled from the training split);
    /// when resuming, it must match the checkpoint's.
    pub model: VlaConfig,
    /// Data-parallel worker threads.
    pub workers: usize,
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

/// Splits `0..size` into at most one contiguous non-empty shard per thread of `workers` and runs
/// `work` on each in that pool; results come back in shard order with their shard sizes.
fn per_shard<T: Send>(
    size: usize,
    workers: &ThreadPool,
    work: &(dyn Fn(Range<usize>) -> Result<T> + Sync),
) -> Result<Vec<(usize, T)>> {
    let shards = workers.current_num_threads().clamp(1, size.max(1));
    let ranges: Vec<Range<usize>> =
        (0..shards).map(|i| (i * size / shards)..((i + 1) * size / shards)).filter(|r| !r.is_empty()).collect();
    workers.install(|| ranges.par_iter().map(|range| Ok((range.len(), work(range.clone())?))).collect())
}

/// The model's loss on samples `samples` of `batch`.
fn shard_loss(model: &Vla, batch: &Batch, samples: Range<usize>, instructions: &EncodedInstructions) -> Result<Tensor> {
    let (input, targets) = model_batch(batch, samples, model.config(), instructions)?;
    let options = ForwardOptions { capture_attention: false, teacher_actions: Some(&targets.actions) };
    Ok(model.loss(&model.forward(&input, options)?, &targets)?)
}

/// The loss of a shard (a range of a batch's samples) as a graph to differentiate.
pub(super) type ShardLoss<'a> = dyn Fn(Range<usize>) -> Result<Tensor> + Sync + 'a;

/// Loss and gradients of a batch of `size` samples: the shard losses' gradients, weighted by shard size.
pub(super) fn batch_gradients(
    model: &Vla,
    size: usize,
    workers: &ThreadPool,
    shard_loss: &ShardLoss,
) -> Result<(f64, GradStore)> {
    let shards = per_shard(size, workers, &|samples| {
        let loss = shard_loss(samples)?;
        Ok((f64::from(loss.to_scalar::<f32>()?), loss.backward()?))
    })?;
    let total = size as f64;
    let loss = shards.iter().map(|(n, (loss, _))| *n as f64 / total * loss).sum();
    let mut shards = shards.into_iter();
    let (first_size, (_, mut grads)) = shards.next().expect("a batch has at least one shard");
    let rest: Vec<(usize, GradStore)> = shards.map(|(n, (_, g))| (n, g)).collect();
    if rest.is_empty() {
        return Ok((loss, grads));
    }
    for var in model.vars() {
        let mut sum: Option<Tensor> = None;
        let first = grads.remove(var.as_tensor()).map(|g| (first_size, g));
        let others = rest.iter().filter_map(|(n, g)| g.get(var.as_tensor()).map(|g| (*n, g.clone())));
        for (n, g) in first.into_iter().chain(others) {
            let weighted = g.affine(n as f64 / total, 0.0)?;
            sum = Some(match sum {
                Some(s) => (s + weighted)?,
                None => weighted,
            });
        }
        if let Some(sum) = sum {
            grads.insert(var.as_tensor(), sum);
        }
    }
    Ok((loss, grads))
}

/// Mean loss of a batch of `size` samples, without gradients.
pub(super) fn batch_loss(size: usize, workers: &ThreadPool, shard_loss: &ShardLoss) -> Result<f64> {
    let shards = per_shard(size, workers, &|samples| Ok(f64::from(shard_loss(samples)?.to_scalar::<f32>()?)))?;
    Ok(shards.iter().map(|(n, loss)| *n as f64 / size as f64 * loss).sum())
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
    ensure!(recipe.steps > 0 && recipe.batch_size > 0, "steps and batch size must be positive");
    ensure!(recipe.eval_every > 0 && recipe.checkpoint_every > 0, "eval-every and checkpoint-every must be positive");
    ensure!((0.0..1.0).contains(&recipe.validation_share), "the validation share must be in [0, 1)");
    let selection = Selection { scenes: recipe.scenes.clone(), share: recipe.data_share, seed: recipe.seed };
    let dataset = Dataset::open_selected(&job.data, &selection)
        .with_context(|| format!("reading the dataset {}", job.data.display()))?;
    // Positions in `dataset.episodes`; the record names episodes by their `episode_index`.
    let (train_episodes, validation_episodes) = dataset.split(recipe.validation_share, recipe.seed);
    let episode_indices = |positions: &[usize]| positions.iter().map(|&p| dataset.episodes[p].index).collect();
    let data = DataRecord {
        path: job.data.clone(),
        episodes: dataset.episodes.len(),
        frames: dataset.frames(),
        train_episodes: episode_indices(&train_episodes),
        validation_episodes: episode_indices(&validation_episodes),
    };

    ensure!(!train_episodes.is_empty(), "the dataset {} has no episodes to train on", job.data.display());

    let (model, tokenizer, mut progress, optimizer_state) = if job.resume {
        ensure!(tokenizer.is_none(), "a resumed run uses the checkpoint's tokenizer; give none");
        checkpoint::recover(&job.out)?;
        let saved = checkpoint::read_record(&job.out)?;
        if saved.recipe != *recipe {
            bail!(
                "{} was trained with a different recipe:\n  saved: {:?}\n  given: {recipe:?}",
                job.out.join(TRAINING_FILE).display(),
                saved.recipe
            );
        }
        if (saved.data.episodes, saved.data.frames) != (data.episodes, data.frames) {
            bail!(
                "the dataset {} has {} episodes and {} frames; the run trained on {} and {}",
                job.data.display(),
                data.episodes,
                data.frames,
                saved.data.episodes,
                saved.data.frames
            );
        }
        let model = Vla::load(&job.out).with_context(|| format!("loading the model from {}", job.out.display()))?;
        let saved_model = VlaConfig { robot_obs_norm: None, ..model.config().clone() };
        ensure!(
            saved_model == VlaConfig { robot_obs_norm: None, ..job.model.clone() },
            "{} holds a different model than the preset and formulation given",
            job.out.display()
        );
        let tokenizer = Tokenizer::load(&job.out.join(TOKENIZER_FILE))?;
        (model, tokenizer, saved.progress, Some(job.out.join(OPTIMIZER_FILE)))
    } else {
        let mut config = job.model.clone();
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
        let model = Vla::new(config)?;
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

    let mut optimizer =
        AdamW::new(model.params().vars(), AdamWConfig { weight_decay: recipe.weight_decay, ..AdamWConfig::default() });
    if let Some(path) = optimizer_state {
        optimizer.load(&path).with_context(|| format!("loading the optimiser state {}", path.display()))?;
        ensure!(
            optimizer.steps() == progress.step,
            "{} has {} steps, {} says {}",
            path.display(),
            optimizer.steps(),
            TRAINING_FILE,
            progress.step
        );
    }
    let schedule = Schedule {
        peak_lr: recipe.lr,
        warmup_steps: recipe.warmup_steps,
        total_steps: recipe.steps,
        decay: recipe.decay,
        floor: 0.0,
    };

    let settings = BatchSettings {
        batch_size: recipe.batch_size,
        history: config.formulation.history_window,
        chunk: config.formulation.chunk(),
        static_shift_px: recipe.static_shift_px,
        gripper_shift_px: recipe.gripper_shift_px,
    };
    let mut sampler = Sampler::new(&dataset, &train_episodes, settings, recipe.seed)?;
    sampler.skip(progress.step);
    let validation_batches: Vec<Batch> = if validation_episodes.is_empty() {
        Vec::new()
    } else {
        let unshifted = BatchSettings { static_shift_px: 0, gripper_shift_px: 0, ..settings };
        let seed = recipe.seed.wrapping_add(VALIDATION_SEED_OFFSET);
        let mut validation = Sampler::new(&dataset, &validation_episodes, unshifted, seed)?;
        (0..recipe.validation_batches).map(|_| validation.next_batch()).collect()
    };
    let instructions = EncodedInstructions::new(
        &tokenizer,
        dataset.episodes.iter().map(|e| e.instruction.as_str()),
        config.max_text_len,
    )?;

    ensure!(job.workers > 0, "at least one worker is needed");
    let workers = ThreadPoolBuilder::new()
        .num_threads(job.workers)
        .thread_name(|i| format!("train-worker-{i}"))
        .build()
        .context("starting the training workers")?;
    progress.workers = job.workers;
    let mut record = TrainingRecord { recipe: recipe.clone(), data, progress };
    report(&TrainEvent::Started {
        step: record.progress.step,
        steps: recipe.steps,
        train_windows: sampler.windows(),
        parameters: model.params().parameter_count(),
    });
    let session_start = Instant::now();
    let wall_before = record.progress.wall_secs;
    let mut batch = Batch::default();
    while record.progress.step < recipe.steps {
        let step_start = Instant::now();
        sampler.fill(&mut batch);
        let (loss, grads) = batch_gradients(&model, batch.size, &workers, &|samples| {
            shard_loss(&model, &batch, samples, &instructions)
        })?;
        ensure!(loss.is_finite(), "the loss became {loss} at step {}", record.progress.step);
        let lr = schedule.lr(record.progress.step);
        optimizer.step(&grads, lr, recipe.grad_clip)?;

        let progress = &mut record.progress;
        let ema = progress.record_step(loss, batch.size, wall_before + session_start.elapsed().as_secs_f64());
        let step = progress.step;
        let samples_per_sec = batch.size as f64 / step_start.elapsed().as_secs_f64();
        report(&TrainEvent::Step { step, loss, loss_ema: ema, lr, samples_per_sec });

        let last = step == recipe.steps;
        if step.is_multiple_of(recipe.eval_every) || last {
            let train_loss = progress.close_interval();
            let validation = validation_loss(&model, &validation_batches, &instructions, &workers)?;
            if let Some(loss) = validation {
                progress.validation_loss.push(LossPoint { step, loss });
            }
            report(&TrainEvent::Validated { step, train_loss, validation_loss: validation });
        }
        let stopping = stop.load(Ordering::SeqCst);
        if step.is_multiple_of(recipe.checkpoint_every) || last || stopping {
            checkpoint::save(&job.out, &model, &tokenizer, &optimizer, TRAINING_FILE, &record)?;
            report(&TrainEvent::Saved { step });
        }
        if stopping && !last {
            return Ok(Trained { model, record, stopped: true });
        }
    }
    Ok(Trained { model, record, stopped: false })
}
