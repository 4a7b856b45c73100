//! `vlasim collect`: arguments, the progress bar and Ctrl-C for [`vlasim::data::collect`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use vlasim::data::collect::{self, CollectSettings, Collected, DaggerSettings, Progress};
use vlasim::data::simulate::DaggerLabels;
use vlasim::parallel;
use vlasim::sim::tasks::Task;

use crate::progress_log::TenthsLog;

#[derive(Args)]
pub struct CollectArgs {
    /// Successful expert demonstrations per (scene, task).
    #[arg(long, default_value_t = 10)]
    episodes_per_task: usize,
    /// Scenes, comma-separated: a, b, c, d or scene files.
    #[arg(long, value_delimiter = ',', default_value = "d")]
    scenes: Vec<String>,
    /// Tasks, comma-separated (default: all 34; `vlasim expert --list`).
    #[arg(long, value_delimiter = ',')]
    tasks: Vec<String>,
    /// Play sequences per scene: long expert runs chaining tasks, cut into oracle-labelled windows.
    #[arg(long, default_value_t = 0)]
    play_sequences: usize,
    /// Tasks the expert attempts in one play sequence.
    #[arg(long, default_value_t = 6)]
    play_tasks: usize,
    /// Shortest play window, in steps (CALVIN's annotated windows are 64 long).
    #[arg(long, default_value_t = 64)]
    window_steps: usize,
    /// DART noise: standard deviation added to the executed translation actions (action units,
    /// 1 = 2 cm); the clean action is recorded.
    #[arg(long, default_value_t = 0.1)]
    noise: f64,
    /// Share of demonstrations that begin mid-chain, after 1 to 4 random expert tasks (not
    /// recorded), as evaluation chains' later subtasks do, instead of at the neutral start.
    #[arg(long, default_value_t = 0.5)]
    mid_chain_share: f64,
    /// Global seed; every episode's seed derives from it, the scene, the task and the index.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// DAgger: a trained model folder that acts in extra episodes while the expert labels every
    /// frame, so training sees that model's own mistakes corrected.
    #[arg(long)]
    dagger_model: Option<PathBuf>,
    /// DAgger episodes per (scene, task).
    #[arg(long, default_value_t = 10, requires = "dagger_model")]
    dagger_episodes_per_task: usize,
    /// The expert labels every frame the model acts in, and a step executes the expert's action
    /// instead with this probability (β; default 0.3). Kept whether or not the task got done.
    #[arg(long, requires = "dagger_model", conflicts_with = "dagger_takeover_within")]
    dagger_expert_share: Option<f64>,
    /// Instead: the model acts for up to this many steps, then the expert takes over and only its
    /// steps are recorded (recovery demonstrations, kept when the expert succeeds).
    #[arg(long, requires = "dagger_model")]
    dagger_takeover_within: Option<usize>,
    /// Instead: the model acts alone and every frame records the action it executed; an episode
    /// is kept only when the model got the task done (self-imitation on its own successes).
    #[arg(long, requires = "dagger_model", conflicts_with_all = ["dagger_expert_share", "dagger_takeover_within"])]
    dagger_own_successes: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Output folder; rerun the same command to resume an interrupted collection.
    #[arg(long, default_value = "data/demos")]
    out: PathBuf,
}

/// Set by Ctrl-C: workers finish no further unit, finished ones stay staged.
static STOP: AtomicBool = AtomicBool::new(false);

pub fn run(args: CollectArgs) -> Result<()> {
    let tasks = if args.tasks.is_empty() { Task::all().iter().map(|t| t.name()).collect() } else { args.tasks };
    let settings = CollectSettings {
        scenes: args.scenes,
        tasks,
        episodes_per_task: args.episodes_per_task,
        play_sequences: args.play_sequences,
        play_tasks: args.play_tasks,
        window_steps: args.window_steps,
        noise_std: args.noise,
        mid_chain_share: args.mid_chain_share,
        seed: args.seed,
        dagger: args.dagger_model.map(|model| DaggerSettings {
            model,
            episodes_per_task: args.dagger_episodes_per_task,
            labels: match (args.dagger_own_successes, args.dagger_takeover_within) {
                (true, _) => DaggerLabels::OwnSuccesses,
                (false, Some(max_model_steps)) => DaggerLabels::Takeover { max_model_steps },
                (false, None) => DaggerLabels::Shadow { expert_share: args.dagger_expert_share.unwrap_or(0.3) },
            },
        }),
    };
    let workers = args.workers.unwrap_or_else(parallel::available_threads);
    ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
        eprintln!(
            "stopping: finished episodes are kept; run the same command again to resume (Ctrl-C again to quit at once)"
        );
    })
    .context("cannot install the Ctrl-C handler")?;
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} units, eta {eta} {msg}")
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    let log = TenthsLog::for_stderr();
    let show = |progress: Progress| {
        bar.set_length(progress.units as u64);
        bar.set_position(progress.units_done as u64);
        let message = format!("{} episodes, {} failed attempts", progress.episodes, progress.failed);
        if log.crossed_tenth(progress.units_done, progress.units) {
            eprintln!(
                "{} {}/{} units, {message}",
                indicatif::HumanDuration(bar.elapsed()),
                progress.units_done,
                progress.units
            );
        }
        bar.set_message(message);
    };
    let collected = collect::collect(&settings, &args.out, workers, &STOP, &show)?;
    bar.finish();
    match collected {
        Collected::Finished(summary) => println!(
            "wrote {}: {} episodes, {} frames, {} instructions, {:.1} MB ({} failed attempts discarded)",
            args.out.display(),
            summary.episodes,
            summary.frames,
            summary.tasks,
            summary.bytes as f64 / 1e6,
            summary.failed_attempts
        ),
        Collected::Stopped(progress) => println!(
            "stopped after {}/{} units ({} episodes staged in {}); run the same command to resume",
            progress.units_done,
            progress.units,
            progress.episodes,
            args.out.join(collect::STAGING_DIR).display()
        ),
        Collected::AlreadyComplete => println!("{} already holds this dataset", args.out.display()),
    }
    Ok(())
}
