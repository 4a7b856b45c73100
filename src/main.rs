//! The `vlasim` command line: a thin layer that parses arguments, calls the library and reports errors.

mod bench;
mod collect_command;
mod compare_command;
mod device_args;
mod eval_command;
mod lang_command;
mod pretrain_command;
mod pretrain_data_command;
mod progress_log;
mod rollout_command;
mod study_command;
mod train_command;

use std::ffi::{c_int, c_long};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use vlasim::app::session::Driver;
use vlasim::app::{AttentionMap, GuiOptions};
use vlasim::eval::{InstructedModel, Wording};
use vlasim::sim::camera::{Image, PolicyCameras, View};
use vlasim::sim::chains::{self, EVAL_SEED};
use vlasim::sim::episode::{self, MAX_STEPS_PER_SUBTASK, StepReport};
use vlasim::sim::expert::{Expert, ExpertSettings, Policy};
use vlasim::sim::scene::Scene;
use vlasim::sim::tasks::Task;
use vlasim::sim::world::World;
use vlasim::video::ComposeOptions;
use vlasim::video::rollout::{RecordSettings, Rollout, RolloutRecording};

#[derive(Parser)]
#[command(name = "vlasim", version, about = "Simulator and visualizer for Vision-Language-Action models")]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand, the GUI opens with these options.
    #[command(flatten)]
    gui: GuiArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Open the GUI (the default): type instructions, drive the arm, watch the oracle.
    Gui(GuiArgs),
    /// Run the scripted expert on one task or on an evaluation chain, printing the oracle each step.
    Expert(ExpertArgs),
    /// Save the policy cameras' images of a start state as PNGs.
    Render(RenderArgs),
    /// Measure simulation and camera speed.
    Bench(BenchArgs),
    /// Record the scripted expert or a VLA on a task or an evaluation chain as MP4 (H.264) or GIF.
    Record(RecordArgs),
    /// Understand a typed instruction, check the instruction files, or train a tokenizer.
    Lang(lang_command::LangArgs),
    /// Evaluate a policy on CALVIN-style 5-task chains (SR@1..5, Avg. Len.), or merge shards' results.
    Eval(eval_command::EvalArgs),
    /// Collect expert demonstrations (and labelled play) into a LeRobot v3 dataset.
    Collect(collect_command::CollectArgs),
    /// Train a VLA on a demonstration dataset, checkpointing into a model folder (resumable).
    Train(train_command::TrainArgs),
    /// A model acts on one free-form instruction from a start state, headless, with the oracle's view each step.
    Rollout(rollout_command::RolloutArgs),
    /// Evaluate every model folder on the same chains and write the backbone report (Table V).
    Compare(compare_command::CompareArgs),
    /// Write a vision-language pre-training corpus: random scenes with exact captions and questions.
    PretrainData(pretrain_data_command::PretrainDataArgs),
    /// Pre-train a preset's backbone on the corpus (next-token loss) for `vlasim train --init`.
    Pretrain(pretrain_command::PretrainArgs),
    /// Finding 5: pre-train at several scales, fine-tune seen / unseen / 10 % data, evaluate, report.
    Study(study_command::StudyArgs),
}

/// Which episode: one task from a seeded start state, or an evaluation chain.
#[derive(Args)]
struct EpisodeArgs {
    /// Task name (e.g. open_drawer); `vlasim expert --list` shows all 34.
    #[arg(long, conflicts_with = "chain")]
    task: Option<String>,
    /// Index of an evaluation chain (seed 1000, as `vlasim eval` uses).
    #[arg(long)]
    chain: Option<u64>,
    /// Scene: a, b, c, d or a path to a scene file.
    #[arg(long, default_value = "d")]
    scene: String,
    /// Seed of the start state (with --task).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
struct RecordArgs {
    #[command(flatten)]
    episode: EpisodeArgs,
    /// Output file; the extension picks the format: .mp4 (H.264) or .gif.
    #[arg(long, default_value = "rollout.mp4")]
    out: PathBuf,
    /// Write a GIF: replaces the extension of --out with .gif.
    #[arg(long)]
    gif: bool,
    /// Frame size, WIDTHxHEIGHT (odd sizes are padded to even in MP4).
    #[arg(long, default_value = "640x480", value_parser = parse_size)]
    size: (u32, u32),
    /// Show the policy cameras' images (static and gripper) in the top-right corner.
    #[arg(long)]
    inset: bool,
    /// Stop after this many control steps (short clips).
    #[arg(long)]
    max_steps: Option<usize>,
    /// Seconds the final frame stays on screen.
    #[arg(long, default_value_t = 1.0)]
    hold: f64,
    /// Also save the last frame as a PNG here.
    #[arg(long)]
    last_frame_png: Option<PathBuf>,
    /// Drive the arm with this model folder (told the held-out evaluation phrasings) instead of
    /// the scripted expert.
    #[arg(long)]
    model: Option<PathBuf>,
}

/// Set by the Ctrl-C handler; the record loop stops after the current step and finishes the file.
static STOP_RECORDING: AtomicBool = AtomicBool::new(false);

fn record(args: RecordArgs) -> Result<()> {
    let scene = Scene::resolve(&args.episode.scene)?;
    let rollout = match (args.episode.task, args.episode.chain) {
        (Some(name), None) => Rollout::Task { task: task_named(&name)?, seed: args.episode.seed },
        (None, Some(index)) => Rollout::Chain { index },
        _ => bail!("give either --task NAME or --chain INDEX"),
    };
    let out = if args.gif { args.out.with_extension("gif") } else { args.out };
    let (width, height) = args.size;
    let settings = RecordSettings {
        rollout,
        compose: ComposeOptions { width, height, inset: args.inset },
        max_steps: args.max_steps,
        hold_final_s: args.hold,
    };
    ctrlc::set_handler(|| {
        // A second Ctrl-C means the user does not want to wait for the file to be finished.
        if STOP_RECORDING.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
        eprintln!("stopping: finishing the video (Ctrl-C again to quit at once)");
    })
    .context("cannot install the Ctrl-C handler")?;
    let mut policy: Box<dyn Policy> = match &args.model {
        Some(dir) => Box::new(InstructedModel::load(dir, &candle_core::Device::Cpu, Wording::HeldOut)?),
        None => Box::new(Expert::new(ExpertSettings::default())),
    };
    let recording = RolloutRecording::new(&scene, &settings, &out)?;
    println!("recording {} ({width}x{height})", out.display());
    let recorded = recording.run(policy.as_mut(), &STOP_RECORDING)?;
    for outcome in &recorded.outcomes {
        let result = match (outcome.success, outcome.stopped) {
            (true, _) => "success",
            (false, true) => "stopped",
            (false, false) => "FAILED",
        };
        println!("  {:<26} {result} ({} steps)", outcome.task.name(), outcome.steps);
    }
    let summary = &recorded.summary;
    println!(
        "wrote {}: {} frames, {}x{}, {:.2} s{}",
        summary.path.display(),
        summary.frames,
        summary.width,
        summary.height,
        summary.duration_s,
        if recorded.stopped { " (stopped early)" } else { "" }
    );
    if let Some(path) = args.last_frame_png {
        save_png(&recorded.last_frame, 1, &path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Parses WIDTHxHEIGHT.
fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let parse = |side: &str| side.trim().parse::<u32>().ok().filter(|&px| px > 0);
    match text.split_once(['x', 'X']).map(|(w, h)| (parse(w), parse(h))) {
        Some((Some(width), Some(height))) => Ok((width, height)),
        _ => Err(format!("expected WIDTHxHEIGHT in pixels, e.g. 640x480; got `{text}`")),
    }
}

/// The task called `name`, or an error pointing at the list.
fn task_named(name: &str) -> Result<Task> {
    Task::from_name(name).with_context(|| format!("unknown task `{name}` (see `vlasim expert --list`)"))
}

#[derive(Args)]
struct GuiArgs {
    /// Scene: a, b, c, d or a path to a scene file.
    #[arg(long, default_value = "d")]
    scene: String,
    /// Start state: evaluation chain SEED's.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Window size in logical pixels, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720", value_parser = parse_size)]
    size: (u32, u32),
    /// Who drives the arm at start; the VLA falls back to the scripted expert when no model loads.
    #[arg(long, value_enum, default_value_t = Driver::Vla)]
    driver: Driver,
    /// Folder of model folders the VLA driver offers.
    #[arg(long, default_value = vlasim::vla::catalog::SHIPPED_MODELS)]
    models: PathBuf,
    /// Model to start with, by folder name (default: kosmos-wide, or the first there is).
    #[arg(long)]
    model: Option<String>,
    /// Start with the VLA's attention overlay on the static camera's image: mean (of the last
    /// layer's heads), headN, rollout or occlusion.
    #[arg(long, num_args = 0..=1, default_missing_value = "mean")]
    attention: Option<AttentionMap>,
    /// Side-by-side mode at start: this model (by folder name) gets the same start state and
    /// instructions as the main one, in a window of its own.
    #[arg(long)]
    compare: Option<String>,
    /// Submit this instruction at start, as if typed.
    #[arg(long)]
    instruction: Option<String>,
    /// Run this evaluation chain at start.
    #[arg(long, conflicts_with = "instruction")]
    chain: Option<u64>,
    /// Save a screenshot here after --after-steps control steps, then exit.
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// Record from launch into this file (.mp4 or .gif); the Record button in the panel does the same.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Close the window after --after-steps control steps, as a person would.
    #[arg(long, conflicts_with = "screenshot")]
    close: bool,
    /// Simulation speed: simulated seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    speed: f32,
    /// Control steps before --screenshot or --close.
    #[arg(long, default_value_t = 60)]
    after_steps: u64,
}

#[derive(Args)]
struct RenderArgs {
    /// Scene: a, b, c, d or a path to a scene file.
    #[arg(long, default_value = "d")]
    scene: String,
    /// Seed of the start state.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "docs")]
    out: PathBuf,
    /// Also save copies enlarged by this factor (nearest neighbour), for people to look at.
    #[arg(long, default_value_t = 4)]
    zoom: u32,
}

#[derive(Args)]
struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    target: BenchTarget,
    /// Scene to measure on.
    #[arg(long, default_value = "d")]
    scene: String,
    /// Start states per task for the expert benchmark (episodes per task for `data`).
    #[arg(long, default_value_t = 100)]
    episodes: u64,
    /// Chains for the expert chain benchmark.
    #[arg(long, default_value_t = 1000)]
    chains: u64,
    /// VLA benchmark: presets (or model config files, as `train --preset` takes) to measure (all
    /// presets when none is given).
    #[arg(long)]
    preset: Vec<String>,
    /// VLA benchmark: the formulation (policy_head, policy_head_gpt, one_step, one_step_mixture,
    /// interleaved, one_step_discrete, interleaved_discrete).
    #[arg(long, default_value = "policy_head")]
    formulation: String,
    /// VLA benchmark: frames in a history formulation's window (default: the formulation's, 8).
    #[arg(long)]
    history_window: Option<usize>,
    /// VLA benchmark: training batch size.
    #[arg(long, default_value_t = 8)]
    batch: usize,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BenchTarget {
    /// Control steps/s (8 physics substeps each) and camera frames/s.
    Sim,
    /// Expert success per task over many start states, and over the evaluation chains.
    Expert,
    /// Recording speed at 640x480: frames/s composed and frames/s encoded (MP4 and GIF).
    Record,
    /// Demonstrations collected per minute (all cores), dataset size per 1000 frames, and reader
    /// samples/s into augmented training batches (one core); --episodes per task.
    Data,
    /// Pre-training corpus: samples/s generated (one thread and all), rendered, and bytes per 1000 samples.
    PretrainData,
    /// VLA presets: parameters, image tokens, inference ms/step, training samples/s.
    Vla,
}

#[derive(Args)]
struct ExpertArgs {
    #[command(flatten)]
    episode: EpisodeArgs,
    /// Standard deviation of the expert's action noise.
    #[arg(long, default_value_t = 0.0)]
    noise: f64,
    /// Print only the outcome, not every step.
    #[arg(long)]
    quiet: bool,
    /// List the task names and exit.
    #[arg(long)]
    list: bool,
}

/// candle allocates a fresh buffer for every op. glibc either handed large freed blocks back to the
/// kernel and page-faulted them in again (a quarter of a training step), or, told to keep them in
/// one arena, searched its bins for them (`_int_malloc`, a fifth of a step beside a training run's
/// gigabytes of frames); mimalloc does neither (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` in the v3 `mimalloc.h` that `libmimalloc-sys` builds by default
/// (its Rust bindings leave this one out).
const MI_OPTION_PURGE_DELAY: c_int = 15;

unsafe extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
}

/// A training step frees its activations and allocates them again in the next. Purged after
/// mimalloc's default second, they came back as fresh pages for the kernel to zero: never purging
/// trains 8–9 % faster on an idle machine and 15–160 % faster with another job on the other core
/// (BENCHMARKS.md); the heap stays at a step's peak, which it reaches anyway.
/// `MIMALLOC_PURGE_DELAY` still overrides.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mimalloc's options may be set at any time.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

/// candle's CPU ops run slower on two threads than on one at the models' sizes (DESIGN.md §2.10):
/// work is parallelised at the top level instead (training shards, evaluation environments).
/// candle reads the variable when it first runs an op, so it is set before anything else.
fn single_threaded_candle() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: called first thing in main, before any other thread exists.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
}

fn main() -> ExitCode {
    single_threaded_candle();
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Gui(cli.gui)) {
        Command::Gui(args) => gui(args),
        Command::Expert(args) => expert(args),
        Command::Render(args) => render(args),
        Command::Bench(args) => match args.target {
            BenchTarget::Sim => bench::sim(&args.scene),
            BenchTarget::Expert => bench::expert(&args.scene, args.episodes, args.chains),
            BenchTarget::Record => bench::record(&args.scene),
            BenchTarget::Data => bench::data(&args.scene, args.episodes),
            BenchTarget::PretrainData => bench::pretrain_data(),
            BenchTarget::Vla => bench::vla(&args.preset, &args.formulation, args.history_window, args.batch),
        },
        Command::Record(args) => record(args),
        Command::Lang(args) => lang_command::run(args),
        Command::Eval(args) => eval_command::run(args),
        Command::Collect(args) => collect_command::run(args),
        Command::Compare(args) => compare_command::run(args),
        Command::Rollout(args) => rollout_command::run(args),
        Command::PretrainData(args) => pretrain_data_command::run(args),
        Command::Pretrain(args) => pretrain_command::run(args),
        Command::Study(args) => study_command::run(args),
        Command::Train(args) => train_command::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn gui(args: GuiArgs) -> Result<()> {
    vlasim::app::run(GuiOptions {
        scene: args.scene,
        seed: args.seed,
        size: args.size,
        driver: args.driver,
        models: args.models,
        model: args.model,
        attention: args.attention,
        compare: args.compare,
        instruction: args.instruction,
        chain: args.chain,
        screenshot: args.screenshot,
        speed: args.speed,
        record: args.record,
        after_steps: args.after_steps,
        close: args.close,
    })
}

fn expert(args: ExpertArgs) -> Result<()> {
    if args.list {
        for task in Task::all() {
            println!("{task}");
        }
        return Ok(());
    }
    let scene = Scene::resolve(&args.episode.scene)?;
    let settings = ExpertSettings { noise_std: args.noise, seed: args.episode.seed };
    let mut expert = Expert::new(settings);
    let quiet = args.quiet;
    let mut print_step = |world: &World, report: StepReport| {
        if !quiet {
            let ee = world.ee_pose().position_m;
            println!(
                "{:<26} step {:>3}  ee ({:+.3}, {:+.3}, {:+.3})  gripper {:.3}  oracle {}",
                report.task.name(),
                report.step,
                ee.x,
                ee.y,
                ee.z,
                world.gripper_width_m(),
                if report.success { "SUCCESS" } else { "-" }
            );
        }
        ControlFlow::Continue(())
    };
    match (args.episode.task, args.episode.chain) {
        (Some(name), None) => {
            let task = task_named(&name)?;
            let mut world = episode::task_world(&scene, task, args.episode.seed)?;
            let outcome = episode::run_subtask(&mut world, &mut expert, task, MAX_STEPS_PER_SUBTASK, &mut print_step);
            println!(
                "{}: {} in {} steps (scene {}, seed {})",
                task,
                if outcome.success { "success" } else { "FAILED" },
                outcome.steps,
                scene.name,
                args.episode.seed
            );
            if !outcome.success {
                bail!("the expert failed {task}");
            }
        }
        (None, Some(index)) => {
            let chain = chains::chain(EVAL_SEED, index);
            let mut world = episode::chain_world(&scene, &chain, index)?;
            let names: Vec<String> = chain.tasks.iter().map(|t| t.name()).collect();
            println!("chain {index}: {}", names.join(" → "));
            let outcomes = episode::run_chain(&mut world, &chain, &mut expert, &mut print_step);
            let completed = outcomes.iter().filter(|o| o.success).count();
            for outcome in &outcomes {
                println!(
                    "  {:<26} {} ({} steps)",
                    outcome.task.name(),
                    if outcome.success { "success" } else { "FAILED" },
                    outcome.steps
                );
            }
            println!("chain {index}: {completed}/5 completed");
        }
        _ => bail!("give either --task NAME or --chain INDEX (or --list)"),
    }
    Ok(())
}

fn render(args: RenderArgs) -> Result<()> {
    let scene = Scene::resolve(&args.scene)?;
    let chain = chains::chain(EVAL_SEED, args.seed);
    let world = episode::chain_world(&scene, &chain, args.seed)?;
    let mut cameras = PolicyCameras::new(&world);
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    for (view, name) in [(View::Static, "static"), (View::Gripper, "gripper")] {
        let image = cameras.render(&world, view);
        let path = args.out.join(format!("{name}_{}_seed{}.png", scene.name, args.seed));
        save_png(&image, 1, &path)?;
        if args.zoom > 1 {
            save_png(
                &image,
                args.zoom,
                &args.out.join(format!("{name}_{}_seed{}_x{}.png", scene.name, args.seed, args.zoom)),
            )?;
        }
        println!("wrote {} ({}x{})", path.display(), image.width, image.height);
    }
    Ok(())
}

fn save_png(image: &Image, zoom: u32, path: &std::path::Path) -> Result<()> {
    image.save_png(zoom, path).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" {
        fn mi_option_get(option: c_int) -> c_long;
    }

    /// Guards the hard-coded option number against a mimalloc whose options are numbered otherwise:
    /// 15 must be the purge delay, whose default is 1000 ms in v3 (`options.c`).
    #[test]
    fn option_15_is_mimallocs_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reading an option has no preconditions.
            assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, 1000);
        }
    }
}
