//! Franka Emika Panda kinematics: forward kinematics from Franka's published modified-DH
//! parameters and joint limits, the geometric Jacobian, and a damped-least-squares inverse
//! kinematics that tracks a target tool pose inside the joint limits.
//!
//! Reference: Franka Control Interface documentation, "Robot and interface specifications"
//! (DH parameters, joint position and velocity limits). Everything here is `f64`: IK iterates on
//! small differences, and the arm's link poses are converted to `f32` only when handed to physics.

use nalgebra::{Isometry3, Matrix6, Matrix6x1, SMatrix, Translation3, UnitQuaternion, Vector3};

/// Degrees of freedom of the arm.
pub const DOF: usize = 7;

/// Joint angles in radians, joint 1 (base) first.
pub type Joints = [f64; DOF];

/// Geometric Jacobian of the tool point: rows are (linear velocity, angular velocity) in the base frame.
pub type Jacobian = SMatrix<f64, 6, DOF>;

/// One modified-DH (Craig) row: the link transform is `RotX(alpha) * TransX(a) * RotZ(q) * TransZ(d)`.
#[derive(Debug, Clone, Copy)]
struct DhRow {
    a_m: f64,
    d_m: f64,
    alpha_rad: f64,
}

const FRAC_PI_2: f64 = std::f64::consts::FRAC_PI_2;

/// Panda joints 1..7 (Franka FCI documentation).
const PANDA_DH: [DhRow; DOF] = [
    DhRow { a_m: 0.0, d_m: 0.333, alpha_rad: 0.0 },
    DhRow { a_m: 0.0, d_m: 0.0, alpha_rad: -FRAC_PI_2 },
    DhRow { a_m: 0.0, d_m: 0.316, alpha_rad: FRAC_PI_2 },
    DhRow { a_m: 0.0825, d_m: 0.0, alpha_rad: FRAC_PI_2 },
    DhRow { a_m: -0.0825, d_m: 0.384, alpha_rad: -FRAC_PI_2 },
    DhRow { a_m: 0.0, d_m: 0.0, alpha_rad: FRAC_PI_2 },
    DhRow { a_m: 0.088, d_m: 0.0, alpha_rad: FRAC_PI_2 },
];

/// Distance from joint 7's frame to the flange along its z axis.
const FLANGE_OFFSET_M: f64 = 0.107;
/// The Franka Hand is mounted rotated by -45° about the flange axis.
const HAND_YAW_RAD: f64 = -std::f64::consts::FRAC_PI_4;
/// Tool centre point (between the fingertips) below the flange, along the hand's z axis.
pub const TCP_OFFSET_M: f64 = 0.1034;

/// Panda joint position limits, lower.
pub const JOINT_LOWER_RAD: Joints = [-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973];
/// Panda joint position limits, upper.
pub const JOINT_UPPER_RAD: Joints = [2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973];
/// Panda joint velocity limits.
pub const JOINT_VELOCITY_LIMIT_RAD_S: Joints = [2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61];

/// Poses of every link frame and of the tool, all in the arm's base frame.
#[derive(Debug, Clone)]
pub struct ArmFrames {
    /// `base_from_link[i]` is the frame of joint `i + 1` (its z axis is the joint axis).
    pub base_from_link: [Isometry3<f64>; DOF],
    /// The Franka Hand frame (fingers slide along its y axis).
    pub base_from_hand: Isometry3<f64>,
    /// The tool centre point: hand frame moved to between the fingertips; z points out of the fingers.
    pub base_from_tool: Isometry3<f64>,
}

/// Forward kinematics for all frames.
pub fn forward(q: &Joints) -> ArmFrames {
    let mut pose = Isometry3::identity();
    let mut base_from_link = [Isometry3::identity(); DOF];
    for (i, row) in PANDA_DH.iter().enumerate() {
        let step = Isometry3::from_parts(
            Translation3::identity(),
            UnitQuaternion::from_axis_angle(&Vector3::x_axis(), row.alpha_rad),
        ) * Isometry3::translation(row.a_m, 0.0, 0.0)
            * Isometry3::from_parts(
                Translation3::identity(),
                UnitQuaternion::from_axis_angle(&Vector3::z_axis(), q[i]),
            )
            * Isometry3::translation(0.0, 0.0, row.d_m);
        pose *= step;
        base_from_link[i] = pose;
    }
    let base_from_hand = pose
        * Isometry3::translation(0.0, 0.0, FLANGE_OFFSET_M)
        * Isometry3::from_parts(
            Translation3::identity(),
            UnitQuaternion::from_axis_angle(&Vector3::z_axis(), HAND_YAW_RAD),
        );
    let base_from_tool = base_from_hand * Isometry3::translation(0.0, 0.0, TCP_OFFSET_M);
    ArmFrames { base_from_link, base_from_hand, base_from_tool }
}

/// Geometric Jacobian of the tool centre point in the base frame.
pub fn jacobian(frames: &ArmFrames) -> Jacobian {
    let tool = frames.base_from_tool.translation.vector;
    let mut jac = Jacobian::zeros();
    for (i, link) in frames.base_from_link.iter().enumerate() {
        let axis = link.rotation * Vector3::z();
        let linear = axis.cross(&(tool - link.translation.vector));
        jac.fixed_view_mut::<3, 1>(0, i).copy_from(&linear);
        jac.fixed_view_mut::<3, 1>(3, i).copy_from(&axis);
    }
    jac
}

/// Settings of the damped-least-squares IK.
#[derive(Debug, Clone)]
pub struct IkSettings {
    /// Damping λ of `Jᵀ(JJᵀ + λ²I)⁻¹`: trades accuracy near singularities for bounded joint motion.
    pub damping: f64,
    /// Iterations per solve; the target moves a little each control step, so few are needed.
    pub max_iterations: usize,
    /// Stop once the position error is below this.
    pub position_tolerance_m: f64,
    /// Stop once the orientation error is below this.
    pub rotation_tolerance_rad: f64,
    /// Gain of the null-space pull towards `rest`, which keeps the elbow in a natural posture.
    pub posture_gain: f64,
    /// Posture the redundant degree of freedom is pulled towards.
    pub rest: Joints,
}

impl Default for IkSettings {
    fn default() -> Self {
        Self {
            damping: 0.02,
            max_iterations: 24,
            position_tolerance_m: 2e-4,
            rotation_tolerance_rad: 1e-3,
            posture_gain: 0.2,
            rest: HOME_JOINTS_RAD,
        }
    }
}

/// A comfortable "ready" posture with the gripper pointing down, as on Franka's own demos.
pub const HOME_JOINTS_RAD: Joints = [0.0, -0.3, 0.0, -2.2, 0.0, 1.9, std::f64::consts::FRAC_PI_4];

/// Result of one IK solve.
#[derive(Debug, Clone, Copy)]
pub struct IkSolution {
    /// Joint angles inside the limits.
    pub joints: Joints,
    /// Remaining distance between tool and target.
    pub position_error_m: f64,
    /// Remaining rotation angle between tool and target.
    pub rotation_error_rad: f64,
}

/// Solves for joints that bring the tool to `base_from_target`, starting from `seed`.
pub fn inverse(settings: &IkSettings, seed: &Joints, base_from_target: &Isometry3<f64>) -> IkSolution {
    let mut q = *seed;
    let mut position_error_m = f64::INFINITY;
    let mut rotation_error_rad = f64::INFINITY;
    for _ in 0..settings.max_iterations {
        let frames = forward(&q);
        let error = pose_error(&frames.base_from_tool, base_from_target);
        position_error_m = error.fixed_rows::<3>(0).norm();
        rotation_error_rad = error.fixed_rows::<3>(3).norm();
        if position_error_m < settings.position_tolerance_m && rotation_error_rad < settings.rotation_tolerance_rad {
            break;
        }
        let jac = jacobian(&frames);
        let damped = jac * jac.transpose() + Matrix6::identity() * (settings.damping * settings.damping);
        let Some(damped_inv) = damped.try_inverse() else {
            break;
        };
        let jac_pinv = jac.transpose() * damped_inv;
        let task_step = jac_pinv * error;
        let posture = SMatrix::<f64, DOF, 1>::from_fn(|i, _| settings.rest[i] - q[i]) * settings.posture_gain;
        let null_projector = SMatrix::<f64, DOF, DOF>::identity() - jac_pinv * jac;
        let dq = task_step + null_projector * posture;
        for i in 0..DOF {
            q[i] = (q[i] + dq[i]).clamp(JOINT_LOWER_RAD[i], JOINT_UPPER_RAD[i]);
        }
    }
    IkSolution { joints: q, position_error_m, rotation_error_rad }
}

/// 6-D error (translation, rotation vector) taking `current` to `target`, in the base frame.
fn pose_error(current: &Isometry3<f64>, target: &Isometry3<f64>) -> Matrix6x1<f64> {
    let translation = target.translation.vector - current.translation.vector;
    let rotation = (target.rotation * current.rotation.inverse()).scaled_axis();
    let mut error = Matrix6x1::zeros();
    error.fixed_rows_mut::<3>(0).copy_from(&translation);
    error.fixed_rows_mut::<3>(3).copy_from(&rotation);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_pose_matches_published_geometry() {
        // With all joints at zero the Panda stands straight up: the flange sits at
        // x = a4 + a5 + a7 = 0.088, z = 0.333 + 0.316 + 0.384 - 0.107.
        let frames = forward(&[0.0; DOF]);
        let hand = frames.base_from_hand.translation.vector;
        assert!((hand.x - 0.088).abs() < 1e-9, "{hand:?}");
        assert!(hand.y.abs() < 1e-9);
        assert!((hand.z - (0.333 + 0.316 + 0.384 - 0.107)).abs() < 1e-9);
    }

    #[test]
    fn jacobian_matches_finite_differences() {
        let q = HOME_JOINTS_RAD;
        let jac = jacobian(&forward(&q));
        let eps = 1e-6;
        for i in 0..DOF {
            let mut q2 = q;
            q2[i] += eps;
            let p1 = forward(&q).base_from_tool.translation.vector;
            let p2 = forward(&q2).base_from_tool.translation.vector;
            let numeric = (p2 - p1) / eps;
            assert!((numeric - jac.fixed_view::<3, 1>(0, i)).norm() < 1e-5, "joint {i}");
        }
    }

    #[test]
    fn ik_reaches_a_reachable_pose_from_home() {
        let mut q = HOME_JOINTS_RAD;
        q[0] += 0.4;
        q[3] += 0.3;
        let target = forward(&q).base_from_tool;
        let settings = IkSettings { max_iterations: 200, ..IkSettings::default() };
        let solution = inverse(&settings, &HOME_JOINTS_RAD, &target);
        assert!(solution.position_error_m < 1e-3, "{solution:?}");
        assert!(solution.rotation_error_rad < 1e-2, "{solution:?}");
        for i in 0..DOF {
            assert!((JOINT_LOWER_RAD[i]..=JOINT_UPPER_RAD[i]).contains(&solution.joints[i]));
        }
    }
}
