//! Loading a LeRobot v3 dataset back for training: [`Dataset::open`] reads the parquet tables and
//! decodes every camera stream once into memory; a [`Sampler`] then draws reproducible training
//! [`Batch`]es as plain Rust arrays (the training loop turns them into tensors).
//!
//! Frames stay compressed in memory ([`Frames`]: about 16 kB per frame for both cameras, 128²
//! static and 64² gripper, against 61 kB as RGB), yet a large collection still does not fit whole: [`Dataset::open_selected`] keeps only some scenes and a seeded share of
//! their episodes (the data-efficiency runs use the same knob), or the images of every n-th frame
//! only — neighbouring frames show nearly the same picture, so a stride of 2 holds twice the start
//! layouts in the same memory.
//!
//! A sample is a window of `history` consecutive frames ending at frame `t`: for each frame its
//! robot_obs, both camera images and the next `chunk` actions (past the episode's end the last
//! action repeats and the mask says so), plus the episode's instruction and task id. Images get
//! RoboVLMs' random-shift augmentation: pad by replicating the edge (10 px static, 4 px gripper)
//! and crop back at a random offset, the same offset for every frame of a sample.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use super::episode::{ACTION_DIM, FPS, ROBOT_OBS_DIM, SCENE_OBS_DIM};
use super::lerobot::{
    ACTION_KEY, CAMERA_KEYS, CODEBASE_VERSION, ENVIRONMENT_STATE_KEY, EPISODES_PATH, INFO_PATH, STATE_KEY, data_path,
    video_path,
};
use super::table;
use crate::parallel;
use crate::sim::rng::Rng;
use crate::video::mp4_read;

/// How [`Frames`] holds each picture before compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// Row-major RGB, 3 bytes per pixel.
    Rgb,
    /// Packed YUV 4:2:0 as the H.264 decoder makes it (1.5 bytes per pixel), turned into RGB with
    /// [`mp4_read::yuv420_to_rgb`] when a frame is read: a video's frames exactly as decoding it
    /// to RGB gives them, in half the bytes.
    Yuv420,
}

impl PixelFormat {
    fn bytes(self, width: usize, height: usize) -> usize {
        match self {
            PixelFormat::Rgb => width * height * 3,
            PixelFormat::Yuv420 => mp4_read::yuv420_len(width, height),
        }
    }
}

/// One camera's frames of one episode: frames 0, `stride`, `2 × stride`, … of the episode, each
/// compressed on its own with Snappy (decoded video frames kept as YUV 4:2:0 take about a quarter
/// of RGB's bytes), so memory holds about three times the frames and any one still reads back in
/// tens of microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frames {
    /// Frame width (px).
    pub width: usize,
    /// Frame height (px).
    pub height: usize,
    /// Episode frames from one kept image to the next (1: every frame has its image).
    pub stride: usize,
    format: PixelFormat,
    /// The kept frames' compressed bytes, one after another.
    compressed: Vec<u8>,
    /// Where each kept frame's bytes end in `compressed`.
    ends: Vec<usize>,
}

impl Frames {
    /// No frames yet, `width × height` in `format`, keeping every `stride`-th.
    pub fn empty(width: usize, height: usize, stride: usize, format: PixelFormat) -> Frames {
        Frames { width, height, stride, format, compressed: Vec::new(), ends: Vec::new() }
    }

    /// Bytes per frame, as RGB.
    pub fn frame_bytes(&self) -> usize {
        self.width * self.height * 3
    }

    /// How many frames were kept.
    pub fn kept(&self) -> usize {
        self.ends.len()
    }

    /// Bytes the kept frames take in memory.
    pub fn memory_bytes(&self) -> usize {
        self.compressed.capacity() + self.ends.capacity() * size_of::<usize>()
    }

    /// Whether episode frame `index` kept its image.
    pub fn has(&self, index: usize) -> bool {
        index.is_multiple_of(self.stride)
    }

    /// Keeps the next frame, `pixels` in the format these frames were made with.
    pub fn push(&mut self, pixels: &[u8]) {
        assert_eq!(pixels.len(), self.format.bytes(self.width, self.height), "a {}×{} frame", self.width, self.height);
        let start = self.compressed.len();
        self.compressed.resize(start + snap::raw::max_compress_len(pixels.len()), 0);
        let written = snap::raw::Encoder::new()
            .compress(pixels, &mut self.compressed[start..])
            .expect("the buffer holds Snappy's worst case");
        self.compressed.truncate(start + written);
        self.ends.push(self.compressed.len());
    }

    /// Episode frame `index` as RGB ([`Frames::frame_bytes`] bytes); it must be one whose image
    /// was kept ([`Frames::has`]).
    pub fn frame(&self, index: usize) -> Vec<u8> {
        assert!(self.has(index), "frame {index}'s image was not kept (stride {})", self.stride);
        let kept = index / self.stride;
        let start = if kept == 0 { 0 } else { self.ends[kept - 1] };
        let pixels = snap::raw::Decoder::new()
            .decompress_vec(&self.compressed[start..self.ends[kept]])
            .expect("frames decompress what they compressed");
        match self.format {
            PixelFormat::Rgb => pixels,
            PixelFormat::Yuv420 => {
                let mut rgb = vec![0; self.frame_bytes()];
                mp4_read::yuv420_to_rgb(&pixels, self.width, self.height, &mut rgb);
                rgb
            }
        }
    }
}

/// One episode, fully in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeData {
    /// `episode_index` in the dataset; read with others ([`Dataset::open_all`]), counted on from
    /// the episodes of the datasets before it.
    pub index: usize,
    /// Task id, e.g. `open_drawer`.
    pub task: String,
    /// The instruction (the dataset's task string).
    pub instruction: String,
    /// Scene name.
    pub scene: String,
    /// `demo` or `play`.
    pub source: String,
    /// The seed it was simulated from ([`super::simulate`] reproduces it).
    pub seed: u64,
    /// `frames × 15` robot_obs.
    pub robot_obs: Vec<f32>,
    /// `frames × 24` scene_obs.
    pub scene_obs: Vec<f32>,
    /// `frames × 7` actions.
    pub actions: Vec<f32>,
    /// Static camera frames.
    pub static_frames: Frames,
    /// Gripper camera frames.
    pub gripper_frames: Frames,
}

impl EpisodeData {
    /// Frames in the episode.
    pub fn len(&self) -> usize {
        self.actions.len() / ACTION_DIM
    }

    /// Whether the episode has no frames.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// A dataset in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Where it was read from: one dataset folder, or several read as one.
    pub roots: Vec<PathBuf>,
    /// The episodes read, in `index` order (all of them unless a [`Selection`] left some out).
    pub episodes: Vec<EpisodeData>,
}

/// Which episodes of a dataset to load.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Scenes to keep (all when empty).
    pub scenes: Vec<String>,
    /// Share of those scenes' episodes to keep, in (0, 1]; at least one episode is kept.
    pub share: f64,
    /// Seed of the random pick when `share` < 1.
    pub seed: u64,
    /// Whether to decode the gripper camera (a model that does not use it leaves its frames
    /// empty, a fifth of the memory).
    pub gripper_camera: bool,
    /// Keep the images of frames 0, `frame_stride`, `2 × frame_stride`, … of each episode
    /// (1: all); every frame keeps its state and action.
    pub frame_stride: usize,
}

impl Selection {
    /// Every episode.
    pub fn all() -> Selection {
        Selection { scenes: Vec::new(), share: 1.0, seed: 0, gripper_camera: true, frame_stride: 1 }
    }

    /// Whether each of the episodes (by their scene) is kept.
    fn pick(&self, scenes: &[String]) -> Result<Vec<bool>> {
        ensure!(
            self.share > 0.0 && self.share <= 1.0,
            "the share of episodes to load must be in (0, 1], not {}",
            self.share
        );
        let mut candidates: Vec<usize> =
            (0..scenes.len()).filter(|&e| self.scenes.is_empty() || self.scenes.contains(&scenes[e])).collect();
        if self.share < 1.0 && !candidates.is_empty() {
            Rng::new(self.seed).shuffle(&mut candidates);
            let count = ((self.share * candidates.len() as f64).round() as usize).clamp(1, candidates.len());
            candidates.truncate(count);
        }
        let mut keep = vec![false; scenes.len()];
        for e in candidates {
            keep[e] = true;
        }
        Ok(keep)
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

impl Dataset {
    /// Reads the whole dataset at `root`; every error names the file at fault.
    pub fn open(root: &Path) -> Result<Dataset> {
        Dataset::open_selected(root, &Selection::all())
    }

    /// Reads the episodes of the dataset at `root` that `selection` keeps; the others are checked
    /// as thoroughly but their frames are dropped as they are decoded.
    pub fn open_selected(root: &Path, selection: &Selection) -> Result<Dataset> {
        Dataset::open_all(&[root.to_path_buf()], selection)
    }

    /// Reads the datasets at `roots` as one, in order, keeping what `selection` keeps of each (its
    /// share and seed pick from each dataset on its own).
    pub fn open_all(roots: &[PathBuf], selection: &Selection) -> Result<Dataset> {
        ensure!(!roots.is_empty(), "no dataset to read");
        ensure!(selection.frame_stride > 0, "the frame stride must be at least 1");
        let mut episodes = Vec::new();
        let mut first_index = 0;
        let mut recorded_scenes = BTreeSet::new();
        for root in roots {
            let (kept, count, scenes) = read_selected(root, selection, first_index)?;
            episodes.extend(kept);
            first_index += count;
            recorded_scenes.extend(scenes);
        }
        // A scene needs to be in one of the datasets, not in each: demonstrations of all scenes
        // may train beside recovery episodes of one.
        for scene in &selection.scenes {
            ensure!(recorded_scenes.contains(scene), "no episode was recorded in scene {scene:?}");
        }
        Ok(Dataset { roots: roots.to_vec(), episodes })
    }

    /// Frames over all episodes.
    pub fn frames(&self) -> usize {
        self.episodes.iter().map(EpisodeData::len).sum()
    }

    /// Bytes the kept camera images take in memory, and as RGB they would take.
    pub fn image_bytes(&self) -> (usize, usize) {
        let cameras = self.episodes.iter().flat_map(|e| [&e.static_frames, &e.gripper_frames]);
        cameras.fold((0, 0), |(memory, rgb), f| (memory + f.memory_bytes(), rgb + f.kept() * f.frame_bytes()))
    }

    /// Splits the episodes into training and validation sets: a share `validation` of them
    /// (at least one when there are two or more), picked with `seed`.
    pub fn split(&self, validation: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
        let mut order: Vec<usize> = (0..self.episodes.len()).collect();
        Rng::new(seed).shuffle(&mut order);
        let wanted = (validation * order.len() as f64).round() as usize;
        let count = if validation > 0.0 && order.len() >= 2 { wanted.clamp(1, order.len() - 1) } else { 0 };
        let mut validation_set = order.split_off(order.len() - count);
        order.sort_unstable();
        validation_set.sort_unstable();
        (order, validation_set)
    }
}

/// The episodes of the dataset at `root` that `selection` keeps, numbered from `first_index`, how
/// many episodes the dataset holds and the scenes they were recorded in.
fn read_selected(
    root: &Path,
    selection: &Selection,
    first_index: usize,
) -> Result<(Vec<EpisodeData>, usize, BTreeSet<String>)> {
    let info_path = root.join(INFO_PATH);
    let info = read_json(&info_path)?;
    let version = info["codebase_version"].as_str().unwrap_or("none");
    ensure!(
        version == CODEBASE_VERSION,
        "{}: codebase_version {version}, expected {CODEBASE_VERSION}",
        info_path.display()
    );
    ensure!(info["fps"].as_u64() == Some(u64::from(FPS)), "{}: fps must be {FPS}", info_path.display());

    let episodes_path = root.join(EPISODES_PATH);
    let meta = table::read(&episodes_path)?;
    let in_episodes = |e: anyhow::Error| e.context(format!("in {}", episodes_path.display()));
    let indices = meta.int64("episode_index").map_err(in_episodes)?;
    let lengths = meta.int64("length").map_err(in_episodes)?;
    let tasks = meta.text_list("tasks").map_err(in_episodes)?;
    let task_names = meta.text("task_name").map_err(in_episodes)?;
    let scenes = meta.text("scene").map_err(in_episodes)?;
    let sources = meta.text("source").map_err(in_episodes)?;
    let seeds = meta.int64("seed").map_err(in_episodes)?;
    let data_files = meta.int64("data/file_index").map_err(in_episodes)?;
    let data_chunks = meta.int64("data/chunk_index").map_err(in_episodes)?;
    let mut episodes = Vec::with_capacity(indices.len());
    for (row, &index) in indices.iter().enumerate() {
        ensure!(index == row as i64, "{}: episode_index {index} in row {row}", episodes_path.display());
        let instruction =
            tasks[row].first().with_context(|| format!("{}: episode {row} has no task", episodes_path.display()))?;
        let length = usize::try_from(lengths[row]).context("negative length")?;
        episodes.push(EpisodeData {
            index: first_index + row,
            task: task_names[row].clone(),
            instruction: instruction.clone(),
            scene: scenes[row].clone(),
            source: sources[row].clone(),
            seed: seeds[row] as u64,
            robot_obs: Vec::with_capacity(length * ROBOT_OBS_DIM),
            scene_obs: Vec::with_capacity(length * SCENE_OBS_DIM),
            actions: Vec::with_capacity(length * ACTION_DIM),
            static_frames: Frames::empty(0, 0, selection.frame_stride, PixelFormat::Yuv420),
            gripper_frames: Frames::empty(0, 0, selection.frame_stride, PixelFormat::Yuv420),
        });
    }
    let keep = selection.pick(scenes)?;
    let mut files: Vec<(usize, usize)> =
        data_chunks.iter().zip(data_files).map(|(c, f)| (*c as usize, *f as usize)).collect();
    files.dedup();
    for &(chunk, file) in &files {
        let path = root.join(data_path(chunk, file));
        read_data_file(&path, &mut episodes).with_context(|| format!("in {}", path.display()))?;
    }
    for (row, (episode, &length)) in episodes.iter().zip(lengths).enumerate() {
        ensure!(
            episode.len() as i64 == length,
            "{}: episode {row} has {} frames in the data files, its length says {length}",
            episodes_path.display(),
            episode.len()
        );
    }
    let cameras = if selection.gripper_camera { CAMERA_KEYS.len() } else { 1 };
    for (camera, key) in CAMERA_KEYS.iter().enumerate().take(cameras) {
        let froms = meta.float64(&format!("videos/{key}/from_timestamp")).map_err(in_episodes)?;
        // Decoding is most of loading's time and each video file holds its own episodes, so the
        // files decode in parallel.
        let decoded = parallel::map(files.len(), |f| {
            let (chunk, file) = files[f];
            let path = root.join(video_path(key, chunk, file));
            let members: Vec<usize> = (0..episodes.len())
                .filter(|&e| (data_chunks[e] as usize, data_files[e] as usize) == (chunk, file))
                .collect();
            read_video_file(&path, &members, &keep, froms, selection.frame_stride, &episodes)
        })
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
        for (e, frames) in decoded.into_iter().flatten() {
            *(if camera == 0 { &mut episodes[e].static_frames } else { &mut episodes[e].gripper_frames }) = frames;
        }
    }
    let count = episodes.len();
    let kept = episodes.into_iter().zip(keep).filter_map(|(episode, kept)| kept.then_some(episode)).collect();
    Ok((kept, count, scenes.iter().cloned().collect()))
}

fn read_data_file(path: &Path, episodes: &mut [EpisodeData]) -> Result<()> {
    let data = table::read(path)?;
    let state = data.float32_list(STATE_KEY, ROBOT_OBS_DIM)?;
    let environment = data.float32_list(ENVIRONMENT_STATE_KEY, SCENE_OBS_DIM)?;
    let action = data.float32_list(ACTION_KEY, ACTION_DIM)?;
    let episode_index = data.int64("episode_index")?;
    let frame_index = data.int64("frame_index")?;
    let timestamp = data.float32("timestamp")?;
    for row in 0..data.rows() {
        let Some(episode) = usize::try_from(episode_index[row]).ok().and_then(|e| episodes.get_mut(e)) else {
            bail!("row {row}: episode_index {} is not in the episode table", episode_index[row]);
        };
        let frame = episode.len();
        ensure!(frame_index[row] == frame as i64, "row {row}: frame_index {} where {frame} was due", frame_index[row]);
        ensure!(
            timestamp[row] == frame as f32 / FPS as f32,
            "row {row}: timestamp {} is not frame {frame} at {FPS} fps",
            timestamp[row]
        );
        episode.robot_obs.extend_from_slice(&state[row * ROBOT_OBS_DIM..][..ROBOT_OBS_DIM]);
        episode.scene_obs.extend_from_slice(&environment[row * SCENE_OBS_DIM..][..SCENE_OBS_DIM]);
        episode.actions.extend_from_slice(&action[row * ACTION_DIM..][..ACTION_DIM]);
    }
    Ok(())
}

/// Decodes one video file: the frames of each kept episode stored in it, by episode index.
fn read_video_file(
    path: &Path,
    members: &[usize],
    keep: &[bool],
    from_timestamps: &[f64],
    stride: usize,
    episodes: &[EpisodeData],
) -> Result<Vec<(usize, Frames)>> {
    let video = mp4_read::read_mp4(path)?;
    let expected: usize = members.iter().map(|&e| episodes[e].len()).sum();
    ensure!(
        video.samples.len() == expected,
        "{} holds {} frames, its episodes {expected}",
        path.display(),
        video.samples.len()
    );
    let (width, height) = (usize::from(video.width), usize::from(video.height));
    // (first frame, end, episode, its frames) for every episode stored here, kept or not.
    let mut spans: Vec<(usize, usize, usize, Frames)> = members
        .iter()
        .map(|&e| {
            let start = (from_timestamps[e] * f64::from(FPS)).round() as usize;
            (start, start + episodes[e].len(), e, Frames::empty(width, height, stride, PixelFormat::Yuv420))
        })
        .collect();
    let mut frame = 0;
    mp4_read::decode_each_yuv420(&video, |yuv, decoded_width, decoded_height| {
        let Some((start, _, e, frames)) = spans.iter_mut().find(|(start, end, ..)| (*start..*end).contains(&frame))
        else {
            bail!("frame {frame} belongs to no episode (check from_timestamp in {EPISODES_PATH})");
        };
        ensure!(
            (decoded_width, decoded_height) == (width, height),
            "frame {frame} is {decoded_width}×{decoded_height}, the video {width}×{height}"
        );
        let index = frame - *start;
        if keep[*e] && frames.has(index) {
            ensure!(frames.kept() == index / stride, "episodes overlap at frame {frame}");
            frames.push(yuv);
        }
        frame += 1;
        Ok(())
    })
    .with_context(|| format!("cannot decode {}", path.display()))?;
    Ok(spans
        .into_iter()
        .filter(|&(_, _, e, _)| keep[e])
        .map(|(_, _, e, mut frames)| {
            // Copies, not `shrink_to_fit`: mimalloc shrinks a block in place while the new size is at
            // least half the old, so a Vec grown by doubling would keep up to twice its bytes.
            frames.compressed = frames.compressed.to_vec();
            frames.ends = frames.ends.to_vec();
            (e, frames)
        })
        .collect())
}
