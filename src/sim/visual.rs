//! What the scene looks like: a list of coloured primitive shapes, each fixed to a rigid body.
//!
//! The same list feeds the deterministic CPU renderer of the policy cameras and the Bevy 3D view,
//! so the human and the policy always see the same geometry.

use glam::{Quat, Vec3};
use rapier3d::prelude::{Pose, RigidBodyHandle};

use super::scene::Rgb;

/// A primitive shape in its own frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// Box centred on the origin.
    Cuboid {
        /// Half sizes along x, y, z.
        half_extents_m: Vec3,
    },
    /// Capped cylinder along z, centred on the origin.
    Cylinder {
        /// Radius.
        radius_m: f32,
        /// Half the length along z.
        half_height_m: f32,
    },
    /// Sphere centred on the origin.
    Sphere {
        /// Radius.
        radius_m: f32,
    },
}

/// Which light makes a part glow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Glow {
    /// Always drawn shaded.
    Never,
    /// Glows while the LED is on.
    Led,
    /// Glows while the light bulb is on.
    Bulb,
}

/// One visible shape attached to a body.
#[derive(Debug, Clone)]
pub struct VisualPart {
    /// The body it moves with.
    pub body: RigidBodyHandle,
    /// Its shape.
    pub shape: Shape,
    /// Where the shape sits in the body's frame.
    pub body_from_shape: Pose,
    /// Colour (the lit colour for glowing parts).
    pub rgb: Rgb,
    /// When it glows.
    pub glow: Glow,
}

/// Colour of an unlit LED or bulb: a dull grey-tinted version of its lit colour.
pub fn unlit_rgb(rgb: Rgb) -> Rgb {
    rgb.map(|c| (c as u16 * 3 / 10 + 50) as u8)
}

/// Pose of a shape placed at `center` with its z axis along `axis` (for cylinders).
pub fn pose_along(center: Vec3, axis: Vec3) -> Pose {
    Pose::from_parts(center, Quat::from_rotation_arc(Vec3::Z, axis.normalize()))
}
