//! Concrete start states: where every movable part and the arm are when an episode begins,
//! sampled from a symbolic state with a seeded generator.

use nalgebra::{Isometry3, UnitQuaternion, Vector3};

use super::build;
use super::kinematics::{self, DOF, Joints};
use super::rng::Rng;
use super::scene::{BlockColor, Scene};
use super::tasks::{Place, Side, Symbolic};

/// Everything needed to place the scene at the start of an episode.
#[derive(Debug, Clone, PartialEq)]
pub struct StartState {
    /// Sliding door position (0 = right).
    pub door_m: f64,
    /// Drawer opening.
    pub drawer_m: f64,
    /// Switch knob position along its rail (0 = off end).
    pub switch_m: f64,
    /// LED state.
    pub led_on: bool,
    /// Block poses in [`BlockColor::ALL`] order.
    pub block_poses: [Isometry3<f64>; 3],
    /// Arm joint angles.
    pub arm_joints: Joints,
    /// A block held between the fingers from the start (its pose in `block_poses` must be the one
    /// [`build::hand_from_held_block`] gives). Evaluation starts never hold one; pre-training scenes may.
    pub held: Option<BlockColor>,
}

/// Why a symbolic state has no concrete start state.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StartError {
    /// Start states never begin with a block in the gripper; reach such states by running a task.
    #[error("a start state cannot begin with the {0} block in the gripper")]
    Grasped(&'static str),
    /// Rejection sampling found no free spot on the table.
    #[error("no free spot on the table for the {0} block")]
    NoRoom(&'static str),
}

/// Noise on the arm's start joints, as CALVIN resets the robot near its neutral pose.
const ARM_JOINT_NOISE_RAD: f64 = 0.05;
/// Clearance kept between blocks placed on the table.
const BLOCK_CLEARANCE_M: f64 = 0.03;
/// Gap between a block sampled in the drawer and the drawer's front wall.
const DRAWER_WALL_CLEARANCE_M: f64 = 0.01;
/// Blocks are dropped from this high above their support, so they settle instead of starting in contact.
const DROP_HEIGHT_M: f64 = 0.002;

impl StartState {
    /// Samples a concrete start state realising `symbolic`.
    pub fn sample(scene: &Scene, symbolic: &Symbolic, rng: &mut Rng) -> Result<StartState, StartError> {
        let door_travel = scene.cabinet.width_m / 2.0;
        let door_m = match symbolic.slider {
            Side::Right => rng.uniform(0.0, 0.015),
            Side::Left => door_travel - rng.uniform(0.0, 0.015),
        };
        let drawer_m =
            if symbolic.drawer_open { scene.drawer.travel_m - rng.uniform(0.0, 0.02) } else { rng.uniform(0.0, 0.01) };
        let switch_m = if symbolic.lightbulb { scene.switch.travel_m } else { 0.0 };
        let mut arm_joints = kinematics::HOME_JOINTS_RAD;
        for (i, joint) in arm_joints.iter_mut().enumerate().take(DOF) {
            *joint = (*joint + rng.uniform(-ARM_JOINT_NOISE_RAD, ARM_JOINT_NOISE_RAD))
                .clamp(kinematics::JOINT_LOWER_RAD[i], kinematics::JOINT_UPPER_RAD[i]);
        }

        let mut block_poses = [Isometry3::identity(); 3];
        let mut on_table: Vec<(Vector3<f64>, f64)> = Vec::new();
        // Bottom blocks first, so stacked blocks know where to go.
        let mut order = BlockColor::ALL.to_vec();
        order.sort_by_key(|c| matches!(symbolic.blocks[c.index()], Place::StackedOn(_)));
        for color in order {
            let half = scene.block(color).half_extents_m;
            let footprint_radius = half[0].hypot(half[1]);
            let pose = match symbolic.blocks[color.index()] {
                Place::Grasped => return Err(StartError::Grasped(color.name())),
                Place::Table => {
                    let region = &scene.block_region;
                    let spot = (0..200).find_map(|_| {
                        let p = Vector3::new(
                            rng.uniform(region.x_m[0], region.x_m[1]),
                            rng.uniform(region.y_m[0], region.y_m[1]),
                            half[2] + DROP_HEIGHT_M,
                        );
                        let free = on_table
                            .iter()
                            .all(|(q, r)| (p - q).xy().norm() > r + footprint_radius + BLOCK_CLEARANCE_M);
                        free.then_some(p)
                    });
                    let spot = spot.ok_or(StartError::NoRoom(color.name()))?;
                    on_table.push((spot, footprint_radius));
                    at(spot, rng.uniform(-std::f64::consts::PI, std::f64::consts::PI))
                }
                Place::Slider(half_side) => {
                    let c = &scene.cabinet;
                    let center_y = c.center_y_m + half_side.sign() * c.width_m / 4.0;
                    let p = Vector3::new(
                        c.front_x_m + c.depth_m / 2.0 + rng.uniform(-0.02, 0.02),
                        center_y + rng.uniform(-0.03, 0.03),
                        c.wall_m + half[2] + DROP_HEIGHT_M,
                    );
                    at(p, rng.uniform(-0.3, 0.3))
                }
                Place::Drawer => {
                    // Near the drawer's front wall: the part that comes out from under the desk
                    // even when the drawer is opened only past the oracle's threshold.
                    let g = build::drawer_geometry(scene);
                    let inner_front_x = scene.desk.near_x_m - drawer_m + g.wall_m as f64;
                    let x = inner_front_x + DRAWER_WALL_CLEARANCE_M + rng.uniform(0.0, 0.015);
                    let y = scene.drawer.center_y_m + rng.uniform(-0.05, 0.05);
                    let yaw = rng.uniform(-0.3, 0.3);
                    // Half the block's extent along x at this yaw.
                    let extent_x = half[0] * yaw.cos().abs() + half[1] * yaw.sin().abs();
                    let p = Vector3::new(x + extent_x, y, g.floor_top_z_m as f64 + half[2] + DROP_HEIGHT_M);
                    at(p, yaw)
                }
                Place::StackedOn(base) => {
                    let base_pose = block_poses[base.index()];
                    let base_half = scene.block(base).half_extents_m;
                    let p =
                        base_pose.translation.vector + Vector3::new(0.0, 0.0, base_half[2] + half[2] + DROP_HEIGHT_M);
                    let (_, _, yaw) = base_pose.rotation.euler_angles();
                    at(p, yaw + rng.uniform(-0.2, 0.2))
                }
            };
            block_poses[color.index()] = pose;
        }
        Ok(StartState { door_m, drawer_m, switch_m, led_on: symbolic.led, block_poses, arm_joints, held: None })
    }
}

fn at(position: Vector3<f64>, yaw_rad: f64) -> Isometry3<f64> {
    Isometry3::from_parts(position.into(), UnitQuaternion::from_euler_angles(0.0, 0.0, yaw_rad))
}
