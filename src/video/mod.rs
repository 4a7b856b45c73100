//! Rollout videos: MP4 (H.264 via the bundled OpenH264, muxed in pure Rust) or GIF, with frames
//! composed by the deterministic CPU renderer so headless and GUI recordings are identical.
//!
//! [`Recorder`] writes frames to a file; [`Composer`] draws a frame of the tabletop with its
//! caption bar; [`rollout::RolloutRecording`] records the scripted expert or a VLA on a task or a chain.

pub mod compose;
pub mod draw;
mod font;
mod gif;
pub mod mp4;
pub mod mp4_read;
pub mod recorder;
pub mod rollout;

pub use compose::{Caption, ComposeOptions, Composer, SubtaskStatus};
pub use recorder::{Recorder, RecordingSummary};
