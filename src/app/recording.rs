//! Recording from the GUI: one frame per control step, composed by the deterministic CPU renderer
//! (the same frames `vlasim record` writes headless), so a recording does not depend on the
//! window and is finalised when the window closes.

use std::path::{Path, PathBuf};

use anyhow::Result;
use bevy::prelude::*;
use bevy::window::WindowCloseRequested;

use super::panel::AttentionOverlay;
use super::session::{Outcome, Session};
use crate::sim::camera::Image;
use crate::sim::world::CONTROL_HZ;
use crate::video::compose::{Caption, ComposeOptions, Composer};
use crate::video::recorder::{Recorder, RecordingSummary};

/// Records the session when asked.
pub struct RecordingPlugin {
    /// Start recording into this file at launch.
    pub start_with: Option<PathBuf>,
}

impl Plugin for RecordingPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(Recording { inset: true, start_with: self.start_with.clone(), ..default() })
            .add_systems(Startup, start_at_launch)
            .add_systems(FixedPostUpdate, record_step)
            .add_systems(Last, finish_on_close);
    }
}

/// The recording in progress, if any, and what became of the last one.
#[derive(Resource, Default)]
pub struct Recording {
    active: Option<(Recorder, Composer)>,
    /// The last finished recording, or why recording stopped.
    pub last: Option<Result<RecordingSummary, String>>,
    /// Show the policy cameras' images in a corner of the video.
    pub inset: bool,
    start_with: Option<PathBuf>,
}

/// Where GUI recordings go.
const RECORDINGS_DIR: &str = "recordings";

impl Recording {
    /// Whether a recording is running, and its file and frame count.
    pub fn active(&self) -> Option<(&Path, usize)> {
        self.active.as_ref().map(|(recorder, _)| (recorder.path(), recorder.frames()))
    }

    /// Starts recording into `path` (.mp4 or .gif) from the session's current state.
    pub fn start(&mut self, session: &Session, path: &Path) -> Result<()> {
        self.stop();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let options = ComposeOptions { inset: self.inset, ..ComposeOptions::default() };
        let mut composer = Composer::new(session.world(), options)?;
        let mut recorder = Recorder::create(path, options.width, options.height, CONTROL_HZ)?;
        recorder.push(composer.compose(session.world(), &caption(session)))?;
        self.active = Some((recorder, composer));
        Ok(())
    }

    /// Starts recording into a new numbered file in `recordings/`.
    pub fn start_numbered(&mut self, session: &Session) -> Result<()> {
        let scene = &session.scene().name;
        let path = (1..)
            .map(|n| Path::new(RECORDINGS_DIR).join(format!("vlasim_{scene}_seed{}_{n:03}.mp4", session.seed())))
            .find(|p| !p.exists())
            .expect("some file name is free");
        self.start(session, &path)
    }

    /// Finishes the file.
    pub fn stop(&mut self) {
        if let Some((recorder, _)) = self.active.take() {
            self.last = Some(recorder.finish().map_err(|e| format!("{e:#}")));
        }
    }

    /// Adds the session's current step; `static_inset` replaces the static camera's inset (the
    /// attention overlay, when it is on).
    fn push(&mut self, session: &Session, static_inset: Option<&Image>) {
        let Some((recorder, composer)) = &mut self.active else { return };
        let frame = composer.compose_with_static_inset(session.world(), &caption(session), static_inset);
        if let Err(error) = recorder.push(frame) {
            self.active = None;
            self.last = Some(Err(format!("recording stopped: {error:#}")));
        }
    }
}

/// The caption of the current step, from the session's timeline.
pub(super) fn caption(session: &Session) -> Caption {
    let instruction = session
        .history()
        .iter()
        .rev()
        .find(|c| !matches!(c.outcome, Outcome::Rejected(_)))
        .map(|c| c.instruction.clone())
        .unwrap_or_default();
    let timeline = session.timeline();
    Caption {
        instruction,
        step: timeline.oracle.len(),
        budget: timeline.budget,
        status: session.subtask_status(),
        chain: session.chain_statuses(),
    }
}

fn start_at_launch(mut recording: ResMut<Recording>, session: Res<Session>) {
    let Some(path) = recording.start_with.take() else { return };
    if let Err(error) = recording.start(&session, &path) {
        error!("cannot record to {}: {error:#}", path.display());
        recording.last = Some(Err(format!("{error:#}")));
    }
}

fn record_step(mut recording: ResMut<Recording>, session: Res<Session>, overlay: Res<AttentionOverlay>) {
    if recording.active.is_some() {
        recording.push(&session, overlay.draw(&session).as_ref());
    }
}

/// Closing the window (or any exit) finishes the file, so it is playable.
fn finish_on_close(
    mut recording: ResMut<Recording>,
    mut close_requests: MessageReader<WindowCloseRequested>,
    mut exits: MessageReader<AppExit>,
) {
    let closing = close_requests.read().count() + exits.read().count() > 0;
    if closing && recording.active.is_some() {
        recording.stop();
        if let Some(Ok(summary)) = &recording.last {
            info!("recording finished: {} ({} frames)", summary.path.display(), summary.frames);
        }
    }
}
