//! `vlasim study`: RoboVLMs' Finding 5 in vlasim. For each preset and vision-language pre-training
//! scale, the backbone is pre-trained on the first N corpus samples (none for scale 0), fine-tuned
//! into a VLA with one recipe in each setting — the seen scene (the recipe's scenes), the unseen
//! scene (a–c only) and 10 % of the demonstrations — and evaluated on the same chains of scene d.
//! Every run lives in its own folder under `--runs` and is reused when finished or resumed when
//! not, so the study can be spread over many sessions; `reports/pretraining.md` and its plot are
//! rewritten from whatever is finished.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use clap::{Args, ValueEnum};

use crate::compare_command::{evaluation, saved_evaluation};
use crate::device_args::DeviceArgs;
use crate::pretrain_command::pretrain_unless_done;
use crate::train_command::{datasets_or_recorded, read_training_record, stop_on_ctrl_c, train_unless_done};
use vlasim::eval::EvalResults;
use vlasim::parallel;
use vlasim::report::backbones::{avg_len_ci95, paired_avg_len_difference};
use vlasim::report::plot::{self, ScaleSeries};
use vlasim::sim::scene::Scene;
use vlasim::train::Compute;
use vlasim::train::checkpoint::{self, Recipe, TRAINING_FILE};
use vlasim::train::pretrainer::{PRETRAINING_FILE, PretrainJob, PretrainRecipe};
use vlasim::train::schedule::{Decay, Optimisation};
use vlasim::train::trainer::TrainJob;
use vlasim::vla::catalog::RESULTS_FILE;
use vlasim::vla::model::CONFIG_FILE;
use vlasim::vla::presets;

/// A fine-tuning setting of the study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Setting {
    /// The recipe's scenes and share (ABCD→D with the shipped recipe).
    Seen,
    /// Scenes a, b and c only (ABC→D).
    Unseen,
    /// A tenth of the recipe's share of the demonstrations (data efficiency, the paper's Table IV).
    Data10,
}

impl Setting {
    fn name(self) -> &'static str {
        match self {
            Setting::Seen => "seen",
            Setting::Unseen => "unseen",
            Setting::Data10 => "data10",
        }
    }

    /// `recipe` adapted to this setting.
    fn recipe(self, recipe: &Recipe) -> Recipe {
        match self {
            Setting::Seen => recipe.clone(),
            Setting::Unseen => Recipe { scenes: ["a", "b", "c"].map(String::from).to_vec(), ..recipe.clone() },
            Setting::Data10 => Recipe { data_share: recipe.data_share / 10.0, ..recipe.clone() },
        }
    }
}

/// Arguments of `vlasim study`.
#[derive(Args)]
pub struct StudyArgs {
    /// Presets to study (vision-language ones).
    #[arg(long, value_delimiter = ',', default_value = "paligemma,kosmos")]
    presets: Vec<String>,
    /// Pre-training scales: corpus samples (0: none).
    #[arg(long, value_delimiter = ',', default_value = "0,10000,100000,1000000")]
    scales: Vec<u64>,
    /// Settings to fine-tune in.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "seen,unseen,data10")]
    settings: Vec<Setting>,
    /// The `training.json` whose recipe and dataset every fine-tuning run gets (its preset swapped).
    #[arg(long)]
    recipe: PathBuf,
    /// Fine-tune on this dataset instead of the ones --recipe names (repeat it for several, read as one).
    #[arg(long)]
    data: Vec<PathBuf>,
    /// Fine-tune for this many optimiser steps instead of the recipe's (the schedule follows).
    #[arg(long)]
    steps: Option<u64>,
    /// Pre-training optimiser steps at every scale.
    #[arg(long, default_value_t = 5000)]
    pretrain_steps: u64,
    /// Pre-training (sample, text) pairs per step.
    #[arg(long, default_value_t = 64)]
    pretrain_batch: usize,
    /// Where the runs go: pt-<preset>-<scale> and <preset>-<scale>-<setting>.
    #[arg(long, default_value = "runs/study")]
    runs: PathBuf,
    /// Evaluation chains of scene d.
    #[arg(long, default_value_t = 1000)]
    chains: u64,
    /// Training workers and evaluation threads (default: all cores; one training worker on a GPU).
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    device: DeviceArgs,
    /// The report.
    #[arg(long, default_value = "reports/pretraining.md")]
    out: PathBuf,
    /// Rewrite the report from the finished (or kept) runs of this grid and run nothing.
    #[arg(long)]
    report_only: bool,
}

/// Runs `vlasim study`.
pub fn run(args: StudyArgs) -> Result<()> {
    let reference = read_training_record(&args.recipe, args.steps)?;
    let data = datasets_or_recorded(&args.data, &reference);
    let threads = args.threads.unwrap_or_else(parallel::available_threads).max(1);
    let compute = Compute { device: args.device.open()?, workers: args.device.training_workers(args.threads) };
    let scene = Scene::resolve("d")?;
    let stop = stop_on_ctrl_c()?;
    let formulation = reference.recipe.formulation.clone();
    let records = records_folder(&args);
    let asked = Grid::asked(&args);
    let grid = asked.clone().with_kept(&records, &args, &reference.recipe, &scene)?;
    for (preset, scale, setting) in grid.cells() {
        let (out, recipe) = fine_tuning(&args, &reference.recipe, preset, scale, setting);
        if finished_run(&out, &recipe, &scene, args.chains).is_some() {
            keep(&records, &out, &KEPT_RUN_FILES)?;
        } else {
            restore_kept_run(&records, &out, &recipe, &scene, args.chains)?;
        }
    }
    let report = || write_report(&args, &grid, &finished_cells(&args, &grid, &reference.recipe, &scene));
    if args.report_only {
        return report();
    }
    for preset in &asked.presets {
        ensure!(preset != "film", "the FiLM baseline has no language model to pre-train");
        let model = presets::preset_with(preset, &formulation)?;
        for &scale in &asked.scales {
            let init = pretraining_folder(&args, preset, scale);
            let runs: Vec<(PathBuf, Recipe)> = asked
                .settings
                .iter()
                .map(|&setting| fine_tuning(&args, &reference.recipe, preset, scale, setting))
                .collect();
            let to_train = runs.iter().any(|(out, recipe)| finished_run(out, recipe, &scene, args.chains).is_none());
            if let Some(out) = init.as_ref().filter(|_| to_train) {
                let recipe = PretrainRecipe {
                    preset: preset.clone(),
                    formulation: formulation.clone(),
                    corpus_seed: 0,
                    samples: scale,
                    optimisation: Optimisation {
                        steps: args.pretrain_steps,
                        batch_size: args.pretrain_batch,
                        lr: 1e-3,
                        warmup_steps: args.pretrain_steps / 25,
                        decay: Decay::Cosine,
                        weight_decay: 0.01,
                        grad_clip: Some(1.0),
                        eval_every: (args.pretrain_steps / 10).max(1),
                        checkpoint_every: (args.pretrain_steps / 10).max(1),
                        ema_decay: None,
                    },
                    validation_samples: 256,
                    seed: 0,
                };
                let job = PretrainJob {
                    out: out.clone(),
                    recipe,
                    model: model.clone(),
                    compute: compute.clone(),
                    resume: false,
                };
                pretrain_unless_done(job, stop)?;
                keep(&records, out, &[CONFIG_FILE, PRETRAINING_FILE])?;
            }
            for (out, recipe) in runs {
                let job = TrainJob {
                    data: data.clone(),
                    out: out.clone(),
                    recipe,
                    model: model.clone(),
                    compute: compute.clone(),
                    resume: false,
                };
                train_unless_done(job, stop)?;
                evaluation(&out, &scene, args.chains, threads, &compute.device)?;
                keep(&records, &out, &KEPT_RUN_FILES)?;
                report()?;
            }
        }
    }
    report()
}

/// Every cell of `grid` whose run is finished, with its evaluation.
fn finished_cells(args: &StudyArgs, grid: &Grid, reference: &Recipe, scene: &Scene) -> Vec<Cell> {
    grid.cells()
        .filter_map(|(preset, scale, setting)| {
            let (out, recipe) = fine_tuning(args, reference, preset, scale, setting);
            let results = finished_run(&out, &recipe, scene, args.chains)?;
            Some(Cell { preset: preset.clone(), scale, setting, results })
        })
        .collect()
}

/// The cells a report covers: every preset in every setting at every scale.
#[derive(Clone)]
struct Grid {
    presets: Vec<String>,
    scales: Vec<u64>,
    settings: Vec<Setting>,
}

impl Grid {
    /// The cells the command line asks for.
    fn asked(args: &StudyArgs) -> Grid {
        Grid { presets: args.presets.clone(), scales: args.scales.clone(), settings: args.settings.clone() }
    }

    /// This grid grown by the finished cells of the same study kept beside the report, so that a
    /// run restricted to some cells rewrites the report without dropping the others; sorted, so
    /// the report does not depend on which cells a run asked for.
    fn with_kept(mut self, records: &Path, args: &StudyArgs, reference: &Recipe, scene: &Scene) -> Result<Grid> {
        let Ok(entries) = std::fs::read_dir(records) else {
            return Ok(self);
        };
        for entry in entries {
            let name = entry.with_context(|| format!("cannot list {}", records.display()))?.file_name();
            let Some((preset, scale, setting)) = parse_fine_tuning_name(&name.to_string_lossy()) else {
                continue;
            };
            let (_, recipe) = fine_tuning(args, reference, &preset, scale, setting);
            if finished_run(&records.join(&name), &recipe, scene, args.chains).is_none() {
                continue;
            }
            if !self.presets.contains(&preset) {
                self.presets.push(preset);
            }
            if !self.scales.contains(&scale) {
                self.scales.push(scale);
            }
            if !self.settings.contains(&setting) {
                self.settings.push(setting);
            }
        }
        self.presets.sort_unstable();
        self.scales.sort_unstable();
        self.settings.sort_unstable();
        Ok(self)
    }

    /// Every cell: preset, scale and setting.
    fn cells(&self) -> impl Iterator<Item = (&String, u64, Setting)> {
        self.rows().flat_map(|(preset, setting)| self.scales.iter().map(move |&scale| (preset, scale, setting)))
    }

    /// Every preset in every setting: the report's rows.
    fn rows(&self) -> impl Iterator<Item = (&String, Setting)> {
        self.presets.iter().flat_map(|preset| self.settings.iter().map(move |&setting| (preset, setting)))
    }
}

/// Where the backbone of `preset` pre-trained on `scale` corpus samples lives (none at scale 0).
fn pretraining_folder(args: &StudyArgs, preset: &str, scale: u64) -> Option<PathBuf> {
    (scale > 0).then(|| args.runs.join(format!("pt-{preset}-{scale}")))
}

/// The folder and recipe of one fine-tuning of the study: `<preset>-<scale>-<setting>` under `--runs`.
fn fine_tuning(args: &StudyArgs, reference: &Recipe, preset: &str, scale: u64, setting: Setting) -> (PathBuf, Recipe) {
    let base = Recipe { preset: preset.to_owned(), init: pretraining_folder(args, preset, scale), ..reference.clone() };
    (args.runs.join(format!("{preset}-{scale}-{}", setting.name())), setting.recipe(&base))
}

/// The preset, scale and setting a fine-tuning folder's name stands for (presets may hold dashes).
fn parse_fine_tuning_name(name: &str) -> Option<(String, u64, Setting)> {
    let mut parts = name.rsplitn(3, '-');
    let setting = Setting::from_str(parts.next()?, false).ok()?;
    let scale = parts.next()?.parse().ok()?;
    Some((parts.next()?.to_owned(), scale, setting))
}

/// Where the report keeps its runs' records: `reports/pretraining/` beside `reports/pretraining.md`.
fn records_folder(args: &StudyArgs) -> PathBuf {
    args.out.with_extension("")
}

/// What the report keeps of a finished fine-tuning, without its weights: enough to read it again,
/// pair its chains with another cell's and, on another machine, take it up instead of running it.
const KEPT_RUN_FILES: [&str; 3] = [CONFIG_FILE, TRAINING_FILE, RESULTS_FILE];

/// Copies `files` of the run in `out` into the folder of the same name under `records` (beside the
/// report), so they travel with it where `--runs` does not.
fn keep(records: &Path, out: &Path, files: &[&str]) -> Result<()> {
    copy_files(out, &kept_folder(records, out)?, files)
}

/// The folder under `records` that keeps what the run in `out` leaves behind.
fn kept_folder(records: &Path, out: &Path) -> Result<PathBuf> {
    Ok(records.join(out.file_name().context("a run folder has a name")?))
}

/// Copies `files` from the folder `from` into the folder `to`, which is made if need be.
fn copy_files(from: &Path, to: &Path, files: &[&str]) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for file in files {
        let (source, target) = (from.join(file), to.join(file));
        std::fs::copy(&source, &target)
            .with_context(|| format!("cannot copy {} to {}", source.display(), target.display()))?;
    }
    Ok(())
}

/// Puts back a run the report kept when `out` holds none, so a study continued on a fresh machine
/// (the runs gone, the report and its records checked out) takes up its finished cells instead of
/// running them again. Only a kept run of this very recipe and evaluation is taken up.
fn restore_kept_run(records: &Path, out: &Path, recipe: &Recipe, scene: &Scene, chains: u64) -> Result<()> {
    if out.join(TRAINING_FILE).exists() {
        return Ok(());
    }
    let kept = kept_folder(records, out)?;
    if finished_run(&kept, recipe, scene, chains).is_none() {
        return Ok(());
    }
    copy_files(&kept, out, &KEPT_RUN_FILES)?;
    println!("{}: restored from {} (the trained weights are not kept)", out.display(), kept.display());
    Ok(())
}

/// The evaluation of the run in `dir` if it is a finished run of this very recipe, evaluated on
/// these chains.
fn finished_run(dir: &Path, recipe: &Recipe, scene: &Scene, chains: u64) -> Option<EvalResults> {
    let record = checkpoint::read_record(dir).ok()?;
    if !record.finished() || record.recipe != *recipe {
        return None;
    }
    saved_evaluation(dir, scene, chains).map(|(_, results)| results)
}

/// The `vlasim study` command that runs (or, once finished, regenerates) the study of `grid`.
fn command_line(args: &StudyArgs, grid: &Grid) -> String {
    let scales: Vec<String> = grid.scales.iter().map(u64::to_string).collect();
    let settings: Vec<&str> = grid.settings.iter().map(|s| s.name()).collect();
    let mut line = format!(
        "vlasim study --recipe {} --presets {} --scales {} --settings {}",
        args.recipe.display(),
        grid.presets.join(","),
        scales.join(","),
        settings.join(","),
    );
    for data in &args.data {
        line += &format!(" --data {}", data.display());
    }
    if let Some(steps) = args.steps {
        line += &format!(" --steps {steps}");
    }
    line + &format!(
        " --pretrain-steps {} --pretrain-batch {} --runs {} --chains {}",
        args.pretrain_steps,
        args.pretrain_batch,
        args.runs.display(),
        args.chains
    )
}

/// One finished run of the study.
struct Cell {
    preset: String,
    scale: u64,
    setting: Setting,
    results: EvalResults,
}

/// Avg. Len. per preset and setting (rows) against the pre-training scale (columns), then each
/// pre-trained cell's difference from its preset and setting without pre-training.
fn write_report(args: &StudyArgs, grid: &Grid, cells: &[Cell]) -> Result<()> {
    let steps_note = args.steps.map_or_else(String::new, |steps| format!(" for {steps} steps"));
    let mut text = format!(
        "# Vision-language pre-training and VLA quality (RoboVLMs' Finding 5)\n\n\
         Avg. Len. on {} chains of scene d (CALVIN's protocol) after fine-tuning with the recipe of `{}`{steps_note}, \
         by VL pre-training scale (corpus samples; {} steps of {} pairs), ± the half-width of its 95 % \
         confidence interval. Settings: seen = the recipe's \
         scenes, unseen = scenes a–c only, data10 = a tenth of the demonstrations. Regenerate (finished \
         runs are reused) with:\n\n```sh\n{}\n```\n\nEach finished run's `config.json`, `training.json` \
         (or `pretraining.json`) and `results.json` are kept in `{}/`, without the weights; the same command \
         on another machine takes up the finished cells from there.\n\n",
        args.chains,
        args.recipe.display(),
        args.pretrain_steps,
        args.pretrain_batch,
        command_line(args, grid),
        records_folder(args).display(),
    );
    let cell = |preset: &String, scale: u64, setting: Setting| {
        cells.iter().find(|c| (&c.preset, c.scale, c.setting) == (preset, scale, setting)).map(|c| &c.results)
    };
    text += &grid_table(grid, &grid.scales, |preset, scale, setting| {
        let results = cell(preset, scale, setting)?;
        Some(format!("{:.2} ± {:.2}", results.metrics.avg_len, avg_len_ci95(results)))
    });
    if grid.scales.contains(&0) {
        let pretrained: Vec<u64> = grid.scales.iter().copied().filter(|&scale| scale > 0).collect();
        text += "\nPaired with the same preset and setting without pre-training, chain by chain (the same chains): \
                 the difference of Avg. Len. ± the half-width of its 95 % confidence interval. An interval that \
                 holds 0 is no measurable change.\n\n";
        text += &grid_table(grid, &pretrained, |preset, scale, setting| {
            let (difference, half) =
                paired_avg_len_difference(cell(preset, scale, setting)?, cell(preset, 0, setting)?)?;
            Some(format!("{difference:+.2} ± {half:.2}"))
        });
    }
    let plot_path = args.out.with_extension("png");
    let plot_name = plot_path.file_name().context("the report has a file name")?.to_string_lossy();
    text += &format!("\n![Avg. Len. against pre-training scale]({plot_name})\n");
    let folder = args.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder).with_context(|| format!("cannot create {}", folder.display()))?;
    let series: Vec<ScaleSeries> = grid
        .rows()
        .map(|(preset, setting)| ScaleSeries {
            name: format!("{preset} {}", setting.name()),
            points: grid
                .scales
                .iter()
                .map(|&scale| cell(preset, scale, setting).map(|r| (r.metrics.avg_len, avg_len_ci95(r))))
                .collect(),
        })
        .collect();
    plot::avg_len_against_scale(&grid.scales, &series)
        .save_png(1, &plot_path)
        .with_context(|| format!("cannot write {}", plot_path.display()))?;
    std::fs::write(&args.out, text).with_context(|| format!("cannot write {}", args.out.display()))
}

/// A Markdown table with a row per preset and setting and a column per scale, each cell `entry`'s
/// text or `—` where it has none yet.
fn grid_table(grid: &Grid, scales: &[u64], entry: impl Fn(&String, u64, Setting) -> Option<String>) -> String {
    let mut table = String::from("| preset | setting |");
    for scale in scales {
        table += &format!(" {scale} |");
    }
    table += "\n|---|---|";
    table += &"---|".repeat(scales.len());
    table += "\n";
    for (preset, setting) in grid.rows() {
        table += &format!("| {preset} | {} |", setting.name());
        for &scale in scales {
            table += &format!(" {} |", entry(preset, scale, setting).as_deref().unwrap_or("—"));
        }
        table += "\n";
    }
    table
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(clap::Subcommand)]
    enum Command {
        Study(StudyArgs),
    }

    fn parse(line: &str) -> StudyArgs {
        let Command::Study(args) = Cli::parse_from(line.split(' ')).command;
        args
    }

    /// The report's command runs the study it reports, not the default grid.
    #[test]
    fn the_reports_command_is_the_study_that_wrote_it() {
        let given = parse(
            "vlasim study --recipe r/training.json --presets kosmos --scales 0,100000 --settings seen,data10 \
             --data d1 --data d2 --steps 500 --pretrain-steps 40 --runs x --chains 9",
        );
        let again = parse(&command_line(&given, &Grid::asked(&given)));
        assert_eq!(command_line(&again, &Grid::asked(&again)), command_line(&given, &Grid::asked(&given)));
        assert_eq!(
            (again.presets, again.scales, again.settings),
            (vec!["kosmos".to_owned()], vec![0, 100_000], vec![Setting::Seen, Setting::Data10])
        );
        assert_eq!((again.data, again.steps, again.pretrain_steps), (vec!["d1".into(), "d2".into()], Some(500), 40));
    }

    /// A run restricted to one cell reports every cell of the same study kept beside the report (the
    /// repository's own records), and none of a study with another fine-tuning budget.
    #[test]
    fn a_restricted_run_reports_the_kept_cells_of_its_study() -> Result<()> {
        let scene = Scene::resolve("d")?;
        let records = Path::new("reports/pretraining");
        let grown = |line: &str| -> Result<Grid> {
            let args = parse(line);
            let reference = read_training_record(&args.recipe, args.steps)?;
            Grid::asked(&args).with_kept(records, &args, &reference.recipe, &scene)
        };
        let one_cell = "vlasim study --recipe assets/models/paligemma/training.json --presets kosmos --scales 0 \
                        --settings data10 --steps 10000 --runs runs/study --chains 500";
        let grid = grown(one_cell)?;
        assert_eq!(grid.presets, ["kosmos", "paligemma"]);
        assert!(grid.scales.starts_with(&[0, 10_000, 100_000]), "{:?}", grid.scales);
        assert_eq!(grid.settings.first(), Some(&Setting::Seen));
        assert_eq!(grid.settings.last(), Some(&Setting::Data10));
        let other_budget = grown(&one_cell.replace("--steps 10000", "--steps 4000"))?;
        assert_eq!((other_budget.scales, other_budget.settings), (vec![0], vec![Setting::Data10]));
        Ok(())
    }

    #[test]
    fn fine_tuning_names_read_back() -> Result<()> {
        let args = parse("vlasim study --recipe assets/models/paligemma/training.json --runs x");
        let reference = read_training_record(&args.recipe, None)?.recipe;
        let (out, _) = fine_tuning(&args, &reference, "kosmos-wide", 100_000, Setting::Data10);
        let name = out.file_name().unwrap().to_string_lossy();
        assert_eq!(parse_fine_tuning_name(&name), Some(("kosmos-wide".to_owned(), 100_000, Setting::Data10)));
        assert_eq!(parse_fine_tuning_name("pt-kosmos-100000"), None);
        Ok(())
    }
}
