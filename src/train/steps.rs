//! The optimisation loop `vlasim train` and `vlasim pretrain` share: each step draws a batch,
//! computes its gradients in data-parallel shards, takes an AdamW step, books the progress, and
//! every so often validates and checkpoints; a set stop flag ends the run after the current step
//! with a checkpoint.
//!
//! Data parallelism: candle's CPU ops are slow multi-threaded at these sizes (DESIGN.md §2.10), so
//! candle runs single-threaded and the batch is split into one shard per worker thread, each run
//! forward and backward on a thread of the run's own rayon pool; the shard gradients are summed,
//! weighted by shard size, and one optimiser step is taken.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use candle_core::Tensor;
use candle_core::backprop::GradStore;
use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};
use serde::Serialize;

use super::checkpoint::{self, LossPoint, Progress};
use super::optim::{AdamW, AdamWConfig};
use super::schedule::Optimisation;
use super::trainer::TrainEvent;
use crate::lang::tokenizer::Tokenizer;
use crate::vla::Vla;

/// What a loop trains on: a fresh batch each step, the loss of a shard of it, a validation loss.
pub(super) trait Batches: Sync {
    /// Draws the batch of step `step` (0-based); returns its size.
    fn draw(&mut self, step: u64) -> Result<usize>;
    /// The model's loss on samples `samples` of the drawn batch, as a graph to differentiate.
    fn shard_loss(&self, model: &Vla, samples: Range<usize>) -> Result<Tensor>;
    /// The model's loss on the held-out data (none without any).
    fn validation_loss(&self, model: &Vla, workers: &ThreadPool) -> Result<Option<f64>>;
}

/// A run's record (`training.json`, `pretraining.json`): saved with every checkpoint.
pub(super) trait RunRecord: Serialize {
    /// How far the run got.
    fn progress(&mut self) -> &mut Progress;
}

/// The fixed parts of a run's loop.
pub(super) struct Loop<'a> {
    pub model: &'a Vla,
    pub tokenizer: &'a Tokenizer,
    pub optimisation: &'a Optimisation,
    pub workers: &'a ThreadPool,
    /// The checkpoint folder and the record's file name in it.
    pub out: &'a Path,
    pub record_file: &'a str,
}

/// A pool of `workers` data-parallel threads named `name-i`.
pub(super) fn worker_pool(workers: usize, name: &'static str) -> Result<ThreadPool> {
    ensure!(workers > 0, "at least one worker is needed");
    ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .context("starting the training workers")
}

/// AdamW over `model`'s parameters as `optimisation` asks, with the state of `saved` (a resumed
/// run at `step`).
pub(super) fn optimizer(model: &Vla, optimisation: &Optimisation, saved: Option<PathBuf>, step: u64) -> Result<AdamW> {
    let config = AdamWConfig {
        weight_decay: optimisation.weight_decay,
        ema_decay: optimisation.ema_decay,
        ..AdamWConfig::default()
    };
    let mut optimizer = AdamW::new(model.params().vars(), config)?;
    if let Some(path) = saved {
        optimizer.load(&path).with_context(|| format!("loading the optimiser state {}", path.display()))?;
        ensure!(
            optimizer.steps() == step,
            "{} has {} steps, the run's record says {step}",
            path.display(),
            optimizer.steps()
        );
    }
    Ok(optimizer)
}

impl Loop<'_> {
    /// Steps from the record's step to the schedule's last; returns whether the stop flag ended it.
    pub(super) fn run(
        &self,
        optimizer: &mut AdamW,
        batches: &mut impl Batches,
        record: &mut impl RunRecord,
        stop: &AtomicBool,
        report: &mut dyn FnMut(&TrainEvent),
    ) -> Result<bool> {
        let session_start = Instant::now();
        let wall_before = record.progress().wall_secs;
        let Optimisation { steps, grad_clip, eval_every, checkpoint_every, .. } = *self.optimisation;
        let schedule = self.optimisation.schedule();
        while record.progress().step < steps {
            let step_start = Instant::now();
            let size = batches.draw(record.progress().step)?;
            let (loss, grads) =
                batch_gradients(self.model, size, self.workers, &|samples| batches.shard_loss(self.model, samples))?;
            ensure!(loss.is_finite(), "the loss became {loss} at step {}", record.progress().step);
            let lr = schedule.lr(record.progress().step);
            optimizer.step(&grads, lr, grad_clip)?;

            let progress = record.progress();
            let ema = progress.record_step(loss, size, wall_before + session_start.elapsed().as_secs_f64());
            let step = progress.step;
            let samples_per_sec = size as f64 / step_start.elapsed().as_secs_f64();
            report(&TrainEvent::Step { step, loss, loss_ema: ema, lr, samples_per_sec });

            let last = step == steps;
            let stopping = stop.load(Ordering::SeqCst);
            let validating = step.is_multiple_of(eval_every) || last;
            let saving = step.is_multiple_of(checkpoint_every) || last || stopping;
            if !(validating || saving) {
                continue;
            }
            // Validation and checkpoints see the weights' average, when the run keeps one; the
            // model keeps it when the run ends here.
            optimizer.swap_average()?;
            if validating {
                let train_loss = record.progress().close_interval();
                let validation_loss = batches.validation_loss(self.model, self.workers)?;
                if let Some(loss) = validation_loss {
                    record.progress().validation_loss.push(LossPoint { step, loss });
                }
                report(&TrainEvent::Validated { step, train_loss, validation_loss });
            }
            if saving {
                checkpoint::save(self.out, self.model, self.tokenizer, optimizer, self.record_file, record)?;
                report(&TrainEvent::Saved { step });
            }
            if stopping && !last {
                return Ok(true);
            }
            if !last {
                optimizer.swap_average()?;
            }
        }
        Ok(false)
    }
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
