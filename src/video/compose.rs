//! Recording frames: the whole tabletop from a presentation viewpoint, optionally the policy
//! cameras' images as an inset, and a caption bar (instruction, step, oracle status, and for
//! chains which subtasks succeeded, like CALVIN's SR@1..5).
//!
//! Frames are drawn by the same deterministic CPU renderer as the policy cameras rather than by
//! Bevy, so a headless recording and one started from the GUI are the same pixels, and a
//! recording survives the window being closed or hidden.

use anyhow::{Result, ensure};
use glam::Vec3;

use super::draw::{self, Rect};
use crate::sim::camera::{Image, PolicyCameras, View};
use crate::sim::render::{self, Camera};
use crate::sim::scene::Scene;
use crate::sim::world::World;

/// Smallest frame where the caption's second line (step, status, five chain chips) fits beside
/// itself and a useful view remains above the bar.
const MIN_SIZE_PX: (u32, u32) = (240, 180);
/// Vertical field of view of the presentation camera.
const PRESENTATION_FOV_Y_DEG: f32 = 38.0;
/// From the looked-at point towards the presentation eye: behind the robot, high, and to the side
/// of the drawer (y is flipped for a drawer on the right). The arm stands at the desk's near edge,
/// so a low view would hide the desk behind it; from the drawer's side the arm cannot cover the
/// drawer front, and the button and switch on the other side are seen over the arm.
const PRESENTATION_EYE_DIRECTION: Vec3 = Vec3::new(-0.8, 0.5, 1.6);
/// Height of the looked-at point above the desk top: between the blocks and the cabinet top.
const PRESENTATION_TARGET_HEIGHT_M: f32 = 0.12;
/// Margin around the desk, as a share of the desk's half-diagonal, so the arm above it stays in view.
const PRESENTATION_MARGIN: f32 = 0.85;
const NEAR_M: f32 = 0.05;
const FAR_M: f32 = 10.0;

const BAR_RGB: [u8; 3] = [24, 26, 30];
const TEXT_RGB: [u8; 3] = [236, 236, 236];
const DIM_TEXT_RGB: [u8; 3] = [160, 164, 172];
const INSET_FRAME_RGB: [u8; 3] = [16, 16, 18];

/// How a recording frame is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComposeOptions {
    /// Frame width (px).
    pub width: u32,
    /// Frame height (px), caption bar included.
    pub height: u32,
    /// Show the static and gripper camera images (what the policy sees) in the top-right corner.
    pub inset: bool,
}

impl Default for ComposeOptions {
    fn default() -> Self {
        ComposeOptions { width: 640, height: 480, inset: false }
    }
}

/// Where a subtask stands, as the oracle sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubtaskStatus {
    /// Not started yet (later subtasks of a chain).
    Pending,
    /// Being attempted.
    Running,
    /// The oracle saw it achieved.
    Succeeded,
    /// The step budget ran out first.
    Failed,
}

impl SubtaskStatus {
    /// The word shown in the caption.
    pub fn label(self) -> &'static str {
        match self {
            SubtaskStatus::Pending => "pending",
            SubtaskStatus::Running => "running",
            SubtaskStatus::Succeeded => "success",
            SubtaskStatus::Failed => "failed",
        }
    }

    /// Its colour in the caption and the chain chips.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            SubtaskStatus::Pending => [84, 88, 96],
            SubtaskStatus::Running => [240, 190, 60],
            SubtaskStatus::Succeeded => [60, 200, 90],
            SubtaskStatus::Failed => [226, 60, 60],
        }
    }
}

/// What the caption bar says about the current control step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caption {
    /// The instruction given to the policy.
    pub instruction: String,
    /// Control steps taken in the current subtask (0 before the first).
    pub step: usize,
    /// The subtask's step budget (CALVIN: 360).
    pub budget: usize,
    /// The current subtask.
    pub status: SubtaskStatus,
    /// Every subtask of a chain in order, drawn as numbered chips; empty for a single task.
    pub chain: Vec<SubtaskStatus>,
}

/// The presentation camera for `scene`: a high 3/4 view from behind the robot, on the drawer's
/// side, that frames the whole desk, whatever its size, at `width`×`height`.
pub fn presentation_camera(scene: &Scene, width: u32, height: u32) -> Camera {
    let desk = &scene.desk;
    let base = scene.robot.base_m;
    // Frame the desk and the robot's base: everything the tasks involve lies over this box.
    let near_x_m = desk.near_x_m.min(base[0]) as f32;
    let far_x_m = desk.far_x_m as f32;
    let half_width_m = desk.half_width_m as f32;
    let target = Vec3::new(0.5 * (near_x_m + far_x_m), 0.0, PRESENTATION_TARGET_HEIGHT_M);
    let half_diagonal_m = Vec3::new(0.5 * (far_x_m - near_x_m), half_width_m, 0.0).length();
    // The narrower field of view (tangent t of its half angle) decides the distance at which the
    // framing circle fits: r / sin(atan t) = r √(1 + t²) / t. libm, not the platform's maths, so
    // the viewpoint, like the policy cameras, is the same on every machine.
    let fov_y_rad = PRESENTATION_FOV_Y_DEG.to_radians();
    let aspect = width as f32 / height as f32;
    let t = libm::tanf(0.5 * fov_y_rad) * aspect.min(1.0);
    let distance_m = PRESENTATION_MARGIN * half_diagonal_m * (1.0 + t * t).sqrt() / t;
    let drawer_side = if scene.drawer.center_y_m < 0.0 { -1.0 } else { 1.0 };
    let direction = PRESENTATION_EYE_DIRECTION * Vec3::new(1.0, drawer_side, 1.0);
    let eye = target + direction.normalize() * distance_m;
    Camera {
        world_from_view: render::look_at(eye, target, Vec3::Z),
        fov_y_rad,
        width,
        height,
        near_m: NEAR_M,
        far_m: FAR_M,
    }
}

/// Pixel layout of a frame, derived once from the options and the scene's camera sizes.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Font pixel size of the caption text.
    text_scale: u32,
    /// Rows of the presentation view; the caption bar fills the rest.
    view_height: u32,
    /// Padding inside the caption bar and around insets (px).
    padding: u32,
    /// Where the static and gripper images go, if shown.
    insets: Option<[Inset; 2]>,
}

/// A policy camera's image placed in the frame.
#[derive(Debug, Clone, Copy)]
struct Inset {
    view: View,
    label: &'static str,
    /// Where the enlarged image goes.
    rect: Rect,
    /// Nearest-neighbour enlargement.
    scale: u32,
}

impl Layout {
    fn new(options: &ComposeOptions, scene: &Scene) -> Layout {
        let text_scale = if options.width >= 480 && options.height >= 360 { 2 } else { 1 };
        let padding = 4 * text_scale;
        let bar_height = 3 * padding + 2 * draw::text_height(text_scale);
        let view_height = options.height - bar_height;
        let insets = options.inset.then(|| inset_rects(options.width, view_height, padding, scene)).flatten();
        Layout { text_scale, view_height, padding, insets }
    }
}

/// The static image enlarged to about a third of the view's height, the gripper image to the
/// same height below it, both against the right edge; `None` when they would not fit.
fn inset_rects(width: u32, view_height: u32, padding: u32, scene: &Scene) -> Option<[Inset; 2]> {
    let (static_view, gripper_view) = (&scene.cameras.static_view, &scene.cameras.gripper_view);
    let static_scale = (view_height / 3 / static_view.height_px).max(1);
    let static_height = static_view.height_px * static_scale;
    let gripper_scale = (static_height / gripper_view.height_px).max(1);
    let place = |view, label, (image_width, image_height): (u32, u32), scale: u32, y: u32| {
        let (w, h) = (image_width * scale, image_height * scale);
        Inset { view, label, rect: Rect { x: (width - padding - w) as i32, y: y as i32, width: w, height: h }, scale }
    };
    let static_size = (static_view.width_px, static_view.height_px);
    let gripper_size = (gripper_view.width_px, gripper_view.height_px);
    let insets = [
        place(View::Static, "static", static_size, static_scale, padding),
        place(View::Gripper, "gripper", gripper_size, gripper_scale, padding + static_height + padding),
    ];
    let fits = |r: &Rect| r.x >= (width / 2) as i32 && r.y as u32 + r.height + padding <= view_height;
    insets.iter().all(|inset| fits(&inset.rect)).then_some(insets)
}

/// Draws recording frames of one scene; one [`Composer::compose`] call per control step.
#[derive(Debug)]
pub struct Composer {
    options: ComposeOptions,
    layout: Layout,
    camera: Camera,
    cameras: PolicyCameras,
    policy_images: [Image; 2],
    frame: Image,
}

impl Composer {
    /// Prepares frames of `options`' size for `world`'s scene; valid for every world built from
    /// that scene (e.g. the next chain's).
    pub fn new(world: &World, options: ComposeOptions) -> Result<Composer> {
        let (min_width, min_height) = MIN_SIZE_PX;
        ensure!(
            options.width >= min_width && options.height >= min_height,
            "recording frames must be at least {min_width}x{min_height}, not {}x{}",
            options.width,
            options.height
        );
        let scene = world.scene();
        let layout = Layout::new(&options, scene);
        Ok(Composer {
            options,
            layout,
            camera: presentation_camera(scene, options.width, layout.view_height),
            cameras: PolicyCameras::new(world),
            policy_images: [Image::new(0, 0), Image::new(0, 0)],
            frame: Image::new(options.width, options.height),
        })
    }

    /// The frame drawn by the last [`Composer::compose`] call.
    pub fn frame(&self) -> &Image {
        &self.frame
    }

    /// Draws the frame for the current state of `world` with `caption`.
    pub fn compose(&mut self, world: &World, caption: &Caption) -> &Image {
        self.compose_with_static_inset(world, caption, None)
    }

    /// Like [`Composer::compose`], with `static_inset` (the image a VLA saw, with its attention
    /// drawn over it) in place of a fresh render of the static camera.
    pub fn compose_with_static_inset(
        &mut self,
        world: &World,
        caption: &Caption,
        static_inset: Option<&Image>,
    ) -> &Image {
        let view_bytes = (self.options.width * self.layout.view_height * 3) as usize;
        self.cameras.render_camera(world, &self.camera, &mut self.frame.rgb[..view_bytes]);
        for (inset, image) in self.layout.insets.iter().flatten().zip(&mut self.policy_images) {
            let shown = match static_inset {
                Some(given) if inset.view == View::Static => given,
                _ => {
                    self.cameras.render_into(world, inset.view, image);
                    &*image
                }
            };
            draw_inset(&mut self.frame, inset, shown, self.layout.text_scale);
        }
        self.draw_caption(caption);
        &self.frame
    }

    /// The bar under the view: instruction on the first line; step, status and chain chips on the second.
    fn draw_caption(&mut self, caption: &Caption) {
        let Layout { text_scale: scale, view_height, padding, .. } = self.layout;
        let width = self.options.width;
        let bar = Rect { x: 0, y: view_height as i32, width, height: self.options.height - view_height };
        draw::fill_rect(&mut self.frame, bar, BAR_RGB);
        let line_height = draw::text_height(scale);
        let (left, first_line) = (padding as i32, (view_height + padding) as i32);
        let second_line = first_line + (line_height + padding) as i32;

        let instruction = draw::fit_text(&caption.instruction, width - 2 * padding, scale);
        draw::draw_text(&mut self.frame, left, first_line, &instruction, scale, TEXT_RGB);

        let step = format!("step {} / {}", caption.step, caption.budget);
        draw::draw_text(&mut self.frame, left, second_line, &step, scale, DIM_TEXT_RGB);
        let status_x = left + (draw::text_width(&step, scale) + draw::text_width("  ", scale)) as i32;
        draw::draw_text(&mut self.frame, status_x, second_line, caption.status.label(), scale, caption.status.rgb());

        // Chips right-aligned on the second line: squares one text line high, numbered 1..n.
        let chip_side = line_height;
        let gap = 2 * scale;
        let chips_width = caption.chain.len() as u32 * (chip_side + gap);
        let mut x = (width - padding - chips_width + gap) as i32;
        for (i, status) in caption.chain.iter().enumerate() {
            let chip = Rect { x, y: second_line, width: chip_side, height: chip_side };
            draw::fill_rect(&mut self.frame, chip, status.rgb());
            let number = format!("{}", (i + 1) % 10);
            let inset_x = (chip_side - draw::text_width(&number, scale)) / 2;
            draw::draw_text(&mut self.frame, x + inset_x as i32, second_line, &number, scale, BAR_RGB);
            x += (chip_side + gap) as i32;
        }
    }
}

/// A policy image enlarged into its place, framed, with its camera's name in the corner.
fn draw_inset(frame: &mut Image, inset: &Inset, image: &Image, frame_px: u32) {
    let Inset { rect, label, scale, .. } = *inset;
    draw::outline_rect(frame, rect, frame_px, INSET_FRAME_RGB);
    draw::blit_scaled(frame, image, rect.x, rect.y, scale);
    let label_box =
        Rect { x: rect.x, y: rect.y, width: draw::text_width(label, 1) + 4, height: draw::text_height(1) + 3 };
    draw::fill_rect(frame, label_box, INSET_FRAME_RGB);
    draw::draw_text(frame, rect.x + 2, rect.y + 2, label, 1, TEXT_RGB);
}
