//! `vlasim eval`: CALVIN-style evaluation of a policy over many chains, and `vlasim eval merge`
//! to combine the results of shards run on different machines.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use indicatif::{HumanDuration, ProgressBar, ProgressStyle};

use vlasim::eval::{self, EvalResults, EvalSettings, InstructedModel, Shard, Wording, WorkerPolicy};
use vlasim::parallel;
use vlasim::sim::chains::EVAL_SEED;
use vlasim::sim::expert::{Expert, ExpertSettings};
use vlasim::sim::scene::Scene;

use crate::device_args::DeviceArgs;
use crate::progress_log::TenthsLog;

/// Arguments of `vlasim eval`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    command: Option<EvalCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Combine the results.json of the shards of one evaluation.
    Merge(MergeArgs),
}

#[derive(Args)]
struct RunArgs {
    /// The policy: a model folder (config.json, model.safetensors, tokenizer.json), or `expert`
    /// (the scripted expert, the privileged upper bound). Required; optional to clap only because
    /// a required flattened argument would be demanded of `vlasim eval merge` too.
    #[arg(long)]
    model: Option<String>,
    /// Chains in the whole evaluation.
    #[arg(long, default_value_t = 1000)]
    chains: u64,
    /// Scene: a, b, c, d or a path to a scene file.
    #[arg(long, default_value = "d")]
    scene: String,
    /// Seed the chains are drawn with.
    #[arg(long, default_value_t = EVAL_SEED)]
    seed: u64,
    /// The scripted expert does each chain's first N subtasks, the policy the rest: with 1, the
    /// policy starts mid-chain from the expert's ends of subtasks instead of its own (SR@1..N then
    /// count the expert's subtasks).
    #[arg(long, default_value_t = 0, value_name = "N")]
    expert_leads: usize,
    /// The words a model is told for each subtask: `held-out` is CALVIN's protocol; `training`
    /// tells each task's first training phrasing instead, so that against a held-out evaluation
    /// of the same model it measures what the unseen words cost.
    #[arg(long, value_enum, default_value_t = Wording::HeldOut)]
    wording: Wording,
    /// Evaluate only slice K of N equal slices of the chains (0-based), e.g. `--shard 3/8`.
    #[arg(long, default_value = "0/1", value_name = "K/N")]
    shard: Shard,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Where to write the results.
    #[arg(long, default_value = "results.json")]
    out: PathBuf,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args)]
struct MergeArgs {
    /// results.json files of the shards.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Where to write the merged results.
    #[arg(long, default_value = "results.json")]
    out: PathBuf,
    /// Merge even if some chains are missing (the metrics then cover only the chains present).
    #[arg(long)]
    allow_partial: bool,
}

/// Runs `vlasim eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    match args.command {
        Some(EvalCommand::Merge(merge)) => run_merge(merge),
        None => run_evaluation(args.run),
    }
}

fn run_evaluation(args: RunArgs) -> Result<()> {
    let Some(model) = args.model else {
        bail!("--model is required: a model folder, or `expert`");
    };
    let make_policy: Box<dyn Fn() -> Result<WorkerPolicy>> = if model == "expert" {
        Box::new(|| Ok(Box::new(Expert::new(ExpertSettings::default())) as WorkerPolicy))
    } else {
        let dir = PathBuf::from(&model);
        if !dir.is_dir() {
            bail!("--model {}: not a model folder, nor `expert`", dir.display());
        }
        let device = args.device.open()?;
        let wording = args.wording;
        Box::new(move || Ok(Box::new(InstructedModel::load(&dir, &device, wording)?) as WorkerPolicy))
    };
    let settings = EvalSettings {
        model,
        scene: Scene::resolve(&args.scene)?,
        seed: args.seed,
        total_chains: args.chains,
        expert_leads: args.expert_leads,
        wording: args.wording,
        shard: args.shard,
        threads: args.threads.unwrap_or_else(parallel::available_threads),
    };
    let range = settings.shard.range(settings.total_chains);
    let results = evaluate_with_progress(&settings, make_policy.as_ref())?;
    results.save(&args.out)?;
    println!(
        "{} on scene {}, chains {}..{} of {} (seed {}), {:.1} s on {} threads",
        results.model,
        results.scene,
        range.start,
        range.end,
        results.total_chains,
        results.seed,
        results.wall_time_s,
        results.threads
    );
    if results.expert_leads > 0 {
        println!("the scripted expert did the first {} subtask(s) of every chain", results.expert_leads);
    }
    if results.wording == Wording::Training {
        println!("told each task's first training phrasing, not the held-out one: not CALVIN's protocol");
    }
    print!("{}", results.metrics.summary());
    println!("wrote {}", args.out.display());
    Ok(())
}

/// [`eval::evaluate`] with a progress bar of chains done and the running Avg. Len.
pub fn evaluate_with_progress(
    settings: &EvalSettings,
    make_policy: &dyn Fn() -> Result<WorkerPolicy>,
) -> Result<EvalResults> {
    let range = settings.shard.range(settings.total_chains);
    let chains = (range.end - range.start) as usize;
    let progress = ProgressBar::new(chains as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} chains  {msg}  [{elapsed_precise} < {eta_precise}]")
            .expect("valid progress template"),
    );
    let log = TenthsLog::for_stderr();
    let completed = std::sync::Mutex::new((0usize, 0usize));
    let results = eval::evaluate(settings, make_policy, &|record| {
        let mut completed = completed.lock().expect("progress lock");
        completed.0 += 1;
        completed.1 += record.completed();
        let average = format!("Avg. Len. {:.2}", completed.1 as f64 / completed.0 as f64);
        if log.crossed_tenth(completed.0, chains) {
            eprintln!("{} {}/{chains} chains, {average}", HumanDuration(progress.elapsed()), completed.0);
        }
        progress.set_message(average);
        progress.inc(1);
    })?;
    progress.finish();
    Ok(results)
}

fn run_merge(args: MergeArgs) -> Result<()> {
    let parts = args
        .files
        .iter()
        .map(|path| Ok((path.display().to_string(), EvalResults::load(path)?)))
        .collect::<Result<Vec<_>>>()?;
    let merged = EvalResults::merge(&parts, args.allow_partial)?;
    merged.save(&args.out)?;
    print!("{}", merged.metrics.summary());
    println!("merged {} files into {}", parts.len(), args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        eval: EvalArgs,
    }

    #[test]
    fn merge_needs_no_model_and_an_evaluation_does() {
        let cli = Cli::try_parse_from(["eval", "merge", "a.json", "b.json", "--out", "all.json"]).unwrap();
        assert!(matches!(cli.eval.command, Some(EvalCommand::Merge(ref merge)) if merge.files.len() == 2));
        let evaluation = Cli::try_parse_from(["eval", "--model", "expert"]).unwrap();
        assert_eq!(evaluation.eval.run.model.as_deref(), Some("expert"));
        let unnamed = Cli::try_parse_from(["eval", "--chains", "10"]).unwrap();
        let error = run(unnamed.eval).unwrap_err().to_string();
        assert!(error.contains("--model is required"), "{error}");
    }
}
