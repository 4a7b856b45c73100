//! One demonstration episode, in the two forms collection passes it through: [`RawEpisode`] as
//! the simulation produced it (RGB frames, f32 observations and actions), and [`EncodedEpisode`]
//! with its camera streams H.264-encoded, which is what a worker hands back and what is staged on
//! disk until the dataset is assembled.
//!
//! Frame `t` holds the observation *before* action `t` (LeRobot's convention: every frame has
//! the action taken from it). Each camera stream is encoded by a fresh encoder, so it starts with
//! an IDR frame and decodes on its own wherever it lands in a concatenated video file.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

use crate::sim::camera::Image;
use crate::video::mp4::H264Encoder;

/// Frames per second of every dataset: CALVIN's control rate.
pub const FPS: u32 = 30;
/// CALVIN's robot_obs.
pub const ROBOT_OBS_DIM: usize = 15;
/// CALVIN's scene_obs.
pub const SCENE_OBS_DIM: usize = 24;
/// CALVIN's 7-D relative action.
pub const ACTION_DIM: usize = 7;

/// Where an episode comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The expert on one task from a seeded start state.
    Demo,
    /// A window of a long expert play sequence, labelled by the oracle.
    Play,
    /// A person drove the arm with the keyboard in the GUI until the oracle saw the task done.
    Teleop,
    /// A trained model drove the arm and the expert labelled every frame (DAgger, kept whether or
    /// not the task got done), or took over and finished the task (recovery demonstrations).
    Dagger,
    /// A trained model drove the arm alone and got the task done; every frame records the action
    /// it executed (self-imitation, `vlasim collect --dagger-own-successes`).
    OwnSuccess,
}

impl Source {
    /// The name stored in the dataset.
    pub fn name(self) -> &'static str {
        match self {
            Source::Demo => "demo",
            Source::Play => "play",
            Source::Teleop => "teleop",
            Source::Dagger => "dagger",
            Source::OwnSuccess => "own_success",
        }
    }
}

/// What identifies an episode besides its frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpisodeInfo {
    /// Scene name (a–d or the file's name).
    pub scene: String,
    /// Task id, e.g. `open_drawer`.
    pub task: String,
    /// The natural-language instruction (a training phrasing of `task`).
    pub instruction: String,
    /// Demonstration or play window.
    pub source: Source,
    /// The seed the episode was simulated from (start state and noise derive from it).
    pub seed: u64,
}

/// One control step as the simulation produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawFrame {
    /// The static camera's image.
    pub static_image: Image,
    /// The gripper camera's image.
    pub gripper_image: Image,
    /// CALVIN's robot_obs.
    pub robot_obs: [f32; ROBOT_OBS_DIM],
    /// CALVIN's scene_obs.
    pub scene_obs: [f32; SCENE_OBS_DIM],
    /// The action taken from this state (the expert's clean action; a person's for teleop).
    pub action: [f32; ACTION_DIM],
}

/// An episode as simulated.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEpisode {
    /// What it is.
    pub info: EpisodeInfo,
    /// Its frames.
    pub frames: Vec<RawFrame>,
}

/// One camera's frames as H.264 access units (Annex B).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EncodedStream {
    /// Frame width in the stream (px, even).
    pub width: u32,
    /// Frame height in the stream (px, even).
    pub height: u32,
    /// One access unit per frame, and whether it is a keyframe.
    pub frames: Vec<(Vec<u8>, bool)>,
}

impl EncodedStream {
    fn encode(images: impl Iterator<Item = Image>) -> Result<EncodedStream> {
        let mut stream = EncodedStream::default();
        let mut encoder: Option<H264Encoder> = None;
        for image in images {
            if encoder.is_none() {
                let new = H264Encoder::new(image.width, image.height, f64::from(FPS))?;
                (stream.width, stream.height) = new.encoded_size();
                encoder = Some(new);
            }
            let encoder = encoder.as_mut().expect("created for the first frame");
            let mut bitstream = Vec::new();
            let keyframe = encoder.encode(&image.rgb, &mut bitstream)?;
            stream.frames.push((bitstream, keyframe));
        }
        Ok(stream)
    }
}

/// An episode ready to be written into a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedEpisode {
    /// What it is.
    pub info: EpisodeInfo,
    /// `frames × 15`.
    pub robot_obs: Vec<f32>,
    /// `frames × 24`.
    pub scene_obs: Vec<f32>,
    /// `frames × 7`.
    pub actions: Vec<f32>,
    /// The static camera.
    pub static_video: EncodedStream,
    /// The gripper camera.
    pub gripper_video: EncodedStream,
    /// Per-channel counts of each 8-bit value over all frames: [static, gripper] × RGB × 256,
    /// from the raw images, for the dataset's image statistics.
    pub pixel_histograms: Box<[[[u64; 256]; 3]; 2]>,
}

impl EncodedEpisode {
    /// Frames in the episode.
    pub fn len(&self) -> usize {
        self.actions.len() / ACTION_DIM
    }

    /// Whether the episode has no frames.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Encodes `raw`'s camera streams and flattens its numbers.
    pub fn encode(raw: RawEpisode) -> Result<EncodedEpisode> {
        ensure!(!raw.frames.is_empty(), "episode {:?} has no frames", raw.info);
        let mut pixel_histograms = Box::new([[[0u64; 256]; 3]; 2]);
        for frame in &raw.frames {
            for (camera, image) in [&frame.static_image, &frame.gripper_image].into_iter().enumerate() {
                for pixel in image.rgb.chunks_exact(3) {
                    for (channel, &value) in pixel.iter().enumerate() {
                        pixel_histograms[camera][channel][usize::from(value)] += 1;
                    }
                }
            }
        }
        let robot_obs = raw.frames.iter().flat_map(|f| f.robot_obs).collect();
        let scene_obs = raw.frames.iter().flat_map(|f| f.scene_obs).collect();
        let actions = raw.frames.iter().flat_map(|f| f.action).collect();
        let (static_images, gripper_images): (Vec<Image>, Vec<Image>) =
            raw.frames.into_iter().map(|f| (f.static_image, f.gripper_image)).unzip();
        Ok(EncodedEpisode {
            info: raw.info,
            robot_obs,
            scene_obs,
            actions,
            static_video: EncodedStream::encode(static_images.into_iter())?,
            gripper_video: EncodedStream::encode(gripper_images.into_iter())?,
            pixel_histograms,
        })
    }
}

/// First bytes of a staged episode file, with the format version.
const STAGED_MAGIC: &[u8; 16] = b"vlasim-episode-1";

/// One camera stream in a staged header: (width, height, [(bytes, keyframe)] per frame).
type StagedStream = (u32, u32, Vec<(usize, bool)>);

/// The JSON header of a staged episode: everything but the bulk arrays.
#[derive(Serialize, Deserialize)]
struct StagedHeader {
    info: EpisodeInfo,
    frames: usize,
    streams: [StagedStream; 2],
}

/// Writes `episode` to `path` atomically (a temporary file renamed into place), so an
/// interrupted write never leaves a file that looks finished.
pub fn stage(path: &Path, episode: &EncodedEpisode) -> Result<()> {
    let streams = [&episode.static_video, &episode.gripper_video];
    let header = StagedHeader {
        info: episode.info.clone(),
        frames: episode.len(),
        streams: streams.map(|s| (s.width, s.height, s.frames.iter().map(|(b, k)| (b.len(), *k)).collect())),
    };
    let header = serde_json::to_vec(&header)?;
    let mut bytes = Vec::new();
    bytes.extend(STAGED_MAGIC);
    bytes.extend((header.len() as u64).to_le_bytes());
    bytes.extend(&header);
    for values in [&episode.robot_obs, &episode.scene_obs, &episode.actions] {
        bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    }
    for histogram in episode.pixel_histograms.iter().flatten().flatten() {
        bytes.extend(histogram.to_le_bytes());
    }
    for stream in streams {
        for (bitstream, _) in &stream.frames {
            bytes.extend(bitstream);
        }
    }
    let partial = path.with_extension("partial");
    let mut file = std::fs::File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("cannot rename {} into place", partial.display()))
}

/// Reads an episode written by [`stage`]; errors name the file.
pub fn unstage(path: &Path) -> Result<EncodedEpisode> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .with_context(|| format!("cannot read {}", path.display()))?;
    parse_staged(&bytes).with_context(|| format!("{} is not a staged vlasim episode", path.display()))
}

/// Reads a byte buffer front to back.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let Some(slice) = self.bytes.get(self.at..self.at + n) else {
            bail!("truncated: wanted {n} bytes at offset {} of {}", self.at, self.bytes.len());
        };
        self.at += n;
        Ok(slice)
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn floats(&mut self, count: usize) -> Result<Vec<f32>> {
        Ok(self.take(4 * count)?.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect())
    }
}

fn parse_staged(bytes: &[u8]) -> Result<EncodedEpisode> {
    let mut cursor = Cursor { bytes, at: 0 };
    ensure!(cursor.take(STAGED_MAGIC.len())? == STAGED_MAGIC, "wrong magic bytes");
    let header_len = cursor.u64()? as usize;
    let header: StagedHeader = serde_json::from_slice(cursor.take(header_len)?).context("bad header")?;
    let robot_obs = cursor.floats(header.frames * ROBOT_OBS_DIM)?;
    let scene_obs = cursor.floats(header.frames * SCENE_OBS_DIM)?;
    let actions = cursor.floats(header.frames * ACTION_DIM)?;
    let mut pixel_histograms = Box::new([[[0u64; 256]; 3]; 2]);
    for count in pixel_histograms.iter_mut().flatten().flatten() {
        *count = cursor.u64()?;
    }
    let mut streams = Vec::with_capacity(2);
    for (width, height, sizes) in &header.streams {
        ensure!(sizes.len() == header.frames, "a stream has {} frames, the episode {}", sizes.len(), header.frames);
        let frames = sizes
            .iter()
            .map(|(size, keyframe)| Ok((cursor.take(*size)?.to_vec(), *keyframe)))
            .collect::<Result<_>>()?;
        streams.push(EncodedStream { width: *width, height: *height, frames });
    }
    ensure!(cursor.at == bytes.len(), "{} trailing bytes", bytes.len() - cursor.at);
    let gripper_video = streams.pop().expect("two streams");
    let static_video = streams.pop().expect("two streams");
    Ok(EncodedEpisode {
        info: header.info,
        robot_obs,
        scene_obs,
        actions,
        static_video,
        gripper_video,
        pixel_histograms,
    })
}
