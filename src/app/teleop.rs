//! Keyboard teleoperation: held keys become CALVIN's 7-D relative action, so a person drives the
//! arm through exactly the interface the expert and the VLA use.

use bevy::prelude::*;
use bevy_egui::input::EguiWantsInput;

use super::session::{Driver, Session};

/// Reads the keyboard while the teleop driver is selected.
pub struct TeleopPlugin;

impl Plugin for TeleopPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, read_keys.run_if(teleop_selected));
    }
}

/// Keys and what they do, for the help overlay.
pub const KEY_HELP: &[(&str, &str)] = &[
    ("W / S", "forward / back (+x / -x)"),
    ("A / D", "left / right (+y / -y)"),
    ("R / F", "up / down"),
    ("Q / E", "turn the gripper left / right"),
    ("Space", "close / open the gripper"),
    ("Shift", "fine motion (¼ speed)"),
    ("C", "reset the 3D view"),
];

/// Translation keys: (positive, negative, action index).
const AXES: [(KeyCode, KeyCode, usize); 4] = [
    (KeyCode::KeyW, KeyCode::KeyS, 0),
    (KeyCode::KeyA, KeyCode::KeyD, 1),
    (KeyCode::KeyR, KeyCode::KeyF, 2),
    (KeyCode::KeyQ, KeyCode::KeyE, 5),
];
const FINE_SCALE: f64 = 0.25;

fn teleop_selected(session: Res<Session>) -> bool {
    session.driver() == Driver::Teleop
}

fn read_keys(keys: Res<ButtonInput<KeyCode>>, egui_input: Res<EguiWantsInput>, mut session: ResMut<Session>) {
    // While the instruction box has focus, typing must not move the arm.
    let typing = egui_input.wants_any_keyboard_input();
    let scale = if keys.any_pressed([KeyCode::ShiftLeft, KeyCode::ShiftRight]) { FINE_SCALE } else { 1.0 };
    let mut action = [0.0; 7];
    if !typing {
        for (positive, negative, index) in AXES {
            action[index] = scale * (keys.pressed(positive) as i32 - keys.pressed(negative) as i32) as f64;
        }
    }
    let mut gripper = session.teleop_gripper();
    if !typing && keys.just_pressed(KeyCode::Space) {
        gripper = -gripper;
    }
    action[6] = gripper;
    session.set_teleop_action(action);
}
