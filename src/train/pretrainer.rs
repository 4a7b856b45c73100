//! The vision-language pre-training loop (`vlasim pretrain`): next-token training of a VLA's
//! backbone on the pre-training corpus ([`crate::pretrain`]), in the VLA loop's steps
//! ([`super::steps`]): the same optimiser, schedule, data-parallel shards, checkpoints and exact
//! resumption.
//!
//! Step `k` draws `batch_size` (sample, text) pairs from a generator seeded with `(seed, k)`, so a
//! resumed run sees what an uninterrupted one would. Validation uses the samples right after the
//! corpus's last: scenes the run never trained on.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, ensure};
use candle_core::{Device, Tensor};
use rayon::ThreadPool;
use serde::{Deserialize, Serialize};

use super::Compute;
use super::checkpoint::{self, OPTIMIZER_FILE, Progress, TOKENIZER_FILE};
use super::schedule::Optimisation;
use super::steps::{Batches, Loop, RunRecord, batch_loss, optimizer, worker_pool};
use super::trainer::TrainEvent;
use crate::lang::tokenizer::{self, DEFAULT_VOCAB_SIZE, Tokenizer};
use crate::pretrain::PretrainCorpus;
use crate::sim::camera::Image;
use crate::sim::rng::Rng;
use crate::vla::backbone::{MAX_ANSWER_TOKENS, Text};
use crate::vla::policy::rgb_tensor;
use crate::vla::pretraining::AnswerBatch;
use crate::vla::{Vla, VlaConfig};

/// The run record of a pre-training checkpoint.
pub const PRETRAINING_FILE: &str = "pretraining.json";
/// Offset of the validation texts' seed from the run's.
const VALIDATION_SEED_OFFSET: u64 = 0x5E_ED0F_7A11;
/// Rendered samples kept in memory (about 62 kB each): a small corpus is rendered once.
const IMAGE_CACHE_SAMPLES: usize = 20_000;

/// Everything that decides what a pre-training run computes; a resumed run must have the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainRecipe {
    /// Preset of the model.
    pub preset: String,
    /// Formulation of the model (its heads are saved untrained, ready for `vlasim train --init`).
    pub formulation: String,
    /// Seed of the corpus.
    pub corpus_seed: u64,
    /// Corpus samples trained on: the first `samples` of the seed (the pre-training scale).
    pub samples: u64,
    /// Steps, batch ((sample, text) pairs), learning rate and its schedule, checkpoints.
    #[serde(flatten)]
    pub optimisation: Optimisation,
    /// Held-out samples (after the corpus), one text each, for the validation loss.
    pub validation_samples: u64,
    /// Seed of the draws.
    pub seed: u64,
}

/// `pretraining.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainingRecord {
    /// The recipe.
    pub recipe: PretrainRecipe,
    /// The progress.
    pub progress: Progress,
}

/// A pre-training run to start or resume.
#[derive(Debug, Clone)]
pub struct PretrainJob {
    /// The checkpoint folder (= a model folder `vlasim train --init` takes).
    pub out: PathBuf,
    /// The recipe.
    pub recipe: PretrainRecipe,
    /// The model; when resuming, it must match the checkpoint's.
    pub model: VlaConfig,
    /// Where the run computes.
    pub compute: Compute,
    /// Continue from the checkpoint in `out`.
    pub resume: bool,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Pretrained {
    /// The model after the last step.
    pub model: Vla,
    /// `pretraining.json` as last saved.
    pub record: PretrainingRecord,
    /// Whether the stop flag ended the run before its last step.
    pub stopped: bool,
}

/// Tokenized (sample, text) pairs with their images, as flat buffers.
#[derive(Debug, Default)]
struct Pairs {
    size: usize,
    static_rgb: Vec<u8>,
    gripper_rgb: Vec<u8>,
    prompt_ids: Vec<u32>,
    prompt_mask: Vec<u32>,
    answer_ids: Vec<u32>,
    answer_mask: Vec<u32>,
}

/// Image sizes and text lengths of every pair.
#[derive(Debug, Clone, Copy)]
struct PairShape {
    static_size: usize,
    gripper_size: usize,
    use_gripper: bool,
    prompt_len: usize,
}

/// Tokens per answer row: `<s>`, up to [`MAX_ANSWER_TOKENS`] − 1 text tokens, `</s>`.
const ANSWER_ROW: usize = MAX_ANSWER_TOKENS + 1;

impl Pairs {
    /// Pair `text` (an index into the sample's texts, wrapped) of corpus sample `index`.
    fn push(
        &mut self,
        corpus: &mut PretrainCorpus,
        index: u64,
        text: usize,
        tokenizer: &Tokenizer,
        shape: PairShape,
    ) -> Result<()> {
        let example = corpus.example(index)?;
        let check = |image: &Image, side: usize, camera: &str| {
            ensure!(
                (image.width as usize, image.height as usize) == (side, side),
                "the corpus's {camera} camera is {}×{}, the model takes {side}²",
                image.width,
                image.height
            );
            Ok(())
        };
        check(&example.static_image, shape.static_size, "static")?;
        self.static_rgb.extend_from_slice(&example.static_image.rgb);
        if shape.use_gripper {
            check(&example.gripper_image, shape.gripper_size, "gripper")?;
            self.gripper_rgb.extend_from_slice(&example.gripper_image.rgb);
        }
        ensure!(!example.texts.is_empty(), "corpus sample {index} has no texts");
        let pair = &example.texts[text % example.texts.len()];
        let prompt = tokenizer.encode(&pair.prompt, shape.prompt_len)?;
        let answer = tokenizer.encode(&pair.target, ANSWER_ROW)?;
        self.prompt_ids.extend(prompt.ids);
        self.prompt_mask.extend(prompt.attention_mask);
        self.answer_ids.extend(answer.ids);
        self.answer_mask.extend(answer.attention_mask);
        self.size += 1;
        Ok(())
    }

    /// Pairs `samples` as a model batch.
    fn batch(&self, samples: Range<usize>, shape: PairShape, device: &Device) -> Result<AnswerBatch> {
        let n = samples.len();
        let images = |rgb: &[u8], side: usize| -> Result<Tensor> {
            let bytes = side * side * 3;
            Ok(rgb_tensor(&rgb[samples.start * bytes..samples.end * bytes], &[n], side, side, device)?)
        };
        // Rows of `width` values, cut to their first `used`.
        let rows = |values: &[u32], width: usize, used: usize| -> Result<Tensor> {
            let slice: Vec<u32> = values[samples.start * width..samples.end * width]
                .chunks(width)
                .flat_map(|row| &row[..used])
                .copied()
                .collect();
            Ok(Tensor::from_vec(slice, (n, used), device)?)
        };
        // Trailing padding only costs compute (the answer is causal): cut it to the longest answer.
        let longest = self.answer_mask[samples.start * ANSWER_ROW..samples.end * ANSWER_ROW]
            .chunks(ANSWER_ROW)
            .map(|row| row.iter().filter(|&&real| real == 1).count())
            .max()
            .unwrap_or(0)
            .max(2);
        Ok(AnswerBatch {
            static_images: images(&self.static_rgb, shape.static_size)?,
            gripper_images: shape.use_gripper.then(|| images(&self.gripper_rgb, shape.gripper_size)).transpose()?,
            prompt: Text {
                ids: rows(&self.prompt_ids, shape.prompt_len, shape.prompt_len)?,
                mask: rows(&self.prompt_mask, shape.prompt_len, shape.prompt_len)?,
            },
            answer_ids: rows(&self.answer_ids, ANSWER_ROW, longest)?,
            answer_mask: rows(&self.answer_mask, ANSWER_ROW, longest)?,
        })
    }
}

/// Pre-trains (or resumes) `job`, checkpointing into `job.out`; a set `stop` flag ends the run
/// after the current step with a checkpoint. A new run uses `tokenizer`, or without one the
/// default tokenizer (the training phrasings and every corpus text); a resumed run uses the
/// checkpoint's.
pub fn pretrain(
    job: &PretrainJob,
    tokenizer: Option<Tokenizer>,
    stop: &AtomicBool,
    report: &mut dyn FnMut(&TrainEvent),
) -> Result<Pretrained> {
    let recipe = &job.recipe;
    recipe.optimisation.validate()?;
    ensure!(recipe.samples > 0, "the corpus needs at least one sample");

    let (model, tokenizer, progress, optimizer_state) = if job.resume {
        ensure!(tokenizer.is_none(), "a resumed run uses the checkpoint's tokenizer; give none");
        checkpoint::recover(&job.out)?;
        let saved: PretrainingRecord = checkpoint::read(&job.out, PRETRAINING_FILE)?;
        checkpoint::ensure_same_recipe(&job.out.join(PRETRAINING_FILE), &saved.recipe, recipe)?;
        let model = Vla::load(&job.out, &job.compute.device)
            .with_context(|| format!("loading the model from {}", job.out.display()))?;
        ensure!(
            *model.config() == job.model,
            "{} holds a different model than the preset and formulation given",
            job.out.display()
        );
        let tokenizer = Tokenizer::load(&job.out.join(TOKENIZER_FILE))?;
        (model, tokenizer, saved.progress, Some(job.out.join(OPTIMIZER_FILE)))
    } else {
        let tokenizer = match tokenizer {
            Some(tokenizer) => tokenizer,
            None => tokenizer::train([], DEFAULT_VOCAB_SIZE)?,
        };
        (Vla::new(job.model.clone(), &job.compute.device)?, tokenizer, Progress::default(), None)
    };
    let config = model.config().clone();
    ensure!(
        tokenizer.vocab_size() <= config.vocab_size,
        "the tokenizer has {} tokens, the model's vocabulary only {}",
        tokenizer.vocab_size(),
        config.vocab_size
    );
    let shape = PairShape {
        static_size: config.static_image_size,
        gripper_size: config.gripper_image_size,
        use_gripper: config.use_gripper_camera,
        prompt_len: config.max_text_len,
    };

    let mut optimizer = optimizer(&model, &recipe.optimisation, optimizer_state, progress.step)?;

    let cached = usize::try_from(recipe.samples).unwrap_or(usize::MAX).min(IMAGE_CACHE_SAMPLES);
    let corpus = PretrainCorpus::in_memory(recipe.corpus_seed, recipe.samples).with_image_cache(cached);
    let mut held_out = PretrainCorpus::in_memory(recipe.corpus_seed, recipe.samples + recipe.validation_samples);
    let mut validation = Pairs::default();
    let mut texts = Rng::new(recipe.seed.wrapping_add(VALIDATION_SEED_OFFSET));
    for index in recipe.samples..recipe.samples + recipe.validation_samples {
        validation.push(&mut held_out, index, texts.below(usize::MAX), &tokenizer, shape)?;
    }

    let workers = worker_pool(job.compute.workers, "pretrain-worker")?;
    let mut record =
        PretrainingRecord { recipe: recipe.clone(), progress: Progress { workers: job.compute.workers, ..progress } };
    report(&TrainEvent::Started {
        step: record.progress.step,
        steps: recipe.optimisation.steps,
        train_windows: usize::try_from(recipe.samples).unwrap_or(usize::MAX),
        parameters: model.params().parameter_count(),
    });
    let run = Loop {
        model: &model,
        tokenizer: &tokenizer,
        optimisation: &recipe.optimisation,
        workers: &workers,
        out: &job.out,
        record_file: PRETRAINING_FILE,
    };
    let mut batches = CorpusBatches {
        corpus,
        tokenizer: &tokenizer,
        shape,
        seed: recipe.seed,
        batch_size: recipe.optimisation.batch_size,
        pairs: Pairs::default(),
        validation,
    };
    let stopped = run.run(&mut optimizer, &mut batches, &mut record, stop, report)?;
    Ok(Pretrained { model, record, stopped })
}

/// (sample, text) pairs of the corpus for the pre-training loop: step `k`'s draws are a function
/// of `(seed, k)`.
struct CorpusBatches<'a> {
    corpus: PretrainCorpus,
    tokenizer: &'a Tokenizer,
    shape: PairShape,
    seed: u64,
    batch_size: usize,
    pairs: Pairs,
    validation: Pairs,
}

impl Batches for CorpusBatches<'_> {
    fn draw(&mut self, step: u64) -> Result<usize> {
        let mut draws = Rng::stream(self.seed, step);
        let samples = usize::try_from(self.corpus.len()).unwrap_or(usize::MAX);
        self.pairs = Pairs::default();
        for _ in 0..self.batch_size {
            let index = draws.below(samples) as u64;
            self.pairs.push(&mut self.corpus, index, draws.below(usize::MAX), self.tokenizer, self.shape)?;
        }
        Ok(self.pairs.size)
    }

    fn shard_loss(&self, model: &Vla, samples: Range<usize>) -> Result<Tensor> {
        Ok(model.answer_loss(&self.pairs.batch(samples, self.shape, model.device())?)?)
    }

    fn validation_loss(&self, model: &Vla, workers: &ThreadPool) -> Result<Option<f64>> {
        if self.validation.size == 0 {
            return Ok(None);
        }
        let loss = batch_loss(self.validation.size, workers, &|samples| {
            Ok(model.answer_loss(&self.validation.batch(samples, self.shape, model.device())?)?)
        })?;
        Ok(Some(loss))
    }
}

impl RunRecord for PretrainingRecord {
    fn progress(&mut self) -> &mut Progress {
        &mut self.progress
    }
}
