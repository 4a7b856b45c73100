//! Builds the rapier world for a [`Scene`]: the fixed desk and cabinet, the jointed drawer,
//! sliding door, button and switch, the three dynamic blocks, and the arm's kinematic links.
//!
//! Every collider carries its [`Part`] in `user_data`, which is how contacts are read back
//! (which block touches the table, the drawer, the fingers). Every visible shape is recorded
//! as a [`VisualPart`] on the body it moves with.

use glam::{Quat, Vec3};
use rapier3d::prelude::*;

use super::kinematics::{self, DOF};
use super::scene::{BlockColor, Desk, Scene};
use super::visual::{Glow, Shape, VisualPart, pose_along};

/// What a collider belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// The desk top, its legs and the robot's pedestal.
    Desk,
    /// The floor the desk stands on.
    Floor,
    /// The cabinet's walls, roof and the switch rail.
    Cabinet,
    /// The cabinet's floor: a block resting here is "in the slider".
    CabinetFloor,
    /// The sliding door.
    Door,
    /// Any part of the drawer.
    Drawer,
    /// The button cap.
    Button,
    /// The switch knob.
    Switch,
    /// A block.
    Block(BlockColor),
    /// An arm link or the hand.
    Arm,
    /// A finger (0 = the hand's +y finger, 1 = the -y finger).
    Finger(u8),
}

impl Part {
    /// Whether this part is the robot.
    pub fn is_robot(self) -> bool {
        matches!(self, Part::Arm | Part::Finger(_))
    }

    fn to_user_data(self) -> u128 {
        match self {
            Part::Desk => 1,
            Part::Cabinet => 2,
            Part::CabinetFloor => 3,
            Part::Door => 4,
            Part::Drawer => 5,
            Part::Button => 6,
            Part::Switch => 7,
            Part::Floor => 8,
            Part::Block(color) => 10 + color.index() as u128,
            Part::Arm => 20,
            Part::Finger(side) => 21 + side as u128,
        }
    }

    /// Decodes the tag stored in a collider's `user_data`.
    pub fn from_user_data(data: u128) -> Option<Part> {
        Some(match data {
            1 => Part::Desk,
            2 => Part::Cabinet,
            3 => Part::CabinetFloor,
            4 => Part::Door,
            5 => Part::Drawer,
            6 => Part::Button,
            7 => Part::Switch,
            8 => Part::Floor,
            10..=12 => Part::Block(BlockColor::ALL[(data - 10) as usize]),
            20 => Part::Arm,
            21 | 22 => Part::Finger((data - 21) as u8),
            _ => return None,
        })
    }
}

/// Physics step: CALVIN simulates at 240 Hz.
pub const PHYSICS_DT_S: f32 = 1.0 / 240.0;
const GRAVITY_M_S2: f32 = 9.81;
const DESK_FRICTION: f32 = 0.7;
const BLOCK_FRICTION: f32 = 0.8;
const FINGER_FRICTION: f32 = 1.2;
/// Wood-like density: a 5 cm cube weighs 0.1 kg.
const BLOCK_DENSITY_KG_M3: f32 = 800.0;
/// Viscous damping of the drawer, door and switch joints (N per m/s), so they stop soon after being let go.
const DRAWER_DAMPING: f32 = 20.0;
/// Lighter: at 20 the door no longer gave way to a block the fingers pressed against it, and the
/// expert lost a rotation next to the cabinet (rotate_pink_block_left, seed 0).
const DOOR_DAMPING: f32 = 10.0;
const SWITCH_DAMPING: f32 = 40.0;
/// The button's return spring.
const BUTTON_STIFFNESS: f32 = 400.0;
const BUTTON_DAMPING: f32 = 10.0;
const LEG_HEIGHT_M: f32 = 0.72;
/// A 4 m floor slab, far wider than anything that can fall off the desk.
pub const FLOOR_HALF_SIZE_M: f32 = 2.0;
/// Stand-off of the drawer handle from the drawer front, large enough for the hand to clear the desk edge.
pub const DRAWER_HANDLE_STANDOFF_M: f32 = 0.05;
/// Panda Hand geometry (approximate, from Franka's CAD): body, finger size, finger base below the flange.
pub const HAND_HALF_EXTENTS_M: Vec3 = Vec3::new(0.025, 0.1, 0.029);
/// Half sizes of one finger: x across the pad, y its thickness (the closing direction), z its length.
pub const FINGER_HALF_EXTENTS_M: Vec3 = Vec3::new(0.01, 0.006, 0.027);
const FINGER_CENTER_Z_M: f32 = 0.085;
/// Widest gripper opening (Franka Hand: 80 mm).
pub const GRIPPER_MAX_WIDTH_M: f64 = 0.08;
const LINK_RADIUS_M: f32 = 0.05;
const JOINT_HOUSING_RADIUS_M: f32 = 0.058;
const JOINT_HOUSING_HALF_HEIGHT_M: f32 = 0.06;

/// Handles of everything the simulation reads or drives.
#[derive(Debug, Clone)]
pub struct Handles {
    /// The fixed body holding the desk, cabinet and pedestal.
    pub desk: RigidBodyHandle,
    /// Drawer body and its joint.
    pub drawer: RigidBodyHandle,
    /// Sliding door body.
    pub door: RigidBodyHandle,
    /// Button cap body.
    pub button: RigidBodyHandle,
    /// Switch knob body.
    pub switch: RigidBodyHandle,
    /// Blocks in [`BlockColor::ALL`] order.
    pub blocks: [RigidBodyHandle; 3],
    /// Kinematic arm links 1..7.
    pub links: [RigidBodyHandle; DOF],
    /// Kinematic hand.
    pub hand: RigidBodyHandle,
    /// Kinematic fingers (+y side, -y side of the hand).
    pub fingers: [RigidBodyHandle; 2],
    /// Finger colliders, for contact queries.
    pub finger_colliders: [ColliderHandle; 2],
}

/// Reference positions of the jointed parts, from which their joint values are read.
#[derive(Debug, Clone, Copy)]
pub struct JointOrigins {
    /// Drawer body x when closed.
    pub drawer_closed_x_m: f32,
    /// Door body y when fully right (slider value 0).
    pub door_right_y_m: f32,
    /// Button body z when released.
    pub button_up_z_m: f32,
    /// Switch knob y at the "off" end of its travel.
    pub switch_off_y_m: f32,
}

/// A freshly built world.
pub struct Built {
    /// The rapier world.
    pub physics: PhysicsWorld,
    /// Handles of the parts.
    pub handles: Handles,
    /// Joint reference positions.
    pub origins: JointOrigins,
    /// Everything visible.
    pub visuals: Vec<VisualPart>,
}

struct Builder<'a> {
    scene: &'a Scene,
    physics: PhysicsWorld,
    visuals: Vec<VisualPart>,
}

impl Builder<'_> {
    /// Adds a shape to `body`: always visible, and colliding when `part` is given.
    fn add(
        &mut self,
        body: RigidBodyHandle,
        shape: Shape,
        pose: Pose,
        rgb: [u8; 3],
        part: Option<Part>,
    ) -> Option<ColliderHandle> {
        self.visuals.push(VisualPart { body, shape, body_from_shape: pose, rgb, glow: Glow::Never });
        let part = part?;
        let builder = match shape {
            Shape::Cuboid { half_extents_m: h } => ColliderBuilder::cuboid(h.x, h.y, h.z),
            // rapier's cylinders stand along y; ours along z.
            Shape::Cylinder { radius_m, half_height_m } => ColliderBuilder::cylinder(half_height_m, radius_m),
            Shape::Sphere { radius_m } => ColliderBuilder::ball(radius_m),
        };
        let (friction, density) = match part {
            Part::Block(_) => (BLOCK_FRICTION, BLOCK_DENSITY_KG_M3),
            Part::Finger(_) => (FINGER_FRICTION, 1000.0),
            _ => (DESK_FRICTION, 500.0),
        };
        let collider = builder
            .position(pose * builder_rotation(&shape))
            .friction(friction)
            .density(density)
            .user_data(part.to_user_data())
            .build();
        Some(self.attach(collider, body))
    }

    fn attach(&mut self, collider: Collider, body: RigidBodyHandle) -> ColliderHandle {
        let physics = &mut self.physics;
        physics.colliders.insert_with_parent(collider, body, &mut physics.bodies)
    }

    fn cuboid(
        &mut self,
        body: RigidBodyHandle,
        center: Vec3,
        half: Vec3,
        rgb: [u8; 3],
        part: Option<Part>,
    ) -> Option<ColliderHandle> {
        self.add(body, Shape::Cuboid { half_extents_m: half }, Pose::from_translation(center), rgb, part)
    }

    fn body(&mut self, builder: RigidBodyBuilder) -> RigidBodyHandle {
        self.physics.bodies.insert(builder)
    }

    fn prismatic(
        &mut self,
        parent: RigidBodyHandle,
        child: RigidBodyHandle,
        axis: Vec3,
        anchor: Vec3,
        limits: [f32; 2],
        motor: impl FnOnce(PrismaticJointBuilder) -> PrismaticJointBuilder,
    ) {
        let joint = motor(
            PrismaticJointBuilder::new(axis)
                .local_anchor1(anchor)
                .local_anchor2(Vec3::ZERO)
                .limits(limits)
                .contacts_enabled(false),
        );
        self.physics.impulse_joints.insert(parent, child, joint, true);
    }
}

/// A joint motor that only resists motion: a force of `damping` N per m/s. With rapier's default
/// acceleration-based motor model the door barely slowed at 240 Hz (pushed to 0.3 m/s, it slid 14 cm
/// in the next half second), so a brush of the arm slid it shut.
fn viscous(joint: PrismaticJointBuilder, damping: f32) -> PrismaticJointBuilder {
    joint.motor_velocity(0.0, damping).motor_model(MotorModel::ForceBased)
}

/// Turns rapier's y-axis cylinders onto our z axis.
fn builder_rotation(shape: &Shape) -> Pose {
    match shape {
        Shape::Cylinder { .. } => Pose::from_rotation(Quat::from_rotation_x(std::f32::consts::FRAC_PI_2)),
        _ => Pose::IDENTITY,
    }
}

fn v3(a: [f64; 3]) -> Vec3 {
    Vec3::new(a[0] as f32, a[1] as f32, a[2] as f32)
}

/// Builds the world with every movable part at its reference position (drawer closed, door right,
/// switch down, blocks parked beside the desk); [`super::world::World`] then places them.
pub fn build(scene: &Scene) -> Built {
    let mut physics = PhysicsWorld { gravity: Vec3::new(0.0, 0.0, -GRAVITY_M_S2), ..Default::default() };
    physics.integration_parameters.dt = PHYSICS_DT_S;
    let mut b = Builder { scene, physics, visuals: Vec::new() };

    let desk = b.body(RigidBodyBuilder::fixed());
    build_desk(&mut b, desk);
    let door_right_y_m = build_cabinet(&mut b, desk);
    let door = b.body(RigidBodyBuilder::dynamic().translation(Vec3::new(0.0, door_right_y_m, 0.0)).can_sleep(false));
    build_door(&mut b, desk, door, door_right_y_m);
    let (switch, switch_off_y_m) = build_switch_and_bulb(&mut b, desk);
    let drawer = build_drawer(&mut b, desk);
    let (button, button_up_z_m) = build_button_and_led(&mut b, desk);

    let blocks = BlockColor::ALL.map(|color| {
        let spec = scene.block(color);
        let body = b.body(
            RigidBodyBuilder::dynamic()
                .translation(Vec3::new(-1.0, 0.3 * color.index() as f32, -0.5))
                .ccd_enabled(true)
                .can_sleep(false),
        );
        b.cuboid(body, Vec3::ZERO, v3(spec.half_extents_m), spec.rgb, Some(Part::Block(color)));
        body
    });

    let (links, hand, fingers, finger_colliders) = build_arm(&mut b, desk);

    let origins = JointOrigins { drawer_closed_x_m: 0.0, door_right_y_m, button_up_z_m, switch_off_y_m };
    let handles = Handles { desk, drawer, door, button, switch, blocks, links, hand, fingers, finger_colliders };
    Built { physics: b.physics, handles, origins, visuals: b.visuals }
}

fn build_desk(b: &mut Builder, desk: RigidBodyHandle) {
    let spec = b.scene.desk.clone();
    let (near, far, half_w, thick) =
        (spec.near_x_m as f32, spec.far_x_m as f32, spec.half_width_m as f32, spec.thickness_m as f32);
    b.cuboid(
        desk,
        Vec3::new((near + far) / 2.0, 0.0, -thick / 2.0),
        Vec3::new((far - near) / 2.0, half_w, thick / 2.0),
        spec.rgb,
        Some(Part::Desk),
    );
    let leg_rgb = spec.rgb.map(|c| (c as u16 * 7 / 10) as u8);
    let leg_half = Vec3::new(0.025, 0.025, LEG_HEIGHT_M / 2.0);
    for (x, y) in [
        (near + 0.04, half_w - 0.04),
        (near + 0.04, -half_w + 0.04),
        (far - 0.04, half_w - 0.04),
        (far - 0.04, -half_w + 0.04),
    ] {
        b.cuboid(desk, Vec3::new(x, y, -thick - LEG_HEIGHT_M / 2.0), leg_half, leg_rgb, None);
    }
    // The floor under the legs is in the physics only: a block pushed off the desk comes to rest
    // on it instead of falling forever, and the policy cameras keep seeing the images the shipped
    // models were trained on.
    let floor = ColliderBuilder::cuboid(FLOOR_HALF_SIZE_M, FLOOR_HALF_SIZE_M, FLOOR_HALF_SIZE_M)
        .translation(Vec3::new(0.0, 0.0, floor_z_m(&spec) - FLOOR_HALF_SIZE_M))
        .friction(DESK_FRICTION)
        .user_data(Part::Floor.to_user_data())
        .build();
    b.attach(floor, desk);
    // The robot's pedestal: a column from the floor up to the arm's base frame.
    let base = v3(b.scene.robot.base_m);
    let pedestal_half = (base.z + thick + LEG_HEIGHT_M) / 2.0;
    let pedestal = Shape::Cylinder { radius_m: 0.09, half_height_m: pedestal_half };
    b.add(desk, pedestal, Pose::from_translation(base - Vec3::Z * pedestal_half), [90, 90, 96], Some(Part::Desk));
}

/// Height of the floor the desk's legs stand on (the desk top is at z = 0).
pub fn floor_z_m(desk: &Desk) -> f32 {
    -(desk.thickness_m as f32) - LEG_HEIGHT_M
}

/// Builds the cabinet carcass on the desk body; returns the door's y at slider value 0 (fully right).
fn build_cabinet(b: &mut Builder, desk: RigidBodyHandle) -> f32 {
    let c = b.scene.cabinet.clone();
    let (fx, depth, width, height, wall, cy) = (
        c.front_x_m as f32,
        c.depth_m as f32,
        c.width_m as f32,
        c.height_m as f32,
        c.wall_m as f32,
        c.center_y_m as f32,
    );
    let outer_half_w = width / 2.0 + wall;
    let total_h = height + 2.0 * wall;
    b.cuboid(
        desk,
        Vec3::new(fx + depth / 2.0, cy, wall / 2.0),
        Vec3::new(depth / 2.0, outer_half_w, wall / 2.0),
        c.rgb,
        Some(Part::CabinetFloor),
    );
    b.cuboid(
        desk,
        Vec3::new(fx + depth + wall / 2.0, cy, total_h / 2.0),
        Vec3::new(wall / 2.0, outer_half_w, total_h / 2.0),
        c.rgb,
        Some(Part::Cabinet),
    );
    for side in [-1.0, 1.0] {
        b.cuboid(
            desk,
            Vec3::new(fx + depth / 2.0, cy + side * (width / 2.0 + wall / 2.0), total_h / 2.0),
            Vec3::new(depth / 2.0, wall / 2.0, total_h / 2.0),
            c.rgb,
            Some(Part::Cabinet),
        );
    }
    b.cuboid(
        desk,
        Vec3::new(fx + depth / 2.0 + wall / 2.0, cy, height + 1.5 * wall),
        Vec3::new(depth / 2.0 + wall / 2.0, outer_half_w, wall / 2.0),
        c.rgb,
        Some(Part::Cabinet),
    );
    // The rail the door runs along, in front of the floor.
    let rail_rgb = c.rgb.map(|v| (v as u16 * 6 / 10) as u8);
    b.cuboid(desk, Vec3::new(fx - wall, cy, wall / 4.0), Vec3::new(wall, outer_half_w, wall / 4.0), rail_rgb, None);
    cy - width / 4.0
}

fn build_door(b: &mut Builder, desk: RigidBodyHandle, door: RigidBodyHandle, door_right_y_m: f32) {
    let c = b.scene.cabinet.clone();
    let (fx, width, height, wall) = (c.front_x_m as f32, c.width_m as f32, c.height_m as f32, c.wall_m as f32);
    let door_center = Vec3::new(fx - wall / 2.0 - 0.004, 0.0, wall + height / 2.0);
    b.cuboid(door, door_center, Vec3::new(wall / 2.0, width / 4.0, height / 2.0), c.door_rgb, Some(Part::Door));
    // A vertical grip standing out of the door, pushed sideways to slide it.
    let grip_half = Vec3::new(0.02, 0.012, 0.05);
    b.cuboid(door, door_center - Vec3::X * (wall / 2.0 + grip_half.x), grip_half, c.handle_rgb, Some(Part::Door));
    let anchor = Vec3::new(0.0, door_right_y_m, 0.0);
    b.prismatic(desk, door, Vec3::Y, anchor, [0.0, width / 2.0], |j| viscous(j, DOOR_DAMPING));
}

/// Geometry of the slide switch shared by the builder and the expert.
pub struct SwitchGeometry {
    /// Centre of the knob at the "off" end of its travel (it slides towards +y to switch on).
    pub knob_off_center_m: Vec3,
    /// Half sizes of the knob.
    pub knob_half_extents_m: Vec3,
}

/// Height of the rail the switch knob slides on.
const SWITCH_RAIL_HEIGHT_M: f32 = 0.012;

/// Where the switch knob sits in a scene.
pub fn switch_geometry(scene: &Scene) -> SwitchGeometry {
    let c = &scene.cabinet;
    let roof_top = (c.height_m + 2.0 * c.wall_m) as f32;
    let knob_half_extents_m = Vec3::new(0.02, 0.015, 0.025);
    SwitchGeometry {
        knob_off_center_m: Vec3::new(
            c.front_x_m as f32 + 0.04,
            (c.center_y_m + scene.switch.offset_y_m) as f32,
            roof_top + SWITCH_RAIL_HEIGHT_M + knob_half_extents_m.z,
        ),
        knob_half_extents_m,
    }
}

/// Returns the knob's body and its y at the "off" end of the travel.
fn build_switch_and_bulb(b: &mut Builder, desk: RigidBodyHandle) -> (RigidBodyHandle, f32) {
    let c = b.scene.cabinet.clone();
    let s = b.scene.switch.clone();
    let travel = s.travel_m as f32;
    let roof_top = (c.height_m + 2.0 * c.wall_m) as f32;
    let geometry = switch_geometry(b.scene);
    let knob_off = geometry.knob_off_center_m;
    let rail_half = Vec3::new(0.022, travel / 2.0 + 0.03, SWITCH_RAIL_HEIGHT_M / 2.0);
    let rail_center = Vec3::new(knob_off.x, knob_off.y + travel / 2.0, roof_top + SWITCH_RAIL_HEIGHT_M / 2.0);
    b.cuboid(desk, rail_center, rail_half, c.rgb.map(|v| (v as u16 * 6 / 10) as u8), Some(Part::Cabinet));
    let knob = b.body(RigidBodyBuilder::dynamic().translation(knob_off).can_sleep(false));
    b.cuboid(knob, Vec3::ZERO, geometry.knob_half_extents_m, s.rgb, Some(Part::Switch));
    b.prismatic(desk, knob, Vec3::Y, knob_off, [0.0, travel], |j| viscous(j, SWITCH_DAMPING));

    let bulb_radius = 0.03;
    let socket_half_h = 0.02;
    let bulb_xy = Vec3::new(c.front_x_m as f32 + 0.07, (c.center_y_m + s.bulb_offset_y_m) as f32, roof_top);
    let socket = Shape::Cylinder { radius_m: 0.02, half_height_m: socket_half_h };
    b.add(desk, socket, Pose::from_translation(bulb_xy + Vec3::Z * socket_half_h), [70, 70, 70], Some(Part::Cabinet));
    let bulb_pose = Pose::from_translation(bulb_xy + Vec3::Z * (2.0 * socket_half_h + bulb_radius * 0.9));
    b.visuals.push(VisualPart {
        body: desk,
        shape: Shape::Sphere { radius_m: bulb_radius },
        body_from_shape: bulb_pose,
        rgb: s.bulb_on_rgb,
        glow: Glow::Bulb,
    });
    (knob, knob_off.y)
}

/// Geometry of the drawer shared by the builder and the expert (all at the closed position).
pub struct DrawerGeometry {
    /// z of the drawer's floor top surface.
    pub floor_top_z_m: f32,
    /// z of the top of its walls.
    pub rim_z_m: f32,
    /// Centre of the handle bar.
    pub handle_center_m: Vec3,
    /// Half sizes of the handle bar.
    pub handle_half_extents_m: Vec3,
    /// Wall thickness.
    pub wall_m: f32,
}

/// Where the drawer's parts sit in a scene when it is closed.
pub fn drawer_geometry(scene: &Scene) -> DrawerGeometry {
    let d = &scene.drawer;
    let wall_m = 0.01;
    let rim_z_m = -(scene.desk.thickness_m as f32) - 0.005;
    let floor_top_z_m = rim_z_m - d.height_m as f32 + wall_m;
    let handle_half_extents_m = Vec3::new(0.008, 0.06, 0.008);
    let handle_center_m = Vec3::new(
        scene.desk.near_x_m as f32 - DRAWER_HANDLE_STANDOFF_M,
        d.center_y_m as f32,
        rim_z_m - d.height_m as f32 / 2.0,
    );
    DrawerGeometry { floor_top_z_m, rim_z_m, handle_center_m, handle_half_extents_m, wall_m }
}

fn build_drawer(b: &mut Builder, desk: RigidBodyHandle) -> RigidBodyHandle {
    let d = b.scene.drawer.clone();
    let g = drawer_geometry(b.scene);
    let near = b.scene.desk.near_x_m as f32;
    let (width, depth, height, cy, wall) =
        (d.width_m as f32, d.depth_m as f32, d.height_m as f32, d.center_y_m as f32, g.wall_m);
    let bottom = g.rim_z_m - height;
    let drawer = b.body(RigidBodyBuilder::dynamic().can_sleep(false));
    let part = Some(Part::Drawer);
    b.cuboid(
        drawer,
        Vec3::new(near + depth / 2.0, cy, bottom + wall / 2.0),
        Vec3::new(depth / 2.0, width / 2.0, wall / 2.0),
        d.rgb,
        part,
    );
    for x in [near + wall / 2.0, near + depth - wall / 2.0] {
        b.cuboid(
            drawer,
            Vec3::new(x, cy, bottom + height / 2.0),
            Vec3::new(wall / 2.0, width / 2.0, height / 2.0),
            d.rgb,
            part,
        );
    }
    for side in [-1.0, 1.0] {
        b.cuboid(
            drawer,
            Vec3::new(near + depth / 2.0, cy + side * (width / 2.0 - wall / 2.0), bottom + height / 2.0),
            Vec3::new(depth / 2.0, wall / 2.0, height / 2.0),
            d.rgb,
            part,
        );
    }
    b.cuboid(drawer, g.handle_center_m, g.handle_half_extents_m, d.handle_rgb, part);
    let post_half = Vec3::new(DRAWER_HANDLE_STANDOFF_M / 2.0, 0.006, 0.006);
    for side in [-1.0, 1.0] {
        let post_center = Vec3::new(
            near - DRAWER_HANDLE_STANDOFF_M / 2.0,
            cy + side * (g.handle_half_extents_m.y - 0.008),
            g.handle_center_m.z,
        );
        b.cuboid(drawer, post_center, post_half, d.handle_rgb, part);
    }
    // The runners' housing under the desk top (seen, not simulated: the drawer is jointed to the desk).
    let housing_rgb = b.scene.desk.rgb.map(|c| (c as u16 * 8 / 10) as u8);
    for side in [-1.0, 1.0] {
        b.cuboid(
            desk,
            Vec3::new(near + depth / 2.0, cy + side * (width / 2.0 + 0.006), (bottom + g.rim_z_m) / 2.0),
            Vec3::new(depth / 2.0, 0.005, (g.rim_z_m - bottom) / 2.0 + 0.005),
            housing_rgb,
            None,
        );
    }
    b.prismatic(desk, drawer, Vec3::X, Vec3::ZERO, [-(d.travel_m as f32), 0.0], |j| viscous(j, DRAWER_DAMPING));
    drawer
}

/// Height of the button's base plate.
const BUTTON_BASE_HEIGHT_M: f32 = 0.02;
/// Half height of the button cap.
pub const BUTTON_CAP_HALF_HEIGHT_M: f32 = 0.012;

/// Top of the released button cap.
pub fn button_top_z_m() -> f32 {
    BUTTON_BASE_HEIGHT_M + 2.0 * BUTTON_CAP_HALF_HEIGHT_M
}

/// Returns the cap's body and its z when released.
fn build_button_and_led(b: &mut Builder, desk: RigidBodyHandle) -> (RigidBodyHandle, f32) {
    let s = b.scene.button.clone();
    let (x, y) = (s.position_m[0] as f32, s.position_m[1] as f32);
    let base = Shape::Cylinder { radius_m: s.radius_m as f32 + 0.015, half_height_m: BUTTON_BASE_HEIGHT_M / 2.0 };
    b.add(
        desk,
        base,
        Pose::from_translation(Vec3::new(x, y, BUTTON_BASE_HEIGHT_M / 2.0)),
        [200, 200, 196],
        Some(Part::Desk),
    );
    let cap_center = Vec3::new(x, y, BUTTON_BASE_HEIGHT_M + BUTTON_CAP_HALF_HEIGHT_M);
    let cap = b.body(RigidBodyBuilder::dynamic().translation(cap_center).gravity_scale(0.0).can_sleep(false));
    let cap_shape = Shape::Cylinder { radius_m: s.radius_m as f32, half_height_m: BUTTON_CAP_HALF_HEIGHT_M };
    b.add(cap, cap_shape, Pose::IDENTITY, s.rgb, Some(Part::Button));
    b.prismatic(desk, cap, Vec3::Z, cap_center, [-(s.travel_m as f32), 0.0], |j| {
        j.motor_position(0.0, BUTTON_STIFFNESS, BUTTON_DAMPING)
    });

    let (lx, ly) = (s.led_position_m[0] as f32, s.led_position_m[1] as f32);
    let led_base = Shape::Cylinder { radius_m: 0.02, half_height_m: 0.006 };
    b.add(desk, led_base, Pose::from_translation(Vec3::new(lx, ly, 0.006)), [50, 50, 50], None);
    b.visuals.push(VisualPart {
        body: desk,
        shape: Shape::Cylinder { radius_m: 0.012, half_height_m: 0.008 },
        body_from_shape: Pose::from_translation(Vec3::new(lx, ly, 0.02)),
        rgb: s.led_on_rgb,
        glow: Glow::Led,
    });
    (cap, cap_center.z)
}

/// Builds the arm: links 1..7, hand and fingers as kinematic bodies placed each substep from joint angles.
#[allow(clippy::type_complexity)]
fn build_arm(
    b: &mut Builder,
    desk: RigidBodyHandle,
) -> ([RigidBodyHandle; DOF], RigidBodyHandle, [RigidBodyHandle; 2], [ColliderHandle; 2]) {
    let robot = b.scene.robot.clone();
    let base = v3(robot.base_m);
    let zero = kinematics::forward(&[0.0; DOF]);
    // Link 0: the base housing from the pedestal top up to joint 1.
    let first_origin = zero.base_from_link[0].translation.vector;
    let base_shape = Shape::Cylinder { radius_m: LINK_RADIUS_M + 0.01, half_height_m: first_origin.z as f32 / 2.0 };
    b.add(desk, base_shape, Pose::from_translation(base + Vec3::Z * (first_origin.z as f32 / 2.0)), robot.rgb, None);

    let links = std::array::from_fn(|i| {
        let link = b.body(RigidBodyBuilder::kinematic_position_based());
        let housing = Shape::Cylinder { radius_m: JOINT_HOUSING_RADIUS_M, half_height_m: JOINT_HOUSING_HALF_HEIGHT_M };
        b.add(link, housing, Pose::IDENTITY, robot.rgb, None);
        // The segment to the next joint (or to the flange) is fixed in this link's frame.
        let link_from_world = zero.base_from_link[i].inverse();
        let next = if i + 1 < DOF {
            zero.base_from_link[i + 1].translation.vector
        } else {
            zero.base_from_hand.translation.vector
        };
        let next_in_link = link_from_world.transform_point(&next.into());
        let next_in_link = Vec3::new(next_in_link.x as f32, next_in_link.y as f32, next_in_link.z as f32);
        let length = next_in_link.length();
        if length > 1e-6 {
            let shape = Shape::Cylinder { radius_m: LINK_RADIUS_M, half_height_m: length / 2.0 };
            b.add(link, shape, pose_along(next_in_link / 2.0, next_in_link), robot.rgb, Some(Part::Arm));
        }
        link
    });

    let hand = b.body(RigidBodyBuilder::kinematic_position_based());
    b.cuboid(hand, Vec3::Z * HAND_HALF_EXTENTS_M.z, HAND_HALF_EXTENTS_M, robot.gripper_rgb, Some(Part::Arm));
    let mut finger_colliders = [ColliderHandle::invalid(); 2];
    let fingers = std::array::from_fn(|side| {
        let finger = b.body(RigidBodyBuilder::kinematic_position_based());
        let collider =
            b.cuboid(finger, Vec3::ZERO, FINGER_HALF_EXTENTS_M, robot.gripper_rgb, Some(Part::Finger(side as u8)));
        finger_colliders[side] = collider.expect("fingers are built with a collider");
        finger
    });
    (links, hand, fingers, finger_colliders)
}

/// How far the fingertips reach below the tool centre point.
pub fn fingertip_below_tcp_m() -> f64 {
    (FINGER_CENTER_Z_M + FINGER_HALF_EXTENTS_M.z) as f64 - super::kinematics::TCP_OFFSET_M
}

/// Pose of a held block's centre in the hand frame: between the finger pads, its axes along the
/// hand's, so the fingers close across the block's y extent.
pub fn hand_from_held_block() -> Pose {
    Pose::from_translation(Vec3::new(0.0, 0.0, FINGER_CENTER_Z_M))
}

/// Gripper opening that holds `block` (the fingers close across its y extent).
pub fn held_block_width_m(block: &super::scene::Block) -> f64 {
    2.0 * block.half_extents_m[1]
}

/// Pose of finger `side` in the hand frame for a gripper opening `width_m`.
pub fn hand_from_finger(side: usize, width_m: f64) -> Pose {
    let sign = if side == 0 { 1.0 } else { -1.0 };
    Pose::from_translation(Vec3::new(0.0, sign * (width_m as f32 / 2.0 + FINGER_HALF_EXTENTS_M.y), FINGER_CENTER_Z_M))
}
