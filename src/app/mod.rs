//! The Bevy GUI: one plugin per feature on top of the Bevy-free sim. The sim advances in
//! `FixedUpdate` at CALVIN's 30 Hz control rate whatever the frame rate; Bevy draws the human's
//! 3D view and egui the side panel.

mod models;
mod orbit_camera;
mod panel;
mod recording;
mod scene_view;
mod script;
pub mod session;
mod side_by_side;
mod teleop;

use std::path::PathBuf;

use anyhow::Result;
use bevy::prelude::*;
use bevy::window::WindowResolution;
use bevy_egui::EguiPlugin;

use crate::sim::scene::Scene;
use crate::sim::world::CONTROL_HZ;
pub use panel::AttentionMap;
use session::{Driver, Session};

/// What the GUI starts with; the scripted parts let tests and demos drive it without a person.
#[derive(Debug, Clone)]
pub struct GuiOptions {
    /// Scene name (`a`..`d`) or path.
    pub scene: String,
    /// Start state: evaluation chain `seed`'s.
    pub seed: u64,
    /// Window size in logical pixels.
    pub size: (u32, u32),
    /// Who drives the arm at start.
    pub driver: Driver,
    /// Folder of model folders for the VLA driver.
    pub models: PathBuf,
    /// Model to start with (folder name); the default one when absent.
    pub model: Option<String>,
    /// Start with the VLA's attention overlay on, showing this map.
    pub attention: Option<AttentionMap>,
    /// Start in side-by-side mode against this model (folder name).
    pub compare: Option<String>,
    /// An instruction submitted at start, as if typed.
    pub instruction: Option<String>,
    /// An evaluation chain run at start.
    pub chain: Option<u64>,
    /// After `after_steps` control steps, save a screenshot here (and a `.json` probe beside it)
    /// and exit.
    pub screenshot: Option<PathBuf>,
    /// Simulated seconds per real second.
    pub speed: f32,
    /// Control steps before the screenshot or the window close.
    pub after_steps: u64,
    /// Record from launch into this file (.mp4 or .gif).
    pub record: Option<PathBuf>,
    /// Close the window after `after_steps` control steps, as a person clicking its close button would.
    pub close: bool,
}

/// Pause and speed of the simulation, set from the panel.
#[derive(Resource, Debug, Clone, Copy, PartialEq)]
pub struct SimControl {
    /// Control steps stop while paused.
    pub paused: bool,
    /// Simulated seconds per real second.
    pub speed: f32,
}

/// Single steps asked for while paused.
#[derive(Resource, Debug, Default)]
pub struct StepRequest(pub u32);

/// Opens the window and runs until it is closed.
pub fn run(options: GuiOptions) -> Result<()> {
    let scene = Scene::resolve(&options.scene)?;
    let mut session = Session::new(scene, options.seed)?;
    session.set_driver(options.driver);
    let (width, height) = options.size;
    let speed = options.speed;
    let exit = App::new()
        .add_plugins(DefaultPlugins.set(WindowPlugin {
            primary_window: Some(Window {
                title: "vlasim".into(),
                resolution: WindowResolution::new(width, height),
                ..default()
            }),
            ..default()
        }))
        .add_plugins(EguiPlugin::default())
        .insert_resource(session)
        .insert_resource(Time::<Fixed>::from_hz(CONTROL_HZ))
        .insert_resource(SimControl { paused: false, speed })
        .init_resource::<StepRequest>()
        .add_systems(FixedUpdate, step_session)
        .add_systems(Update, (apply_control, single_step).chain())
        .add_plugins((
            scene_view::SceneViewPlugin,
            orbit_camera::OrbitCameraPlugin,
            models::ModelsPlugin {
                root: options.models.clone(),
                start_with: options.model.clone(),
                watch_attention: options.attention.is_some(),
                compare_with: options.compare.clone(),
            },
            panel::PanelPlugin { attention_map: options.attention.unwrap_or(AttentionMap::HeadMean) },
            teleop::TeleopPlugin,
            side_by_side::SideBySidePlugin,
            recording::RecordingPlugin { start_with: options.record.clone() },
            script::ScriptPlugin(options),
        ))
        .run();
    match exit {
        AppExit::Success => Ok(()),
        AppExit::Error(code) => anyhow::bail!("the GUI exited with code {code}"),
    }
}

fn step_session(mut session: ResMut<Session>) {
    session.step();
}

fn apply_control(control: Res<SimControl>, mut time: ResMut<Time<Virtual>>) {
    if control.paused != time.is_paused() {
        if control.paused { time.pause() } else { time.unpause() }
    }
    if time.relative_speed() != control.speed {
        time.set_relative_speed(control.speed);
    }
}

/// A step asked for while paused runs the whole fixed schedule once, so views and recorders see it too.
fn single_step(world: &mut World) {
    let requested = std::mem::take(&mut world.resource_mut::<StepRequest>().0);
    for _ in 0..requested {
        world.run_schedule(bevy::app::FixedMain);
    }
}
