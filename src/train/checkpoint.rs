//! Training checkpoints: an HF-style model folder (`config.json`, `model.safetensors`,
//! `tokenizer.json`) plus the run's record (`training.json`: the recipe, the data and the progress;
//! `pretraining.json` for vision-language pre-training) and `optimizer.safetensors` (AdamW's
//! moments, for resuming).
//!
//! A checkpoint is written into `<out>.partial` and then swapped in by renaming (`<out>` →
//! `<out>.previous`, `<out>.partial` → `<out>`, then `<out>.previous` removed), so an interrupted
//! save leaves the last good checkpoint intact: in `<out>`, or in `<out>.previous` if it stopped
//! between the renames, from where [`recover`] puts it back.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::optim::AdamW;
use super::schedule::Optimisation;
use crate::lang::tokenizer::Tokenizer;
use crate::vla::Vla;

/// The recipe and data record of a run.
pub const TRAINING_FILE: &str = "training.json";
/// The optimiser state.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The tokenizer (with `tokenizer.words.txt` beside it).
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Everything that decides what a run computes; a resumed run must have the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// Preset the model started from.
    pub preset: String,
    /// Formulation the model started from.
    pub formulation: String,
    /// Frames in the history window, when not the formulation's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_window: Option<usize>,
    /// Actions predicted after each frame, when not the formulation's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<usize>,
    /// Weight of the gripper's BCE against the arm's loss, when not the formulation's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gripper_loss_weight: Option<f64>,
    /// Steps, batch, learning rate and its schedule, checkpoints.
    #[serde(flatten)]
    pub optimisation: Optimisation,
    /// Share of the episodes held out for validation.
    pub validation_share: f64,
    /// Validation batches (fixed, not augmented).
    pub validation_batches: usize,
    /// Random-shift padding of the static camera, pixels.
    pub static_shift_px: usize,
    /// Random-shift padding of the gripper camera, pixels.
    pub gripper_shift_px: usize,
    /// Seed of the episode pick, the split, the sample order and the augmentation.
    pub seed: u64,
    /// Scenes trained on (all when empty).
    #[serde(default)]
    pub scenes: Vec<String>,
    /// Share of those scenes' episodes trained on (plus validation).
    #[serde(default = "whole_dataset")]
    pub data_share: f64,
    /// Episode frames from one image trained on to the next (1: every frame).
    #[serde(default = "every_frame", skip_serializing_if = "is_every_frame")]
    pub frame_stride: usize,
    /// Model folder whose matching parameters the run started from (a pre-trained backbone);
    /// none when trained from scratch.
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Weight of the auxiliary scene-state loss (`vla::scene_state`); none: actions only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scene_state_loss: Option<f64>,
    /// Weight of the auxiliary steps-left loss (`vla::steps_left`); none: no such loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps_left_loss: Option<f64>,
    /// Chance that each instruction word is left out of a training sample (`data::batch`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub word_dropout: f64,
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

fn whole_dataset() -> f64 {
    1.0
}

fn every_frame() -> usize {
    1
}

fn is_every_frame(stride: &usize) -> bool {
    *stride == 1
}

/// Which data a run trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataRecord {
    /// The dataset folders, read as one in this order (`path`: one folder, or a list of them).
    #[serde(rename = "path", with = "one_or_many")]
    pub paths: Vec<PathBuf>,
    /// Episodes loaded (the recipe's scenes and share of the dataset).
    pub episodes: usize,
    /// Frames in those episodes.
    pub frames: usize,
    /// Index of each episode trained on: its `episode_index`, counted on from the episodes of the
    /// datasets before its own.
    pub train_episodes: Vec<usize>,
    /// Index of each episode held out for validation, counted as `train_episodes`.
    pub validation_episodes: Vec<usize>,
}

/// Datasets as a command line lists them: `a` or `a + b`.
pub fn describe_datasets(paths: &[PathBuf]) -> String {
    paths.iter().map(|path| path.display().to_string()).collect::<Vec<_>>().join(" + ")
}

/// One dataset folder as a plain path, as records from before several datasets have it; several as a list.
mod one_or_many {
    use std::path::PathBuf;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Paths {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }

    pub fn serialize<S: Serializer>(paths: &[PathBuf], serializer: S) -> Result<S::Ok, S::Error> {
        match paths {
            [path] => path.serialize(serializer),
            _ => paths.serialize(serializer),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<PathBuf>, D::Error> {
        Ok(match Paths::deserialize(deserializer)? {
            Paths::One(path) => vec![path],
            Paths::Many(paths) => paths,
        })
    }
}

/// A loss at a step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossPoint {
    /// Optimiser steps taken.
    pub step: u64,
    /// The loss.
    pub loss: f64,
}

/// How far a run got.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Optimiser steps taken.
    pub step: u64,
    /// Training samples seen.
    pub samples_seen: u64,
    /// Exponential moving average of the training loss (what the progress bar shows).
    pub loss_ema: Option<f64>,
    /// Mean training loss over each `eval_every` interval.
    pub train_loss: Vec<LossPoint>,
    /// Validation loss after each interval.
    pub validation_loss: Vec<LossPoint>,
    /// Sum of the training losses since the last history point (so a resumed interval is whole).
    pub interval_loss_sum: f64,
    /// Steps since the last history point.
    pub interval_steps: u64,
    /// Seconds spent training, over all sessions.
    pub wall_secs: f64,
    /// Data-parallel workers of the latest session.
    pub workers: usize,
}

impl Progress {
    /// Books a finished step of `samples` samples with `loss`, `wall_secs` into the run; returns the
    /// loss's moving average.
    pub fn record_step(&mut self, loss: f64, samples: usize, wall_secs: f64) -> f64 {
        self.step += 1;
        self.samples_seen += samples as u64;
        let ema = match self.loss_ema {
            Some(ema) => (1.0 - LOSS_EMA_WEIGHT) * ema + LOSS_EMA_WEIGHT * loss,
            None => loss,
        };
        self.loss_ema = Some(ema);
        self.interval_loss_sum += loss;
        self.interval_steps += 1;
        self.wall_secs = wall_secs;
        ema
    }

    /// Ends the current history interval: its mean training loss, also added to `train_loss`.
    pub fn close_interval(&mut self) -> f64 {
        let loss = self.interval_loss_sum / self.interval_steps.max(1) as f64;
        self.train_loss.push(LossPoint { step: self.step, loss });
        (self.interval_loss_sum, self.interval_steps) = (0.0, 0);
        loss
    }
}

/// Weight of the newest loss in the progress bar's moving average.
const LOSS_EMA_WEIGHT: f64 = 0.02;

/// `training.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    /// The recipe.
    pub recipe: Recipe,
    /// The data.
    pub data: DataRecord,
    /// The progress.
    pub progress: Progress,
}

impl TrainingRecord {
    /// Whether the run has taken every step of its recipe.
    pub fn finished(&self) -> bool {
        self.progress.step >= self.recipe.optimisation.steps
    }
}

/// `<out>` with `suffix` added to its last component.
fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "checkpoint".into());
    name.push(suffix);
    out.with_file_name(name)
}

/// Writes a checkpoint into `out` with the run's `record` as `record_file`, replacing the one there
/// only once the new one is complete.
pub fn save(
    out: &Path,
    model: &Vla,
    tokenizer: &Tokenizer,
    optimizer: &AdamW,
    record_file: &str,
    record: &impl Serialize,
) -> Result<()> {
    let staging = sibling(out, ".partial");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).with_context(|| format!("cannot remove {}", staging.display()))?;
    }
    model.save(&staging)?;
    tokenizer.save(&staging.join(TOKENIZER_FILE))?;
    let optimizer_path = staging.join(OPTIMIZER_FILE);
    optimizer.save(&optimizer_path).with_context(|| format!("cannot write {}", optimizer_path.display()))?;
    let record_path = staging.join(record_file);
    let json = serde_json::to_string_pretty(record).expect("training records are plain data and always serialise");
    std::fs::write(&record_path, json).with_context(|| format!("cannot write {}", record_path.display()))?;

    let previous = sibling(out, ".previous");
    if out.exists() {
        std::fs::rename(out, &previous).with_context(|| format!("cannot move {} aside", out.display()))?;
    }
    std::fs::rename(&staging, out).with_context(|| format!("cannot move {} into place", staging.display()))?;
    if previous.exists() {
        std::fs::remove_dir_all(&previous).with_context(|| format!("cannot remove {}", previous.display()))?;
    }
    Ok(())
}

/// Puts `<out>.previous` back as `out` if a save stopped between its two renames.
pub fn recover(out: &Path) -> Result<()> {
    let previous = sibling(out, ".previous");
    if !out.exists() && previous.exists() {
        std::fs::rename(&previous, out).with_context(|| format!("cannot restore {}", previous.display()))?;
    }
    Ok(())
}

/// Reads `training.json` from a checkpoint folder.
pub fn read_record(out: &Path) -> Result<TrainingRecord> {
    read(out, TRAINING_FILE)
}

/// Reads the run record `record_file` from a checkpoint folder.
pub fn read<R: DeserializeOwned>(out: &Path, record_file: &str) -> Result<R> {
    let path = out.join(record_file);
    if !path.exists() {
        bail!("{} does not exist: {} holds no such checkpoint", path.display(), out.display());
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a valid training record", path.display()))
}

/// Errors unless the run recorded in `record` (a file in its folder) had the recipe `given`: a run
/// is continued, or reused once finished, only for the recipe it was trained with.
pub fn ensure_same_recipe<R: PartialEq + std::fmt::Debug>(record: &Path, saved: &R, given: &R) -> Result<()> {
    if saved != given {
        bail!(
            "{} holds a run of a different recipe (give this one another folder):\n  saved: {saved:?}\n  given: {given:?}",
            record.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(paths: &[&str]) -> DataRecord {
        DataRecord {
            paths: paths.iter().map(PathBuf::from).collect(),
            episodes: 3,
            frames: 30,
            train_episodes: vec![0, 2],
            validation_episodes: vec![1],
        }
    }

    #[test]
    fn one_dataset_is_recorded_as_a_path_and_several_as_a_list() {
        let one = serde_json::to_value(record(&["data/demos"])).unwrap();
        assert_eq!(one["path"], "data/demos");
        let two = serde_json::to_value(record(&["data/demos", "data/takeover"])).unwrap();
        assert_eq!(two["path"], serde_json::json!(["data/demos", "data/takeover"]));
        for value in [one, two] {
            let read: DataRecord = serde_json::from_value(value.clone()).unwrap();
            assert_eq!(serde_json::to_value(read).unwrap(), value);
        }
    }
}
