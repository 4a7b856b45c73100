//! Training batches from a [`Dataset`] in memory: windows of `history` frames with the next
//! `chunk` actions of each frame (RoboVLMs' formulation), random-shift augmented, reproducible
//! from a seed, as flat arrays ready to become tensors.
//!
//! Every frame of an episode whose images were kept ([`super::reader::Selection::frame_stride`])
//! ends one window, of `history` frames `history_spacing` steps apart. A window reaching back
//! before the episode's start is padded by repeating its first frame, as
//! [`crate::vla::VlaPolicy`] does at the start of an episode, so the first steps of a rollout are
//! states the model was trained on.

use anyhow::{Result, ensure};

use super::episode::{ACTION_DIM, ROBOT_OBS_DIM, SCENE_OBS_DIM};
use super::reader::{Dataset, Frames};
use crate::sim::rng::Rng;

/// How batches are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchSettings {
    /// Samples per batch.
    pub batch_size: usize,
    /// Frames per sample window (RoboVLMs: 8).
    pub history: usize,
    /// Steps from one frame of a window to the next (1: consecutive frames); a multiple of the
    /// dataset's frame stride, so that every frame of a window has its images.
    pub history_spacing: usize,
    /// Future actions per frame (RoboVLMs: 10).
    pub chunk: usize,
    /// Random-shift padding of the static camera (px; RoboVLMs: 10; 0 = no augmentation).
    pub static_shift_px: usize,
    /// Random-shift padding of the gripper camera (px; RoboVLMs: 4; 0 = no augmentation).
    pub gripper_shift_px: usize,
    /// Chance that each word of a sample's instruction is left out (0 = the instruction as
    /// recorded): a model that must act on "pink block left" as on the whole sentence learns to
    /// read every cue in a phrasing instead of recognising the few training sentences whole.
    pub word_dropout: f64,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            batch_size: 32,
            history: 8,
            history_spacing: 1,
            chunk: 10,
            static_shift_px: 10,
            gripper_shift_px: 4,
            word_dropout: 0.0,
        }
    }
}

/// A batch, as flat row-major arrays; `B` = samples, `H` = history, `C` = chunk.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Samples in the batch (`B`).
    pub size: usize,
    /// Frames per sample (`H`).
    pub history: usize,
    /// Actions per frame (`C`).
    pub chunk: usize,
    /// Static camera `(width, height)`.
    pub static_size: (usize, usize),
    /// Gripper camera `(width, height)`.
    pub gripper_size: (usize, usize),
    /// `[B, H, height, width, 3]` RGB bytes.
    pub static_images: Vec<u8>,
    /// `[B, H, height, width, 3]` RGB bytes.
    pub gripper_images: Vec<u8>,
    /// `[B, H, 15]` robot_obs.
    pub robot_obs: Vec<f32>,
    /// `[B, H, 24]` scene_obs (privileged: for auxiliary losses, never a model input).
    pub scene_obs: Vec<f32>,
    /// `[B, H]`: steps from each frame to its episode's last (where the episode's task is done).
    pub steps_left: Vec<usize>,
    /// `[B, H, C, 7]`: for frame `t`, actions `t .. t + C`, the episode's last action repeated past its end.
    pub actions: Vec<f32>,
    /// `[B, H, C]`: whether each action is real (false where it repeats the episode's last).
    pub action_mask: Vec<bool>,
    /// `[B]` instruction of each sample's episode.
    pub instructions: Vec<String>,
    /// `[B]` task id of each sample's episode.
    pub tasks: Vec<String>,
    /// `[B]` (episode index, frame index of the window's last frame).
    pub origins: Vec<(usize, usize)>,
}

/// Draws batches from a set of episodes, in shuffled epochs.
#[derive(Debug, Clone)]
pub struct Sampler<'a> {
    dataset: &'a Dataset,
    settings: BatchSettings,
    /// Every (episode, last frame) window.
    windows: Vec<(usize, usize)>,
    next: usize,
    rng: Rng,
}

impl<'a> Sampler<'a> {
    /// A sampler over `episodes` (indices into the dataset), reproducible from `seed`.
    pub fn new(dataset: &'a Dataset, episodes: &[usize], settings: BatchSettings, seed: u64) -> Result<Sampler<'a>> {
        ensure!(
            settings.batch_size > 0 && settings.history > 0 && settings.chunk > 0,
            "empty batch settings {settings:?}"
        );
        let mut windows = Vec::new();
        for &e in episodes {
            ensure!(e < dataset.episodes.len(), "episode {e} is not in the dataset");
            let images = &dataset.episodes[e].static_frames;
            ensure!(
                settings.history == 1 || settings.history_spacing.is_multiple_of(images.stride),
                "the dataset keeps the images of one frame in {}: a history of {} frames {} steps apart cannot be drawn",
                images.stride,
                settings.history,
                settings.history_spacing
            );
            windows.extend((0..dataset.episodes[e].len()).filter(|&t| images.has(t)).map(|t| (e, t)));
        }
        ensure!(!windows.is_empty(), "the episodes {episodes:?} have no frames");
        let mut sampler = Sampler { dataset, settings, windows, next: 0, rng: Rng::new(seed) };
        sampler.rng.shuffle(&mut sampler.windows);
        Ok(sampler)
    }

    /// Sample windows per epoch.
    pub fn windows(&self) -> usize {
        self.windows.len()
    }

    /// Draws the next sample.
    fn draw(&mut self) -> Draw {
        if self.next == self.windows.len() {
            self.rng.shuffle(&mut self.windows);
            self.next = 0;
        }
        let window = self.windows[self.next];
        self.next += 1;
        let mut shift = |pad: usize| -> (isize, isize) {
            let mut draw = || self.rng.below(2 * pad + 1) as isize - pad as isize;
            (draw(), draw())
        };
        let static_shift = shift(self.settings.static_shift_px);
        let gripper_shift = shift(self.settings.gripper_shift_px);
        let recorded = &self.dataset.episodes[window.0].instruction;
        let instruction = drop_words(recorded, self.settings.word_dropout, &mut self.rng);
        Draw { window, static_shift, gripper_shift, instruction }
    }

    /// Moves past the next `batches` batches without building them: the sampler is then where it
    /// would be after drawing them (resuming a run from its step count).
    pub fn skip(&mut self, batches: u64) {
        for _ in 0..batches * self.settings.batch_size as u64 {
            self.draw();
        }
    }

    /// The next batch.
    pub fn next_batch(&mut self) -> Batch {
        let mut batch = Batch::default();
        self.fill(&mut batch);
        batch
    }

    /// Fills `batch` with the next samples, reusing its buffers.
    pub fn fill(&mut self, batch: &mut Batch) {
        let BatchSettings { batch_size, history, history_spacing, chunk, .. } = self.settings;
        let first = &self.dataset.episodes[self.windows[0].0];
        let size = |f: &Frames| (f.width, f.height);
        batch.size = batch_size;
        batch.history = history;
        batch.chunk = chunk;
        batch.static_size = size(&first.static_frames);
        batch.gripper_size = size(&first.gripper_frames);
        let static_bytes = first.static_frames.frame_bytes();
        let gripper_bytes = first.gripper_frames.frame_bytes();
        batch.static_images.resize(batch_size * history * static_bytes, 0);
        batch.gripper_images.resize(batch_size * history * gripper_bytes, 0);
        batch.robot_obs.clear();
        batch.scene_obs.clear();
        batch.steps_left.clear();
        batch.actions.clear();
        batch.action_mask.clear();
        batch.instructions.clear();
        batch.tasks.clear();
        batch.origins.clear();
        for sample in 0..batch_size {
            let Draw { window: (e, last), static_shift, gripper_shift, instruction } = self.draw();
            let episode = &self.dataset.episodes[e];
            let length = episode.len();
            for h in 0..history {
                // Frames before the episode's start repeat its first frame.
                let t = last.saturating_sub((history - 1 - h) * history_spacing);
                let slot = sample * history + h;
                shifted_copy(
                    &episode.static_frames,
                    t,
                    static_shift,
                    &mut batch.static_images[slot * static_bytes..][..static_bytes],
                );
                shifted_copy(
                    &episode.gripper_frames,
                    t,
                    gripper_shift,
                    &mut batch.gripper_images[slot * gripper_bytes..][..gripper_bytes],
                );
                batch.robot_obs.extend_from_slice(&episode.robot_obs[t * ROBOT_OBS_DIM..][..ROBOT_OBS_DIM]);
                batch.scene_obs.extend_from_slice(&episode.scene_obs[t * SCENE_OBS_DIM..][..SCENE_OBS_DIM]);
                batch.steps_left.push(length - 1 - t);
                for k in t..t + chunk {
                    let source = k.min(length - 1);
                    batch.actions.extend_from_slice(&episode.actions[source * ACTION_DIM..][..ACTION_DIM]);
                    batch.action_mask.push(k < length);
                }
            }
            batch.instructions.push(instruction);
            batch.tasks.push(episode.task.clone());
            batch.origins.push((e, last));
        }
    }
}

/// One sample as drawn: its (episode, last frame) window, the static and gripper cameras' shifts
/// (px) and its instruction, words dropped.
struct Draw {
    window: (usize, usize),
    static_shift: (isize, isize),
    gripper_shift: (isize, isize),
    instruction: String,
}

/// `instruction` with each word left out with probability `rate`; as it is when every word would
/// go, and without a draw at rate 0 (so runs without word dropout sample as before it existed).
fn drop_words(instruction: &str, rate: f64, rng: &mut Rng) -> String {
    if rate == 0.0 {
        return instruction.to_owned();
    }
    let kept: Vec<&str> = instruction.split_whitespace().filter(|_| !rng.chance(rate)).collect();
    if kept.is_empty() { instruction.to_owned() } else { kept.join(" ") }
}

/// Copies frame `index` of `frames` into `out` shifted by `(dx, dy)` pixels, replicating the edge
/// where the shift uncovers it: the same as padding by the edge and cropping at `pad + (dx, dy)`.
fn shifted_copy(frames: &Frames, index: usize, (dx, dy): (isize, isize), out: &mut [u8]) {
    if out.is_empty() {
        // A camera the model does not use was not decoded.
        return;
    }
    let (width, height) = (frames.width, frames.height);
    let source = frames.frame(index);
    if (dx, dy) == (0, 0) {
        out.copy_from_slice(&source);
        return;
    }
    let row_bytes = width * 3;
    // Output columns [left, right) read source columns shifted by dx; the rest repeat an edge pixel.
    let left = (-dx).clamp(0, width as isize) as usize;
    let right = (width as isize - dx).clamp(0, width as isize) as usize;
    for y in 0..height {
        let source_y = (y as isize + dy).clamp(0, height as isize - 1) as usize;
        let source_row = &source[source_y * row_bytes..][..row_bytes];
        let out_row = &mut out[y * row_bytes..][..row_bytes];
        if left < right {
            let from = (left as isize + dx) as usize;
            out_row[left * 3..right * 3].copy_from_slice(&source_row[from * 3..(from + right - left) * 3]);
        }
        for x in (0..left).chain(right..width) {
            let source_x = (x as isize + dx).clamp(0, width as isize - 1) as usize;
            out_row[x * 3..x * 3 + 3].copy_from_slice(&source_row[source_x * 3..source_x * 3 + 3]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::reader::{EpisodeData, PixelFormat};

    /// The reference: pad by edge replication, then crop at `pad + shift`.
    fn pad_and_crop(frames: &Frames, pad: usize, (dx, dy): (isize, isize)) -> Vec<u8> {
        let (w, h) = (frames.width as isize, frames.height as isize);
        let rgb = frames.frame(0);
        let (pw, ph) = (w + 2 * pad as isize, h + 2 * pad as isize);
        let mut padded = vec![0u8; (pw * ph * 3) as usize];
        for y in 0..ph {
            for x in 0..pw {
                let sx = (x - pad as isize).clamp(0, w - 1);
                let sy = (y - pad as isize).clamp(0, h - 1);
                let s = ((sy * w + sx) * 3) as usize;
                let d = ((y * pw + x) * 3) as usize;
                padded[d..d + 3].copy_from_slice(&rgb[s..s + 3]);
            }
        }
        let mut out = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let d = (((y + pad as isize + dy) * pw + x + pad as isize + dx) * 3) as usize;
                out.extend_from_slice(&padded[d..d + 3]);
            }
        }
        out
    }

    /// An episode of `length` frames whose frame `t` is filled with byte `t`, robot_obs `t` and
    /// actions `t`, so a batch shows which frame each slot came from.
    fn numbered_episode(length: usize) -> EpisodeData {
        let frames = |side: usize| {
            let mut frames = Frames::empty(side, side, 1, PixelFormat::Rgb);
            for t in 0..length {
                frames.push(&vec![t as u8; side * side * 3]);
            }
            frames
        };
        EpisodeData {
            index: 0,
            task: "turn_on_led".into(),
            instruction: "turn on the led".into(),
            scene: "d".into(),
            source: "demo".into(),
            seed: 0,
            robot_obs: (0..length).flat_map(|t| [t as f32; ROBOT_OBS_DIM]).collect(),
            scene_obs: (0..length).flat_map(|t| [t as f32; SCENE_OBS_DIM]).collect(),
            actions: (0..length).flat_map(|t| [t as f32; ACTION_DIM]).collect(),
            static_frames: frames(4),
            gripper_frames: frames(2),
        }
    }

    #[test]
    fn windows_are_spaced_and_at_the_episode_start_repeat_the_first_frame() {
        let length = 5;
        let dataset = Dataset { roots: vec!["numbered".into()], episodes: vec![numbered_episode(length)] };
        for (spacing, last_windows) in [(1, [[2, 3, 4], [1, 2, 3]]), (2, [[0, 2, 4], [0, 1, 3]])] {
            let settings = BatchSettings {
                batch_size: length,
                history: 3,
                history_spacing: spacing,
                chunk: 2,
                static_shift_px: 0,
                gripper_shift_px: 0,
                word_dropout: 0.0,
            };
            let mut sampler = Sampler::new(&dataset, &[0], settings, 1).unwrap();
            assert_eq!(sampler.windows(), length, "every frame ends a window");
            let batch = sampler.next_batch();
            let mut lasts: Vec<usize> = batch.origins.iter().map(|&(_, last)| last).collect();
            lasts.sort_unstable();
            assert_eq!(lasts, (0..length).collect::<Vec<_>>(), "one epoch holds each window once");
            for (sample, &(_, last)) in batch.origins.iter().enumerate() {
                let frame_of = |h: usize| batch.robot_obs[(sample * 3 + h) * ROBOT_OBS_DIM] as usize;
                let expected: Vec<usize> = (0..3).map(|h| last.saturating_sub((2 - h) * spacing)).collect();
                assert_eq!((0..3).map(frame_of).collect::<Vec<_>>(), expected, "window ending at {last}");
                if last >= 3 {
                    assert_eq!(expected, last_windows[4 - last], "spacing {spacing}");
                }
                let first_pixel = batch.static_images[(sample * 3) * 4 * 4 * 3];
                assert_eq!(usize::from(first_pixel), expected[0], "images follow the same frames");
                let scene_frame_of = |h: usize| batch.scene_obs[(sample * 3 + h) * SCENE_OBS_DIM] as usize;
                assert_eq!((0..3).map(scene_frame_of).collect::<Vec<_>>(), expected, "so does the scene state");
                let steps_left = &batch.steps_left[sample * 3..][..3];
                let expected_left: Vec<usize> = expected.iter().map(|t| length - 1 - t).collect();
                assert_eq!(steps_left, expected_left, "steps from each frame to the episode's last");
            }
        }
    }

    #[test]
    fn skipping_batches_lands_where_drawing_them_does() {
        let dataset =
            Dataset { roots: vec!["numbered".into()], episodes: vec![numbered_episode(7), numbered_episode(4)] };
        let settings = BatchSettings {
            batch_size: 3,
            history: 2,
            history_spacing: 1,
            chunk: 2,
            static_shift_px: 1,
            gripper_shift_px: 1,
            word_dropout: 0.3,
        };
        let mut drawn = Sampler::new(&dataset, &[0, 1], settings, 5).unwrap();
        let mut skipped = drawn.clone();
        for _ in 0..5 {
            drawn.next_batch();
        }
        skipped.skip(5);
        assert_eq!(drawn.next_batch(), skipped.next_batch());
    }

    #[test]
    fn word_dropout_leaves_out_words_in_order_never_all() {
        let recorded = "turn on the led";
        let settings = BatchSettings { batch_size: 200, history: 1, word_dropout: 0.5, ..BatchSettings::default() };
        let dataset = Dataset { roots: vec!["numbered".into()], episodes: vec![numbered_episode(5)] };
        let batch = Sampler::new(&dataset, &[0], settings, 2).unwrap().next_batch();
        let words: Vec<&str> = recorded.split(' ').collect();
        let mut lengths = std::collections::BTreeSet::new();
        for instruction in &batch.instructions {
            let mut rest = words.iter();
            let kept: Vec<&str> = instruction.split(' ').collect();
            assert!(kept.iter().all(|word| rest.any(|w| w == word)), "`{instruction}` keeps the words in order");
            lengths.insert(kept.len());
        }
        assert_eq!(lengths, (1..=4).collect(), "every length from one word to the whole instruction");

        let none = BatchSettings { word_dropout: 0.0, ..settings };
        let batch = Sampler::new(&dataset, &[0], none, 2).unwrap().next_batch();
        assert!(batch.instructions.iter().all(|i| i == recorded));
    }

    #[test]
    fn shift_equals_pad_then_crop() {
        let (width, height) = (7, 5);
        let rgb: Vec<u8> = (0..width * height * 3).map(|i| (i * 7 % 251) as u8).collect();
        let mut frames = Frames::empty(width, height, 1, PixelFormat::Rgb);
        frames.push(&rgb);
        let pad = 3;
        for dy in -3..=3 {
            for dx in -3..=3 {
                let mut out = vec![0; width * height * 3];
                shifted_copy(&frames, 0, (dx, dy), &mut out);
                assert_eq!(out, pad_and_crop(&frames, pad, (dx, dy)), "shift ({dx}, {dy})");
            }
        }
    }
}
