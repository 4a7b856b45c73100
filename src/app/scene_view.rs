//! The human's 3D view: one Bevy mesh per [`VisualPart`] of the simulated world, posed from the
//! sim after every control step and interpolated between steps, so motion looks smooth at any
//! frame rate while the sim keeps its fixed 30 Hz.

use bevy::prelude::*;

use super::session::Session;
use crate::sim::build::floor_z_m;
use crate::sim::scene::Rgb;
use crate::sim::visual::{Glow, Shape, VisualPart, unlit_rgb};
use crate::sim::world::World;

/// Draws the simulated world.
pub struct SceneViewPlugin;

impl Plugin for SceneViewPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(ClearColor(Color::srgb(0.62, 0.68, 0.74)))
            .insert_resource(GlobalAmbientLight { brightness: 350.0, ..default() })
            .init_resource::<PoseBuffer>()
            .add_systems(Startup, spawn_environment)
            .add_systems(Update, (respawn_parts, interpolate_poses, show_lights).chain())
            .add_systems(FixedPostUpdate, capture_poses);
    }
}

/// One visual part of the world, by its index in [`World::visuals`].
#[derive(Component)]
struct Part(usize);

/// Anything spawned for the current world (its parts and the floor), despawned when it is rebuilt.
#[derive(Component)]
struct OfWorld;

/// A part that glows while its light is on: both looks, swapped when the state flips.
#[derive(Component)]
struct Glowing {
    glow: Glow,
    lit: Handle<StandardMaterial>,
    unlit: Handle<StandardMaterial>,
}

/// The light a lit bulb casts on the desk.
#[derive(Component)]
struct BulbLight;

/// Part poses after the previous and the latest control step, for interpolation.
#[derive(Resource, Default)]
struct PoseBuffer {
    generation: Option<u64>,
    previous: Vec<Transform>,
    latest: Vec<Transform>,
}

/// How bright a lit LED or bulb glows, relative to its colour.
const GLOW_STRENGTH: f32 = 6.0;

fn spawn_environment(mut commands: Commands) {
    // Sun from behind the robot's left shoulder, so shadows fall onto the desk in front of it.
    commands.spawn((
        DirectionalLight { illuminance: 9000.0, shadow_maps_enabled: false, ..default() },
        Transform::from_xyz(-0.6, 0.8, 1.6).looking_at(Vec3::new(0.5, 0.0, 0.0), Vec3::Z),
    ));
}

/// Rebuilds every part entity when the session's world was rebuilt (reset, scene change).
fn respawn_parts(
    mut commands: Commands,
    session: Res<Session>,
    mut buffer: ResMut<PoseBuffer>,
    spawned: Query<Entity, With<OfWorld>>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    if buffer.generation == Some(session.generation()) {
        return;
    }
    for entity in &spawned {
        commands.entity(entity).despawn();
    }
    let world = session.world();
    // The floor the desk's legs stand on; the policy cameras do not draw it.
    commands.spawn((
        OfWorld,
        Mesh3d(meshes.add(Cuboid::new(3.0, 3.0, 0.02))),
        MeshMaterial3d(materials.add(standard_material([115, 115, 120]))),
        Transform::from_xyz(0.45, 0.0, floor_z_m(&world.scene().desk) - 0.01),
    ));
    for (index, part) in world.visuals().iter().enumerate() {
        let mesh = meshes.add(shape_mesh(part.shape));
        let look = standard_material(part.rgb);
        let mut entity = commands.spawn((OfWorld, Part(index), Mesh3d(mesh), part_transform(world, part)));
        if part.glow == Glow::Never {
            entity.insert(MeshMaterial3d(materials.add(look)));
        } else {
            let lit = materials
                .add(StandardMaterial { emissive: LinearRgba::from(srgb(part.rgb)) * GLOW_STRENGTH, ..look.clone() });
            let unlit = materials.add(standard_material(unlit_rgb(part.rgb)));
            entity.insert((MeshMaterial3d(unlit.clone()), Glowing { glow: part.glow, lit, unlit }));
            if part.glow == Glow::Bulb {
                entity.with_child((
                    BulbLight,
                    PointLight { color: srgb(part.rgb), intensity: 60_000.0, range: 2.0, ..default() },
                    Visibility::Hidden,
                ));
            }
        }
    }
    let poses = current_poses(world);
    *buffer = PoseBuffer { generation: Some(session.generation()), previous: poses.clone(), latest: poses };
}

/// After each control step: the latest poses become the previous ones.
fn capture_poses(session: Res<Session>, mut buffer: ResMut<PoseBuffer>) {
    if buffer.generation != Some(session.generation()) {
        return;
    }
    let poses = current_poses(session.world());
    buffer.previous = std::mem::replace(&mut buffer.latest, poses);
}

/// Places every part between its previous and latest pose, by how far time is into the next step.
fn interpolate_poses(time: Res<Time<Fixed>>, buffer: Res<PoseBuffer>, mut parts: Query<(&Part, &mut Transform)>) {
    let t = time.overstep_fraction().clamp(0.0, 1.0);
    for (Part(index), mut transform) in &mut parts {
        let (Some(from), Some(to)) = (buffer.previous.get(*index), buffer.latest.get(*index)) else { continue };
        *transform = Transform {
            translation: from.translation.lerp(to.translation, t),
            rotation: from.rotation.slerp(to.rotation, t),
            scale: Vec3::ONE,
        };
    }
}

/// Swaps glowing parts between their lit and unlit look and switches the bulb's light.
fn show_lights(
    session: Res<Session>,
    mut glowing: Query<(&Glowing, &mut MeshMaterial3d<StandardMaterial>)>,
    mut bulb_lights: Query<&mut Visibility, With<BulbLight>>,
) {
    let world = session.world();
    for (glowing, mut material) in &mut glowing {
        let wanted = if world.is_lit(glowing.glow) { &glowing.lit } else { &glowing.unlit };
        if material.0 != *wanted {
            material.0 = wanted.clone();
        }
    }
    let bulb = if world.is_lit(Glow::Bulb) { Visibility::Inherited } else { Visibility::Hidden };
    for mut visibility in &mut bulb_lights {
        visibility.set_if_neq(bulb);
    }
}

fn current_poses(world: &World) -> Vec<Transform> {
    world.visuals().iter().map(|part| part_transform(world, part)).collect()
}

fn part_transform(world: &World, part: &VisualPart) -> Transform {
    let pose = world.body_pose(part.body) * part.body_from_shape;
    Transform {
        translation: Vec3::from_array(pose.translation.to_array()),
        rotation: Quat::from_array(pose.rotation.to_array()),
        scale: Vec3::ONE,
    }
}

fn shape_mesh(shape: Shape) -> Mesh {
    match shape {
        Shape::Cuboid { half_extents_m } => Cuboid::from_size(2.0 * Vec3::from_array(half_extents_m.to_array())).into(),
        // Bevy's cylinders run along y; the sim's along z.
        Shape::Cylinder { radius_m, half_height_m } => Mesh::from(Cylinder::new(radius_m, 2.0 * half_height_m))
            .rotated_by(Quat::from_rotation_x(std::f32::consts::FRAC_PI_2)),
        Shape::Sphere { radius_m } => Sphere::new(radius_m).mesh().uv(24, 16),
    }
}

fn standard_material(rgb: Rgb) -> StandardMaterial {
    StandardMaterial { base_color: srgb(rgb), perceptual_roughness: 0.7, ..default() }
}

fn srgb(rgb: Rgb) -> Color {
    Color::srgb_u8(rgb[0], rgb[1], rgb[2])
}
