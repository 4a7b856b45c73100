//! `vlasim compare`: vlasim's Table V. With `--presets`, each preset missing from `--models` is
//! first trained there with one recipe and dataset (a `training.json`'s). Every model folder under
//! `--models` is then evaluated on the same chains (reusing a `results.json` in the folder when it
//! covers exactly those chains), timed per control step, and written up as `reports/backbones.md`
//! with PNG plots.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::Device;
use clap::Args;

use crate::device_args::DeviceArgs;
use crate::eval_command::evaluate_with_progress;
use crate::train_command::{datasets_or_recorded, read_training_record, stop_on_ctrl_c, train_unless_done};
use vlasim::eval::{EvalResults, EvalSettings, InstructedModel, Shard, Wording, WorkerPolicy};
use vlasim::parallel;
use vlasim::report::backbones::{self, BackboneRow};
use vlasim::report::plot;
use vlasim::sim::chains::{self, EVAL_SEED};
use vlasim::sim::episode;
use vlasim::sim::scene::Scene;
use vlasim::train::Compute;
use vlasim::train::checkpoint::{self, Recipe};
use vlasim::train::pretrainer::{PRETRAINING_FILE, PretrainingRecord};
use vlasim::train::trainer::TrainJob;
use vlasim::vla::catalog::{self, RESULTS_FILE};
use vlasim::vla::driver::VlaDriver;
use vlasim::vla::presets::{self, PRESETS};

/// Arguments of `vlasim compare`.
#[derive(Args)]
pub struct CompareArgs {
    /// Folder of model folders (each with config.json, model.safetensors, tokenizer.json).
    #[arg(long, default_value = catalog::SHIPPED_MODELS)]
    models: PathBuf,
    /// Chains every model is evaluated on (seed 1000, CALVIN's protocol).
    #[arg(long, default_value_t = 1000)]
    chains: u64,
    /// Scene the chains run in.
    #[arg(long, default_value = "d")]
    scene: String,
    /// Evaluation threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// The report; the plots are written beside it.
    #[arg(long, default_value = "reports/backbones.md")]
    out: PathBuf,
    /// First train these presets (comma-separated, or `all`) into MODELS/<preset>, each with the
    /// recipe and dataset of --recipe; a finished model there is reused, an unfinished run resumed.
    #[arg(long, value_delimiter = ',', requires = "recipe")]
    presets: Vec<String>,
    /// The `training.json` whose recipe and dataset every preset is trained with (e.g. the shipped
    /// model's, assets/models/kosmos-wide/training.json).
    #[arg(long)]
    recipe: Option<PathBuf>,
    /// Train on this dataset instead of the ones --recipe names (repeat it for several, read as one).
    #[arg(long)]
    data: Vec<PathBuf>,
    /// Train each preset for this many optimiser steps instead of the recipe's (the learning-rate
    /// schedule follows), for a quicker, smaller-budget comparison.
    #[arg(long, requires = "recipe")]
    steps: Option<u64>,
    /// Data-parallel training workers (default: all cores on the CPU, one on a GPU).
    #[arg(long)]
    workers: Option<usize>,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Control steps timed per model for its latency.
const LATENCY_STEPS: usize = 200;

pub fn run(args: CompareArgs) -> Result<()> {
    let scene = Scene::resolve(&args.scene)?;
    let device = args.device.open()?;
    if let Some(recipe) = &args.recipe {
        train_presets(&args, recipe, &device)?;
    }
    let folders = catalog::discover(&args.models);
    if folders.is_empty() {
        bail!("no model folder (with a config.json) in {}", args.models.display());
    }
    let threads = args.threads.unwrap_or_else(parallel::available_threads);
    let mut rows = Vec::new();
    for dir in &folders {
        let (card, _) = catalog::load(dir).with_context(|| format!("cannot load {}", dir.display()))?;
        let results = evaluation(dir, &scene, args.chains, threads, &device)?;
        let pretraining = pretraining_scale(dir);
        let training = checkpoint::read_record(dir)
            .ok()
            .map(|record| (record.progress.samples_seen, checkpoint::describe_datasets(&record.data.paths)));
        let row = BackboneRow {
            name: card.name,
            preset: card.preset,
            image_tokens: card.image_tokens,
            pretraining,
            parameters: card.parameters,
            training,
            avg_len_ci95: backbones::avg_len_ci95(&results),
            metrics: results.metrics,
            latency_ms: latency_ms(dir, &scene, &device)?,
        };
        println!(
            "{}: Avg. Len. {:.2} ± {:.2}, {:.2} ms/step",
            row.name, row.metrics.avg_len, row.avg_len_ci95, row.latency_ms
        );
        rows.push(row);
    }
    write_report(&args, &rows)
}

/// Trains each of `args.presets` missing from `args.models` with the recipe and data of the
/// `training.json` at `recipe_path` (the preset swapped in, no `--init`), on `device`.
fn train_presets(args: &CompareArgs, recipe_path: &Path, device: &Device) -> Result<()> {
    let reference = read_training_record(recipe_path, args.steps)?;
    let presets: Vec<String> = match args.presets.as_slice() {
        [all] if all == "all" => PRESETS.iter().map(|p| p.to_string()).collect(),
        named => named.to_vec(),
    };
    let data = datasets_or_recorded(&args.data, &reference);
    let compute = Compute { device: device.clone(), workers: args.device.training_workers(args.workers) };
    let stop = stop_on_ctrl_c()?;
    for preset in presets {
        let formulation = &reference.recipe.formulation;
        if !presets::supports(&preset, formulation) {
            println!("{preset}: no {formulation} formulation (the FiLM baseline has no language model), skipped");
            continue;
        }
        let job = TrainJob {
            data: data.clone(),
            out: args.models.join(&preset),
            recipe: Recipe { preset: preset.clone(), init: None, ..reference.recipe.clone() },
            model: presets::preset_with(&preset, formulation)?,
            compute: compute.clone(),
            resume: false,
        };
        train_unless_done(job, stop)?;
    }
    Ok(())
}

/// What the model in `dir` started from: `none`, the vision-language pre-training scale of its
/// `--init` folder ("100000 VL samples"), or that folder when it was not pre-trained by `vlasim pretrain`.
fn pretraining_scale(dir: &Path) -> String {
    let Some(init) = checkpoint::read_record(dir).ok().and_then(|record| record.recipe.init) else {
        return "none".to_string();
    };
    match checkpoint::read::<PretrainingRecord>(&init, PRETRAINING_FILE) {
        Ok(pretraining) => format!("{} VL samples", pretraining.recipe.samples),
        Err(_) => init.display().to_string(),
    }
}

/// The folder's saved evaluation of exactly these chains, else a fresh one on `device`, saved in
/// the folder (see [`evaluation_files`]).
pub fn evaluation(dir: &Path, scene: &Scene, chains: u64, threads: usize, device: &Device) -> Result<EvalResults> {
    if let Some((path, saved)) = saved_evaluation(dir, scene, chains) {
        println!("{}: reusing {}", dir.display(), path.display());
        return Ok(saved);
    }
    let settings = EvalSettings {
        model: dir.display().to_string(),
        scene: scene.clone(),
        seed: EVAL_SEED,
        total_chains: chains,
        expert_leads: 0,
        wording: Wording::HeldOut,
        shard: Shard::WHOLE,
        threads,
    };
    println!("{}: evaluating on {chains} chains", dir.display());
    let make = || Ok(Box::new(InstructedModel::load(dir, device, Wording::HeldOut)?) as WorkerPolicy);
    let results = evaluate_with_progress(&settings, &make)?;
    let [main, beside] = evaluation_files(dir, scene, chains);
    let path = if main.exists() {
        println!("{}: keeping its {RESULTS_FILE}, another evaluation; this one goes beside it", dir.display());
        beside
    } else {
        main
    };
    results.save(&path)?;
    Ok(results)
}

/// Where an evaluation of `chains` chains of `scene` is saved in `dir`: its `results.json`, the one
/// the GUI's model card shows, or, when that holds another evaluation (`vlasim eval` on 1000 chains,
/// say, and this a quick comparison on 4), `results-<scene>-<chains>.json` beside it, so that no
/// evaluation is ever overwritten by a different one.
fn evaluation_files(dir: &Path, scene: &Scene, chains: u64) -> [PathBuf; 2] {
    let scene_name: String =
        scene.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    [dir.join(RESULTS_FILE), dir.join(format!("results-{scene_name}-{chains}.json"))]
}

/// The saved whole evaluation of `chains` chains of `scene` by the model in `dir` alone, as
/// [`evaluation`] would make, with the file it is in.
pub fn saved_evaluation(dir: &Path, scene: &Scene, chains: u64) -> Option<(PathBuf, EvalResults)> {
    evaluation_files(dir, scene, chains).into_iter().find_map(|path| {
        let saved = EvalResults::load(&path).ok().filter(|saved| {
            saved.scene == scene.name
                && saved.seed == EVAL_SEED
                && saved.total_chains == chains
                && saved.expert_leads == 0
                && saved.wording == Wording::HeldOut
                && saved.chains.len() as u64 == chains
        })?;
        Some((path, saved))
    })
}

/// Wall milliseconds per closed-loop step on one thread: render the policy cameras, run the
/// model (on `device`), step the world, on evaluation chain 0's first subtask.
fn latency_ms(dir: &Path, scene: &Scene, device: &Device) -> Result<f64> {
    let chain = chains::chain(EVAL_SEED, 0);
    let mut world = episode::chain_world(scene, &chain, 0)?;
    let mut driver = VlaDriver::load(dir, device)?;
    driver.begin(vlasim::lang::instructions::Instructions::embedded().eval_phrasing(chain.tasks[0]), &world)?;
    let mut act = |world: &mut vlasim::sim::world::World| -> Result<()> {
        let action = driver.act(world)?;
        world.step(&action);
        Ok(())
    };
    act(&mut world)?;
    let start = Instant::now();
    for _ in 0..LATENCY_STEPS {
        act(&mut world)?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e3 / LATENCY_STEPS as f64)
}

fn write_report(args: &CompareArgs, rows: &[BackboneRow]) -> Result<()> {
    let folder = args.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder).with_context(|| format!("cannot create {}", folder.display()))?;
    let plots = [
        ("backbones_avg_len.png", plot::avg_len_bars(rows)),
        ("backbones_success_rates.png", plot::success_rate_curves(rows)),
        ("backbones_latency.png", plot::avg_len_against_latency(rows)),
    ];
    for (name, image) in &plots {
        let path = folder.join(name);
        image.save_png(1, &path).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut command = String::from("vlasim compare");
    let mut training = String::new();
    if let Some(recipe) = &args.recipe {
        command += &format!(" --presets {} --recipe {}", args.presets.join(","), recipe.display());
        training =
            format!("Every model that command trained got one recipe and dataset, those of `{}`", recipe.display());
        for data in &args.data {
            command += &format!(" --data {}", data.display());
        }
        if !args.data.is_empty() {
            training += &format!(" with the data of `{}`", checkpoint::describe_datasets(&args.data));
        }
        if let Some(steps) = args.steps {
            command += &format!(" --steps {steps}");
            training += &format!(", for {steps} steps");
        }
        training += ". ";
    }
    training += "The training column names each model's dataset (its `training.json` holds the whole recipe). ";
    command += &format!(
        " --models {} --chains {} --scene {} --out {}",
        args.models.display(),
        args.chains,
        args.scene,
        args.out.display()
    );
    let mut text = format!(
        "# Backbones compared\n\nEvery model folder in `{}`, evaluated on the same {} chains of scene {} \
         (CALVIN's protocol: seed {EVAL_SEED}, held-out phrasings, 360 steps per subtask, first failure ends \
         the chain). {training}Latency: wall time per closed-loop control step (cameras, model, world step), \
         one thread. Regenerate with:\n\n```sh\n{command}\n```\n\n",
        args.models.display(),
        args.chains,
        args.scene
    );
    text += &backbones::markdown_table(rows);
    text += "\n";
    for (name, _) in &plots {
        text += &format!("![{name}]({name})\n");
    }
    std::fs::write(&args.out, text).with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("wrote {} and its plots", args.out.display());
    Ok(())
}
