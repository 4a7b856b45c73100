//! The LeRobot v3.0 dataset layout (as `lerobot` 0.4's `datasets/utils.py` and
//! `lerobot_dataset.py` define it), and writing a dataset from encoded episodes:
//!
//! ```text
//! meta/info.json                                  codebase_version "v3.0", fps, features, path templates
//! meta/stats.json                                 per-feature normalisation statistics
//! meta/tasks.parquet                              instruction (pandas index) → task_index
//! meta/episodes/chunk-000/file-000.parquet        one row per episode: length, tasks, where its rows and video frames lie
//! data/chunk-000/file-NNN.parquet                 one row per frame, several episodes per file
//! videos/observation.images.<cam>/chunk-000/file-NNN.mp4   those episodes' frames, concatenated
//! ```
//!
//! Beyond LeRobot's columns, each episode row also carries `task_name` (the task id, e.g.
//! `open_drawer`), `scene`, `source` (`demo`, `play` or `teleop`) and `seed`.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use super::episode::{ACTION_DIM, EncodedEpisode, EncodedStream, FPS, ROBOT_OBS_DIM, SCENE_OBS_DIM};
use super::stats;
use super::table::{self, Column, Table};
use crate::video::mp4::Mp4Muxer;

/// LeRobot's format version written into `meta/info.json`.
pub const CODEBASE_VERSION: &str = "v3.0";
/// Path of the dataset description.
pub const INFO_PATH: &str = "meta/info.json";
/// Path of the statistics.
pub const STATS_PATH: &str = "meta/stats.json";
/// Path of the task table.
pub const TASKS_PATH: &str = "meta/tasks.parquet";
/// Path of the (only) episode table file.
pub const EPISODES_PATH: &str = "meta/episodes/chunk-000/file-000.parquet";
/// LeRobot's templates, filled in by [`data_path`] and [`video_path`].
pub const DATA_PATH_TEMPLATE: &str = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet";
/// See [`DATA_PATH_TEMPLATE`].
pub const VIDEO_PATH_TEMPLATE: &str = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4";
/// Files per chunk folder (LeRobot's default).
pub const CHUNKS_SIZE: usize = 1000;
/// Episodes per data/video file: keeps files well under LeRobot's 100 MB (data) and 200 MB (video) defaults.
pub const EPISODES_PER_FILE: usize = 500;

/// Feature key of CALVIN's robot_obs.
pub const STATE_KEY: &str = "observation.state";
/// Feature key of CALVIN's scene_obs (LeRobot's name for privileged environment state).
pub const ENVIRONMENT_STATE_KEY: &str = "observation.environment_state";
/// Feature key of the actions.
pub const ACTION_KEY: &str = "action";
/// Feature key of the static camera.
pub const STATIC_CAMERA_KEY: &str = "observation.images.static";
/// Feature key of the gripper camera.
pub const GRIPPER_CAMERA_KEY: &str = "observation.images.gripper";
/// Camera feature keys, in the order of [`EncodedEpisode`]'s streams.
pub const CAMERA_KEYS: [&str; 2] = [STATIC_CAMERA_KEY, GRIPPER_CAMERA_KEY];

/// A data or video file's path for `(chunk, file)`; `video_key` for videos.
pub fn data_path(chunk: usize, file: usize) -> String {
    format!("data/chunk-{chunk:03}/file-{file:03}.parquet")
}

/// See [`data_path`].
pub fn video_path(video_key: &str, chunk: usize, file: usize) -> String {
    format!("videos/{video_key}/chunk-{chunk:03}/file-{file:03}.mp4")
}

/// What [`write_dataset`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSummary {
    /// Episodes.
    pub episodes: usize,
    /// Frames over all episodes.
    pub frames: usize,
    /// Distinct instructions.
    pub tasks: usize,
    /// Expert attempts discarded as failures.
    pub failed_attempts: usize,
    /// Bytes of all files written.
    pub bytes: u64,
}

const ROBOT_OBS_NAMES: [&str; ROBOT_OBS_DIM] = [
    "tcp_x",
    "tcp_y",
    "tcp_z",
    "tcp_roll",
    "tcp_pitch",
    "tcp_yaw",
    "gripper_width",
    "joint_1",
    "joint_2",
    "joint_3",
    "joint_4",
    "joint_5",
    "joint_6",
    "joint_7",
    "gripper_action",
];
const SCENE_OBS_NAMES: [&str; SCENE_OBS_DIM] = [
    "sliding_door",
    "drawer",
    "button",
    "switch",
    "lightbulb",
    "green_light",
    "red_block_x",
    "red_block_y",
    "red_block_z",
    "red_block_roll",
    "red_block_pitch",
    "red_block_yaw",
    "blue_block_x",
    "blue_block_y",
    "blue_block_z",
    "blue_block_roll",
    "blue_block_pitch",
    "blue_block_yaw",
    "pink_block_x",
    "pink_block_y",
    "pink_block_z",
    "pink_block_roll",
    "pink_block_pitch",
    "pink_block_yaw",
];
const ACTION_NAMES: [&str; ACTION_DIM] = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"];

fn features(streams: [&EncodedStream; 2]) -> Value {
    let vector = |names: &[&str]| json!({"dtype": "float32", "shape": [names.len()], "names": names});
    let scalar = |dtype: &str| json!({"dtype": dtype, "shape": [1], "names": null});
    let mut features = serde_json::Map::new();
    for (key, stream) in CAMERA_KEYS.iter().zip(streams) {
        features.insert(
            (*key).to_owned(),
            json!({
                "dtype": "video",
                "shape": [stream.height, stream.width, 3],
                "names": ["height", "width", "channels"],
                "info": {
                    "video.height": stream.height,
                    "video.width": stream.width,
                    "video.codec": "h264",
                    "video.pix_fmt": "yuv420p",
                    "video.is_depth_map": false,
                    "video.fps": FPS,
                    "video.channels": 3,
                    "has_audio": false
                }
            }),
        );
    }
    features.insert(STATE_KEY.into(), vector(&ROBOT_OBS_NAMES));
    features.insert(ENVIRONMENT_STATE_KEY.into(), vector(&SCENE_OBS_NAMES));
    features.insert(ACTION_KEY.into(), vector(&ACTION_NAMES));
    features.insert("timestamp".into(), scalar("float32"));
    for key in ["frame_index", "episode_index", "index", "task_index"] {
        features.insert(key.into(), scalar("int64"));
    }
    Value::Object(features)
}

/// pandas' description of a table whose `task` column is the index, so `pd.read_parquet` (which
/// LeRobot uses for tasks.parquet) gives a frame indexed by instruction.
fn pandas_task_index_metadata() -> String {
    json!({
        "index_columns": ["task"],
        "column_indexes": [{"name": null, "field_name": null, "pandas_type": "unicode", "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": null},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": null}
        ],
        "creator": {"library": "vlasim", "version": env!("CARGO_PKG_VERSION")},
        "pandas_version": "2.2.3"
    })
    .to_string()
}

/// Writes `episodes` as a LeRobot v3.0 dataset into `out` (which may already exist).
pub fn write_dataset(out: &Path, episodes: &[EncodedEpisode], failed_attempts: usize) -> Result<DatasetSummary> {
    ensure!(!episodes.is_empty(), "no episode to write (every expert attempt failed?)");
    let first = &episodes[0];
    let streams = [&first.static_video, &first.gripper_video];
    for episode in episodes {
        for (stream, reference) in [&episode.static_video, &episode.gripper_video].into_iter().zip(streams) {
            ensure!(
                (stream.width, stream.height) == (reference.width, reference.height),
                "episodes have different camera sizes ({}x{} and {}x{}): collect one scene size per dataset",
                stream.width,
                stream.height,
                reference.width,
                reference.height
            );
        }
    }
    let mut written: Vec<std::path::PathBuf> = Vec::new();
    let mut create_parent = |relative: &str| -> Result<std::path::PathBuf> {
        let path = out.join(relative);
        let parent = path.parent().expect("dataset paths have a folder");
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        written.push(path.clone());
        Ok(path)
    };

    // Task indices: instructions in order of first use.
    let mut instructions: Vec<&str> = Vec::new();
    let task_index: Vec<i64> = episodes
        .iter()
        .map(|e| {
            let found = instructions.iter().position(|t| *t == e.info.instruction);
            found.unwrap_or_else(|| {
                instructions.push(&e.info.instruction);
                instructions.len() - 1
            }) as i64
        })
        .collect();

    let mut episode_rows = EpisodeRows::default();
    let mut frames_before = 0usize;
    for (file, group) in episodes.chunks(EPISODES_PER_FILE).enumerate() {
        let first_episode = file * EPISODES_PER_FILE;
        let mut data = DataColumns::default();
        for (offset, episode) in group.iter().enumerate() {
            let episode_index = first_episode + offset;
            data.push(episode, episode_index as i64, task_index[episode_index], frames_before + data.rows());
        }
        let (chunk, file_in_chunk) = (file / CHUNKS_SIZE, file % CHUNKS_SIZE);
        table::write(&create_parent(&data_path(chunk, file_in_chunk))?, &data.into_table())?;
        for (camera, key) in CAMERA_KEYS.iter().enumerate() {
            let path = create_parent(&video_path(key, chunk, file_in_chunk))?;
            let (width, height) = (camera_stream(first, camera).width, camera_stream(first, camera).height);
            let mut muxer = Mp4Muxer::new(
                std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?,
                width,
                height,
                f64::from(FPS),
            )?;
            for episode in group {
                for (bitstream, keyframe) in &camera_stream(episode, camera).frames {
                    muxer.push(bitstream, *keyframe).with_context(|| format!("cannot write {}", path.display()))?;
                }
            }
            muxer.finish().with_context(|| format!("cannot write {}", path.display()))?;
        }
        let mut frames_in_file = 0usize;
        for (offset, episode) in group.iter().enumerate() {
            let episode_index = first_episode + offset;
            episode_rows.push(episode, episode_index, (chunk, file_in_chunk), frames_before, frames_in_file);
            frames_before += episode.len();
            frames_in_file += episode.len();
        }
    }
    table::write(&create_parent(EPISODES_PATH)?, &episode_rows.into_table())?;
    let tasks = Table {
        columns: vec![
            ("task_index".into(), Column::Int64((0..instructions.len() as i64).collect())),
            ("task".into(), Column::Text(instructions.iter().map(|t| (*t).to_owned()).collect())),
        ],
        metadata: vec![("pandas".into(), pandas_task_index_metadata())],
    };
    table::write(&create_parent(TASKS_PATH)?, &tasks)?;

    let info = json!({
        "codebase_version": CODEBASE_VERSION,
        "robot_type": "vlasim_panda",
        "total_episodes": episodes.len(),
        "total_frames": frames_before,
        "total_tasks": instructions.len(),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": FPS,
        "splits": {"train": format!("0:{}", episodes.len())},
        "data_path": DATA_PATH_TEMPLATE,
        "video_path": VIDEO_PATH_TEMPLATE,
        "features": features(streams),
    });
    let info_path = create_parent(INFO_PATH)?;
    std::fs::write(&info_path, serde_json::to_string_pretty(&info)?)
        .with_context(|| format!("cannot write {}", info_path.display()))?;

    let stats_path = create_parent(STATS_PATH)?;
    std::fs::write(&stats_path, serde_json::to_string_pretty(&dataset_stats(episodes, &task_index))?)
        .with_context(|| format!("cannot write {}", stats_path.display()))?;

    let bytes = written.iter().map(|p| std::fs::metadata(p).map_or(0, |m| m.len())).sum();
    Ok(DatasetSummary {
        episodes: episodes.len(),
        frames: frames_before,
        tasks: instructions.len(),
        failed_attempts,
        bytes,
    })
}

/// The stream of camera `camera` (in [`CAMERA_KEYS`] order).
fn camera_stream(episode: &EncodedEpisode, camera: usize) -> &EncodedStream {
    if camera == 0 { &episode.static_video } else { &episode.gripper_video }
}

fn dataset_stats(episodes: &[EncodedEpisode], task_index: &[i64]) -> Value {
    let widen = |f: &dyn Fn(&EncodedEpisode) -> &Vec<f32>| -> Vec<f64> {
        episodes.iter().flat_map(|e| f(e).iter().map(|v| f64::from(*v))).collect()
    };
    let mut stats = serde_json::Map::new();
    stats.insert(STATE_KEY.into(), stats::vector_stats(&widen(&|e| &e.robot_obs), ROBOT_OBS_DIM));
    stats.insert(ENVIRONMENT_STATE_KEY.into(), stats::vector_stats(&widen(&|e| &e.scene_obs), SCENE_OBS_DIM));
    stats.insert(ACTION_KEY.into(), stats::vector_stats(&widen(&|e| &e.actions), ACTION_DIM));
    let mut per_frame: [Vec<f64>; 5] = Default::default();
    let mut index = 0;
    for (episode_index, episode) in episodes.iter().enumerate() {
        for frame in 0..episode.len() {
            per_frame[0].push(f64::from(frame as f32 / FPS as f32));
            per_frame[1].push(frame as f64);
            per_frame[2].push(episode_index as f64);
            per_frame[3].push(index as f64);
            per_frame[4].push(task_index[episode_index] as f64);
            index += 1;
        }
    }
    for (key, values) in
        ["timestamp", "frame_index", "episode_index", "index", "task_index"].into_iter().zip(&per_frame)
    {
        stats.insert(key.into(), stats::vector_stats(values, 1));
    }
    let frames: usize = episodes.iter().map(EncodedEpisode::len).sum();
    for (camera, key) in CAMERA_KEYS.iter().enumerate() {
        let mut histograms = [[0u64; 256]; 3];
        for episode in episodes {
            for (total, counts) in histograms.iter_mut().zip(&episode.pixel_histograms[camera]) {
                for (t, c) in total.iter_mut().zip(counts) {
                    *t += c;
                }
            }
        }
        stats.insert((*key).into(), stats::image_stats(&histograms, frames));
    }
    Value::Object(stats)
}

/// The frame rows of one data file.
#[derive(Default)]
struct DataColumns {
    state: Vec<f32>,
    environment_state: Vec<f32>,
    action: Vec<f32>,
    timestamp: Vec<f32>,
    frame_index: Vec<i64>,
    episode_index: Vec<i64>,
    index: Vec<i64>,
    task_index: Vec<i64>,
}

impl DataColumns {
    fn rows(&self) -> usize {
        self.timestamp.len()
    }

    fn push(&mut self, episode: &EncodedEpisode, episode_index: i64, task_index: i64, first_index: usize) {
        self.state.extend(&episode.robot_obs);
        self.environment_state.extend(&episode.scene_obs);
        self.action.extend(&episode.actions);
        for frame in 0..episode.len() {
            // LeRobot's timestamps are float32 seconds from the episode's start.
            self.timestamp.push(frame as f32 / FPS as f32);
            self.frame_index.push(frame as i64);
            self.episode_index.push(episode_index);
            self.index.push((first_index + frame) as i64);
            self.task_index.push(task_index);
        }
    }

    fn into_table(self) -> Table {
        Table {
            columns: vec![
                (STATE_KEY.into(), Column::Float32List { dim: ROBOT_OBS_DIM, values: self.state }),
                (
                    ENVIRONMENT_STATE_KEY.into(),
                    Column::Float32List { dim: SCENE_OBS_DIM, values: self.environment_state },
                ),
                (ACTION_KEY.into(), Column::Float32List { dim: ACTION_DIM, values: self.action }),
                ("timestamp".into(), Column::Float32(self.timestamp)),
                ("frame_index".into(), Column::Int64(self.frame_index)),
                ("episode_index".into(), Column::Int64(self.episode_index)),
                ("index".into(), Column::Int64(self.index)),
                ("task_index".into(), Column::Int64(self.task_index)),
            ],
            metadata: Vec::new(),
        }
    }
}

/// The rows of `meta/episodes/…`.
#[derive(Default)]
struct EpisodeRows {
    episode_index: Vec<i64>,
    tasks: Vec<Vec<String>>,
    length: Vec<i64>,
    data_chunk: Vec<i64>,
    data_file: Vec<i64>,
    from_index: Vec<i64>,
    to_index: Vec<i64>,
    from_timestamp: Vec<f64>,
    to_timestamp: Vec<f64>,
    task_name: Vec<String>,
    scene: Vec<String>,
    source: Vec<String>,
    seed: Vec<i64>,
}

impl EpisodeRows {
    fn push(
        &mut self,
        episode: &EncodedEpisode,
        episode_index: usize,
        (chunk, file): (usize, usize),
        frames_before: usize,
        frames_in_file: usize,
    ) {
        self.episode_index.push(episode_index as i64);
        self.tasks.push(vec![episode.info.instruction.clone()]);
        self.length.push(episode.len() as i64);
        self.data_chunk.push(chunk as i64);
        self.data_file.push(file as i64);
        self.from_index.push(frames_before as i64);
        self.to_index.push((frames_before + episode.len()) as i64);
        // Frame k of a video file is shown at k / fps.
        self.from_timestamp.push(frames_in_file as f64 / f64::from(FPS));
        self.to_timestamp.push((frames_in_file + episode.len()) as f64 / f64::from(FPS));
        self.task_name.push(episode.info.task.clone());
        self.scene.push(episode.info.scene.clone());
        self.source.push(episode.info.source.name().to_owned());
        // The seed's bits, as LeRobot has no unsigned column type.
        self.seed.push(episode.info.seed as i64);
    }

    fn into_table(self) -> Table {
        let rows = self.episode_index.len();
        let mut columns = vec![
            ("episode_index".into(), Column::Int64(self.episode_index)),
            ("tasks".into(), Column::TextList(self.tasks)),
            ("length".into(), Column::Int64(self.length)),
            ("data/chunk_index".into(), Column::Int64(self.data_chunk.clone())),
            ("data/file_index".into(), Column::Int64(self.data_file.clone())),
            ("dataset_from_index".into(), Column::Int64(self.from_index)),
            ("dataset_to_index".into(), Column::Int64(self.to_index)),
        ];
        for key in CAMERA_KEYS {
            columns.push((format!("videos/{key}/chunk_index"), Column::Int64(self.data_chunk.clone())));
            columns.push((format!("videos/{key}/file_index"), Column::Int64(self.data_file.clone())));
            columns.push((format!("videos/{key}/from_timestamp"), Column::Float64(self.from_timestamp.clone())));
            columns.push((format!("videos/{key}/to_timestamp"), Column::Float64(self.to_timestamp.clone())));
        }
        columns.push(("meta/episodes/chunk_index".into(), Column::Int64(vec![0; rows])));
        columns.push(("meta/episodes/file_index".into(), Column::Int64(vec![0; rows])));
        columns.push(("task_name".into(), Column::Text(self.task_name)));
        columns.push(("scene".into(), Column::Text(self.scene)));
        columns.push(("source".into(), Column::Text(self.source)));
        columns.push(("seed".into(), Column::Int64(self.seed)));
        Table { columns, metadata: Vec::new() }
    }
}
