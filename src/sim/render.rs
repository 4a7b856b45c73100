//! Policy-camera rasterizer.
//!
//! Owns the one CPU renderer that turns posed, flat-shaded meshes into the RGB images a policy
//! sees. Training, evaluation and the GUI all render through it so that every consumer gets
//! bit-identical pixels on every machine; a GPU or SIMD path would drift with drivers and
//! instruction sets, and a policy is sensitive to that drift.
//!
//! Determinism rules: matrices are copied out of glam and applied with explicit scalar f32 in a
//! fixed order (glam's `Mat4` backends sum in different orders, while `Vec3` is a plain scalar
//! struct and is safe); the render path uses only `+ - * /` and `sqrt`, and the few sines and
//! cosines (mesh constructors, focal length) come from our own series rather than the platform's
//! libm. Projected vertices are snapped to 1/16 px and coverage is decided by exact integer edge
//! functions with a top-left fill rule, so an edge shared by two triangles is drawn exactly once.
//! Depth is interpolated as 1/depth, which is affine in screen space (perspective-correct).

use glam::{Mat3, Mat4, Vec3};
use std::f64::consts::TAU;

/// Snapped vertices carry 4 fractional bits (1/16 px): finer than anything visible, and coarse
/// enough that clamped coordinates keep edge functions inside i64.
const SUBPIXEL_BITS: u32 = 4;
const SUBPIXEL: i64 = 1 << SUBPIXEL_BITS;
/// Snapped coordinates are clamped to ±2^29 units (±33M px) so edge functions stay below 2^62.
/// Only a vertex just past the near plane and kilometres off-axis gets there, and then its
/// triangle's edges bend; scenes a policy sees never come close.
const MAX_SNAPPED: i64 = 1 << 29;

/// Triangle mesh in its local frame, flat-shaded.
#[derive(Debug, Clone)]
pub struct Mesh {
    /// Vertex positions in the mesh's local frame (m).
    pub positions: Vec<Vec3>,
    /// Vertex indices, counter-clockwise seen from outside; clockwise-facing triangles are culled.
    pub triangles: Vec<[u32; 3]>,
}

impl Mesh {
    /// Axis-aligned box centred at the origin.
    pub fn cuboid(half_extents: Vec3) -> Mesh {
        let sign = |i: u32, bit: u32| if i >> bit & 1 == 1 { 1.0 } else { -1.0 };
        let corner = |i| half_extents * Vec3::new(sign(i, 0), sign(i, 1), sign(i, 2));
        // Corner bits 0/1/2 select +x/+y/+z; quads are counter-clockwise seen from outside.
        let quads = [0, 2, 3, 1, 4, 5, 7, 6, 0, 1, 5, 4, 2, 6, 7, 3, 0, 4, 6, 2, 1, 3, 7, 5];
        let triangles = quads.chunks_exact(4).flat_map(|q| [[q[0], q[1], q[2]], [q[0], q[2], q[3]]]);
        Mesh { positions: (0..8).map(corner).collect(), triangles: triangles.collect() }
    }

    /// Capped cylinder centred at the origin with its axis along local z.
    pub fn cylinder(radius: f32, half_height: f32, segments: u32) -> Mesh {
        let (r, h) = (radius, half_height);
        revolve(&[(0.0, h), (r, h), (r, -h), (0.0, -h)], segments)
    }

    /// UV sphere centred at the origin with its poles on local ±z.
    pub fn sphere(radius: f32, rings: u32, segments: u32) -> Mesh {
        let rings = rings.max(2);
        let profile: Vec<_> =
            (0..=rings).map(|k| unit_circle(k, 2 * rings)).map(|(sin, cos)| (radius * sin, radius * cos)).collect();
        revolve(&profile, segments)
    }
}

/// Surface of revolution about local z. `profile` lists (radius, z) from the top pole to the
/// bottom pole; the poles (radius 0) become single vertices with triangle fans around them.
fn revolve(profile: &[(f32, f32)], segments: u32) -> Mesh {
    let (n, rings) = (segments.max(3), profile.len() as u32 - 2);
    let pole = |(_, z): (f32, f32)| Vec3::new(0.0, 0.0, z);
    let mut positions = vec![pole(profile[0])];
    for &(radius, z) in &profile[1..=rings as usize] {
        positions.extend((0..n).map(|i| unit_circle(i, n)).map(|(sin, cos)| Vec3::new(radius * cos, radius * sin, z)));
    }
    positions.push(pole(profile[profile.len() - 1]));
    let (south, ring) = (1 + rings * n, |k: u32, i: u32| 1 + k * n + i % n);
    let mut triangles = Vec::with_capacity((2 * n * rings) as usize);
    for i in 0..n {
        triangles.push([0, ring(0, i), ring(0, i + 1)]);
        triangles.push([south, ring(rings - 1, i + 1), ring(rings - 1, i)]);
        for k in 0..rings - 1 {
            let (upper, upper_next) = (ring(k, i), ring(k, i + 1));
            let (lower, lower_next) = (ring(k + 1, i), ring(k + 1, i + 1));
            triangles.extend([[lower, lower_next, upper_next], [lower, upper_next, upper]]);
        }
    }
    Mesh { positions, triangles }
}

/// One mesh placed in the world with a colour.
#[derive(Debug, Clone, Copy)]
pub struct Instance<'a> {
    /// Shared geometry, so many instances can reuse one unit mesh.
    pub mesh: &'a Mesh,
    /// Affine pose of the mesh (rotation, translation, optionally scale).
    pub world_from_local: Mat4,
    /// Base colour before shading.
    pub rgb: [u8; 3],
    /// Drawn at `rgb` without shading (lamps, indicator LEDs).
    pub emissive: bool,
}

/// Pinhole camera. View frame: looks along -z, +y up, +x right (OpenGL convention).
#[derive(Debug, Clone, Copy)]
pub struct Camera {
    /// Rigid pose of the view frame; scale is not supported.
    pub world_from_view: Mat4,
    /// Full vertical field of view; pixels are square.
    pub fov_y_rad: f32,
    /// Image width (px).
    pub width: u32,
    /// Image height (px).
    pub height: u32,
    /// Near clip distance along the view direction (m), > 0.
    pub near_m: f32,
    /// Far clip distance along the view direction (m), > `near_m`.
    pub far_m: f32,
}

/// Directional light + ambient term.
#[derive(Debug, Clone, Copy)]
pub struct Lighting {
    /// Direction towards the light in the world frame; need not be normalised.
    pub direction_to_light: Vec3,
    /// Gain applied to every lit face.
    pub ambient: f32,
    /// Gain scaled by the cosine between face normal and light direction.
    pub diffuse: f32,
    /// Colour of pixels no triangle covers.
    pub background_rgb: [u8; 3],
}

/// Returns `world_from_view` for a camera at `eye` looking at `target`, with `up` (not parallel
/// to the viewing direction) pointing up in the image.
pub fn look_at(eye: Vec3, target: Vec3, up: Vec3) -> Mat4 {
    let back = (eye - target).normalize();
    let right = up.cross(back).normalize();
    let mut world_from_view = Mat4::from_mat3(Mat3::from_cols(right, back.cross(right), back));
    world_from_view.w_axis = eye.extend(1.0);
    world_from_view
}

/// Reusable renderer: owns the depth buffer and scratch vectors so rendering allocates nothing
/// after the first frame.
#[derive(Debug, Default)]
pub struct Renderer {
    /// 1/depth (1/m) of the nearest surface per pixel, starting at 1/far so farther surfaces
    /// fail the depth test: that is the far clip.
    inv_depth: Vec<f32>,
    /// The current instance's vertices, transformed once and shared by its triangles.
    vertices: Vec<Vertex>,
}

impl Renderer {
    /// Renders into `rgb` (len = width*height*3, row-major, top row first).
    pub fn render(&mut self, camera: &Camera, lighting: &Lighting, instances: &[Instance], rgb: &mut [u8]) {
        let (width, height) = (camera.width as usize, camera.height as usize);
        assert_eq!(rgb.len(), width * height * 3, "rgb size");
        let (near, far) = (camera.near_m, camera.far_m);
        assert!(near > 0.0 && far > near, "need 0 < near_m < far_m");
        for pixel in rgb.chunks_exact_mut(3) {
            pixel.copy_from_slice(&lighting.background_rgb);
        }
        self.inv_depth.clear();
        self.inv_depth.resize(width * height, 1.0 / far);

        let (sin, cos) = sin_cos(0.5 * f64::from(camera.fov_y_rad));
        let focal_px = (0.5 * height as f64 * cos / sin) as f32;
        let project = |view| project(view, focal_px, [0.5 * width as f32, 0.5 * height as f32]);
        let view_from_world = rigid_inverse(&affine(&camera.world_from_view));
        // Shading in the view frame is the world-frame n·l rotated, and saves a second transform.
        let light = rotate(&view_from_world, lighting.direction_to_light);
        let light_view = light * (1.0 / light.dot(light).sqrt());
        let mut target = Target { rgb, inv_depth: &mut self.inv_depth, width, height };

        for instance in instances {
            let view_from_local = compose(&view_from_world, &affine(&instance.world_from_local));
            let to_view = |&p| transform_point(&view_from_local, p);
            self.vertices.clear();
            self.vertices.extend(instance.mesh.positions.iter().map(to_view).map(project));

            for &[i0, i1, i2] in &instance.mesh.triangles {
                let tri = [i0, i1, i2].map(|i| &self.vertices[i as usize]);
                let view = tri.map(|v| v.view);
                let normal = (view[1] - view[0]).cross(view[2] - view[0]);
                let behind = view.map(|p| -p.z < near);
                // The eye is the view origin: skip faces turned away from it or wholly behind it.
                if normal.dot(view[0]) >= 0.0 || behind == [true; 3] {
                    continue;
                }
                let rgb = shade(instance, lighting, light_view, normal);
                if behind == [false; 3] {
                    target.fill(tri, rgb);
                } else {
                    let (polygon, len) = clip_near(view, near);
                    let screen = polygon.map(project);
                    for k in 1..len - 1 {
                        target.fill([&screen[0], &screen[k], &screen[k + 1]], rgb);
                    }
                }
            }
        }
    }
}

/// Flat-shaded colour of a face with view-space `normal` (any length, so scale is harmless).
fn shade(instance: &Instance, lighting: &Lighting, light_view: Vec3, normal: Vec3) -> [u8; 3] {
    if instance.emissive {
        return instance.rgb;
    }
    // A degenerate face gives 0/0 = NaN, which `max` turns into "unlit".
    let cos_incidence = normal.dot(light_view) / normal.dot(normal).sqrt();
    let gain = lighting.ambient + lighting.diffuse * cos_incidence.max(0.0);
    // +½ then truncate rounds like `round`, minus its libm call on baseline x86-64.
    instance.rgb.map(|c| (c as f32 * gain + 0.5).min(255.0) as u8)
}

/// Clips a view-space triangle to depth ≥ `near`, leaving 3 or 4 vertices when it straddles.
fn clip_near(tri: [Vec3; 3], near: f32) -> ([Vec3; 4], usize) {
    let (mut polygon, mut len) = ([Vec3::ZERO; 4], 0);
    for k in 0..3 {
        let (a, b) = (tri[k], tri[(k + 1) % 3]);
        let (da, db) = (-a.z - near, -b.z - near);
        if da >= 0.0 {
            polygon[len] = a;
            len += 1;
        }
        if (da >= 0.0) != (db >= 0.0) {
            // Interpolating from the kept end gives the triangle across this edge the same
            // bit-identical vertex, so the clipped edge stays watertight.
            let (kept, d_kept, cut, d_cut) = if da >= 0.0 { (a, da, b, db) } else { (b, db, a, da) };
            let on_plane = kept + (cut - kept) * (d_kept / (d_kept - d_cut));
            // Pin the depth: for huge triangles rounding could put the point behind the eye.
            polygon[len] = Vec3::new(on_plane.x, on_plane.y, -near);
            len += 1;
        }
    }
    (polygon, len)
}

/// A vertex in the view frame and snapped to the screen.
#[derive(Debug, Clone, Copy)]
struct Vertex {
    view: Vec3,
    /// Screen position in 1/`SUBPIXEL` px, y down; meaningless when nearer than the near plane
    /// (those triangles are clipped in the view frame and re-projected).
    x: i64,
    y: i64,
    /// 1/depth (1/m), affine in screen space.
    inv_depth: f32,
}

fn project(view: Vec3, focal_px: f32, centre_px: [f32; 2]) -> Vertex {
    let inv_depth = 1.0 / -view.z;
    // Adding ±½ and truncating rounds to nearest without `round`, a libm call on baseline x86-64;
    // both steps are exactly specified, so every machine snaps identically.
    let snap = |px: f32| {
        let fixed = px * SUBPIXEL as f32;
        ((fixed + 0.5f32.copysign(fixed)) as i64).clamp(-MAX_SNAPPED, MAX_SNAPPED)
    };
    let x = snap(centre_px[0] + focal_px * view.x * inv_depth);
    let y = snap(centre_px[1] - focal_px * view.y * inv_depth);
    Vertex { view, x, y, inv_depth }
}

/// Row-major 3×4 affine transform applied with explicit scalar math.
type Affine = [[f32; 4]; 3];

fn affine(m: &Mat4) -> Affine {
    let cols = m.to_cols_array_2d();
    std::array::from_fn(|r| [cols[0][r], cols[1][r], cols[2][r], cols[3][r]])
}

/// `a * b` for affine transforms.
fn compose(a: &Affine, b: &Affine) -> Affine {
    std::array::from_fn(|r| {
        let t = transform_point(a, Vec3::new(b[0][3], b[1][3], b[2][3]));
        let c = |j: usize| a[r][0] * b[0][j] + a[r][1] * b[1][j] + a[r][2] * b[2][j];
        [c(0), c(1), c(2), t[r]]
    })
}

fn rigid_inverse(m: &Affine) -> Affine {
    let t = Vec3::new(m[0][3], m[1][3], m[2][3]);
    std::array::from_fn(|r| {
        let col = Vec3::new(m[0][r], m[1][r], m[2][r]);
        [col.x, col.y, col.z, -col.dot(t)]
    })
}

fn rotate(m: &Affine, v: Vec3) -> Vec3 {
    let row = |r: usize| m[r][0] * v.x + m[r][1] * v.y + m[r][2] * v.z;
    Vec3::new(row(0), row(1), row(2))
}

fn transform_point(m: &Affine, p: Vec3) -> Vec3 {
    rotate(m, p) + Vec3::new(m[0][3], m[1][3], m[2][3])
}

/// sin and cos from their Taylor series in f64. Platform libm results differ in the last bit,
/// which would move mesh vertices and the focal length and so change pixels between machines.
fn sin_cos(angle_rad: f64) -> (f64, f64) {
    // On [-π, π] 30 terms reach f64 precision, far more than the f32 consumers need.
    let x = angle_rad - (angle_rad / TAU).round() * TAU;
    let (mut sin, mut cos, mut term) = (0.0, 0.0, 1.0);
    for k in (0..30).step_by(2) {
        cos += term;
        term *= x / f64::from(k + 1);
        sin += term;
        term *= -x / f64::from(k + 2);
    }
    (sin, cos)
}

/// (sin, cos) of the angle `i / n` of a full turn.
fn unit_circle(i: u32, n: u32) -> (f32, f32) {
    let (sin, cos) = sin_cos(TAU * f64::from(i) / f64::from(n));
    (sin as f32, cos as f32)
}

/// Twice the signed area of `a, b, p` in fixed-point units; positive when `p` is left of a→b
/// as seen on screen, i.e. inside a front-facing (counter-clockwise on screen) triangle.
fn edge_value(a: &Vertex, b: &Vertex, px: i64, py: i64) -> i64 {
    (b.y - a.y) * (px - a.x) - (b.x - a.x) * (py - a.y)
}

/// Pixels of the image whose centre (i + 1/2) lies within the span of fixed-point `coords`.
fn pixel_span(coords: [i64; 3], size: usize) -> std::ops::Range<usize> {
    let min = coords[0].min(coords[1]).min(coords[2]);
    let max = coords[0].max(coords[1]).max(coords[2]);
    let first = (min - SUBPIXEL / 2 + SUBPIXEL - 1) >> SUBPIXEL_BITS;
    let end = ((max - SUBPIXEL / 2) >> SUBPIXEL_BITS) + 1;
    first.clamp(0, size as i64) as usize..end.clamp(0, size as i64) as usize
}

/// The frame's colour and depth buffers.
struct Target<'a> {
    rgb: &'a mut [u8],
    inv_depth: &'a mut [f32],
    width: usize,
    height: usize,
}

impl Target<'_> {
    /// Depth-tested fill; triangles that are clockwise or degenerate on screen draw nothing.
    fn fill(&mut self, v: [&Vertex; 3], rgb: [u8; 3]) {
        let area = edge_value(v[0], v[1], v[2].x, v[2].y);
        let xs = pixel_span(v.map(|p| p.x), self.width);
        let ys = pixel_span(v.map(|p| p.y), self.height);
        if area <= 0 || xs.is_empty() || ys.is_empty() {
            return;
        }
        let px = xs.start as i64 * SUBPIXEL + SUBPIXEL / 2;
        let py = ys.start as i64 * SUBPIXEL + SUBPIXEL / 2;

        // Edge k is opposite vertex k, so its value is vertex k's barycentric weight × area.
        let edges = [(v[1], v[2]), (v[2], v[0]), (v[0], v[1])];
        let w_start = edges.map(|(a, b)| edge_value(a, b, px, py));
        let step_x = edges.map(|(a, b)| (b.y - a.y) * SUBPIXEL);
        let step_y = edges.map(|(a, b)| (a.x - b.x) * SUBPIXEL);
        let inv_area = 1.0 / area as f32;
        let interpolate = |w: [i64; 3]| {
            let z = [0, 1, 2].map(|k| w[k] as f32 * v[k].inv_depth);
            (z[0] + z[1] + z[2]) * inv_area
        };
        let (mut z_row, dz_dx, dz_dy) = (interpolate(w_start), interpolate(step_x), interpolate(step_y));
        // Top-left rule: a centre exactly on an edge belongs to the triangle for which the edge is
        // a left edge (going down on screen) or a top edge (horizontal, going left).
        let owned = edges.map(|(a, b)| b.y > a.y || (b.y == a.y && b.x < a.x));
        let mut w_row: [i64; 3] = std::array::from_fn(|k| w_start[k] - i64::from(!owned[k]));

        for y in ys {
            let span = y * self.width + xs.start..y * self.width + xs.end;
            let pixels = self.rgb[3 * span.start..3 * span.end].chunks_exact_mut(3);
            let ([mut w0, mut w1, mut w2], mut z) = (w_row, z_row);
            for (depth, pixel) in self.inv_depth[span].iter_mut().zip(pixels) {
                if (w0 | w1 | w2) >= 0 && z > *depth {
                    *depth = z;
                    pixel.copy_from_slice(&rgb);
                }
                (w0, w1, w2, z) = (w0 + step_x[0], w1 + step_x[1], w2 + step_x[2], z + dz_dx);
            }
            w_row = std::array::from_fn(|k| w_row[k] + step_y[k]);
            z_row += dz_dy;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glam::Mat3;
    use std::collections::HashSet;
    use std::f32::consts::{FRAC_PI_2, PI};

    const BACKGROUND: [u8; 3] = [10, 20, 30];
    const LIGHTING: Lighting = Lighting {
        direction_to_light: Vec3::new(0.3, 0.5, 1.0),
        ambient: 0.3,
        diffuse: 0.7,
        background_rgb: BACKGROUND,
    };

    /// Square `size`² image with a 5 cm near plane.
    fn camera(world_from_view: Mat4, fov_y_rad: f32, size: u32) -> Camera {
        let (width, height, near_m, far_m) = (size, size, 0.05, 50.0);
        Camera { world_from_view, fov_y_rad, width, height, near_m, far_m }
    }

    fn render(camera: &Camera, instances: &[Instance]) -> Vec<[u8; 3]> {
        let mut rgb = vec![0; (camera.width * camera.height * 3) as usize];
        Renderer::default().render(camera, &LIGHTING, instances, &mut rgb);
        rgb.chunks_exact(3).map(|px| [px[0], px[1], px[2]]).collect()
    }

    fn placed(mesh: &Mesh, world_from_local: Mat4, rgb: [u8; 3]) -> Instance<'_> {
        Instance { mesh, world_from_local, rgb, emissive: false }
    }

    #[test]
    fn cuboid_is_shaded_at_centre_with_background_in_corners() {
        let cube = Mesh::cuboid(Vec3::splat(0.5));
        let cam = camera(look_at(3.0 * Vec3::X, Vec3::ZERO, Vec3::Z), 0.8, 32);
        let image = render(&cam, &[placed(&cube, Mat4::IDENTITY, [200, 0, 0])]);
        // The visible face has normal +x.
        let gain = 0.3 + 0.7 * LIGHTING.direction_to_light.normalize().x;
        assert_eq!(image[16 * 32 + 16], [(200.0 * gain).round() as u8, 0, 0]);
        for corner in [0, 31, 31 * 32, 32 * 32 - 1] {
            assert_eq!(image[corner], BACKGROUND);
        }
    }

    #[test]
    fn nearer_box_occludes_farther_in_any_draw_order() {
        let (big, small) = (Mesh::cuboid(Vec3::splat(0.5)), Mesh::cuboid(Vec3::splat(0.2)));
        let cam = camera(look_at(3.0 * Vec3::X, Vec3::ZERO, Vec3::Z), 0.8, 32);
        let red = placed(&big, Mat4::IDENTITY, [255, 0, 0]);
        let green = placed(&small, Mat4::from_translation(1.5 * Vec3::X), [0, 255, 0]);
        for instances in [[red, green], [green, red]] {
            let centre = render(&cam, &instances)[16 * 32 + 16];
            assert!(centre[0] == 0 && centre[1] > 0, "{centre:?}");
        }
    }

    #[test]
    fn rendering_is_deterministic_and_pinned() {
        let cube = Mesh::cuboid(Vec3::new(0.3, 0.2, 0.1));
        let (cylinder, sphere) = (Mesh::cylinder(0.1, 0.3, 16), Mesh::sphere(0.15, 8, 16));
        // Rz · Rx with Pythagorean cos/sin (3/5, 4/5), (5/13, 12/13): no libm in the input.
        let (c, s, c2, s2) = (0.6, 0.8, 5.0 / 13.0, 12.0 / 13.0);
        let x_axis = Vec3::new(c, s, 0.0);
        let y_axis = Vec3::new(-s * c2, c * c2, s2);
        let tilt = Mat3::from_cols(x_axis, y_axis, x_axis.cross(y_axis));
        let lamp = Mat4::from_translation(Vec3::new(-0.3, 0.2, 0.3));
        let raised = Mat4::from_translation(Vec3::splat(0.3));
        let instances = [
            placed(&cube, Mat4::from_mat3(tilt), [180, 120, 60]),
            placed(&cylinder, raised, [40, 160, 200]),
            Instance { emissive: true, ..placed(&sphere, lamp, [250, 240, 0]) },
        ];
        let eye = Vec3::new(1.2, 0.9, 0.8);
        let cam = camera(look_at(eye, Vec3::ZERO, Vec3::Z), 0.9, 48);
        let mut renderer = Renderer::default();
        let mut frames = [vec![0; 48 * 48 * 3], vec![0; 48 * 48 * 3]];
        for frame in &mut frames {
            renderer.render(&cam, &LIGHTING, &instances, frame);
        }
        assert_eq!(frames[0], frames[1]);
        assert_eq!(frames[0], render(&cam, &instances).concat());
        let fnv1a = |h: u64, &b: &u8| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        // Update deliberately when the renderer's output is meant to change.
        let hash = frames[0].iter().fold(0xcbf2_9ce4_8422_2325, fnv1a);
        assert_eq!(hash, 0xc994_c88f_e96c_1f7b);
    }

    #[test]
    fn shared_edge_is_drawn_exactly_once_and_back_faces_are_culled() {
        // The quad's diagonal runs exactly through pixel centres of the 16×16 image.
        let corners = [(-1.5, -1.5), (1.5, -1.5), (1.5, 1.5), (-1.5, 1.5)];
        let positions = corners.map(|(x, y)| Vec3::new(x, y, -1.0)).to_vec();
        let quad = |triangles| Mesh { positions: positions.clone(), triangles };
        let (lower, upper) = (quad(vec![[0, 1, 2]]), quad(vec![[0, 2, 3]]));
        let reversed = quad(vec![[0, 2, 1]]);
        let cam = camera(Mat4::IDENTITY, FRAC_PI_2, 16);
        let covered = |instances: &[Instance]| render(&cam, instances).into_iter().map(|px| px != BACKGROUND);
        let lower = placed(&lower, Mat4::IDENTITY, [255, 0, 0]);
        let upper = placed(&upper, Mat4::IDENTITY, [0, 0, 255]);
        assert!(covered(&[lower]).zip(covered(&[upper])).all(|(a, b)| a != b));
        assert!(covered(&[lower, upper]).all(|c| c));
        assert!(covered(&[placed(&reversed, Mat4::IDENTITY, [0, 255, 0])]).all(|c| !c));
    }

    #[test]
    fn floor_straddling_the_camera_plane_is_clipped() {
        // The top face (y = -1) spans z ∈ [-10, 10], so half its corners are behind the camera;
        // the 1 mm near plane puts its clipped corners ~160k px off-screen.
        let slab = Mesh::cuboid(Vec3::new(10.0, 4.5, 10.0));
        let mut cam = camera(Mat4::IDENTITY, FRAC_PI_2, 32);
        cam.near_m = 0.001;
        let below_eye = Mat4::from_translation(-5.5 * Vec3::Y);
        let floor = placed(&slab, below_eye, [100, 200, 50]);
        let image = render(&cam, &[floor]);
        // The far edge (depth 10 m) projects to row 16 + 16 · 1/10 = 17.6.
        let (above, below) = image.split_at(18 * 32);
        assert!(above.iter().all(|&px| px == BACKGROUND));
        assert!(below.iter().all(|&px| px == below[0] && px != BACKGROUND));
    }

    #[test]
    fn constructors_are_closed_and_outward_wound() {
        let cases = [
            (Mesh::cuboid(Vec3::new(0.1, 0.2, 0.3)), 0.2 * 0.4 * 0.6),
            (Mesh::cylinder(0.5, 1.0, 64), PI * 0.25 * 2.0),
            (Mesh::sphere(1.0, 24, 48), 4.0 / 3.0 * PI),
        ];
        for (mesh, analytic_volume) in cases {
            // Closed and consistently wound: each directed edge occurs once, and so does its reverse.
            let mut edges = HashSet::new();
            for t in &mesh.triangles {
                assert!((0..3).all(|k| edges.insert((t[k], t[(k + 1) % 3]))));
            }
            assert!(edges.iter().all(|&(a, b)| edges.contains(&(b, a))));
            let corners = mesh.triangles.iter().map(|t| t.map(|i| mesh.positions[i as usize]));
            let volume: f32 = corners.map(|[a, b, c]| a.dot(b.cross(c)) / 6.0).sum();
            assert!((volume / analytic_volume - 1.0).abs() < 0.02, "{volume} vs {analytic_volume}");
        }
    }
}
