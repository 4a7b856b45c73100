//! Scripted GUI runs, for tests, demos and screenshots: type an instruction or start a chain at
//! launch, then after N control steps save a screenshot (with a probe of where things are on
//! screen) or close the window the way a person would.

use std::path::{Path, PathBuf};

use anyhow::Context;
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::window::{PrimaryWindow, WindowCloseRequested};
use serde::Serialize;

use super::orbit_camera::{Orbit, ViewportInset};
use super::session::Session;
use super::{GuiOptions, SimControl};
use crate::sim::scene::BlockColor;
use crate::sim::world::from_pose;

/// Runs the script in [`GuiOptions`].
pub struct ScriptPlugin(pub GuiOptions);

impl Plugin for ScriptPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(Script {
            options: self.0.clone(),
            steps: 0,
            done: false,
            frozen_frames: 0,
            frames: 0,
            first_step_at: None,
        })
        .add_systems(Startup, start_script)
        .add_systems(FixedPostUpdate, count_steps)
        .add_systems(Update, finish_script);
    }
}

#[derive(Resource)]
struct Script {
    options: GuiOptions,
    steps: u64,
    done: bool,
    /// Frames drawn since the sim was frozen for the screenshot.
    frozen_frames: u32,
    /// Frames drawn since the first control step, and when that step ran, for the frame-time report.
    frames: u64,
    first_step_at: Option<std::time::Instant>,
}

/// Where things are in a screenshot, so a test can check the pixels there.
#[derive(Debug, Serialize)]
pub struct ScreenshotProbe {
    /// Window size in physical pixels.
    pub window_px: [u32; 2],
    /// x where the side panel begins.
    pub panel_left_px: u32,
    /// Block name → pixel of its centre in the 3D view, for the blocks in front of the camera.
    pub blocks_px: Vec<(String, [f32; 2])>,
    /// The control step the screenshot shows.
    pub step: u64,
    /// The command history: instruction, task name, outcome.
    pub commands: Vec<CommandProbe>,
    /// Mean wall time per drawn frame since the first control step.
    pub mean_frame_ms: f64,
    /// Who drove the arm.
    pub driver: String,
    /// The VLA model selected, if any.
    pub model: Option<String>,
    /// Side of the attention map's patch grid, when the overlay has one to draw.
    pub attention_grid: Option<usize>,
    /// The scene's `scene_obs`, to compare runs.
    pub scene_obs: Vec<f64>,
    /// Side-by-side mode's second session.
    pub partner: Option<PartnerProbe>,
}

/// The second session of side-by-side mode, as a test reads it.
#[derive(Debug, Serialize)]
pub struct PartnerProbe {
    /// Its model.
    pub model: Option<String>,
    /// Its control step.
    pub step: u64,
    /// Its command history.
    pub commands: Vec<CommandProbe>,
    /// Its `scene_obs`, to compare runs.
    pub scene_obs: Vec<f64>,
}

/// One entry of the command history, as a test reads it.
#[derive(Debug, Serialize)]
pub struct CommandProbe {
    /// What was typed.
    pub instruction: String,
    /// The task it was understood as.
    pub task: Option<String>,
    /// How it ended, in words.
    pub outcome: String,
}

fn start_script(script: Res<Script>, mut session: ResMut<Session>) {
    if let Some(index) = script.options.chain
        && let Err(error) = session.run_chain(index)
    {
        error!("cannot run chain {index}: {error:#}");
    }
    if let Some(instruction) = &script.options.instruction {
        session.submit(instruction);
    }
}

fn count_steps(mut script: ResMut<Script>) {
    script.steps += 1;
    script.first_step_at.get_or_insert_with(std::time::Instant::now);
}

/// Frames drawn with the sim frozen before the screenshot is taken.
const FROZEN_FRAMES_BEFORE_CAPTURE: u32 = 2;

// A Bevy system: its parameters are the resources it touches, as in Bevy's own systems.
#[allow(clippy::too_many_arguments)]
fn finish_script(
    mut commands: Commands,
    mut script: ResMut<Script>,
    mut control: ResMut<SimControl>,
    session: Res<Session>,
    inset: Res<ViewportInset>,
    window: Single<(Entity, &Window), With<PrimaryWindow>>,
    camera: Single<(&Camera, &GlobalTransform), With<Orbit>>,
    mut close_requests: MessageWriter<WindowCloseRequested>,
) {
    if script.first_step_at.is_some() {
        script.frames += 1;
    }
    if script.done || script.steps < script.options.after_steps {
        return;
    }
    let (window_entity, window) = *window;
    if script.options.close {
        script.done = true;
        close_requests.write(WindowCloseRequested { window: window_entity });
        return;
    }
    let Some(path) = script.options.screenshot.clone() else { return };
    // Freeze the sim so the probe and the captured frame show the same step, and capture only once
    // the frozen panel has been drawn: text whose glyphs are first used in a frame is drawn with
    // those glyphs missing ("step 3 / 360 S" for "step 35 / 360 SUCCESS").
    control.paused = true;
    if script.frozen_frames < FROZEN_FRAMES_BEFORE_CAPTURE {
        script.frozen_frames += 1;
        return;
    }
    script.done = true;
    let (camera, camera_transform) = *camera;
    let scale = window.scale_factor();
    let blocks_px = BlockColor::ALL
        .iter()
        .filter_map(|color| {
            let pose = from_pose(&session.world().body_pose(session.world().handles().blocks[color.index()]));
            let t = pose.translation.vector;
            let centre = Vec3::new(t.x as f32, t.y as f32, t.z as f32);
            let px = camera.world_to_viewport(camera_transform, centre).ok()?;
            Some((color.name().to_string(), [px.x * scale, px.y * scale]))
        })
        .collect();
    let probe = ScreenshotProbe {
        window_px: [window.physical_width(), window.physical_height()],
        panel_left_px: window.physical_width().saturating_sub((inset.right * scale) as u32),
        blocks_px,
        step: session.world().steps(),
        commands: command_probes(&session),
        mean_frame_ms: script
            .first_step_at
            .map_or(0.0, |t| t.elapsed().as_secs_f64() * 1e3 / script.frames.max(1) as f64),
        driver: session.driver().label().to_string(),
        model: session.model().map(|card| card.name.clone()),
        attention_grid: session.attention().map(|(attention, _)| attention.grid),
        scene_obs: session.world().scene_obs().to_vec(),
        partner: session.partner().map(|partner| PartnerProbe {
            model: partner.model().map(|card| card.name.clone()),
            step: partner.world().steps(),
            commands: command_probes(partner),
            scene_obs: partner.world().scene_obs().to_vec(),
        }),
    };
    commands.spawn(Screenshot::primary_window()).observe(
        move |captured: On<ScreenshotCaptured>, mut exit: MessageWriter<AppExit>, mut script: ResMut<Script>| {
            // Pipelines compile in the background (seconds with software Vulkan); until they are
            // ready the window shows only the clear colour. Try again on a later frame.
            if !is_drawn(&captured.image, probe.panel_left_px) {
                script.done = false;
                return;
            }
            match save_screenshot(&captured.image, &path, &probe) {
                Ok(()) => {
                    info!("screenshot saved to {}", path.display());
                    exit.write(AppExit::Success);
                }
                Err(error) => {
                    error!("{error:#}");
                    exit.write(AppExit::error());
                }
            }
        },
    );
}

fn command_probes(session: &Session) -> Vec<CommandProbe> {
    session
        .history()
        .iter()
        .map(|c| CommandProbe {
            instruction: c.instruction.clone(),
            task: c.task.map(|t| t.name()),
            outcome: c.outcome.to_string(),
        })
        .collect()
}

/// Whether both the 3D view (left of `panel_left`) and the panel show more than a flat colour.
fn is_drawn(image: &bevy::image::Image, panel_left: u32) -> bool {
    const PIXEL_BYTES: usize = 4;
    let Some(bytes) = image.data.as_deref() else { return false };
    let width = image.width() as usize;
    let distinct = |columns: std::ops::Range<usize>| {
        let mut colours: Vec<&[u8]> = bytes
            .chunks_exact(PIXEL_BYTES)
            .enumerate()
            .filter(|(i, _)| i % 7 == 0 && columns.contains(&(i % width)))
            .map(|(_, pixel)| pixel)
            .collect();
        colours.sort_unstable();
        colours.dedup();
        colours.len()
    };
    let panel_left = panel_left as usize;
    // The right third of the 3D view: the teleop help and side-by-side windows cover its left side.
    distinct(panel_left * 2 / 3..panel_left) > 16 && distinct(panel_left..width) > 4
}

fn save_screenshot(image: &bevy::image::Image, path: &Path, probe: &ScreenshotProbe) -> anyhow::Result<()> {
    let rgb = image.clone().try_into_dynamic().context("screenshot has an unexpected pixel format")?.to_rgb8();
    rgb.save(path).with_context(|| format!("cannot write {}", path.display()))?;
    let probe_path: PathBuf = path.with_extension("json");
    let json = serde_json::to_string_pretty(probe)?;
    std::fs::write(&probe_path, json).with_context(|| format!("cannot write {}", probe_path.display()))
}
