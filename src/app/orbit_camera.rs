//! The 3D view's camera: orbit with the left mouse button, pan with the right or middle one, zoom
//! with the wheel, `C` to reset. It renders only into the part of the window the panel leaves free.

use bevy::camera::Viewport;
use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll, MouseScrollUnit};
use bevy::prelude::*;
use bevy::window::PrimaryWindow;
use bevy_egui::input::{egui_wants_any_keyboard_input, egui_wants_any_pointer_input};

/// The orbiting 3D camera.
pub struct OrbitCameraPlugin;

impl Plugin for OrbitCameraPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<ViewportInset>().add_systems(Startup, spawn_camera).add_systems(
            Update,
            (
                orbit_with_mouse.run_if(not(egui_wants_any_pointer_input)),
                reset_with_key.run_if(not(egui_wants_any_keyboard_input)),
                place_camera,
                fit_viewport,
            )
                .chain(),
        );
    }
}

/// Logical pixels on the window's right edge covered by the panel.
#[derive(Resource, Default)]
pub struct ViewportInset {
    /// Width of the panel.
    pub right: f32,
}

/// Where the camera orbits: around `focus`, at `distance`, from the direction given by `yaw`
/// (about z, from +x) and `pitch` (above the desk plane). The sim's z is up.
#[derive(Component, Clone, Copy, Debug, PartialEq)]
pub struct Orbit {
    focus: Vec3,
    yaw: f32,
    pitch: f32,
    distance: f32,
}

impl Default for Orbit {
    /// Behind the robot's right shoulder, looking over the arm at the desk, drawer and cabinet.
    fn default() -> Self {
        Self { focus: Vec3::new(0.45, 0.02, 0.0), yaw: -2.45, pitch: 0.6, distance: 1.95 }
    }
}

impl Orbit {
    fn transform(&self) -> Transform {
        let direction =
            Vec3::new(self.pitch.cos() * self.yaw.cos(), self.pitch.cos() * self.yaw.sin(), self.pitch.sin());
        Transform::from_translation(self.focus + self.distance * direction).looking_at(self.focus, Vec3::Z)
    }
}

const ORBIT_RAD_PER_PX: f32 = 0.006;
const ZOOM_PER_LINE: f32 = 0.1;
const PITCH_LIMIT_RAD: f32 = 1.5;
const DISTANCE_RANGE_M: (f32, f32) = (0.3, 5.0);

fn spawn_camera(mut commands: Commands) {
    let orbit = Orbit::default();
    // No multisampling: it multiplies the fragment work, which software Vulkan (lavapipe, the
    // no-GPU case) pays at 1280×720 with 365–400 instead of 263 ms per frame (BENCHMARKS.md).
    commands.spawn((Camera3d::default(), Msaa::Off, orbit, orbit.transform()));
}

fn orbit_with_mouse(
    buttons: Res<ButtonInput<MouseButton>>,
    motion: Res<AccumulatedMouseMotion>,
    scroll: Res<AccumulatedMouseScroll>,
    mut orbit: Single<&mut Orbit>,
) {
    let delta = motion.delta;
    if buttons.pressed(MouseButton::Left) {
        orbit.yaw -= delta.x * ORBIT_RAD_PER_PX;
        orbit.pitch = (orbit.pitch + delta.y * ORBIT_RAD_PER_PX).clamp(-PITCH_LIMIT_RAD, PITCH_LIMIT_RAD);
    }
    if buttons.pressed(MouseButton::Right) || buttons.pressed(MouseButton::Middle) {
        // Move the focus in the camera's image plane, by as much as the cursor moved over the focus.
        let transform = orbit.transform();
        let metres_per_px = orbit.distance * 0.0012;
        orbit.focus += (-delta.x * transform.right() + delta.y * transform.up()) * metres_per_px;
    }
    let lines = match scroll.unit {
        MouseScrollUnit::Line => scroll.delta.y,
        MouseScrollUnit::Pixel => scroll.delta.y / 40.0,
    };
    if lines != 0.0 {
        let zoomed = orbit.distance * (1.0 - ZOOM_PER_LINE).powf(lines);
        orbit.distance = zoomed.clamp(DISTANCE_RANGE_M.0, DISTANCE_RANGE_M.1);
    }
}

fn reset_with_key(keys: Res<ButtonInput<KeyCode>>, mut orbit: Single<&mut Orbit>) {
    if keys.just_pressed(KeyCode::KeyC) {
        **orbit = Orbit::default();
    }
}

fn place_camera(mut camera: Single<(&Orbit, &mut Transform), Changed<Orbit>>) {
    let (orbit, transform) = &mut *camera;
    **transform = orbit.transform();
}

/// Keeps the 3D view out from under the panel, so the scene is centred in what is visible.
fn fit_viewport(
    inset: Res<ViewportInset>,
    window: Single<&Window, With<PrimaryWindow>>,
    mut camera: Single<&mut Camera, With<Orbit>>,
) {
    let scale = window.scale_factor();
    let size = UVec2::new(window.physical_width(), window.physical_height());
    let right = ((inset.right * scale) as u32).min(size.x.saturating_sub(1));
    let viewport =
        Viewport { physical_position: UVec2::ZERO, physical_size: UVec2::new(size.x - right, size.y), ..default() };
    if camera.viewport.as_ref().map(|v| (v.physical_position, v.physical_size))
        != Some((viewport.physical_position, viewport.physical_size))
    {
        camera.viewport = Some(viewport);
    }
}
