//! The `vlasim` command line: a thin layer that parses arguments, calls the library and reports errors.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use vlasim::sim::chains::{self, EVAL_SEED};
use vlasim::sim::episode::{self, MAX_STEPS_PER_SUBTASK, StepReport};
use vlasim::sim::expert::{Expert, ExpertSettings};
use vlasim::sim::scene::Scene;
use vlasim::sim::tasks::Task;
use vlasim::sim::world::World;

#[derive(Parser)]
#[command(
    name = "vlasim",
    version,
    about = "Simulator and visualizer for Vision-Language-Action models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the scripted expert on one task or on an evaluation chain, printing the oracle each step.
    Expert(ExpertArgs),
}

#[derive(Args)]
struct ExpertArgs {
    /// Task name (e.g. open_drawer); `vlasim expert --list` shows all 34.
    #[arg(long, conflicts_with = "chain")]
    task: Option<String>,
    /// Index of an evaluation chain (seed 1000, as `vlasim eval` uses).
    #[arg(long)]
    chain: Option<u64>,
    /// Scene: a, b, c, d or a path to a scene file.
    #[arg(long, default_value = "d")]
    scene: String,
    /// Seed of the start state.
    #[arg(long, default_value_t = 0)]
    seed: u64,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Expert(args) => expert(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn expert(args: ExpertArgs) -> Result<()> {
    if args.list {
        for task in Task::all() {
            println!("{task}");
        }
        return Ok(());
    }
    let scene = Scene::resolve(&args.scene)?;
    let settings = ExpertSettings {
        noise_std: args.noise,
        seed: args.seed,
    };
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
    };
    match (args.task, args.chain) {
        (Some(name), None) => {
            let task = Task::from_name(&name)
                .with_context(|| format!("unknown task `{name}` (see `vlasim expert --list`)"))?;
            let mut world = episode::task_world(&scene, task, args.seed)?;
            let outcome = episode::run_subtask(
                &mut world,
                &mut expert,
                task,
                MAX_STEPS_PER_SUBTASK,
                &mut print_step,
            );
            println!(
                "{}: {} in {} steps (scene {}, seed {})",
                task,
                if outcome.success { "success" } else { "FAILED" },
                outcome.steps,
                scene.name,
                args.seed
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
