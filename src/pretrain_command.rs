//! `vlasim pretrain`: vision-language pre-training of a preset's backbone on the corpus
//! ([`vlasim::train::pretrainer`]), into a model folder that `vlasim train --init` fine-tunes.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{Result, bail};
use clap::Args;

use vlasim::lang::tokenizer::Tokenizer;
use vlasim::pretrain::PretrainCorpus;
use vlasim::train::checkpoint;
use vlasim::train::pretrainer::{self, PRETRAINING_FILE, PretrainJob, PretrainRecipe, Pretrained, PretrainingRecord};
use vlasim::vla::presets;

use crate::train_command::{OptimisationArgs, TrainingDisplay, stop_on_ctrl_c};

/// Arguments of `vlasim pretrain`.
#[derive(Args)]
pub struct PretrainArgs {
    /// Model preset (a vision-language one: every preset but film), or a model's config.json file
    /// (as `vlasim train --preset` takes it).
    #[arg(long, default_value = "paligemma")]
    preset: String,
    /// Formulation the folder is saved with, the one `vlasim train --init` will fine-tune.
    #[arg(long, default_value = "policy_head")]
    formulation: String,
    /// Checkpoint folder = model folder; the latest checkpoint replaces the previous one.
    #[arg(long)]
    out: PathBuf,
    /// Pre-training scale: the first N samples of the corpus (corpora of one seed are prefixes of each other).
    #[arg(long)]
    samples: Option<u64>,
    /// Take the corpus seed (and, without --samples, its size) from this `vlasim pretrain-data` folder.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Corpus seed, without --corpus.
    #[arg(long, default_value_t = 0)]
    corpus_seed: u64,
    #[command(flatten)]
    optimisation: OptimisationArgs,
    /// Held-out samples (scenes after the corpus's last) for the validation loss.
    #[arg(long, default_value_t = 256)]
    validation_samples: u64,
    /// Seed of the draws and of the validation texts.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Tokenizer of a new run; default: one trained on the training phrasings and every corpus text.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
}

/// Runs `vlasim pretrain`.
pub fn run(args: PretrainArgs) -> Result<()> {
    let (corpus_seed, written) = match &args.corpus {
        Some(dir) => {
            let info = PretrainCorpus::open(dir)?.info().clone();
            (info.seed, Some(info.samples))
        }
        None => (args.corpus_seed, None),
    };
    let samples = match (args.samples, written) {
        (Some(samples), Some(written)) if samples > written => {
            bail!("--samples {samples} is more than the {written} of the corpus given")
        }
        (Some(samples), _) | (None, Some(samples)) => samples,
        (None, None) => bail!("say how many corpus samples to pre-train on: --samples N (or --corpus DIR)"),
    };
    let model = presets::resolve(&args.preset, &args.formulation)?;
    let optimisation = &args.optimisation;
    let recipe = PretrainRecipe {
        preset: args.preset,
        formulation: args.formulation,
        corpus_seed,
        samples,
        optimisation: optimisation.optimisation(),
        validation_samples: args.validation_samples,
        seed: args.seed,
    };
    let tokenizer = args.tokenizer.as_deref().map(Tokenizer::load).transpose()?;
    let job =
        PretrainJob { out: args.out, recipe, model, compute: optimisation.compute()?, resume: optimisation.resume };
    pretrain_showing_progress(&job, tokenizer, stop_on_ctrl_c()?)?;
    Ok(())
}

/// Runs `job` with the progress bar and its closing line.
fn pretrain_showing_progress(job: &PretrainJob, tokenizer: Option<Tokenizer>, stop: &AtomicBool) -> Result<Pretrained> {
    let steps = job.recipe.optimisation.steps;
    let mut display = TrainingDisplay::new(steps, &job.out, job.compute.workers, "corpus samples", None)?;
    let pretrained = pretrainer::pretrain(job, tokenizer, stop, &mut |event| display.show(event))?;
    display.finish(&pretrained.record.progress, pretrained.stopped);
    Ok(pretrained)
}

/// Pre-trains `job.out` unless a finished run is there; an unfinished one there is resumed.
pub fn pretrain_unless_done(mut job: PretrainJob, stop: &AtomicBool) -> Result<()> {
    let saved: Option<PretrainingRecord> = checkpoint::read(&job.out, PRETRAINING_FILE).ok();
    if let Some(saved) = &saved {
        checkpoint::ensure_same_recipe(&job.out.join(PRETRAINING_FILE), &saved.recipe, &job.recipe)?;
    }
    if saved.as_ref().is_some_and(|saved| saved.progress.step >= saved.recipe.optimisation.steps) {
        println!("{}: pre-trained already", job.out.display());
        return Ok(());
    }
    job.resume = saved.is_some();
    println!("{}: pre-training {} on {} corpus samples", job.out.display(), job.recipe.preset, job.recipe.samples);
    if pretrain_showing_progress(&job, None, stop)?.stopped {
        bail!("stopped while pre-training {}; the same command resumes it", job.out.display());
    }
    Ok(())
}
