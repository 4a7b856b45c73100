//! The policy cameras: the static camera looking at the desk and the camera on the hand, both
//! drawn by the deterministic CPU [`Renderer`] from the world's [`VisualPart`]s. Other viewpoints
//! (the presentation view of recordings) render through the same path.

use glam::{Mat4, Vec3, Vec4};
use rapier3d::prelude::Pose;

use super::render::{self, Camera, Instance, Lighting, Mesh, Renderer};
use super::visual::{Glow, Shape, VisualPart, unlit_rgb};
use super::world::{World, to_pose};

/// Which policy camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The fixed camera on the desk.
    Static,
    /// The camera on the hand.
    Gripper,
}

/// An RGB image, row-major, top row first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes.
    pub rgb: Vec<u8>,
}

impl Image {
    /// A black image.
    pub fn new(width: u32, height: u32) -> Self {
        Self { width, height, rgb: vec![0; (width * height * 3) as usize] }
    }

    /// The colour at (x, y).
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * self.width + x) * 3) as usize;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Writes a PNG enlarged `zoom` times with nearest-neighbour sampling (1 keeps the size).
    pub fn save_png(&self, zoom: u32, path: &std::path::Path) -> Result<(), image::ImageError> {
        let big = image::RgbImage::from_fn(self.width * zoom, self.height * zoom, |x, y| {
            image::Rgb(self.pixel(x / zoom, y / zoom))
        });
        big.save(path)
    }
}

/// Where the gripper camera sits on the Franka Hand, in the hand frame (z points along the
/// fingers): just beside the palm, looking down between the fingertips.
const GRIPPER_EYE_IN_HAND_M: Vec3 = Vec3::new(0.045, 0.0, 0.03);
const GRIPPER_TARGET_IN_HAND_M: Vec3 = Vec3::new(0.0, 0.0, 0.2);
const NEAR_M: f32 = 0.01;
const FAR_M: f32 = 5.0;

/// Renders the policy cameras of one world.
#[derive(Debug)]
pub struct PolicyCameras {
    meshes: Vec<Mesh>,
    renderer: Renderer,
    lighting: Lighting,
}

impl PolicyCameras {
    /// Prepares meshes for every visible part of `world`.
    pub fn new(world: &World) -> Self {
        let lighting = &world.scene().lighting;
        let direction = lighting.direction_to_light;
        Self {
            meshes: world.visuals().iter().map(|part| mesh_for(&part.shape)).collect(),
            renderer: Renderer::default(),
            lighting: Lighting {
                direction_to_light: Vec3::new(direction[0] as f32, direction[1] as f32, direction[2] as f32),
                ambient: lighting.ambient as f32,
                diffuse: lighting.diffuse as f32,
                background_rgb: lighting.background_rgb,
            },
        }
    }

    /// The camera model of `view` in the current state of `world`.
    pub fn camera(world: &World, view: View) -> Camera {
        let cameras = &world.scene().cameras;
        match view {
            View::Static => {
                let spec = &cameras.static_view;
                let v = |a: [f64; 3]| Vec3::new(a[0] as f32, a[1] as f32, a[2] as f32);
                Camera {
                    world_from_view: render::look_at(v(spec.eye_m), v(spec.target_m), Vec3::Z),
                    fov_y_rad: spec.fov_y_deg.to_radians() as f32,
                    width: spec.width_px,
                    height: spec.height_px,
                    near_m: NEAR_M,
                    far_m: FAR_M,
                }
            }
            View::Gripper => {
                let spec = &cameras.gripper_view;
                let world_from_hand = matrix(&to_pose(&world.world_from_hand()));
                let eye = world_from_hand.transform_point3(GRIPPER_EYE_IN_HAND_M);
                let target = world_from_hand.transform_point3(GRIPPER_TARGET_IN_HAND_M);
                let up = world_from_hand.transform_vector3(Vec3::X);
                Camera {
                    world_from_view: render::look_at(eye, target, up),
                    fov_y_rad: spec.fov_y_deg.to_radians() as f32,
                    width: spec.width_px,
                    height: spec.height_px,
                    near_m: NEAR_M,
                    far_m: FAR_M,
                }
            }
        }
    }

    /// Renders `view` of `world` into `image` (resized to the camera's size).
    pub fn render_into(&mut self, world: &World, view: View, image: &mut Image) {
        let camera = Self::camera(world, view);
        if image.width != camera.width || image.height != camera.height {
            *image = Image::new(camera.width, camera.height);
        }
        self.render_camera(world, &camera, &mut image.rgb);
    }

    /// Renders `world` through any `camera` (e.g. a presentation view for videos) with the same
    /// meshes, lighting and rasterizer as the policy cameras, into `rgb` (`width * height * 3`
    /// bytes, row-major). Valid for every world built from the scene this was prepared for.
    pub fn render_camera(&mut self, world: &World, camera: &Camera, rgb: &mut [u8]) {
        let instances: Vec<Instance> =
            world.visuals().iter().zip(&self.meshes).map(|(part, mesh)| instance(world, part, mesh)).collect();
        self.renderer.render(camera, &self.lighting, &instances, rgb);
    }

    /// Renders `view` of `world` into a new image.
    pub fn render(&mut self, world: &World, view: View) -> Image {
        let mut image = Image::new(0, 0);
        self.render_into(world, view, &mut image);
        image
    }
}

fn instance<'a>(world: &World, part: &VisualPart, mesh: &'a Mesh) -> Instance<'a> {
    let lit = world.is_lit(part.glow);
    let rgb = if part.glow != Glow::Never && !lit { unlit_rgb(part.rgb) } else { part.rgb };
    Instance {
        mesh,
        world_from_local: matrix(&(world.body_pose(part.body) * part.body_from_shape)),
        rgb,
        emissive: lit,
    }
}

/// Rigid transform as a matrix, computed with explicit scalar arithmetic so it is the same on
/// every instruction set (glam's SIMD quaternion paths differ between backends).
fn matrix(pose: &Pose) -> Mat4 {
    let q = pose.rotation;
    let (x, y, z, w) = (q.x, q.y, q.z, q.w);
    let t = pose.translation;
    Mat4::from_cols(
        Vec4::new(1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y + w * z), 2.0 * (x * z - w * y), 0.0),
        Vec4::new(2.0 * (x * y - w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z + w * x), 0.0),
        Vec4::new(2.0 * (x * z + w * y), 2.0 * (y * z - w * x), 1.0 - 2.0 * (x * x + y * y), 0.0),
        Vec4::new(t.x, t.y, t.z, 1.0),
    )
}

fn mesh_for(shape: &Shape) -> Mesh {
    match *shape {
        Shape::Cuboid { half_extents_m } => Mesh::cuboid(half_extents_m),
        Shape::Cylinder { radius_m, half_height_m } => Mesh::cylinder(radius_m, half_height_m, 16),
        Shape::Sphere { radius_m } => Mesh::sphere(radius_m, 8, 12),
    }
}
