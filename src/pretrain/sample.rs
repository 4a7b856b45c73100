//! Random scene states for pre-training: sample `index` of corpus seed `seed` is a pure function
//! of the two, so a corpus of 10k samples is the first tenth of one of 100k, and no image has to
//! be stored. Every state is one the simulator would accept as it stands: blocks rest on the
//! table, in the drawer (only when open), in the open half of the cabinet, or on another block,
//! placed analytically by [`StartState::sample`]; the arm takes a random reachable pose that keeps
//! clear of the desk, the fixtures and the blocks, and sometimes holds a block between its fingers.
//!
//! Only what the static camera can see is sampled: a block in a closed drawer or behind the
//! sliding door would make questions about it unanswerable from the image.

use std::f64::consts::{FRAC_PI_2, PI};
use std::sync::OnceLock;

use nalgebra::{Isometry3, Point3, Translation3, UnitQuaternion, Vector3};

use crate::sim::build::{self, FINGER_HALF_EXTENTS_M, HAND_HALF_EXTENTS_M};
use crate::sim::kinematics::{self, DOF, IkSettings, Joints};
use crate::sim::rng::Rng;
use crate::sim::scene::{BUILTIN_SCENES, BlockColor, Scene};
use crate::sim::start::StartState;
use crate::sim::tasks::{Place, Side, Symbolic};
use crate::sim::world::{World, from_pose};

/// Bumped whenever a (seed, index) would give a different sample or different texts, so a corpus
/// written by another version is refused rather than re-rendered into something else.
pub const GENERATOR_VERSION: u32 = 1;

/// One pre-training scene: which scene file, what lies where, and the concrete state.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneSample {
    /// Corpus seed.
    pub seed: u64,
    /// Index in the corpus.
    pub index: u64,
    /// The shipped scene (a–d) it is set in.
    pub scene: &'static Scene,
    /// The intended symbolic state, the ground truth of every caption.
    pub layout: Symbolic,
    /// Door, drawer, switch, LED, block poses, arm joints and the held block.
    pub start: StartState,
}

impl SceneSample {
    /// The simulated world in this state (blocks settled for one control step, as every start).
    pub fn world(&self) -> World {
        World::new(self.scene.clone(), &self.start)
    }

    /// Centre of a block in the world frame.
    pub fn block_position_m(&self, color: BlockColor) -> Vector3<f64> {
        self.start.block_poses[color.index()].translation.vector
    }
}

/// Shares of the places a block is sampled at (the rest lie on the table). A place that is not
/// possible (drawer closed, half of the cabinet taken, a second stack or held block) falls back
/// to the table.
const CABINET_SHARE: f64 = 0.15;
const DRAWER_SHARE: f64 = 0.15;
const STACKED_SHARE: f64 = 0.13;
const HELD_SHARE: f64 = 0.12;
/// Where the tool centre point is sampled, in the world frame: over the desk, in front of the cabinet.
const TOOL_X_M: [f64; 2] = [0.25, 0.6];
const TOOL_Y_M: [f64; 2] = [-0.45, 0.45];
const TOOL_Z_M: [f64; 2] = [0.08, 0.42];
/// A held block is carried at least this high (its centre sits just above the tool centre point).
const HELD_TOOL_MIN_Z_M: f64 = 0.14;
/// Largest tilt of the gripper away from pointing straight down, about x and about y.
const TOOL_MAX_TILT_RAD: f64 = 0.35;
/// An IK solution farther than this from the sampled pose is rejected.
const IK_MAX_ERROR_M: f64 = 0.005;
const IK_MAX_ERROR_RAD: f64 = 0.05;
/// Arm poses tried before the arm stays at its start pose near home.
const ARM_ATTEMPTS: usize = 60;
/// Gap kept between the arm's bounding spheres and anything else.
const ARM_CLEARANCE_M: f64 = 0.015;
/// Spacing of the spheres that cover an arm link.
const LINK_SPHERE_SPACING_M: f64 = 0.02;
/// Radius of the spheres covering the links (the joint housings are the widest part).
const LINK_SPHERE_RADIUS_M: f64 = 0.06;
/// The door and its grip stand this far in front of the cabinet's front face.
const DOOR_DEPTH_M: f64 = 0.05;
/// The bulb and the switch stand this high above the cabinet's roof.
const ROOF_FIXTURES_HEIGHT_M: f64 = 0.1;
/// Height of the button with its base, and the margin around its cap.
const BUTTON_HEIGHT_M: f64 = 0.05;
const BUTTON_MARGIN_M: f64 = 0.015;

/// The four shipped scenes, parsed once.
pub fn builtin_scenes() -> &'static [Scene] {
    static SCENES: OnceLock<Vec<Scene>> = OnceLock::new();
    SCENES.get_or_init(|| {
        BUILTIN_SCENES
            .iter()
            .map(|(name, text)| Scene::parse(name, text).expect("the shipped scenes are valid (tested in sim::scene)"))
            .collect()
    })
}

/// Sample `index` of the corpus with seed `seed`.
pub fn sample_state(seed: u64, index: u64) -> SceneSample {
    let mut rng = Rng::stream(seed, index);
    let scenes = builtin_scenes();
    let scene = &scenes[rng.below(scenes.len())];
    loop {
        let layout = sample_layout(&mut rng);
        let held = layout.grasped();
        // The held block first gets a table spot like the others, then moves into the hand.
        let mut resting = layout.clone();
        if let Some(color) = held {
            resting.blocks[color.index()] = Place::Table;
        }
        let Ok(mut start) = StartState::sample(scene, &resting, &mut rng) else {
            continue;
        };
        if !seen_past_the_robot_base(scene, &start) {
            // NOTE: in scenes a and c the open drawer lies behind the robot's pedestal as the
            // static camera sees it, so those scenes show no block in the drawer.
            continue;
        }
        match sample_arm(scene, &start, held, &mut rng) {
            Some(joints) => {
                start.arm_joints = joints;
                if let Some(color) = held {
                    start.block_poses[color.index()] = world_from_held_block(scene, &joints);
                    start.held = Some(color);
                }
            }
            // The start pose near home is clear of everything, but holds nothing.
            None if held.is_none() => {}
            None => continue,
        }
        return SceneSample { seed, index, scene, layout, start };
    }
}

/// A random symbolic state whose every block the static camera can see.
fn sample_layout(rng: &mut Rng) -> Symbolic {
    let side = |rng: &mut Rng| if rng.chance(0.5) { Side::Left } else { Side::Right };
    let slider = side(rng);
    let drawer_open = rng.chance(0.5);
    let lightbulb = rng.chance(0.5);
    let led = rng.chance(0.5);
    let mut blocks = [Place::Table; 3];
    // Decided in a random order, so every colour is as likely to take a scarce place.
    let mut order = BlockColor::ALL;
    rng.shuffle(&mut order);
    for (decided, color) in order.iter().enumerate() {
        let taken = |place: Place| order[..decided].iter().any(|c| blocks[c.index()] == place);
        let free_base = order[..decided].iter().find(|c| blocks[c.index()] == Place::Table).copied();
        let stacked_already = blocks.iter().any(|p| matches!(p, Place::StackedOn(_)));
        let open_half = Place::Slider(slider.opposite());
        let mut roll = rng.unit_f64();
        let mut place = Place::Table;
        for (share, candidate) in [
            (CABINET_SHARE, (!taken(open_half)).then_some(open_half)),
            (DRAWER_SHARE, (drawer_open && !taken(Place::Drawer)).then_some(Place::Drawer)),
            (STACKED_SHARE, free_base.filter(|_| !stacked_already).map(Place::StackedOn)),
            (HELD_SHARE, (!taken(Place::Grasped)).then_some(Place::Grasped)),
        ] {
            if roll < share {
                place = candidate.unwrap_or(Place::Table);
                break;
            }
            roll -= share;
        }
        blocks[color.index()] = place;
    }
    Symbolic { slider, drawer_open, lightbulb, led, blocks }
}

/// A random arm pose over the desk, clear of everything in `start`, holding `held` if given;
/// `None` when no attempt cleared.
fn sample_arm(scene: &Scene, start: &StartState, held: Option<BlockColor>, rng: &mut Rng) -> Option<Joints> {
    let min_z_m = if held.is_some() { HELD_TOOL_MIN_Z_M } else { TOOL_Z_M[0] };
    let obstacles = Obstacles::new(scene, start, held);
    let world_from_base = world_from_base(scene);
    for _ in 0..ARM_ATTEMPTS {
        let position = Vector3::new(
            rng.uniform(TOOL_X_M[0], TOOL_X_M[1]),
            rng.uniform(TOOL_Y_M[0], TOOL_Y_M[1]),
            rng.uniform(min_z_m, TOOL_Z_M[1]),
        );
        let yaw = rng.uniform(-FRAC_PI_2, FRAC_PI_2);
        let tilt_x = rng.uniform(-TOOL_MAX_TILT_RAD, TOOL_MAX_TILT_RAD);
        let tilt_y = rng.uniform(-TOOL_MAX_TILT_RAD, TOOL_MAX_TILT_RAD);
        // The tool's z axis points out of the fingers: straight down is a half turn about x.
        let down = UnitQuaternion::from_axis_angle(&Vector3::x_axis(), PI);
        let world_from_tool = Isometry3::from_parts(
            Translation3::from(position),
            UnitQuaternion::from_euler_angles(tilt_x, tilt_y, yaw) * down,
        );
        let base_from_tool = world_from_base.inverse() * world_from_tool;
        let facing_rad = libm::atan2(base_from_tool.translation.y, base_from_tool.translation.x);
        let mut seed = kinematics::HOME_JOINTS_RAD;
        seed[0] = facing_rad;
        let settings = IkSettings { max_iterations: 100, rest: seed, ..IkSettings::default() };
        let solution = kinematics::inverse(&settings, &seed, &base_from_tool);
        if solution.position_error_m > IK_MAX_ERROR_M || solution.rotation_error_rad > IK_MAX_ERROR_RAD {
            continue;
        }
        if obstacles.clear_of(&arm_spheres(scene, &solution.joints, held)) {
            return Some(solution.joints);
        }
    }
    None
}

fn world_from_base(scene: &Scene) -> Isometry3<f64> {
    let [x, y, z] = scene.robot.base_m;
    Isometry3::translation(x, y, z)
}

fn world_from_hand(scene: &Scene, joints: &Joints) -> Isometry3<f64> {
    world_from_base(scene) * kinematics::forward(joints).base_from_hand
}

/// Where a block held by the arm in `joints` sits.
fn world_from_held_block(scene: &Scene, joints: &Joints) -> Isometry3<f64> {
    world_from_hand(scene, joints) * from_pose(&build::hand_from_held_block())
}

/// A sphere: centre and radius.
type Sphere = (Point3<f64>, f64);

/// Spheres covering the links, the hand, the fingers and the held block, in the world frame.
fn arm_spheres(scene: &Scene, joints: &Joints, held: Option<BlockColor>) -> Vec<Sphere> {
    let frames = kinematics::forward(joints);
    let world_from_base = world_from_base(scene);
    let mut spheres = Vec::new();
    for i in 0..DOF {
        let from = (world_from_base * frames.base_from_link[i]).translation.vector;
        let next = if i + 1 < DOF { frames.base_from_link[i + 1] } else { frames.base_from_hand };
        let to = (world_from_base * next).translation.vector;
        let steps = ((to - from).norm() / LINK_SPHERE_SPACING_M).ceil().max(1.0) as usize;
        for step in 0..=steps {
            let point = from + (to - from) * (step as f64 / steps as f64);
            spheres.push((point.into(), LINK_SPHERE_RADIUS_M));
        }
    }
    let world_from_hand = world_from_hand(scene, joints);
    let hand = HAND_HALF_EXTENTS_M.as_dvec3();
    let hand_radius = hand.x.max(hand.z);
    for along in [-1.0, -0.5, 0.0, 0.5, 1.0] {
        spheres.push((world_from_hand * Point3::new(0.0, along * (hand.y - hand_radius), hand.z), hand_radius));
    }
    let finger = FINGER_HALF_EXTENTS_M.as_dvec3();
    let finger_radius = finger.x.hypot(finger.y);
    let width_m = held.map_or(build::GRIPPER_MAX_WIDTH_M, |color| build::held_block_width_m(scene.block(color)));
    for side in [0, 1] {
        let finger_center = from_pose(&build::hand_from_finger(side, width_m)).translation.vector;
        for along in [-1.0, 0.0, 1.0] {
            let point = finger_center + Vector3::z() * along * (finger.z - finger_radius);
            spheres.push((world_from_hand * Point3::from(point), finger_radius));
        }
    }
    if let Some(color) = held {
        let center = world_from_held_block(scene, joints).translation.vector;
        spheres.push((center.into(), block_radius(scene, color)));
    }
    spheres
}

fn block_radius(scene: &Scene, color: BlockColor) -> f64 {
    let [x, y, z] = scene.block(color).half_extents_m;
    (x * x + y * y + z * z).sqrt()
}

/// What the arm must keep clear of: the desk top, the cabinet with its door and roof fixtures, the
/// button, the blocks it does not hold (as bounding spheres), and the static camera's lines of
/// sight to their centres, so a caption never names a block the arm hides.
struct Obstacles {
    boxes: Vec<[Vector3<f64>; 2]>,
    blocks: Vec<Sphere>,
    eye: Point3<f64>,
}

impl Obstacles {
    fn new(scene: &Scene, start: &StartState, held: Option<BlockColor>) -> Self {
        let c = &scene.cabinet;
        let cabinet = [
            Vector3::new(c.front_x_m - c.wall_m - DOOR_DEPTH_M, c.center_y_m - c.width_m / 2.0 - c.wall_m, 0.0),
            Vector3::new(
                c.front_x_m + c.depth_m + c.wall_m,
                c.center_y_m + c.width_m / 2.0 + c.wall_m,
                c.height_m + 2.0 * c.wall_m + ROOF_FIXTURES_HEIGHT_M,
            ),
        ];
        let b = &scene.button;
        let reach = b.radius_m + BUTTON_MARGIN_M;
        let button = [
            Vector3::new(b.position_m[0] - reach, b.position_m[1] - reach, 0.0),
            Vector3::new(b.position_m[0] + reach, b.position_m[1] + reach, BUTTON_HEIGHT_M),
        ];
        let blocks = BlockColor::ALL
            .into_iter()
            .filter(|color| Some(*color) != held)
            .map(|color| {
                (Point3::from(start.block_poses[color.index()].translation.vector), block_radius(scene, color))
            })
            .collect();
        let eye = Point3::from(scene.cameras.static_view.eye_m);
        Self { boxes: vec![cabinet, button], blocks, eye }
    }

    fn clear_of(&self, spheres: &[Sphere]) -> bool {
        spheres.iter().all(|(center, radius)| {
            let reach = radius + ARM_CLEARANCE_M;
            let above_desk = center.z > reach;
            let clear_of_boxes = self.boxes.iter().all(|[low, high]| {
                let nearest = center.coords.zip_zip_map(low, high, |v, lo, hi| v.clamp(lo, hi));
                (center.coords - nearest).norm() > reach
            });
            let clear_of_blocks =
                self.blocks.iter().all(|(block, block_radius)| (center - block).norm() > reach + block_radius);
            let blocks_in_sight =
                self.blocks.iter().all(|(block, _)| distance_to_segment(center, &self.eye, block) > *radius);
            above_desk && clear_of_boxes && clear_of_blocks && blocks_in_sight
        })
    }
}

/// Radius of the robot's pedestal and base housing, with a margin, as an occluder.
const ROBOT_BASE_RADIUS_M: f64 = 0.11;
/// The pedestal reaches down to the floor, well below anything on or under the desk.
const ROBOT_BASE_DEPTH_M: f64 = 0.8;

/// Whether the static camera sees every block's centre past the robot's fixed base (the arm's
/// moving links are kept out of sight lines when its pose is sampled).
fn seen_past_the_robot_base(scene: &Scene, start: &StartState) -> bool {
    let eye = Point3::from(scene.cameras.static_view.eye_m);
    let base = Point3::from(scene.robot.base_m);
    let joint_1_height_m = kinematics::forward(&kinematics::HOME_JOINTS_RAD).base_from_link[0].translation.z;
    let steps = ((joint_1_height_m + ROBOT_BASE_DEPTH_M) / LINK_SPHERE_SPACING_M).ceil() as usize;
    (0..=steps).all(|step| {
        let z = joint_1_height_m - (joint_1_height_m + ROBOT_BASE_DEPTH_M) * step as f64 / steps as f64;
        let column_point = base + Vector3::z() * z;
        start.block_poses.iter().all(|pose| {
            distance_to_segment(&column_point, &eye, &Point3::from(pose.translation.vector)) > ROBOT_BASE_RADIUS_M
        })
    })
}

fn distance_to_segment(point: &Point3<f64>, from: &Point3<f64>, to: &Point3<f64>) -> f64 {
    let along = to - from;
    let share = ((point - from).dot(&along) / along.norm_squared()).clamp(0.0, 1.0);
    (point - (from + along * share)).norm()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::oracle::perceive;

    /// Samples checked against the physics in the slower tests.
    const CHECKED_SAMPLES: u64 = 150;

    #[test]
    fn samples_are_a_pure_function_of_seed_and_index() {
        for index in [0, 1, 17, 999] {
            assert_eq!(sample_state(3, index), sample_state(3, index));
        }
        assert_ne!(sample_state(3, 5).start, sample_state(4, 5).start);
        assert_ne!(sample_state(3, 5).start, sample_state(3, 6).start);
    }

    #[test]
    fn layouts_cover_every_place_scene_and_held_block() {
        let samples: Vec<SceneSample> = (0..2000).map(|i| sample_state(11, i)).collect();
        for name in ["a", "b", "c", "d"] {
            assert!(samples.iter().any(|s| s.scene.name == name), "scene {name} never drawn");
        }
        for color in BlockColor::ALL {
            let places: Vec<Place> = samples.iter().map(|s| s.layout.blocks[color.index()]).collect();
            assert!(
                places.contains(&Place::Table) && places.contains(&Place::Drawer) && places.contains(&Place::Grasped)
            );
            assert!(places.iter().any(|p| matches!(p, Place::Slider(_))));
            assert!(places.iter().any(|p| matches!(p, Place::StackedOn(_))));
        }
        for sample in &samples {
            let layout = &sample.layout;
            assert_eq!(sample.start.held, layout.grasped(), "held block as laid out");
            for place in layout.blocks {
                match place {
                    Place::Drawer => assert!(layout.drawer_open, "a block in a closed drawer is invisible"),
                    Place::Slider(half) => assert_eq!(half, layout.open_slider_half(), "behind the door"),
                    Place::StackedOn(base) => {
                        assert_eq!(layout.blocks[base.index()], Place::Table, "stacks are two high")
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn the_physics_reads_every_sample_as_laid_out() {
        // The oracle's own reading of the settled world is the independent ground truth.
        for index in 0..CHECKED_SAMPLES {
            let sample = sample_state(7, index);
            let world = sample.world();
            let state = world.state();
            assert_eq!(perceive(sample.scene, &state), sample.layout, "sample {index}");
            assert_eq!(state.led_on, sample.layout.led, "sample {index}: the arm pressed the button");
            for color in BlockColor::ALL {
                let block = &state.blocks[color.index()];
                let moved_m = (block.pose.translation.vector - sample.block_position_m(color)).norm();
                assert!(moved_m < 0.01, "sample {index}: the {} block moved {moved_m} m while settling", color.name());
                let held = sample.start.held == Some(color);
                assert_eq!(block.contacts.robot, held, "sample {index}: the {} block and the robot", color.name());
            }
        }
    }

    #[test]
    fn sampled_arm_poses_stay_within_the_joint_limits_and_vary() {
        let mut distinct_first_joints = std::collections::BTreeSet::new();
        for index in 0..300 {
            let joints = sample_state(2, index).start.arm_joints;
            for ((joint, lower), upper) in
                joints.iter().zip(kinematics::JOINT_LOWER_RAD).zip(kinematics::JOINT_UPPER_RAD)
            {
                assert!((lower..=upper).contains(joint));
            }
            distinct_first_joints.insert((joints[0] * 10.0).round() as i64);
        }
        assert!(distinct_first_joints.len() > 10, "the arm turns to many sides: {distinct_first_joints:?}");
    }
}
