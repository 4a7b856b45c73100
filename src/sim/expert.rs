//! The scripted expert: solves each of the 34 tasks by following waypoints planned from the
//! privileged scene state, but acts only through the same 7-D relative action a VLA outputs.
//!
//! A plan is a list of stages; each stage is planned from the state when it begins (so a push
//! that turned the block is followed by a push planned from where the block really is, and a
//! grasp that missed is tried again), aiming at the task's goal relative to the subtask's start. Optional
//! seeded Gaussian noise on the translation actions produces the off-nominal states behaviour
//! cloning needs to learn recoveries (DART, Laskey et al. 2017); the waypoint controller corrects it.

use nalgebra::{Isometry3, Vector3};

use super::arm::{Action, POSITION_STEP_M, ROTATION_STEP_RAD};
use super::build::{self, GRIPPER_MAX_WIDTH_M};
use super::oracle;
use super::rng::Rng;
use super::scene::{BlockColor, Scene};
use super::tasks::{Side, Surface, Task};
use super::world::{SceneState, World};

/// Anything that drives the arm one control step at a time.
pub trait Policy {
    /// Starts a new subtask from the current state of `world`.
    fn begin(&mut self, task: Task, world: &World);
    /// The next action.
    fn act(&mut self, world: &World) -> Action;
}

/// Height the gripper travels at between places.
const TRANSIT_Z_M: f64 = 0.22;
/// Closed fingertips: the two fingers' thickness across the pad (closing direction).
const CLOSED_TIPS_HALF_Y_M: f64 = 2.0 * build::FINGER_HALF_EXTENTS_M.y as f64;
/// Clearance between fingertips and an object before a push starts.
const PUSH_APPROACH_GAP_M: f64 = 0.025;
/// How far pushes and slides overshoot their threshold, so they pass it despite slip.
const PUSH_DISTANCE_M: f64 = 0.135;
/// Longest single push towards the drawer; the next stage re-aims at where the block went.
const PUSH_SEGMENT_M: f64 = 0.2;
/// A block pushed towards the drawer is lined up with it within this, sideways.
const DRAWER_ALIGNMENT_M: f64 = 0.04;
/// How far past the desk's edge a block's centre is pushed, so it tips into the drawer.
const PUSH_OVER_EDGE_M: f64 = 0.045;
/// Height pushes hop at between segments: above any block, even a stacked one.
const PUSH_HOP_Z_M: f64 = 0.13;
/// A hand within this of its next target, horizontally, hops over to it instead of rising to
/// transit height first: rising there would retrace, upwards, the column the approach comes down,
/// and a policy that sees one frame cannot tell the two apart (after a push the block is about
/// 5 cm from the hand, after a rotation or a stack right under it).
const COLUMN_RADIUS_M: f64 = 0.1;
/// How far above its target a hand within [`COLUMN_RADIUS_M`] of it, but lower, hops across: its
/// fingertips clear the block beside them by 3–4 cm.
const COLUMN_HOP_M: f64 = 0.03;
/// Clearance kept between the desk's edge and the fingers or a block lifted out of the drawer.
const DESK_EDGE_CLEARANCE_M: f64 = 0.005;
/// How far the hand reaches from the tool centre point (half its 20 cm across the fingers, half its
/// thickness) plus a margin: nearer the cabinet's front than this, the hand turning to the next
/// waypoint's yaw sweeps the sliding door along.
const HAND_REACH_M: f64 = 0.16;
/// Height above the cabinet's roof below which the hand still backs off from the front (measured
/// over the first 100 evaluation chains: 90 completed with 0, 92 with 0.05, 93 with 0.1).
const HAND_ABOVE_ROOF_M: f64 = 0.1;
/// Height of the tool centre point above the cabinet floor when leaving the cabinet.
const CABINET_EXIT_CLEARANCE_M: f64 = 0.1;
/// Turn a rotate task aims for (the oracle needs 60°).
const ROTATE_TURN_RAD: f64 = 1.45;
/// Control steps the button is held down.
const PRESS_DWELL_STEPS: usize = 9;
/// Most control steps spent letting the gripper open or close at a release or a grasp; opening
/// fully from closed takes 12.
const GRIPPER_SETTLE_MAX_STEPS: usize = 20;
/// Fingers closed narrower than this hold nothing: every block is at least 4 cm across.
const EMPTY_FINGERS_WIDTH_M: f64 = 0.02;
/// The gripper counts as open within this of its full width.
const GRIPPER_OPEN_TOLERANCE_M: f64 = 0.005;
/// A closing gripper has closed (on a block, or fully) once its width moves less than this in a step.
const GRIPPER_STILL_M: f64 = 0.0005;
/// A waypoint not reached in this many steps is skipped (the oracle judges the outcome).
const WAYPOINT_TIMEOUT_STEPS: usize = 90;
/// Stage 0 leaves the cabinet or drawer; every later stage plans one attempt from the
/// state it begins in, so a failed grasp, a short push or a half-open drawer is dealt with by the next.
const MAX_STAGES: usize = 8;
/// Steps held after an attempt, so the oracle can see a released block come to rest before a retry.
const SETTLE_STEPS: usize = 6;

/// Gripper command held while moving to a waypoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grip {
    Open,
    Closed,
}

#[derive(Debug, Clone, Copy)]
struct Waypoint {
    position_m: Vector3<f64>,
    yaw_rad: f64,
    grip: Grip,
    /// Fraction of the maximum action used: slow near contacts.
    speed: f64,
    tolerance_m: f64,
    /// What to wait for once reached.
    hold: Hold,
}

/// What a reached waypoint waits for before the next.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Hold {
    /// Nothing.
    None,
    /// This many steps (a button held down).
    Steps(usize),
    /// The gripper to finish opening or closing: a pause the cameras and robot_obs cannot show (the
    /// hand still, the fingers too) would teach a policy to stop where the expert only waited.
    GripperSettled,
}

impl Waypoint {
    fn new(position_m: Vector3<f64>, yaw_rad: f64, grip: Grip) -> Self {
        Self { position_m, yaw_rad, grip, speed: 1.0, tolerance_m: 0.01, hold: Hold::None }
    }

    fn slow(mut self) -> Self {
        self.speed = 0.5;
        self.tolerance_m = 0.004;
        self
    }

    /// Holds a button down.
    fn press(mut self) -> Self {
        self.hold = Hold::Steps(PRESS_DWELL_STEPS);
        self
    }

    /// Grasps or releases: waits for the gripper.
    fn settle_grip(mut self) -> Self {
        self.hold = Hold::GripperSettled;
        self
    }
}

/// Expert settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExpertSettings {
    /// Standard deviation of the Gaussian noise added to translation actions (action units; 0 = none).
    pub noise_std: f64,
    /// Seed of the noise.
    pub seed: u64,
}

impl Default for ExpertSettings {
    fn default() -> Self {
        Self { noise_std: 0.0, seed: 0 }
    }
}

/// The scripted expert.
#[derive(Debug, Clone)]
pub struct Expert {
    settings: ExpertSettings,
    rng: Rng,
    task: Option<Task>,
    /// The scene when the subtask began: retries aim at the task's goal relative to it, as the oracle does.
    start: Option<SceneState>,
    stage: usize,
    waypoints: Vec<Waypoint>,
    current: usize,
    steps_at_waypoint: usize,
    dwelled: usize,
    /// The gripper's width at the previous step, to tell when it stopped closing.
    last_gripper_width_m: f64,
    /// The last action before noise: the label a demonstration records (DART executes the noisy
    /// action but teaches the clean one).
    clean_action: Action,
}

impl Expert {
    /// A new expert.
    pub fn new(settings: ExpertSettings) -> Self {
        Self {
            settings,
            rng: Rng::new(settings.seed),
            task: None,
            start: None,
            stage: 0,
            waypoints: Vec::new(),
            current: 0,
            steps_at_waypoint: 0,
            dwelled: 0,
            last_gripper_width_m: 0.0,
            clean_action: Action::IDLE,
        }
    }

    /// The action the last [`Policy::act`] would have returned without noise (the same action when
    /// `noise_std` is 0).
    pub fn clean_action(&self) -> Action {
        self.clean_action
    }

    /// Where the expert is in its plan: (stage, waypoint index, waypoints in the stage), for diagnostics.
    pub fn progress(&self) -> (usize, usize, usize) {
        (self.stage, self.current, self.waypoints.len())
    }

    /// Whether the current plan has run out.
    pub fn finished(&self) -> bool {
        self.current >= self.waypoints.len()
    }

    /// Starts `task` from the current state of `world`, judging progress against `start`, the state
    /// in which the subtask began (so the expert can finish what someone else started).
    pub fn take_over(&mut self, task: Task, start: SceneState, world: &World) {
        self.task = Some(task);
        self.start = Some(start);
        self.stage = 0;
        self.replan(world);
    }

    fn replan(&mut self, world: &World) {
        let task = self.task.expect("replan is only called after begin");
        let start = self.start.as_ref().expect("replan is only called after begin");
        // A waypoint out of reach would hold the arm still until its timeout: a pause no camera
        // image or robot_obs shows, which a policy learning from the demonstrations cannot copy.
        let workspace = world.arm().workspace();
        self.waypoints = plan(task, self.stage, world, start)
            .into_iter()
            .map(|waypoint| Waypoint { position_m: workspace.clamp(waypoint.position_m), ..waypoint })
            .collect();
        if self.stage > 0
            && let Some(last) = self.waypoints.last().copied()
        {
            self.waypoints.push(Waypoint { hold: Hold::Steps(SETTLE_STEPS), tolerance_m: 0.05, ..last });
        }
        self.current = 0;
        self.steps_at_waypoint = 0;
        self.dwelled = 0;
    }
}

impl Policy for Expert {
    fn begin(&mut self, task: Task, world: &World) {
        self.take_over(task, world.state(), world);
    }

    fn act(&mut self, world: &World) -> Action {
        let ee = world.ee_pose();
        let width_m = world.gripper_width_m();
        let width_change_m = width_m - std::mem::replace(&mut self.last_gripper_width_m, width_m);
        while let Some(waypoint) = self.waypoints.get(self.current) {
            let reached = (waypoint.position_m - ee.position_m).norm() < waypoint.tolerance_m
                && wrap_angle(waypoint.yaw_rad - ee.euler_rad.z).abs() < 0.05;
            let waiting = match waypoint.hold {
                Hold::None => false,
                Hold::Steps(steps) => self.dwelled < steps,
                Hold::GripperSettled => {
                    let settled = match waypoint.grip {
                        Grip::Open => width_m >= GRIPPER_MAX_WIDTH_M - GRIPPER_OPEN_TOLERANCE_M,
                        // The first step only sends the command; the width answers from the second.
                        Grip::Closed => self.dwelled >= 2 && width_change_m.abs() < GRIPPER_STILL_M,
                    };
                    !settled && self.dwelled < GRIPPER_SETTLE_MAX_STEPS
                }
            };
            if reached && waiting {
                self.dwelled += 1;
                break;
            }
            if reached || self.steps_at_waypoint >= WAYPOINT_TIMEOUT_STEPS {
                self.current += 1;
                self.steps_at_waypoint = 0;
                self.dwelled = 0;
                continue;
            }
            break;
        }
        while self.finished() && self.stage < MAX_STAGES {
            self.stage += 1;
            self.replan(world);
        }
        let Some(waypoint) = self.waypoints.get(self.current).copied() else {
            self.clean_action = hold(world);
            return self.clean_action;
        };
        self.steps_at_waypoint += 1;
        let mut translation = (waypoint.position_m - ee.position_m) / POSITION_STEP_M;
        let largest = translation.amax();
        if largest > waypoint.speed {
            translation *= waypoint.speed / largest;
        }
        let rotation = Vector3::new(-ee.euler_rad.x, -ee.euler_rad.y, wrap_angle(waypoint.yaw_rad - ee.euler_rad.z))
            / ROTATION_STEP_RAD;
        let gripper = match waypoint.grip {
            Grip::Open => 1.0,
            Grip::Closed => -1.0,
        };
        self.clean_action = relative_action(translation, rotation, gripper);
        if self.settings.noise_std > 0.0 {
            translation += Vector3::from_fn(|_, _| self.rng.normal() * self.settings.noise_std);
            relative_action(translation, rotation, gripper)
        } else {
            self.clean_action
        }
    }
}

/// The 7-D relative action, arm components clipped to [-1, 1].
fn relative_action(translation: Vector3<f64>, rotation: Vector3<f64>, gripper: f64) -> Action {
    let clip = |v: f64| v.clamp(-1.0, 1.0);
    Action::Relative([
        clip(translation.x),
        clip(translation.y),
        clip(translation.z),
        clip(rotation.x),
        clip(rotation.y),
        clip(rotation.z),
        gripper,
    ])
}

/// Stays put with the gripper as it is.
fn hold(world: &World) -> Action {
    let gripper = if world.robot_obs()[14] < 0.0 { -1.0 } else { 1.0 };
    Action::Relative([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, gripper])
}

/// Angle wrapped to (-π, π].
fn wrap_angle(angle: f64) -> f64 {
    let tau = std::f64::consts::TAU;
    let wrapped = angle - tau * libm::floor((angle + std::f64::consts::PI) / tau);
    if wrapped <= -std::f64::consts::PI { wrapped + tau } else { wrapped }
}

/// Yaw of a pose about z.
fn yaw_of(pose: &Isometry3<f64>) -> f64 {
    pose.rotation.euler_angles().2
}

/// Gripper yaw for a symmetric two-finger grasp, chosen among the angles that close across a
/// side narrow enough for the gripper, as close as possible to `preferred_yaw`.
fn grasp_yaw(scene: &Scene, color: BlockColor, pose: &Isometry3<f64>, preferred_yaw: f64) -> f64 {
    let half = scene.block(color).half_extents_m;
    let block_yaw = yaw_of(pose);
    // The fingers close along the end effector's y axis: yaw = block yaw closes across the block's y.
    let fits = |half_across: f64| 2.0 * half_across < GRIPPER_MAX_WIDTH_M - 0.015;
    let mut candidates = Vec::new();
    for k in 0..4 {
        let across = if k % 2 == 0 { half[1] } else { half[0] };
        if fits(across) {
            candidates.push(block_yaw + k as f64 * std::f64::consts::FRAC_PI_2);
        }
    }
    if candidates.is_empty() {
        candidates.push(block_yaw);
    }
    candidates
        .into_iter()
        .map(|yaw| preferred_yaw + wrap_angle(yaw - preferred_yaw))
        .min_by(|a, b| (a - preferred_yaw).abs().total_cmp(&(b - preferred_yaw).abs()))
        .expect("at least one candidate")
}

/// Half the block's extent along world y when it stands at `pose`.
fn extent_along(scene: &Scene, color: BlockColor, pose: &Isometry3<f64>, axis: Vector3<f64>) -> f64 {
    let half = scene.block(color).half_extents_m;
    (0..3).map(|i| half[i] * (pose.rotation * Vector3::ith(i, 1.0)).dot(&axis).abs()).sum()
}

/// TCP height that grasps a block resting with its centre at `center_z` while keeping the fingertips off its support.
fn grasp_z(scene: &Scene, color: BlockColor, center_z: f64) -> f64 {
    let half_z = scene.block(color).half_extents_m[2];
    center_z.max(center_z - half_z + 0.016)
}

/// Whether fingers this far apart hold or pinch something: neither open nor closed on nothing.
fn fingers_hold_something(width_m: f64) -> bool {
    width_m > EMPTY_FINGERS_WIDTH_M && width_m < GRIPPER_MAX_WIDTH_M - GRIPPER_OPEN_TOLERANCE_M
}

/// Waypoints that let go and leave the cabinet or the drawer before anything else.
fn exit(scene: &Scene, world: &World, grip: Grip) -> Vec<Waypoint> {
    let ee = world.ee_pose();
    let yaw = ee.euler_rad.z;
    let mut p = ee.position_m;
    let mut out = Vec::new();
    if grip == Grip::Open && fingers_hold_something(world.gripper_width_m()) {
        // Let go completely before moving, or the fingers drag what they just released (held or
        // only pinched). Closed fingers open on the way instead: opening beside a block they just
        // pushed shoves it.
        out.push(Waypoint::new(p, yaw, Grip::Open).settle_grip());
    }
    let cabinet = &scene.cabinet;
    let roof_z = cabinet.height_m + 2.0 * cabinet.wall_m;
    // Up to a hand's reach above the roof too: the light switch stands on it.
    let by_cabinet =
        (p.y - cabinet.center_y_m).abs() < cabinet.width_m / 2.0 + HAND_REACH_M && p.z < roof_z + HAND_ABOVE_ROOF_M;
    if by_cabinet && p.x > cabinet.front_x_m - HAND_REACH_M {
        // Up clear of the blocks first: sliding out low, the fingers drag what they just let go.
        let clear_z = cabinet.wall_m + CABINET_EXIT_CLEARANCE_M;
        if p.x > cabinet.front_x_m - 0.06 && p.z < clear_z {
            p.z = clear_z;
            out.push(Waypoint::new(p, yaw, grip));
        }
        // Back from the front before turning or flying sideways, which would drag the door along.
        p.x = cabinet.front_x_m - HAND_REACH_M;
        out.push(Waypoint::new(p, yaw, grip));
    }
    out
}

/// Takes the hand from where the waypoints so far leave it (`hand` when there are none) to above
/// `target`: straight up to `transit_z`, then turned, with the grip set, across at that height.
/// A hand already within [`COLUMN_RADIUS_M`] of `target` only hops: up to [`COLUMN_HOP_M`] above
/// it if lower, turned and gripping there (clear of the blocks, and not round a drawer's handle),
/// then across; from higher it turns where it is and the next waypoint takes it straight there.
fn rise_and_fly(out: &mut Vec<Waypoint>, hand: Waypoint, target: Vector3<f64>, transit_z: f64, yaw: f64, grip: Grip) {
    let from = out.last().copied().unwrap_or(hand);
    let mut p = from.position_m;
    let near = (p.xy() - target.xy()).norm() < COLUMN_RADIUS_M;
    let travel_z = if near { target.z + COLUMN_HOP_M } else { transit_z };
    let rises = p.z < travel_z;
    if rises {
        p.z = travel_z;
        out.push(Waypoint::new(p, from.yaw_rad, from.grip));
    }
    if near {
        let turned = Waypoint::new(p, yaw, grip);
        out.push(if grip == from.grip { turned } else { turned.settle_grip() });
    }
    if rises || !near {
        out.push(Waypoint::new(Vector3::new(target.x, target.y, travel_z), yaw, grip));
    }
}

/// Fly (or hop, from near it) to above `target`, then come down to it.
fn approach(out: &mut Vec<Waypoint>, hand: Waypoint, target: Vector3<f64>, yaw: f64, grip: Grip) {
    let above = target + Vector3::z() * 0.04;
    rise_and_fly(out, hand, above, TRANSIT_Z_M.max(target.z), yaw, grip);
    out.push(Waypoint::new(above, yaw, grip));
    out.push(Waypoint::new(target, yaw, grip).slow());
}

/// The waypoints of `stage`: stage 0 leaves the cabinet or drawer; each later stage first does
/// the same (a no-op after stage 0), then plans one attempt at `task` from the current state.
fn plan(task: Task, stage: usize, world: &World, start: &SceneState) -> Vec<Waypoint> {
    let scene = world.scene();
    let state = world.state();
    let ee = world.ee_pose();
    let held = world.grasped();
    let grip_now = if held.is_some() { Grip::Closed } else { Grip::Open };
    let pushing = matches!(task, Task::PushBlock(..) | Task::PushIntoDrawer);
    // A subtask can end with a block still in the hand (a rotation counts once turned far enough):
    // only tasks about that block keep it.
    let uses_held = match task {
        Task::PlaceInSlider | Task::PlaceInDrawer | Task::StackBlock => true,
        Task::LiftBlock(color, _) => held == Some(color),
        _ => false,
    };
    // Between push segments the fingertips stay closed and hop low.
    let exit_grip = if stage > 0 && pushing {
        Grip::Closed
    } else if uses_held {
        grip_now
    } else {
        Grip::Open
    };
    let transit_z = if stage > 1 && pushing { PUSH_HOP_Z_M } else { TRANSIT_Z_M };
    let mut out = exit(scene, world, exit_grip);
    let fingers_open = world.gripper_width_m() >= GRIPPER_MAX_WIDTH_M - GRIPPER_OPEN_TOLERANCE_M;
    let hand = Waypoint::new(ee.position_m, ee.euler_rad.z, if fingers_open { Grip::Open } else { Grip::Closed });
    if stage == 0 {
        return out;
    }
    match task {
        Task::LiftBlock(color, _) if held == Some(color) => {
            // Held high yet not counted as lifted (held by a corner, off the fingers' pads): set it
            // down and let go; the next stage grasps it afresh.
            let raised =
                state.blocks[color.index()].pose.translation.z - start.blocks[color.index()].pose.translation.z;
            let down = ee.position_m - Vector3::z() * (raised - 0.01).max(0.0);
            out.push(Waypoint::new(down, ee.euler_rad.z, Grip::Closed).slow());
            out.push(Waypoint::new(down, ee.euler_rad.z, Grip::Open).settle_grip());
        }
        Task::LiftBlock(color, Surface::Drawer) if !clear_of_desk(scene, &state, color) => {
            open_drawer(&mut out, hand, scene, &state);
        }
        Task::LiftBlock(color, surface) => {
            let pose = state.blocks[color.index()].pose;
            let c = pose.translation.vector;
            let yaw = grasp_yaw(scene, color, &pose, 0.0);
            let grasp = Vector3::new(c.x, c.y, grasp_z(scene, color, c.z));
            if surface == Surface::Slider {
                let entry = Vector3::new(scene.cabinet.front_x_m - 0.12, c.y, grasp.z);
                approach(&mut out, hand, entry, yaw, Grip::Open);
                out.push(Waypoint::new(grasp, yaw, Grip::Open).slow());
                out.push(Waypoint::new(grasp, yaw, Grip::Closed).settle_grip());
                out.push(Waypoint::new(grasp + Vector3::z() * 0.08, yaw, Grip::Closed).slow());
            } else {
                approach(&mut out, hand, grasp, yaw, Grip::Open);
                out.push(Waypoint::new(grasp, yaw, Grip::Closed).settle_grip());
                // A block reaching in under the desk is drawn out from under it before rising.
                let under_desk =
                    c.x + extent_along(scene, color, &pose, Vector3::x()) + DESK_EDGE_CLEARANCE_M - scene.desk.near_x_m;
                let mut lifted = grasp;
                if surface == Surface::Drawer && under_desk > 0.0 {
                    lifted -= Vector3::x() * (under_desk + 0.005);
                    out.push(Waypoint::new(lifted + Vector3::z() * 0.003, yaw, Grip::Closed).slow());
                }
                out.push(Waypoint::new(lifted + Vector3::z() * 0.12, yaw, Grip::Closed).slow());
            }
        }
        Task::RotateBlock(color, side) => {
            let pose = state.blocks[color.index()].pose;
            let c = pose.translation.vector;
            // Aim past the oracle's 60° from the block's yaw at the subtask's start, not from now.
            let turned = wrap_angle(yaw_of(&pose) - yaw_of(&start.blocks[color.index()].pose));
            let turn = side.sign() * ROTATE_TURN_RAD - turned;
            // Start turned the other way, so the end stays within the wrist's range.
            let yaw = grasp_yaw(scene, color, &pose, -turn / 2.0);
            let grasp = Vector3::new(c.x, c.y, grasp_z(scene, color, c.z));
            approach(&mut out, hand, grasp, yaw, Grip::Open);
            out.push(Waypoint::new(grasp, yaw, Grip::Closed).settle_grip());
            let raised = grasp + Vector3::z() * 0.02;
            out.push(Waypoint::new(raised, yaw, Grip::Closed).slow());
            out.push(Waypoint::new(raised, yaw + turn, Grip::Closed));
            out.push(Waypoint::new(grasp + Vector3::z() * 0.004, yaw + turn, Grip::Closed).slow());
            out.push(Waypoint::new(grasp + Vector3::z() * 0.004, yaw + turn, Grip::Open).settle_grip());
            out.push(Waypoint::new(grasp + Vector3::z() * 0.1, yaw + turn, Grip::Open));
        }
        Task::PushBlock(color, side) => {
            let pose = state.blocks[color.index()].pose;
            let pushed = (pose.translation.y - start.blocks[color.index()].pose.translation.y) * side.sign();
            let distance = (PUSH_DISTANCE_M - pushed).max(0.03);
            push(&mut out, hand, transit_z, scene, color, &pose, Vector3::y() * side.sign(), distance);
        }
        Task::MoveSlider(side) => {
            let grip = door_grip(scene, &state);
            let grip_half_y = 0.012;
            let s = side.sign();
            let remaining = match side {
                Side::Left => scene.cabinet.width_m / 2.0 - state.door_m,
                Side::Right => state.door_m,
            };
            let start = Vector3::new(
                grip.x - 0.004,
                grip.y - s * (grip_half_y + CLOSED_TIPS_HALF_Y_M + PUSH_APPROACH_GAP_M),
                grip.z,
            );
            approach(&mut out, hand, start, 0.0, Grip::Closed);
            // Press on into the end stop: the door trails the fingertips by a few millimetres.
            let end = start + Vector3::y() * s * (remaining + PUSH_APPROACH_GAP_M + 0.03);
            out.push(Waypoint::new(end, 0.0, Grip::Closed).slow());
            out.push(Waypoint::new(end - Vector3::x() * 0.06, 0.0, Grip::Closed));
        }
        Task::OpenDrawer => open_drawer(&mut out, hand, scene, &state),
        Task::CloseDrawer => {
            let handle = drawer_handle(scene, &state);
            let front_of_bar = Vector3::new(handle.x - 0.008 - 0.01 - PUSH_APPROACH_GAP_M, handle.y, handle.z);
            approach(&mut out, hand, front_of_bar, 0.0, Grip::Closed);
            let pushed = front_of_bar + Vector3::x() * (state.drawer_m + PUSH_APPROACH_GAP_M);
            out.push(Waypoint::new(pushed, 0.0, Grip::Closed).slow());
            out.push(Waypoint::new(pushed - Vector3::x() * 0.03 + Vector3::z() * 0.15, 0.0, Grip::Closed));
        }
        Task::TurnOnLed | Task::TurnOffLed => {
            let b = &scene.button;
            let top = Vector3::new(b.position_m[0], b.position_m[1], build::button_top_z_m() as f64);
            // The TCP sits 9 mm above the fingertips: press the cap 10 mm, short of its 12 mm stop.
            let fingertip_offset = build::fingertip_below_tcp_m();
            let pressed = top + Vector3::z() * (fingertip_offset - b.travel_m * 0.85);
            approach(&mut out, hand, top + Vector3::z() * 0.03, 0.0, Grip::Closed);
            out.push(Waypoint::new(pressed, 0.0, Grip::Closed).slow().press());
            out.push(Waypoint::new(top + Vector3::z() * 0.1, 0.0, Grip::Closed));
        }
        Task::TurnOnLightbulb | Task::TurnOffLightbulb => {
            // The knob slides along +y to switch on: push it from the side, like the door.
            let geometry = build::switch_geometry(scene);
            let off = geometry.knob_off_center_m;
            let knob = Vector3::new(off.x as f64, off.y as f64 + state.switch_m, off.z as f64);
            let (s, remaining) = if task == Task::TurnOnLightbulb {
                (1.0, scene.switch.travel_m - state.switch_m)
            } else {
                (-1.0, state.switch_m)
            };
            let knob_half_y = geometry.knob_half_extents_m.y as f64;
            let start = knob - Vector3::y() * s * (knob_half_y + CLOSED_TIPS_HALF_Y_M + PUSH_APPROACH_GAP_M);
            approach(&mut out, hand, start, 0.0, Grip::Closed);
            let end = start + Vector3::y() * s * (remaining + PUSH_APPROACH_GAP_M + 0.008);
            out.push(Waypoint::new(end, 0.0, Grip::Closed).slow());
            out.push(Waypoint::new(end + Vector3::z() * 0.1, 0.0, Grip::Closed));
        }
        Task::PlaceInSlider | Task::PlaceInDrawer | Task::StackBlock => {
            let Some(color) = held else { return out };
            let block = state.blocks[color.index()].pose;
            let tcp_from_block = ee.position_m - block.translation.vector;
            let half_z = scene.block(color).half_extents_m[2];
            let yaw = ee.euler_rad.z;
            let c = &scene.cabinet;
            match task {
                Task::PlaceInSlider => {
                    let open_half = if state.door_m > c.width_m / 4.0 { Side::Right } else { Side::Left };
                    let center = Vector3::new(
                        c.front_x_m + c.depth_m / 2.0,
                        c.center_y_m + open_half.sign() * c.width_m / 4.0,
                        c.wall_m + half_z + 0.01,
                    );
                    // Turn the hand so the block lands square to the cabinet front (its yaw a multiple
                    // of π): a block left askew there cannot be grasped through the front again.
                    let block_yaw = yaw_of(&block);
                    let turn = -block_yaw - std::f64::consts::PI * libm::round(-block_yaw / std::f64::consts::PI);
                    let yaw = yaw + turn;
                    let tcp_from_block =
                        nalgebra::Rotation3::from_axis_angle(&Vector3::z_axis(), turn) * tcp_from_block;
                    let target = center + tcp_from_block;
                    let entry = Vector3::new(c.front_x_m - 0.12, target.y, target.z + 0.01);
                    approach(&mut out, hand, entry, yaw, Grip::Closed);
                    out.push(Waypoint::new(target, yaw, Grip::Closed).slow());
                    out.push(Waypoint::new(target, yaw, Grip::Open).settle_grip());
                    let above = Vector3::new(target.x, target.y, c.wall_m + CABINET_EXIT_CLEARANCE_M);
                    out.push(Waypoint::new(above, yaw, Grip::Open));
                    out.push(Waypoint::new(Vector3::new(entry.x, entry.y, above.z), yaw, Grip::Open));
                }
                Task::PlaceInDrawer => {
                    let g = build::drawer_geometry(scene);
                    let center = Vector3::new(
                        scene.desk.near_x_m - 0.065,
                        scene.drawer.center_y_m,
                        g.floor_top_z_m as f64 + half_z + 0.012,
                    );
                    let target = center + tcp_from_block;
                    approach(&mut out, hand, target, yaw, Grip::Closed);
                    out.push(Waypoint::new(target, yaw, Grip::Open).settle_grip());
                    out.push(Waypoint::new(target + Vector3::z() * 0.15, yaw, Grip::Open));
                }
                _ => {
                    let Some(base) = stack_base(&state, color) else {
                        return out;
                    };
                    let base_pose = state.blocks[base.index()].pose;
                    let base_top = base_pose.translation.z + scene.block(base).half_extents_m[2];
                    let center =
                        Vector3::new(base_pose.translation.x, base_pose.translation.y, base_top + half_z + 0.008);
                    let target = center + tcp_from_block;
                    approach(&mut out, hand, target, yaw, Grip::Closed);
                    out.push(Waypoint::new(target, yaw, Grip::Open).settle_grip());
                    out.push(Waypoint::new(target + Vector3::z() * 0.1, yaw, Grip::Open));
                }
            }
        }
        Task::UnstackBlock => {
            let Some(top) = BlockColor::ALL.into_iter().find(|c| oracle::rests_on_block(&state, *c).is_some()) else {
                return out;
            };
            let pose = state.blocks[top.index()].pose;
            let c = pose.translation.vector;
            let yaw = grasp_yaw(scene, top, &pose, 0.0);
            let grasp = Vector3::new(c.x, c.y, c.z);
            approach(&mut out, hand, grasp, yaw, Grip::Open);
            out.push(Waypoint::new(grasp, yaw, Grip::Closed).settle_grip());
            out.push(Waypoint::new(grasp + Vector3::z() * 0.06, yaw, Grip::Closed).slow());
            let spot = free_spot(scene, &state, top);
            let half_z = scene.block(top).half_extents_m[2];
            let down = Vector3::new(spot.x, spot.y, half_z + 0.008);
            out.push(Waypoint::new(down + Vector3::z() * 0.06, yaw, Grip::Closed));
            out.push(Waypoint::new(down, yaw, Grip::Closed).slow());
            out.push(Waypoint::new(down, yaw, Grip::Open).settle_grip());
            out.push(Waypoint::new(down + Vector3::z() * 0.1, yaw, Grip::Open));
        }
        Task::PushIntoDrawer => {
            // Sideways in front of the drawer first, then towards the robot over the desk's edge, in
            // segments short enough that a block turned by the push is met square by the next one.
            let Some(color) = BlockColor::ALL.into_iter().find(|c| {
                let contacts = &state.blocks[c.index()].contacts;
                contacts.table && !contacts.drawer
            }) else {
                return out;
            };
            let pose = state.blocks[color.index()].pose;
            let misalignment = scene.drawer.center_y_m - pose.translation.y;
            if misalignment.abs() > DRAWER_ALIGNMENT_M {
                let distance = misalignment.abs().min(PUSH_SEGMENT_M);
                push(&mut out, hand, transit_z, scene, color, &pose, Vector3::y() * misalignment.signum(), distance);
            } else {
                let distance = pose.translation.x - (scene.desk.near_x_m - PUSH_OVER_EDGE_M);
                push(&mut out, hand, transit_z, scene, color, &pose, -Vector3::x(), distance.min(PUSH_SEGMENT_M));
            }
        }
    }
    out
}

/// Whether the fingers can close round a block in the drawer without reaching in under the desk.
fn clear_of_desk(scene: &Scene, state: &SceneState, color: BlockColor) -> bool {
    let finger_half_x = build::FINGER_HALF_EXTENTS_M.x as f64;
    let center_x = state.blocks[color.index()].pose.translation.x;
    center_x + finger_half_x < scene.desk.near_x_m - DESK_EDGE_CLEARANCE_M
}

/// Hooks closed fingertips in between the drawer's handle bar and its front, and pulls it fully open.
fn open_drawer(out: &mut Vec<Waypoint>, hand: Waypoint, scene: &Scene, state: &SceneState) {
    let handle = drawer_handle(scene, state);
    let bar_half_x = build::drawer_geometry(scene).handle_half_extents_m.x as f64;
    // Just clear of the bar: the side a tracking error near the robot's base pushes the hand to
    // is the drawer's front, and fingertips landing on it slam the drawer shut.
    let bar_clearance = 0.004;
    let hook =
        Vector3::new(handle.x + bar_half_x + build::FINGER_HALF_EXTENTS_M.x as f64 + bar_clearance, handle.y, handle.z);
    // Lined up slowly above the slot, then down slowly: fingertips knocking the bar or the front
    // drive the drawer into its end stop.
    let above = hook + Vector3::z() * 0.1;
    rise_and_fly(out, hand, above, TRANSIT_Z_M, 0.0, Grip::Closed);
    out.push(Waypoint::new(above, 0.0, Grip::Closed).slow());
    out.push(Waypoint::new(hook, 0.0, Grip::Closed).slow());
    let pulled = hook - Vector3::x() * (scene.drawer.travel_m - state.drawer_m + 0.01);
    out.push(Waypoint::new(pulled, 0.0, Grip::Closed).slow());
    out.push(Waypoint::new(pulled + Vector3::z() * 0.15, 0.0, Grip::Closed));
}

/// Pushes `color` by `distance_m` along `direction` with closed fingertips, then backs off and rises;
/// the hand travels to the push at `transit_z`.
#[allow(clippy::too_many_arguments)]
fn push(
    out: &mut Vec<Waypoint>,
    hand: Waypoint,
    transit_z: f64,
    scene: &Scene,
    color: BlockColor,
    pose: &Isometry3<f64>,
    direction: Vector3<f64>,
    distance_m: f64,
) {
    let c = pose.translation.vector;
    let extent = extent_along(scene, color, pose, direction);
    let tip_half = CLOSED_TIPS_HALF_Y_M.max(build::FINGER_HALF_EXTENTS_M.x as f64);
    let push_z = (c.z - scene.block(color).half_extents_m[2] + 0.018).max(0.02);
    let contact = c - direction * (extent + tip_half);
    let start = Vector3::new(contact.x, contact.y, push_z) - direction * PUSH_APPROACH_GAP_M;
    let above = start + Vector3::z() * 0.04;
    rise_and_fly(out, hand, above, transit_z, 0.0, Grip::Closed);
    out.push(Waypoint::new(above, 0.0, Grip::Closed));
    out.push(Waypoint::new(start, 0.0, Grip::Closed).slow());
    let end = Vector3::new(contact.x, contact.y, push_z) + direction * distance_m;
    out.push(Waypoint::new(end, 0.0, Grip::Closed).slow());
    let back = end - direction * 0.03;
    out.push(Waypoint::new(back, 0.0, Grip::Closed));
    out.push(Waypoint::new(back + Vector3::z() * 0.1, 0.0, Grip::Closed));
}

/// The free block on the table nearest to the held one.
fn stack_base(state: &SceneState, held: BlockColor) -> Option<BlockColor> {
    let held_xy = state.blocks[held.index()].pose.translation.vector.xy();
    BlockColor::ALL
        .into_iter()
        .filter(|c| {
            *c != held
                && state.blocks[c.index()].contacts.table
                && BlockColor::ALL.iter().all(|o| oracle::rests_on_block(state, *o) != Some(*c))
        })
        .min_by(|a, b| {
            let da = (state.blocks[a.index()].pose.translation.vector.xy() - held_xy).norm();
            let db = (state.blocks[b.index()].pose.translation.vector.xy() - held_xy).norm();
            da.total_cmp(&db)
        })
}

/// A spot in the block region as far as possible from the other blocks.
fn free_spot(scene: &Scene, state: &SceneState, moving: BlockColor) -> Vector3<f64> {
    let region = &scene.block_region;
    let steps = 8;
    let mut best = Vector3::new(region.x_m[0], region.y_m[0], 0.0);
    let mut best_clearance = f64::NEG_INFINITY;
    for i in 0..=steps {
        for j in 0..=steps {
            let p = Vector3::new(
                region.x_m[0] + (region.x_m[1] - region.x_m[0]) * i as f64 / steps as f64,
                region.y_m[0] + (region.y_m[1] - region.y_m[0]) * j as f64 / steps as f64,
                0.0,
            );
            let own = state.blocks[moving.index()].pose.translation.vector;
            let clearance = BlockColor::ALL
                .iter()
                .filter(|c| **c != moving)
                .map(|c| (state.blocks[c.index()].pose.translation.vector.xy() - p.xy()).norm())
                .fold(f64::INFINITY, f64::min)
                // Prefer short moves among equally free spots.
                - 0.1 * (own.xy() - p.xy()).norm();
            if clearance > best_clearance {
                best_clearance = clearance;
                best = p;
            }
        }
    }
    best
}

/// The grip on the sliding door, where it is now.
fn door_grip(scene: &Scene, state: &SceneState) -> Vector3<f64> {
    let c = &scene.cabinet;
    let door_x = c.front_x_m - c.wall_m / 2.0 - 0.004;
    Vector3::new(
        door_x - c.wall_m / 2.0 - 0.02,
        c.center_y_m - c.width_m / 4.0 + state.door_m,
        c.wall_m + c.height_m / 2.0,
    )
}

/// The drawer handle bar's centre, where it is now.
fn drawer_handle(scene: &Scene, state: &SceneState) -> Vector3<f64> {
    let h = build::drawer_geometry(scene).handle_center_m;
    Vector3::new(h.x as f64 - state.drawer_m, h.y as f64, h.z as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::episode;

    #[test]
    fn waypoints_stay_inside_the_workspace() {
        // A fully open drawer's handle lies beyond the workspace's near face: the waypoint in front
        // of it must be the reachable point nearest to it, or the arm would wait out the timeout.
        let scene = Scene::resolve("d").unwrap();
        for seed in 0..6 {
            let mut world = episode::task_world(&scene, Task::CloseDrawer, seed).unwrap();
            let mut expert = Expert::new(ExpertSettings::default());
            expert.begin(Task::CloseDrawer, &world);
            for _ in 0..120 {
                let workspace = world.arm().workspace();
                for waypoint in &expert.waypoints {
                    assert_eq!(workspace.clamp(waypoint.position_m), waypoint.position_m, "seed {seed}");
                }
                let action = expert.act(&world);
                world.step(&action);
            }
        }
    }

    /// A demonstration never stands still for two steps in a row, hand and fingers alike: a pause
    /// that nothing the policy observes explains cannot be learnt from it.
    #[test]
    fn grasps_and_releases_never_stand_still() {
        let scene = Scene::resolve("d").unwrap();
        let tasks = [Task::LiftBlock(BlockColor::Red, Surface::Table), Task::RotateBlock(BlockColor::Blue, Side::Left)];
        for task in tasks {
            for seed in 0..4 {
                // Mid-chain: the subtask begins with the release an earlier one left to do.
                let Ok(mut world) = episode::task_world_mid_chain(&scene, task, seed, 2) else { continue };
                let mut expert = Expert::new(ExpertSettings::default());
                let mut attempt = episode::Attempt::begin(&world, &mut expert, task, 360);
                let (mut still_steps, mut longest, mut succeeded) = (0, 0, false);
                while !attempt.is_over() && expert.progress().0 <= 1 {
                    let (ee, width) = (world.ee_pose(), world.gripper_width_m());
                    succeeded = attempt.step(&mut world, &mut expert).success;
                    let now = world.ee_pose();
                    let still = (now.position_m - ee.position_m).norm() < 2e-4
                        && (now.euler_rad - ee.euler_rad).norm() < 1e-3
                        && (world.gripper_width_m() - width).abs() < GRIPPER_STILL_M;
                    still_steps = if still { still_steps + 1 } else { 0 };
                    longest = longest.max(still_steps);
                }
                assert!(succeeded, "{task} seed {seed}: the expert's first attempt succeeds");
                assert!(longest <= 1, "{task} seed {seed}: {longest} steps in a row without anything moving");
            }
        }
    }

    /// Runs `first` with the expert until the oracle counts it, then begins `next`.
    fn expert_after(first: Task, next: Task, seed: u64) -> (World, Expert) {
        let scene = Scene::resolve("d").unwrap();
        let mut world = episode::task_world(&scene, first, seed).unwrap();
        let mut expert = Expert::new(ExpertSettings::default());
        let outcome = episode::run_subtask(&mut world, &mut expert, first, 360, &mut episode::no_observer);
        assert!(outcome.success, "seed {seed}: the expert does {first}");
        expert.begin(next, &world);
        (world, expert)
    }

    /// After a push the hand is a few centimetres from the block; lifting it next, the hand hops
    /// over to it rather than first climbing to transit height: the climb would retrace the column
    /// of the descent upwards, which one camera frame cannot tell from the descent.
    #[test]
    fn a_hand_beside_the_next_block_hops_over_to_it() {
        let (push, lift) =
            (Task::PushBlock(BlockColor::Red, Side::Left), Task::LiftBlock(BlockColor::Red, Surface::Table));
        for seed in 0..4 {
            let (mut world, mut expert) = expert_after(push, lift, seed);
            let block_z = world.state().blocks[BlockColor::Red.index()].pose.translation.z;
            let mut highest_z = world.ee_pose().position_m.z;
            while world.grasped().is_none() && world.steps() < 2000 {
                let action = expert.act(&world);
                world.step(&action);
                highest_z = highest_z.max(world.ee_pose().position_m.z);
            }
            assert_eq!(world.grasped(), Some(BlockColor::Red), "seed {seed}: the lift grasps the block");
            // The approach's point above the grasp, the hop over it and the arm's overshoot.
            let hop_z = block_z + 0.04 + COLUMN_HOP_M + 0.02;
            assert!(highest_z < hop_z, "seed {seed}: rose to {highest_z:.3} m, above the hop's {hop_z:.3} m");
        }
    }

    /// A rotation counts once the block has turned far enough, often with the block still in the
    /// hand; a push that follows lets go of it first instead of carrying it along.
    #[test]
    fn a_block_left_in_the_hand_is_let_go_before_other_tasks() {
        let (rotate, push) =
            (Task::RotateBlock(BlockColor::Red, Side::Left), Task::PushBlock(BlockColor::Red, Side::Right));
        let mut held_at_start = 0;
        for seed in 0..6 {
            let (mut world, mut expert) = expert_after(rotate, push, seed);
            held_at_start += usize::from(fingers_hold_something(world.gripper_width_m()));
            let outcome = episode::run_subtask(&mut world, &mut expert, push, 360, &mut episode::no_observer);
            assert!(outcome.success, "seed {seed}: the push after the rotation succeeds");
        }
        assert!(held_at_start > 0, "no rotation ended with the block in the hand: the test shows nothing");
    }

    #[test]
    fn wrap_angle_stays_in_range() {
        for a in [-7.0, -3.2, -1.0, 0.0, 3.0, 3.2, 9.0] {
            let w = wrap_angle(a);
            assert!(w > -std::f64::consts::PI && w <= std::f64::consts::PI);
            assert!(
                ((a - w) / std::f64::consts::TAU).fract().abs() < 1e-9
                    || ((a - w) / std::f64::consts::TAU).fract().abs() > 1.0 - 1e-9
            );
        }
    }
}
