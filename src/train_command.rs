//! `vlasim train`: arguments, the progress bar and Ctrl-C for [`vlasim::train::trainer`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::device_args::DeviceArgs;
use crate::progress_log::TenthsLog;
use indicatif::{HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};

use vlasim::lang::tokenizer::Tokenizer;
use vlasim::train::Compute;
use vlasim::train::checkpoint::{self, Progress, Recipe, TrainingRecord};
use vlasim::train::schedule::{Decay, Optimisation};
use vlasim::train::trainer::{self, TrainEvent, TrainJob, Trained};
use vlasim::vla::model::CONFIG_FILE;
use vlasim::vla::presets;

#[derive(Args)]
pub struct TrainArgs {
    /// Demonstration dataset (LeRobot v3, `vlasim collect`); repeat it to train on several as one
    /// (e.g. demonstrations plus DAgger recovery episodes collected apart).
    #[arg(long, default_value = "data/demos")]
    data: Vec<PathBuf>,
    /// Model preset: paligemma, kosmos, flamingo, llava, qwen-vl, moondream, uform or film; or a
    /// model's config.json file (its backbone, vocabulary and cameras; the formulation is --formulation's).
    #[arg(long, default_value = "kosmos")]
    preset: String,
    /// How history and actions are formulated (`vlasim bench vla` lists them).
    #[arg(long, default_value = "policy_head")]
    formulation: String,
    /// Frames in a history formulation's window (default: the formulation's, 8); a training
    /// sample costs about one backbone pass per frame (`vlasim bench vla --history-window`).
    #[arg(long)]
    history_window: Option<usize>,
    /// Actions predicted after each frame by a continuous formulation (default: the
    /// formulation's, 10); a chunk over 1 is executed with the even temporal ensemble.
    #[arg(long)]
    chunk: Option<usize>,
    /// Weight of the gripper's BCE against the arm's loss in a continuous formulation (default:
    /// the formulation's, 0.01 as in RoboVLMs' CALVIN configs).
    #[arg(long)]
    gripper_loss_weight: Option<f64>,
    /// Checkpoint folder = model folder; the latest checkpoint replaces the previous one.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    optimisation: OptimisationArgs,
    /// Share of the episodes held out for validation.
    #[arg(long, default_value_t = 0.05)]
    validation: f64,
    /// Fixed validation batches evaluated each --eval-every steps.
    #[arg(long, default_value_t = 4)]
    validation_batches: usize,
    /// Random-shift padding of the static camera, pixels (RoboVLMs: 10).
    #[arg(long, default_value_t = 10)]
    static_shift: usize,
    /// Random-shift padding of the gripper camera, pixels (RoboVLMs: 4).
    #[arg(long, default_value_t = 4)]
    gripper_shift: usize,
    /// Seed of the validation split, the sample order and the augmentation (the weights' seed is the preset's).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train on these scenes only (comma-separated; default: all in the dataset).
    #[arg(long, value_delimiter = ',')]
    scenes: Vec<String>,
    /// Share of the (selected scenes') episodes to load, picked with --seed: for data-efficiency
    /// runs, and to fit a large collection in memory (frames take about 16 kB each, compressed).
    #[arg(long, default_value_t = 1.0)]
    data_share: f64,
    /// Keep the camera images of every n-th frame only: neighbouring frames look alike, so a stride
    /// of 2 fits twice the episodes, and their start layouts, in memory. A history model's window
    /// then holds frames n steps apart, in training and when it acts.
    #[arg(long, default_value_t = 1)]
    frame_stride: usize,
    /// Weight of an auxiliary loss: predicting the scene's privileged state (articulations, lights,
    /// block positions) from the features the action head reads; training only (0: none).
    #[arg(long, default_value_t = 0.0)]
    scene_state_loss: f64,
    /// Weight of an auxiliary loss: predicting how many steps are left until the demonstration's
    /// task is done, from the features the action head reads; training only (0: none).
    #[arg(long, default_value_t = 0.0)]
    steps_left_loss: f64,
    /// Chance that each word of a training sample's instruction is left out (not in validation),
    /// so the model reads every cue of a phrasing and copes with phrasings it never saw.
    #[arg(long, default_value_t = 0.0)]
    word_dropout: f64,
    /// Start from the matching parameters of this model folder (e.g. a `vlasim pretrain` backbone of
    /// the same preset), and from its tokenizer; the rest, such as the action head, starts fresh.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Tokenizer of a new run (`vlasim lang --tokenizer`); default: the --init folder's, else one
    /// trained on the training phrasings and the dataset's instructions. A resumed run uses the
    /// checkpoint's.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
}

/// The optimisation and bookkeeping options `vlasim train` and `vlasim pretrain` share.
#[derive(Args)]
pub struct OptimisationArgs {
    /// Optimiser steps of the whole run.
    #[arg(long, default_value_t = 5000)]
    pub steps: u64,
    /// Samples per step.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Linear warm-up steps.
    #[arg(long, default_value_t = 200)]
    pub warmup: u64,
    /// Learning rate after the warm-up.
    #[arg(long, value_enum, default_value_t = Decay::Cosine)]
    pub decay: Decay,
    /// AdamW's decoupled weight decay (matrices only).
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Global gradient-norm limit (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub grad_clip: f64,
    /// Steps between validation passes.
    #[arg(long, default_value_t = 500)]
    pub eval_every: u64,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 500)]
    pub checkpoint_every: u64,
    /// Keep an exponential moving average of the weights with this decay (e.g. 0.999, about the
    /// last thousand steps) and validate and save it as the model; the trained weights are kept
    /// in `optimizer.safetensors` for --resume (0: no average).
    #[arg(long, default_value_t = 0.0)]
    pub ema_decay: f64,
    /// Continue the run in --out from its last checkpoint, with the same recipe.
    #[arg(long)]
    pub resume: bool,
    /// Data-parallel worker threads, each running a shard of every batch (default: all cores on
    /// the CPU, one on a GPU).
    #[arg(long)]
    pub workers: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

impl OptimisationArgs {
    /// The recipe's optimisation part.
    pub fn optimisation(&self) -> Optimisation {
        Optimisation {
            steps: self.steps,
            batch_size: self.batch,
            lr: self.lr,
            warmup_steps: self.warmup,
            decay: self.decay,
            weight_decay: self.weight_decay,
            grad_clip: (self.grad_clip > 0.0).then_some(self.grad_clip),
            eval_every: self.eval_every,
            checkpoint_every: self.checkpoint_every,
            ema_decay: (self.ema_decay > 0.0).then_some(self.ema_decay),
        }
    }

    /// The device, opened, and the worker threads asked for or the device's default.
    pub fn compute(&self) -> Result<Compute> {
        Ok(Compute { device: self.device.open()?, workers: self.device.training_workers(self.workers) })
    }
}

/// Set by Ctrl-C: the loop saves a checkpoint after the current step and stops.
static STOP: AtomicBool = AtomicBool::new(false);

/// The stop flag of a training run: the first Ctrl-C sets it (the run saves a checkpoint after
/// the current step), the second quits at once.
pub fn stop_on_ctrl_c() -> Result<&'static AtomicBool> {
    ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this step and saving a checkpoint (Ctrl-C again to quit at once)");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(&STOP)
}

/// The progress bar and log lines of a training or pre-training run.
pub struct TrainingDisplay {
    bar: ProgressBar,
    out: PathBuf,
    workers: usize,
    /// What the run's examples are called in the start line ("training windows", "corpus samples").
    examples: &'static str,
    init: Option<PathBuf>,
    samples_per_sec_ema: Option<f64>,
    log: TenthsLog,
}

impl TrainingDisplay {
    /// A bar over `steps` for a run checkpointing into `out`.
    pub fn new(steps: u64, out: &Path, workers: usize, examples: &'static str, init: Option<PathBuf>) -> Result<Self> {
        let bar = ProgressBar::with_draw_target(Some(steps), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} steps, eta {eta} {msg}")
                .context("progress bar template")?
                .progress_chars("=> "),
        );
        Ok(Self {
            bar,
            out: out.to_path_buf(),
            workers,
            examples,
            init,
            samples_per_sec_ema: None,
            log: TenthsLog::for_stderr(),
        })
    }

    /// Through `suspend`, not `println`: the lines also reach a log when stderr is not a terminal.
    fn say(&self, line: String) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    /// Shows one event of the run.
    pub fn show(&mut self, event: &TrainEvent) {
        match *event {
            TrainEvent::Started { step, steps, train_windows, parameters } => {
                self.bar.set_position(step);
                self.log.resume_at(step as usize, steps as usize);
                self.say(format!(
                    "{} at step {step} of {steps}: {:.2} M parameters, {train_windows} {}, {} worker(s)",
                    if step == 0 { "training" } else { "resuming" },
                    parameters as f64 / 1e6,
                    self.examples,
                    self.workers
                ));
            }
            TrainEvent::Step { step, loss_ema, lr, samples_per_sec, .. } => {
                let rate = self.samples_per_sec_ema.map_or(samples_per_sec, |r| 0.9 * r + 0.1 * samples_per_sec);
                self.samples_per_sec_ema = Some(rate);
                self.bar.set_position(step);
                let message = format!("loss {loss_ema:.4}, lr {lr:.2e}, {rate:.1} samples/s");
                let steps = self.bar.length().unwrap_or(step);
                if self.log.crossed_tenth(step as usize, steps as usize) {
                    self.say(format!("{} step {step}/{steps}: {message}", HumanDuration(self.bar.elapsed())));
                }
                self.bar.set_message(message);
            }
            TrainEvent::Validated { step, train_loss, validation_loss } => {
                let validation = validation_loss.map_or("—".to_string(), |loss| format!("{loss:.4}"));
                self.say(format!("step {step}: train loss {train_loss:.4}, validation loss {validation}"));
            }
            TrainEvent::Initialised { tensors, of } => {
                let from = self.init.as_deref().map_or_else(String::new, |dir| dir.display().to_string());
                self.say(format!("started {tensors} of {of} parameter tensors from {from}"))
            }
            TrainEvent::Saved { step } => self.say(format!("step {step}: checkpoint {}", self.out.display())),
        }
    }

    /// Clears the bar and prints how the run ended.
    pub fn finish(self, progress: &Progress, stopped: bool) {
        self.bar.finish_and_clear();
        let verb = if stopped { "stopped" } else { "finished" };
        println!(
            "{verb} at step {} ({} samples, {:.0} s, {:.1} samples/s); model in {}",
            progress.step,
            progress.samples_seen,
            progress.wall_secs,
            progress.samples_seen as f64 / progress.wall_secs.max(1e-9),
            self.out.display()
        );
        if stopped {
            println!("continue with the same command and --resume");
        }
    }
}

pub fn run(args: TrainArgs) -> Result<()> {
    let model = presets::resolve(&args.preset, &args.formulation)?;
    let optimisation = &args.optimisation;
    let recipe = Recipe {
        preset: args.preset,
        formulation: args.formulation,
        history_window: args.history_window,
        chunk: args.chunk,
        gripper_loss_weight: args.gripper_loss_weight,
        optimisation: optimisation.optimisation(),
        validation_share: args.validation,
        validation_batches: args.validation_batches,
        static_shift_px: args.static_shift,
        gripper_shift_px: args.gripper_shift,
        seed: args.seed,
        scenes: args.scenes,
        data_share: args.data_share,
        frame_stride: args.frame_stride,
        init: args.init,
        scene_state_loss: (args.scene_state_loss != 0.0).then_some(args.scene_state_loss),
        steps_left_loss: (args.steps_left_loss != 0.0).then_some(args.steps_left_loss),
        word_dropout: args.word_dropout,
    };
    let tokenizer = args.tokenizer.as_deref().map(Tokenizer::load).transpose()?;
    let job = TrainJob {
        data: args.data,
        out: args.out,
        recipe,
        model,
        compute: optimisation.compute()?,
        resume: optimisation.resume,
    };

    train_showing_progress(&job, tokenizer, stop_on_ctrl_c()?)?;
    Ok(())
}

/// Runs `job` with the progress bar and its closing line.
fn train_showing_progress(job: &TrainJob, tokenizer: Option<Tokenizer>, stop: &AtomicBool) -> Result<Trained> {
    let steps = job.recipe.optimisation.steps;
    let mut display =
        TrainingDisplay::new(steps, &job.out, job.compute.workers, "training windows", job.recipe.init.clone())?;
    let trained = trainer::train(job, tokenizer, stop, &mut |event| display.show(event))?;
    display.finish(&trained.record.progress, trained.stopped);
    Ok(trained)
}

/// A model folder's `training.json`, to train other models with its recipe and data; `steps`,
/// when given, replaces the recipe's (the learning-rate schedule follows).
pub fn read_training_record(path: &Path, steps: Option<u64>) -> Result<TrainingRecord> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut record: TrainingRecord = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a training.json (a model folder's training record)", path.display()))?;
    if let Some(steps) = steps {
        record.recipe.optimisation.steps = steps;
    }
    Ok(record)
}

/// The datasets a command given `--data` `given` trains on: those, or else the ones `reference` trained on.
pub fn datasets_or_recorded(given: &[PathBuf], reference: &TrainingRecord) -> Vec<PathBuf> {
    if given.is_empty() { reference.data.paths.clone() } else { given.to_vec() }
}

/// Trains `job.out` with `job`'s recipe unless a finished model is there; an unfinished run there is
/// resumed. For commands that train many models in turn (each run's own `resume` is decided here).
pub fn train_unless_done(mut job: TrainJob, stop: &AtomicBool) -> Result<()> {
    let saved = checkpoint::read_record(&job.out).ok();
    if let Some(saved) = &saved {
        checkpoint::ensure_same_recipe(&job.out.join(checkpoint::TRAINING_FILE), &saved.recipe, &job.recipe)?;
    }
    if saved.as_ref().is_some_and(TrainingRecord::finished) || (saved.is_none() && job.out.join(CONFIG_FILE).is_file())
    {
        println!("{}: trained already", job.out.display());
        return Ok(());
    }
    job.resume = saved.is_some();
    println!(
        "{}: training {} ({}) on {}",
        job.out.display(),
        job.recipe.preset,
        job.recipe.formulation,
        checkpoint::describe_datasets(&job.data)
    );
    if train_showing_progress(&job, None, stop)?.stopped {
        bail!("stopped while training {}; the same command resumes it", job.out.display());
    }
    Ok(())
}
