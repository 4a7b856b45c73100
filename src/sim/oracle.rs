//! The success oracle: decides whether a task was achieved by comparing the scene state at the
//! start of the subtask with the current one, using CALVIN's criteria and thresholds
//! (`calvin_env/envs/tasks.py`).

use nalgebra::UnitQuaternion;

use super::scene::{BlockColor, Scene};
use super::tasks::{Place, Side, Surface, Symbolic, Task};
use super::world::{BlockState, SceneState};

/// Rotation about z a rotate task needs.
pub const ROTATE_MIN_RAD: f64 = 60.0 * std::f64::consts::PI / 180.0;
/// Largest tilt about x or y a rotate task allows.
pub const ROTATE_MAX_TILT_RAD: f64 = 30.0 * std::f64::consts::PI / 180.0;
/// Largest displacement while rotating.
pub const ROTATE_MAX_DISPLACEMENT_M: f64 = 0.1;
/// Sideways travel a push needs.
pub const PUSH_MIN_M: f64 = 0.1;
/// Door travel a slider task needs.
pub const SLIDER_MIN_M: f64 = 0.15;
/// Drawer travel a drawer task needs.
pub const DRAWER_MIN_M: f64 = 0.12;
/// Height gain a lift needs.
pub const LIFT_MIN_M: f64 = 0.05;
/// A stacked or unstacked block must have come to rest: slower than this.
pub const REST_MAX_SPEED_M_S: f64 = 0.05;

/// Whether `task` has been achieved between `start` and `now`.
pub fn succeeded(task: Task, start: &SceneState, now: &SceneState) -> bool {
    match task {
        Task::RotateBlock(color, side) => rotated(&start.blocks[color.index()], &now.blocks[color.index()], side),
        Task::PushBlock(color, side) => {
            let (before, after) = (&start.blocks[color.index()], &now.blocks[color.index()]);
            let moved = (after.pose.translation.y - before.pose.translation.y) * side.sign();
            moved > PUSH_MIN_M && before.contacts.any_support() && after.contacts.any_support()
        }
        Task::MoveSlider(side) => (now.door_m - start.door_m) * side.sign() > SLIDER_MIN_M,
        Task::OpenDrawer => now.drawer_m - start.drawer_m > DRAWER_MIN_M,
        Task::CloseDrawer => start.drawer_m - now.drawer_m > DRAWER_MIN_M,
        Task::LiftBlock(color, surface) => {
            let (before, after) = (&start.blocks[color.index()], &now.blocks[color.index()]);
            let started_on = match surface {
                Surface::Table => before.contacts.table,
                Surface::Slider => before.contacts.slider,
                Surface::Drawer => before.contacts.drawer,
            };
            let held_only = after.contacts.robot && !after.contacts.any_support();
            started_on && held_only && after.pose.translation.z - before.pose.translation.z > LIFT_MIN_M
        }
        Task::PlaceInSlider => placed(start, now, |block| block.contacts.slider),
        Task::PlaceInDrawer => placed(start, now, |block| block.contacts.drawer),
        Task::PushIntoDrawer => BlockColor::ALL.iter().any(|c| {
            let (before, after) = (&start.blocks[c.index()], &now.blocks[c.index()]);
            before.contacts.table && !before.contacts.drawer && after.contacts.drawer && !after.contacts.table
        }),
        Task::StackBlock => BlockColor::ALL.iter().any(|c| {
            let (before, after) = (&start.blocks[c.index()], &now.blocks[c.index()]);
            !before.contacts.blocks.iter().any(|b| *b) && rests_on_block(now, *c).is_some() && at_rest(after)
        }),
        Task::UnstackBlock => BlockColor::ALL.iter().any(|c| {
            let after = &now.blocks[c.index()];
            rests_on_block(start, *c).is_some()
                && !after.contacts.blocks.iter().any(|b| *b)
                && after.contacts.any_support()
                && at_rest(after)
        }),
        Task::TurnOnLightbulb => !start.bulb_on && now.bulb_on,
        Task::TurnOffLightbulb => start.bulb_on && !now.bulb_on,
        Task::TurnOnLed => !start.led_on && now.led_on,
        Task::TurnOffLed => start.led_on && !now.led_on,
    }
}

/// Every task the oracle sees achieved between `start` and `now`.
pub fn achieved(start: &SceneState, now: &SceneState) -> Vec<Task> {
    Task::all().into_iter().filter(|task| succeeded(*task, start, now)).collect()
}

fn rotated(before: &BlockState, after: &BlockState, side: Side) -> bool {
    // CALVIN: relative rotation end · start⁻¹ as extrinsic xyz Euler angles.
    let relative: UnitQuaternion<f64> = after.pose.rotation * before.pose.rotation.inverse();
    let (x, y, z) = relative.euler_angles();
    let displacement = (after.pose.translation.vector - before.pose.translation.vector).norm();
    let turned = match side {
        Side::Left => z > ROTATE_MIN_RAD,
        Side::Right => z < -ROTATE_MIN_RAD,
    };
    turned
        && x.abs() < ROTATE_MAX_TILT_RAD
        && y.abs() < ROTATE_MAX_TILT_RAD
        && displacement < ROTATE_MAX_DISPLACEMENT_M
        && after.contacts.any_support()
}

/// The symbolic state a scene is in now, so a typed task's precondition can be checked against it.
pub fn perceive(scene: &Scene, state: &SceneState) -> Symbolic {
    let door_travel_m = scene.cabinet.width_m / 2.0;
    let place = |color: BlockColor| {
        let block = &state.blocks[color.index()];
        if state.grasped == Some(color) {
            Place::Grasped
        } else if let Some(base) = rests_on_block(state, color) {
            Place::StackedOn(base)
        } else if block.contacts.slider {
            let left = block.pose.translation.y > scene.cabinet.center_y_m;
            Place::Slider(if left { Side::Left } else { Side::Right })
        } else if block.contacts.drawer {
            Place::Drawer
        } else {
            Place::Table
        }
    };
    Symbolic {
        slider: if state.door_m > door_travel_m / 2.0 { Side::Left } else { Side::Right },
        drawer_open: state.drawer_m > scene.drawer.travel_m / 2.0,
        lightbulb: state.bulb_on,
        led: state.led_on,
        blocks: BlockColor::ALL.map(place),
    }
}

/// Some block was held only by the robot at the start, and now is released and touches the target.
fn placed(start: &SceneState, now: &SceneState, touches_target: impl Fn(&BlockState) -> bool) -> bool {
    BlockColor::ALL.iter().any(|c| {
        let (before, after) = (&start.blocks[c.index()], &now.blocks[c.index()]);
        let held_at_start = before.contacts.robot && !before.contacts.any_support();
        held_at_start && !after.contacts.robot && touches_target(after)
    })
}

/// The block `color` touches another block lying below it: returns that block.
pub fn rests_on_block(state: &SceneState, color: BlockColor) -> Option<BlockColor> {
    let block = &state.blocks[color.index()];
    BlockColor::ALL.into_iter().find(|other| {
        *other != color
            && block.contacts.blocks[other.index()]
            && state.blocks[other.index()].pose.translation.z < block.pose.translation.z
    })
}

fn at_rest(block: &BlockState) -> bool {
    !block.contacts.robot && block.linvel_m_s.norm() < REST_MAX_SPEED_M_S
}

#[cfg(test)]
mod tests {
    use nalgebra::{Isometry3, Vector3};

    use super::*;
    use crate::sim::world::Contacts;

    fn block_at(x: f64, y: f64, z: f64) -> BlockState {
        BlockState {
            pose: Isometry3::translation(x, y, z),
            linvel_m_s: Vector3::zeros(),
            angvel_rad_s: Vector3::zeros(),
            contacts: Contacts { table: true, ..Contacts::default() },
        }
    }

    fn state() -> SceneState {
        SceneState {
            door_m: 0.0,
            drawer_m: 0.0,
            button_m: 0.0,
            switch_m: 0.0,
            bulb_on: false,
            led_on: false,
            blocks: [block_at(0.4, 0.0, 0.025), block_at(0.4, 0.15, 0.025), block_at(0.45, -0.15, 0.018)],
            grasped: None,
        }
    }

    fn only(task: Task, start: &SceneState, now: &SceneState) {
        assert!(succeeded(task, start, now), "{task} should fire");
        assert_eq!(achieved(start, now), vec![task], "only {task} should fire");
    }

    #[test]
    fn nothing_fires_on_an_unchanged_scene() {
        assert!(achieved(&state(), &state()).is_empty());
    }

    #[test]
    fn drawer_fires_past_threshold_not_before() {
        let start = state();
        let mut now = state();
        now.drawer_m = 0.11;
        assert!(achieved(&start, &now).is_empty());
        now.drawer_m = 0.13;
        only(Task::OpenDrawer, &start, &now);
        only(Task::CloseDrawer, &now, &start);
    }

    #[test]
    fn slider_fires_past_threshold_in_its_direction() {
        let start = state();
        let mut now = state();
        now.door_m = 0.14;
        assert!(achieved(&start, &now).is_empty());
        now.door_m = 0.2;
        only(Task::MoveSlider(Side::Left), &start, &now);
        only(Task::MoveSlider(Side::Right), &now, &start);
    }

    #[test]
    fn rotation_needs_60_degrees_and_no_tilt() {
        let start = state();
        let mut now = state();
        now.blocks[0].pose.rotation = UnitQuaternion::from_euler_angles(0.0, 0.0, 55f64.to_radians());
        assert!(achieved(&start, &now).is_empty());
        now.blocks[0].pose.rotation = UnitQuaternion::from_euler_angles(0.0, 0.0, 70f64.to_radians());
        only(Task::RotateBlock(BlockColor::Red, Side::Left), &start, &now);
        now.blocks[0].pose.rotation = UnitQuaternion::from_euler_angles(0.0, 0.0, -70f64.to_radians());
        only(Task::RotateBlock(BlockColor::Red, Side::Right), &start, &now);
        now.blocks[0].pose.rotation = UnitQuaternion::from_euler_angles(0.6, 0.0, -70f64.to_radians());
        assert!(achieved(&start, &now).is_empty(), "tipped over is not rotated");
    }

    #[test]
    fn push_needs_10_cm_sideways_on_the_table() {
        let start = state();
        let mut now = state();
        now.blocks[2].pose.translation.y -= 0.09;
        assert!(achieved(&start, &now).is_empty());
        now.blocks[2].pose.translation.y -= 0.03;
        only(Task::PushBlock(BlockColor::Pink, Side::Right), &start, &now);
        now.blocks[2].contacts = Contacts { robot: true, ..Contacts::default() };
        assert!(!succeeded(Task::PushBlock(BlockColor::Pink, Side::Right), &start, &now), "carried is not pushed");
    }

    #[test]
    fn lift_needs_height_robot_only_contact_and_the_named_surface() {
        let start = state();
        let mut now = state();
        now.blocks[1].pose.translation.z += 0.06;
        now.blocks[1].contacts = Contacts { robot: true, ..Contacts::default() };
        only(Task::LiftBlock(BlockColor::Blue, Surface::Table), &start, &now);
        assert!(!succeeded(Task::LiftBlock(BlockColor::Blue, Surface::Drawer), &start, &now));
        now.blocks[1].pose.translation.z -= 0.02;
        assert!(achieved(&start, &now).is_empty(), "4 cm is a near miss");
    }

    #[test]
    fn place_stack_unstack_and_lights() {
        let mut held = state();
        held.blocks[0].pose.translation.z = 0.15;
        held.blocks[0].contacts = Contacts { robot: true, ..Contacts::default() };
        let mut in_drawer = held.clone();
        in_drawer.blocks[0].contacts = Contacts { drawer: true, ..Contacts::default() };
        in_drawer.blocks[0].pose.translation.z = -0.07;
        only(Task::PlaceInDrawer, &held, &in_drawer);
        let mut still_held = in_drawer.clone();
        still_held.blocks[0].contacts.robot = true;
        assert!(!succeeded(Task::PlaceInDrawer, &held, &still_held), "not released yet");

        let mut stacked = held.clone();
        stacked.blocks[0].pose.translation = Vector3::new(0.4, 0.15, 0.075).into();
        stacked.blocks[0].contacts = Contacts { blocks: [false, true, false], ..Contacts::default() };
        stacked.blocks[1].contacts.blocks = [true, false, false];
        assert!(succeeded(Task::StackBlock, &held, &stacked));
        let mut unstacked = state();
        unstacked.blocks[0].pose.translation = Vector3::new(0.3, 0.1, 0.025).into();
        assert!(succeeded(Task::UnstackBlock, &stacked, &unstacked));

        let mut lit = state();
        lit.led_on = true;
        only(Task::TurnOnLed, &state(), &lit);
        lit.led_on = false;
        lit.bulb_on = true;
        only(Task::TurnOnLightbulb, &state(), &lit);
        only(Task::TurnOffLightbulb, &lit, &state());
    }
}
