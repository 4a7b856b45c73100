//! The simulated tabletop: rapier physics at 240 Hz under a 30 Hz control loop (8 substeps per
//! action, as CALVIN), the arm and its gripper, the button/LED and switch/bulb logic, and the
//! state read-outs (CALVIN's `robot_obs` and `scene_obs`, and the richer [`SceneState`] the
//! oracle compares).
//!
//! Grasping is a documented, contact-triggered attachment: while the gripper closes, a finger
//! stops when both fingers touch the same movable body; if that body is a block, a fixed joint
//! is created between the hand and the block *at their current relative pose* (the block never
//! jumps), and it is removed as soon as the gripper opens. The block stays dynamic the whole
//! time, so it still collides with whatever it is carried into.

use glam::{Quat, Vec3};
use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};
use rapier3d::parry::query;
use rapier3d::prelude::*;

use super::arm::{Action, Arm, EePose, Workspace};
use super::build::{self, GRIPPER_MAX_WIDTH_M, Handles, JointOrigins, PHYSICS_DT_S, Part};
use super::kinematics;
use super::scene::{BlockColor, Scene};
use super::start::StartState;
use super::visual::{Glow, VisualPart};

/// Physics substeps per control step: 240 Hz physics under 30 Hz control.
pub const SUBSTEPS: usize = 8;
/// Control frequency.
pub const CONTROL_HZ: f64 = 30.0;
/// How fast the gripper opening changes.
const GRIPPER_SPEED_M_S: f64 = 0.2;
/// The button toggles the LED when pressed past this share of its travel, and re-arms below the lower one.
const BUTTON_TOGGLE_SHARE: f32 = 0.6;
const BUTTON_REARM_SHARE: f32 = 0.4;
/// Two colliders closer than this touch (for grasping and for the oracle's contacts).
const TOUCH_DISTANCE_M: f32 = 0.002;
/// Closing fingers stop this close to an object: well inside [`TOUCH_DISTANCE_M`], so a held block
/// that settles a little in the grasp still counts as touching the robot.
const GRIP_DISTANCE_M: f32 = 0.0005;
/// How far past the floor slab a block may be found before the simulation counts as come apart
/// ([`World::intact`]).
const INTACT_MARGIN_M: f64 = 0.05;
/// How far past their end stops the door and the drawer may be found before the same: a hand
/// pressing on overshoots by up to 13 cm (10 times past 5 cm while collecting 626 episodes), the
/// blow-ups in `data/demos-v11` and `-v12` put them 35 cm to 1 m past.
const RUNNER_OVERSHOOT_M: f64 = 0.2;
/// Faster than any block can move on its own here (one falling off the desk hits the floor at 3.8 m/s):
/// a block this fast was flung by a solver blow-up.
const FLUNG_BLOCK_SPEED_M_S: f32 = 5.0;

/// A block's pose, motion and contacts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockState {
    /// Pose in the world frame.
    pub pose: Isometry3<f64>,
    /// Linear velocity.
    pub linvel_m_s: Vector3<f64>,
    /// Angular velocity.
    pub angvel_rad_s: Vector3<f64>,
    /// What it touches.
    pub contacts: Contacts,
}

/// What a block touches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Contacts {
    /// The desk top.
    pub table: bool,
    /// The cabinet's floor (inside the slider).
    pub slider: bool,
    /// The drawer.
    pub drawer: bool,
    /// Any part of the robot.
    pub robot: bool,
    /// Other blocks, by [`BlockColor`] index.
    pub blocks: [bool; 3],
    /// Anything not listed above (cabinet walls, door, button, the floor).
    pub other: bool,
}

impl Contacts {
    /// Touches something other than the robot.
    pub fn any_support(&self) -> bool {
        self.table || self.slider || self.drawer || self.blocks.iter().any(|b| *b) || self.other
    }
}

/// Everything the oracle needs to compare two moments.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneState {
    /// Sliding door position: 0 = right, the cabinet's half width = left.
    pub door_m: f64,
    /// How far the drawer is pulled out.
    pub drawer_m: f64,
    /// How far the button is pressed.
    pub button_m: f64,
    /// Switch knob position along its rail: 0 = off end, towards +y switches on.
    pub switch_m: f64,
    /// Light bulb state.
    pub bulb_on: bool,
    /// LED state.
    pub led_on: bool,
    /// Blocks in [`BlockColor::ALL`] order.
    pub blocks: [BlockState; 3],
    /// The block held by the gripper's attachment, if any.
    pub grasped: Option<BlockColor>,
}

#[derive(Debug, Clone, Copy)]
struct Grasp {
    block: BlockColor,
    joint: ImpulseJointHandle,
}

/// The simulated tabletop.
pub struct World {
    scene: Scene,
    physics: PhysicsWorld,
    handles: Handles,
    origins: JointOrigins,
    visuals: Vec<VisualPart>,
    arm: Arm,
    gripper_width_m: f64,
    gripper_closing: bool,
    /// The fingers stopped on an object and hold this opening.
    gripper_blocked: bool,
    last_gripper_action: f64,
    grasp: Option<Grasp>,
    led_on: bool,
    button_armed: bool,
    steps: u64,
}

impl World {
    /// Builds `scene` and places everything as `start` says.
    pub fn new(scene: Scene, start: &StartState) -> World {
        let built = build::build(&scene);
        let workspace = workspace_for(&scene);
        let world_from_base =
            Isometry3::translation(scene.robot.base_m[0], scene.robot.base_m[1], scene.robot.base_m[2]);
        let mut world = World {
            arm: Arm::new(world_from_base, start.arm_joints, workspace),
            scene,
            physics: built.physics,
            handles: built.handles,
            origins: built.origins,
            visuals: built.visuals,
            gripper_width_m: GRIPPER_MAX_WIDTH_M,
            gripper_closing: false,
            gripper_blocked: false,
            last_gripper_action: 1.0,
            grasp: None,
            led_on: start.led_on,
            button_armed: true,
            steps: 0,
        };
        world.place(start);
        world
    }

    fn place(&mut self, start: &StartState) {
        let h = &self.handles;
        let o = self.origins;
        let bodies = &mut self.physics.bodies;
        bodies[h.drawer].set_translation(Vec3::new(o.drawer_closed_x_m - start.drawer_m as f32, 0.0, 0.0), true);
        let door_y = o.door_right_y_m + start.door_m as f32;
        bodies[h.door].set_translation(Vec3::new(0.0, door_y, 0.0), true);
        let switch = bodies[h.switch].translation();
        bodies[h.switch].set_translation(Vec3::new(switch.x, o.switch_off_y_m + start.switch_m as f32, switch.z), true);
        for (color, pose) in BlockColor::ALL.iter().zip(&start.block_poses) {
            bodies[h.blocks[color.index()]].set_position(to_pose(pose), true);
        }
        if let Some(held) = start.held {
            // Closed on the block and blocked there, as after a grasp, so the block is held from the first substep.
            self.gripper_width_m = build::held_block_width_m(self.scene.block(held));
            self.gripper_closing = true;
            self.gripper_blocked = true;
            self.last_gripper_action = -1.0;
        }
        self.place_arm();
        if let Some(held) = start.held {
            self.attach(held);
        }
        // Let the blocks settle (they start 2 mm above their support) and fill the contact graph,
        // so the first read-out already knows what rests where.
        // NOTE: `PhysicsWorld::detect_collisions` before the first step would do the latter, but
        // in rapier 0.36 it leaves the joint solver in a state that panics on the next step.
        for _ in 0..SUBSTEPS {
            self.physics.step();
        }
    }

    /// The scene this world was built from.
    pub fn scene(&self) -> &Scene {
        &self.scene
    }

    /// Control steps taken since construction.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The arm controller.
    pub fn arm(&self) -> &Arm {
        &self.arm
    }

    /// Current end-effector pose.
    pub fn ee_pose(&self) -> EePose {
        self.arm.ee_pose()
    }

    /// Current gripper opening.
    pub fn gripper_width_m(&self) -> f64 {
        self.gripper_width_m
    }

    /// The action that keeps the arm where it is aiming and the gripper as last commanded, so a
    /// pause between commands neither drops a held block nor moves the arm.
    pub fn hold_action(&self) -> Action {
        Action::Relative([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, self.last_gripper_action])
    }

    /// The visible parts, for renderers.
    pub fn visuals(&self) -> &[VisualPart] {
        &self.visuals
    }

    /// World pose of a body.
    pub fn body_pose(&self, body: RigidBodyHandle) -> Pose {
        *self.physics.bodies[body].position()
    }

    /// Whether a glowing part is lit now.
    pub fn is_lit(&self, glow: Glow) -> bool {
        match glow {
            Glow::Never => false,
            Glow::Led => self.led_on,
            Glow::Bulb => self.bulb_on(),
        }
    }

    /// World pose of the Franka Hand frame (the gripper camera is mounted on it).
    pub fn world_from_hand(&self) -> Isometry3<f64> {
        *self.arm.world_from_base() * kinematics::forward(&self.arm.joints).base_from_hand
    }

    /// Runs one 30 Hz control step: 8 physics substeps at 240 Hz.
    pub fn step(&mut self, action: &Action) {
        self.arm.command(action);
        let close = action.closes_gripper();
        if close != self.gripper_closing {
            self.gripper_closing = close;
            self.gripper_blocked = false;
            if !close {
                self.release();
            }
        }
        self.last_gripper_action = if close { -1.0 } else { 1.0 };
        for _ in 0..SUBSTEPS {
            self.substep();
        }
        self.steps += 1;
    }

    fn substep(&mut self) {
        let dt = PHYSICS_DT_S as f64;
        self.arm.advance(dt);
        // NOTE: only fingers still closing can grasp: fully closed fingertips pushing a block touch
        // it with both pads at once, and used to pick it up as if it lay between them.
        let fingers_closing = self.gripper_closing && !self.gripper_blocked && self.gripper_width_m > 0.0;
        if self.gripper_closing {
            if !self.gripper_blocked {
                self.gripper_width_m = (self.gripper_width_m - GRIPPER_SPEED_M_S * dt).max(0.0);
            }
        } else {
            self.gripper_width_m = (self.gripper_width_m + GRIPPER_SPEED_M_S * dt).min(GRIPPER_MAX_WIDTH_M);
        }
        self.place_arm();
        self.physics.step();
        if fingers_closing {
            self.check_grip();
        }
        self.update_led();
    }

    /// Sends the kinematic links, hand and fingers to the poses of the current joints and opening.
    fn place_arm(&mut self) {
        let frames = kinematics::forward(&self.arm.joints);
        let world_from_base = *self.arm.world_from_base();
        for (link, base_from_link) in self.handles.links.iter().zip(&frames.base_from_link) {
            self.physics.bodies[*link].set_next_kinematic_position(to_pose(&(world_from_base * base_from_link)));
        }
        let world_from_hand = to_pose(&(world_from_base * frames.base_from_hand));
        self.physics.bodies[self.handles.hand].set_next_kinematic_position(world_from_hand);
        for (side, finger) in self.handles.fingers.iter().enumerate() {
            let pose = world_from_hand * build::hand_from_finger(side, self.gripper_width_m);
            self.physics.bodies[*finger].set_next_kinematic_position(pose);
        }
        if self.steps == 0 {
            // Before the first step, teleport instead of sweeping in from the origin.
            for body in self.handles.links.iter().chain([&self.handles.hand]).chain(&self.handles.fingers) {
                let next = *self.physics.bodies[*body].next_position();
                self.physics.bodies[*body].set_position(next, false);
            }
        }
    }

    /// Stops the fingers once both touch the same movable body, and attaches it if it is a block.
    fn check_grip(&mut self) {
        let [touching_a, touching_b] = self.handles.finger_colliders.map(|finger| self.touched_bodies(finger));
        let Some(&(_, part)) = touching_a.iter().find(|a| touching_b.iter().any(|b| b.0 == a.0)) else {
            return;
        };
        self.gripper_blocked = true;
        if let Part::Block(block) = part {
            self.attach(block);
        }
    }

    /// Fixes `block` to the hand at their current relative pose.
    fn attach(&mut self, block: BlockColor) {
        let body = self.handles.blocks[block.index()];
        let hand_pose = *self.physics.bodies[self.handles.hand].position();
        let block_pose = *self.physics.bodies[body].position();
        // The joint frame is the block's pose: identity in the block, the block's pose seen from the hand.
        // NOTE: this was `block⁻¹ · hand`, which equals `hand⁻¹ · block` only for a block centred on the
        // hand's axis and square to it; off-centre or tilted blocks jumped when grasped.
        let joint = FixedJointBuilder::new()
            .local_frame1(Pose::IDENTITY)
            .local_frame2(hand_pose.inverse() * block_pose)
            .contacts_enabled(false);
        let joint = self.physics.impulse_joints.insert(body, self.handles.hand, joint, true);
        self.grasp = Some(Grasp { block, joint });
    }

    fn release(&mut self) {
        if let Some(grasp) = self.grasp.take() {
            self.physics.impulse_joints.remove(grasp.joint, true);
        }
    }

    /// Movable, non-robot bodies that `collider` touches, within the grip distance.
    fn touched_bodies(&self, collider: ColliderHandle) -> Vec<(RigidBodyHandle, Part)> {
        self.touching_within(collider, GRIP_DISTANCE_M)
            .filter_map(|other| {
                let other = &self.physics.colliders[other];
                let part = Part::from_user_data(other.user_data)?;
                let body = other.parent()?;
                (!part.is_robot() && self.physics.bodies[body].is_dynamic()).then_some((body, part))
            })
            .collect()
    }

    /// Colliders within [`TOUCH_DISTANCE_M`] of `collider`. rapier's contact pairs include
    /// speculative contacts up to its 2 cm prediction distance, so each candidate's true distance
    /// is measured.
    fn touching(&self, collider: ColliderHandle) -> impl Iterator<Item = ColliderHandle> + '_ {
        self.touching_within(collider, TOUCH_DISTANCE_M)
    }

    /// Colliders within `max_distance_m` of `collider`.
    fn touching_within(
        &self,
        collider: ColliderHandle,
        max_distance_m: f32,
    ) -> impl Iterator<Item = ColliderHandle> + '_ {
        let this = &self.physics.colliders[collider];
        self.physics.narrow_phase.contact_pairs_with(collider).filter_map(move |pair| {
            let other_handle = if pair.collider1 == collider { pair.collider2 } else { pair.collider1 };
            let other = self.physics.colliders.get(other_handle)?;
            let distance = query::distance(this.position(), this.shape(), other.position(), other.shape()).ok()?;
            (distance.distance <= max_distance_m).then_some(other_handle)
        })
    }

    fn update_led(&mut self) {
        let pressed = self.button_m() as f32 / self.scene.button.travel_m as f32;
        if self.button_armed && pressed > BUTTON_TOGGLE_SHARE {
            self.led_on = !self.led_on;
            self.button_armed = false;
        } else if !self.button_armed && pressed < BUTTON_REARM_SHARE {
            self.button_armed = true;
        }
    }

    fn door_m(&self) -> f64 {
        (self.physics.bodies[self.handles.door].translation().y - self.origins.door_right_y_m) as f64
    }

    fn drawer_m(&self) -> f64 {
        (self.origins.drawer_closed_x_m - self.physics.bodies[self.handles.drawer].translation().x) as f64
    }

    fn button_m(&self) -> f64 {
        (self.origins.button_up_z_m - self.physics.bodies[self.handles.button].translation().z) as f64
    }

    fn switch_m(&self) -> f64 {
        (self.physics.bodies[self.handles.switch].translation().y - self.origins.switch_off_y_m) as f64
    }

    fn bulb_on(&self) -> bool {
        self.switch_m() > self.scene.switch.travel_m / 2.0
    }

    /// Whether the simulation still holds together: every block on the floor slab or above it,
    /// within its edges and slower than a block can fall, the door and the drawer within their
    /// runners. A block pinched hard enough can tunnel through a collider or be flung away, a door
    /// jump off its runners (20 of the 36 553 episodes of `data/demos-v12`); what follows
    /// demonstrates nothing.
    pub fn intact(&self) -> bool {
        let lowest_z = build::floor_z_m(&self.scene.desk) as f64 - INTACT_MARGIN_M;
        let edge = build::FLOOR_HALF_SIZE_M as f64 + INTACT_MARGIN_M;
        let blocks_on_floor = self.handles.blocks.iter().all(|block| {
            let body = &self.physics.bodies[*block];
            let p = body.translation();
            (p.x as f64).abs() <= edge
                && (p.y as f64).abs() <= edge
                && p.z as f64 >= lowest_z
                && body.linvel().length() <= FLUNG_BLOCK_SPEED_M_S
        });
        let within =
            |value_m: f64, travel_m: f64| (-RUNNER_OVERSHOOT_M..=travel_m + RUNNER_OVERSHOOT_M).contains(&value_m);
        blocks_on_floor
            && within(self.door_m(), self.scene.cabinet.width_m / 2.0)
            && within(self.drawer_m(), self.scene.drawer.travel_m)
    }

    /// The block held by the gripper, if any.
    pub fn grasped(&self) -> Option<BlockColor> {
        self.grasp.map(|g| g.block)
    }

    /// Pose of one block.
    pub fn block_pose(&self, color: BlockColor) -> Isometry3<f64> {
        from_pose(self.physics.bodies[self.handles.blocks[color.index()]].position())
    }

    /// Snapshot for the oracle.
    pub fn state(&self) -> SceneState {
        let blocks = BlockColor::ALL.map(|color| {
            let body = &self.physics.bodies[self.handles.blocks[color.index()]];
            let linvel = body.linvel();
            let angvel = body.angvel();
            BlockState {
                pose: from_pose(body.position()),
                linvel_m_s: Vector3::new(linvel.x as f64, linvel.y as f64, linvel.z as f64),
                angvel_rad_s: Vector3::new(angvel.x as f64, angvel.y as f64, angvel.z as f64),
                contacts: self.block_contacts(color),
            }
        });
        SceneState {
            door_m: self.door_m(),
            drawer_m: self.drawer_m(),
            button_m: self.button_m(),
            switch_m: self.switch_m(),
            bulb_on: self.bulb_on(),
            led_on: self.led_on,
            blocks,
            grasped: self.grasped(),
        }
    }

    fn block_contacts(&self, color: BlockColor) -> Contacts {
        let mut contacts = Contacts::default();
        let body = &self.physics.bodies[self.handles.blocks[color.index()]];
        for collider in body.colliders() {
            for other in self.touching(*collider) {
                let Some(part) = Part::from_user_data(self.physics.colliders[other].user_data) else {
                    continue;
                };
                match part {
                    Part::Desk => contacts.table = true,
                    Part::CabinetFloor => contacts.slider = true,
                    Part::Drawer => contacts.drawer = true,
                    Part::Arm | Part::Finger(_) => contacts.robot = true,
                    Part::Block(other) => contacts.blocks[other.index()] = true,
                    Part::Cabinet | Part::Door | Part::Button | Part::Switch | Part::Floor => contacts.other = true,
                }
            }
        }
        contacts
    }

    /// CALVIN's 15-D robot observation: TCP position (3), TCP Euler (3), gripper opening (1),
    /// joint angles (7), last gripper action (1).
    pub fn robot_obs(&self) -> [f64; 15] {
        let ee = self.ee_pose();
        let mut obs = [0.0; 15];
        obs[0..3].copy_from_slice(ee.position_m.as_slice());
        obs[3..6].copy_from_slice(ee.euler_rad.as_slice());
        obs[6] = self.gripper_width_m;
        obs[7..14].copy_from_slice(&self.arm.joints);
        obs[14] = self.last_gripper_action;
        obs
    }

    /// CALVIN's 24-D scene observation: door, drawer, button, switch, bulb (0/1), LED (0/1),
    /// then red, blue, pink blocks as position (3) and Euler XYZ (3).
    pub fn scene_obs(&self) -> [f64; 24] {
        // Reads poses directly: the contacts in `state()` cost distance queries the observation does not need.
        let mut obs = [0.0; 24];
        obs[0] = self.door_m();
        obs[1] = self.drawer_m();
        obs[2] = self.button_m();
        obs[3] = self.switch_m();
        obs[4] = self.bulb_on() as u8 as f64;
        obs[5] = self.led_on as u8 as f64;
        for (i, color) in BlockColor::ALL.iter().enumerate() {
            let pose = EePose::from_isometry(&self.block_pose(*color));
            obs[6 + 6 * i..9 + 6 * i].copy_from_slice(pose.position_m.as_slice());
            obs[9 + 6 * i..12 + 6 * i].copy_from_slice(pose.euler_rad.as_slice());
        }
        obs
    }

    /// Handles of the simulated parts.
    pub fn handles(&self) -> &Handles {
        &self.handles
    }
}

/// The box the end-effector target is kept in: over the desk, not into it.
fn workspace_for(scene: &Scene) -> Workspace {
    let drawer = build::drawer_geometry(scene);
    // The tool centre point sits 9 mm above the fingertips; keep the tips a few millimetres clear.
    let tip_clearance_m = 0.012;
    Workspace {
        min_m: Vector3::new(
            scene.robot.base_m[0] - 0.05,
            -scene.desk.half_width_m,
            drawer.floor_top_z_m as f64 + tip_clearance_m,
        ),
        max_m: Vector3::new(scene.desk.far_x_m - 0.05, scene.desk.half_width_m, 0.7),
        desk_floor_z_m: tip_clearance_m,
        desk_near_x_m: scene.desk.near_x_m,
    }
}

/// nalgebra (f64) pose → rapier (f32) pose.
pub fn to_pose(iso: &Isometry3<f64>) -> Pose {
    let t = iso.translation.vector;
    let q = iso.rotation.quaternion();
    Pose::from_parts(
        Vec3::new(t.x as f32, t.y as f32, t.z as f32),
        Quat::from_xyzw(q.i as f32, q.j as f32, q.k as f32, q.w as f32).normalize(),
    )
}

/// rapier (f32) pose → nalgebra (f64) pose.
pub fn from_pose(pose: &Pose) -> Isometry3<f64> {
    let t = pose.translation;
    let q = pose.rotation;
    Isometry3::from_parts(
        Translation3::new(t.x as f64, t.y as f64, t.z as f64),
        UnitQuaternion::new_normalize(nalgebra::Quaternion::new(q.w as f64, q.x as f64, q.y as f64, q.z as f64)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::chains::{self, EVAL_SEED};
    use crate::sim::episode;

    #[test]
    fn a_block_through_the_floor_or_flung_or_a_door_off_its_runners_is_not_intact() {
        let scene = Scene::resolve("d").unwrap();
        let chain = chains::chain(EVAL_SEED, 0);
        let fresh = || episode::chain_world(&scene, &chain, 0).unwrap();
        let mut world = fresh();
        assert!(world.intact(), "a start state");
        for _ in 0..30 {
            let hold = world.hold_action();
            world.step(&hold);
        }
        assert!(world.intact(), "after a second at rest");
        let block = world.handles.blocks[BlockColor::Blue.index()];
        world.physics.bodies[block].set_translation(Vec3::new(0.3, 0.0, -5.0), true);
        assert!(!world.intact(), "a block below the floor");
        let mut world = fresh();
        world.physics.bodies[block].set_translation(Vec3::new(0.3, 2.5, 0.1), true);
        assert!(!world.intact(), "a block beyond the floor's edge");
        let mut world = fresh();
        world.physics.bodies[block].set_linvel(Vec3::new(0.0, 8.0, 3.0), true);
        assert!(!world.intact(), "a block flung at 8.5 m/s");
        let mut world = fresh();
        let door = world.handles.door;
        let door_y = world.physics.bodies[door].translation().y;
        world.physics.bodies[door].set_translation(Vec3::new(0.0, door_y + 1.0, 0.0), true);
        assert!(!world.intact(), "the door a metre along its runners");
    }

    #[test]
    fn a_pushed_door_comes_to_rest() {
        let scene = Scene::resolve("d").unwrap();
        let chain = chains::chain(EVAL_SEED, 0);
        let mut world = episode::chain_world(&scene, &chain, 0).unwrap();
        let door = world.handles.door;
        let before = world.scene_obs()[0];
        assert!(before > 0.2, "room to slide right from {before}");
        // What a brisk push of the hand leaves it with.
        world.physics.bodies[door].set_linvel(Vec3::new(0.0, -0.3, 0.0), true);
        for _ in 0..15 {
            let hold = world.hold_action();
            world.step(&hold);
        }
        let slid = before - world.scene_obs()[0];
        // An undamped 0.3 m/s would carry it 15 cm in these half second.
        assert!((0.0..0.04).contains(&slid), "the door slid {slid:.3} m");
    }
}
