//! The arm controller: turns CALVIN's 7-D end-effector actions into a target pose, tracks it with
//! inverse kinematics, and moves the joints towards the IK solution evenly over the control
//! period, within the Panda's joint velocity limits, one physics substep at a time (a stiff
//! position controller, as in CALVIN).
//!
//! End-effector frame: the tool centre point between the fingertips, turned upside down (rotated
//! by π about its x axis) so that a gripper pointing straight down has Euler angles (0, 0, yaw).
//! CALVIN reports the raw tool frame, whose roll sits at ±π and wraps around in every top-down
//! grasp; ours stays near zero, which is kinder to a policy that regresses it.

use nalgebra::{Isometry3, Rotation3, Translation3, UnitQuaternion, Vector3};

use super::kinematics::{self, DOF, IkSettings, Joints};
use super::world::CONTROL_HZ;

/// CALVIN's scale of a relative position action: metres per unit.
pub const POSITION_STEP_M: f64 = 0.02;
/// CALVIN's scale of a relative orientation action: radians per unit.
pub const ROTATION_STEP_RAD: f64 = 0.05;
/// The target may lead the actual end effector by at most this much, so a blocked arm does not wind up.
const MAX_TARGET_LEAD_M: f64 = 0.05;
const MAX_TARGET_LEAD_RAD: f64 = 0.3;

/// One control command.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// CALVIN's relative action: Δposition (× 0.02 m), ΔEuler (× 0.05 rad), gripper (< 0 close,
    /// ≥ 0 open); every entry is clipped to [-1, 1]. Added to the accumulated target pose.
    Relative([f64; 7]),
    /// Absolute end-effector pose: position (m), Euler XYZ (rad), gripper (< 0 close, ≥ 0 open).
    Absolute([f64; 7]),
}

impl Action {
    /// An action that holds the current target and opens the gripper.
    pub const IDLE: Action = Action::Relative([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);

    /// Whether the gripper is asked to close.
    pub fn closes_gripper(&self) -> bool {
        match self {
            Action::Relative(a) | Action::Absolute(a) => a[6] < 0.0,
        }
    }
}

/// End-effector pose in the world frame, as position and CALVIN's Euler angles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EePose {
    /// Position of the tool centre point.
    pub position_m: Vector3<f64>,
    /// Extrinsic XYZ Euler angles (roll, pitch, yaw): R = Rz(yaw)·Ry(pitch)·Rx(roll), as PyBullet.
    pub euler_rad: Vector3<f64>,
}

impl EePose {
    /// Rotation of the end-effector frame.
    pub fn rotation(&self) -> UnitQuaternion<f64> {
        UnitQuaternion::from_euler_angles(self.euler_rad.x, self.euler_rad.y, self.euler_rad.z)
    }

    /// As an isometry.
    pub fn isometry(&self) -> Isometry3<f64> {
        Isometry3::from_parts(Translation3::from(self.position_m), self.rotation())
    }

    /// From an isometry (Euler angles in CALVIN's ranges).
    pub fn from_isometry(pose: &Isometry3<f64>) -> Self {
        let (roll, pitch, yaw) = pose.rotation.euler_angles();
        Self { position_m: pose.translation.vector, euler_rad: Vector3::new(roll, pitch, yaw) }
    }
}

/// Axis-aligned box the end-effector target is kept inside.
#[derive(Debug, Clone, Copy)]
pub struct Workspace {
    /// Lower corner.
    pub min_m: Vector3<f64>,
    /// Upper corner.
    pub max_m: Vector3<f64>,
    /// Lowest target over the desk; targets in front of the desk (over an open drawer) may go down to `min_m.z`.
    pub desk_floor_z_m: f64,
    /// x of the desk's near edge.
    pub desk_near_x_m: f64,
}

impl Workspace {
    /// The nearest point of the workspace to `p`: where the arm goes when told to go to `p`.
    pub fn clamp(&self, p: Vector3<f64>) -> Vector3<f64> {
        let mut clamped = p.zip_zip_map(&self.min_m, &self.max_m, |v, lo, hi| v.clamp(lo, hi));
        if clamped.x > self.desk_near_x_m {
            clamped.z = clamped.z.max(self.desk_floor_z_m);
        }
        clamped
    }
}

/// The tool frame turned upside down: see the module docs.
fn tool_from_ee() -> Isometry3<f64> {
    Isometry3::from_parts(
        Translation3::identity(),
        Rotation3::from_axis_angle(&Vector3::x_axis(), std::f64::consts::PI).into(),
    )
}

/// State of the arm controller.
#[derive(Debug, Clone)]
pub struct Arm {
    /// Current joint angles.
    pub joints: Joints,
    joint_goal: Joints,
    joint_rate_rad_s: Joints,
    world_from_base: Isometry3<f64>,
    target: EePose,
    workspace: Workspace,
    ik: IkSettings,
}

impl Arm {
    /// An arm at rest in `joints`, mounted at `world_from_base`.
    pub fn new(world_from_base: Isometry3<f64>, joints: Joints, workspace: Workspace) -> Self {
        let mut arm = Self {
            joints,
            joint_goal: joints,
            joint_rate_rad_s: [0.0; DOF],
            world_from_base,
            target: EePose { position_m: Vector3::zeros(), euler_rad: Vector3::zeros() },
            workspace,
            ik: IkSettings::default(),
        };
        arm.target = arm.ee_pose();
        arm
    }

    /// Where the arm's base stands.
    pub fn world_from_base(&self) -> &Isometry3<f64> {
        &self.world_from_base
    }

    /// The current end-effector pose (from the joint angles).
    pub fn ee_pose(&self) -> EePose {
        EePose::from_isometry(&self.world_from_ee(&self.joints))
    }

    /// The box the controller keeps its targets in.
    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    /// The pose the controller is tracking.
    pub fn target(&self) -> EePose {
        self.target
    }

    fn world_from_ee(&self, joints: &Joints) -> Isometry3<f64> {
        self.world_from_base * kinematics::forward(joints).base_from_tool * tool_from_ee()
    }

    /// Applies the arm part of an action: updates the target and solves IK for the joint goal.
    pub fn command(&mut self, action: &Action) {
        let current = self.ee_pose();
        let (mut position, mut euler) = match action {
            Action::Relative(a) => {
                let step = |i: usize| a[i].clamp(-1.0, 1.0);
                (
                    self.target.position_m + Vector3::new(step(0), step(1), step(2)) * POSITION_STEP_M,
                    self.target.euler_rad + Vector3::new(step(3), step(4), step(5)) * ROTATION_STEP_RAD,
                )
            }
            Action::Absolute(a) => (Vector3::new(a[0], a[1], a[2]), Vector3::new(a[3], a[4], a[5])),
        };
        if !position.iter().chain(euler.iter()).all(|v| v.is_finite()) {
            // A NaN from a policy must not poison the controller: hold the current pose.
            position = current.position_m;
            euler = current.euler_rad;
        }
        position = self.workspace.clamp(position);
        let lead = position - current.position_m;
        if lead.norm() > MAX_TARGET_LEAD_M {
            position = current.position_m + lead.normalize() * MAX_TARGET_LEAD_M;
        }
        let candidate = EePose { position_m: position, euler_rad: euler };
        let rotation_lead = current.rotation().angle_to(&candidate.rotation());
        if rotation_lead > MAX_TARGET_LEAD_RAD {
            let rotation = current.rotation().slerp(&candidate.rotation(), MAX_TARGET_LEAD_RAD / rotation_lead);
            let (roll, pitch, yaw) = rotation.euler_angles();
            euler = Vector3::new(roll, pitch, yaw);
        }
        self.target = EePose { position_m: position, euler_rad: euler };
        // Pull the redundant joints towards a posture facing the target, so reaching sideways
        // (towards an open drawer beside the base) does not fight a rest pose facing forward.
        let target_in_base = self.world_from_base.inverse_transform_point(&position.into());
        self.ik.rest[0] = libm::atan2(target_in_base.y, target_in_base.x);
        let base_from_tool = self.world_from_base.inverse() * self.target.isometry() * tool_from_ee().inverse();
        self.joint_goal = kinematics::inverse(&self.ik, &self.joints, &base_from_tool).joints;
        self.plan_joint_rates();
    }

    /// Moves the joints towards the goal for one physics substep, at most at the velocity limits.
    pub fn advance(&mut self, dt_s: f64) {
        for i in 0..DOF {
            let step = self.joint_rate_rad_s[i] * dt_s;
            let left = self.joint_goal[i] - self.joints[i];
            self.joints[i] = if left.abs() <= step.abs() { self.joint_goal[i] } else { self.joints[i] + step };
        }
    }

    /// Joint speeds that bring the joints to the goal in one control period along the straight
    /// joint-space path, all slowed by the same factor where a velocity limit would be exceeded.
    // NOTE: moving each joint at its limit until it arrives (as before) made the tool jump there in
    // the first substeps at up to ~2 m/s, and bent its path sideways: blocks it touched were flung.
    fn plan_joint_rates(&mut self) {
        let period_s = 1.0 / CONTROL_HZ;
        let slowdown = (0..DOF)
            .map(|i| {
                (self.joint_goal[i] - self.joints[i]).abs() / (kinematics::JOINT_VELOCITY_LIMIT_RAD_S[i] * period_s)
            })
            .fold(1.0, f64::max);
        for i in 0..DOF {
            self.joint_rate_rad_s[i] = (self.joint_goal[i] - self.joints[i]) / period_s / slowdown;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> Workspace {
        Workspace {
            min_m: Vector3::new(-0.2, -0.7, -0.2),
            max_m: Vector3::new(0.9, 0.7, 0.8),
            desk_floor_z_m: 0.0,
            desk_near_x_m: 0.2,
        }
    }

    #[test]
    fn home_pose_points_down_with_small_euler() {
        let arm = Arm::new(Isometry3::identity(), kinematics::HOME_JOINTS_RAD, workspace());
        let pose = arm.ee_pose();
        assert!(pose.euler_rad.x.abs() < 0.2 && pose.euler_rad.y.abs() < 0.2, "{pose:?}");
        assert!(pose.position_m.x > 0.3 && pose.position_m.z > 0.1, "{pose:?}");
    }

    #[test]
    fn relative_actions_move_the_end_effector_by_the_calvin_scale() {
        let mut arm = Arm::new(Isometry3::identity(), kinematics::HOME_JOINTS_RAD, workspace());
        let start = arm.ee_pose().position_m;
        for _ in 0..10 {
            arm.command(&Action::Relative([1.0, 0.0, -0.5, 0.0, 0.0, 0.0, 1.0]));
            for _ in 0..8 {
                arm.advance(1.0 / 240.0);
            }
        }
        let moved = arm.ee_pose().position_m - start;
        assert!((moved.x - 0.2).abs() < 0.01, "{moved:?}");
        assert!((moved.z + 0.1).abs() < 0.01, "{moved:?}");
        assert!(moved.y.abs() < 0.01, "{moved:?}");
    }

    #[test]
    fn nan_actions_hold_the_pose() {
        let mut arm = Arm::new(Isometry3::identity(), kinematics::HOME_JOINTS_RAD, workspace());
        let before = arm.ee_pose();
        arm.command(&Action::Relative([f64::NAN, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]));
        arm.advance(1.0 / 30.0);
        assert!((arm.ee_pose().position_m - before.position_m).norm() < 1e-3);
    }
}
