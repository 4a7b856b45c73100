//! Scene files: the desk, its fixtures (cabinet with sliding door, drawer, button + LED,
//! switch + light bulb), the three blocks, the robot mount, the policy cameras and the lighting.
//!
//! Scenes are RON text files under `scenes/`. The four shipped variants `a`..`d` differ in layout
//! and colours the way CALVIN's environments A–D do, so generalisation to an unseen scene can be
//! measured. World frame: x points away from the robot, y to the robot's left, z up, and the desk
//! top is the plane z = 0. All lengths are metres.
//!
//! Loading is two-staged: serde reads the file as written, then [`Scene::validate`] checks it is
//! consistent (everything reachable and on the desk, travels long enough for the tasks' thresholds),
//! so every error names the file, the field and what is wrong.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// 8-bit sRGB colour.
pub type Rgb = [u8; 3];

/// The shipped scenes, embedded so the binary works from any directory.
pub const BUILTIN_SCENES: [(&str, &str); 4] = [
    ("a", include_str!("../../scenes/a.ron")),
    ("b", include_str!("../../scenes/b.ron")),
    ("c", include_str!("../../scenes/c.ron")),
    ("d", include_str!("../../scenes/d.ron")),
];

/// Why a scene could not be loaded. Every variant names its source.
#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    /// The file could not be read.
    #[error("{source_name}: cannot read scene file: {error}")]
    Io { source_name: String, error: std::io::Error },
    /// The text is not a valid scene (syntax, unknown or missing field, wrong type).
    #[error("{source_name}:{line}:{column}: {message}")]
    Syntax { source_name: String, line: usize, column: usize, message: String },
    /// The scene parses but is physically inconsistent.
    #[error("{source_name}: field `{field}`: {reason}")]
    Invalid { source_name: String, field: String, reason: String },
    /// `--scene` named neither a shipped scene nor an existing file.
    #[error("unknown scene `{0}`: expected one of a, b, c, d or a path to a .ron scene file")]
    Unknown(String),
}

/// The desk slab. Its top face is the plane z = 0.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Desk {
    /// x of the edge facing the robot (the drawer's front sits here).
    pub near_x_m: f64,
    /// x of the far edge.
    pub far_x_m: f64,
    /// Half the desk's extent along y.
    pub half_width_m: f64,
    /// Slab thickness below z = 0.
    pub thickness_m: f64,
    /// Top colour.
    pub rgb: Rgb,
}

/// Where the arm stands and how it looks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Robot {
    /// Position of the arm's base frame (the pedestal top).
    pub base_m: [f64; 3],
    /// Link colour.
    pub rgb: Rgb,
    /// Hand and finger colour.
    pub gripper_rgb: Rgb,
}

/// A cupboard at the back of the desk whose front opening is half covered by a sliding door.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Cabinet {
    /// y of the opening's centre.
    pub center_y_m: f64,
    /// x of the front face.
    pub front_x_m: f64,
    /// Inner depth along x.
    pub depth_m: f64,
    /// Inner width of the opening along y; the door is half as wide and slides by half of it.
    pub width_m: f64,
    /// Inner height.
    pub height_m: f64,
    /// Wall, roof and door thickness.
    pub wall_m: f64,
    /// Carcass colour.
    pub rgb: Rgb,
    /// Sliding door colour.
    pub door_rgb: Rgb,
    /// Door handle colour.
    pub handle_rgb: Rgb,
}

/// A drawer under the desk top whose front is flush with the desk's near edge and opens towards the robot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Drawer {
    /// y of the drawer's centre.
    pub center_y_m: f64,
    /// Outer width along y.
    pub width_m: f64,
    /// Outer depth along x.
    pub depth_m: f64,
    /// Outer height.
    pub height_m: f64,
    /// How far it pulls out.
    pub travel_m: f64,
    /// Box colour.
    pub rgb: Rgb,
    /// Handle colour.
    pub handle_rgb: Rgb,
}

/// A push button on the desk that toggles the LED each time it passes the middle of its travel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Button {
    /// (x, y) of the button's axis.
    pub position_m: [f64; 2],
    /// Cap radius.
    pub radius_m: f64,
    /// How far the cap can be pressed down.
    pub travel_m: f64,
    /// Cap colour.
    pub rgb: Rgb,
    /// (x, y) of the LED on the desk.
    pub led_position_m: [f64; 2],
    /// LED colour when lit.
    pub led_on_rgb: Rgb,
}

/// A slide switch on the cabinet roof; the light bulb is on while the knob is past the middle of its travel towards +y.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Switch {
    /// y of the switch relative to the cabinet's centre.
    pub offset_y_m: f64,
    /// Knob travel along +y from "off".
    pub travel_m: f64,
    /// Knob colour.
    pub rgb: Rgb,
    /// y of the light bulb relative to the cabinet's centre.
    pub bulb_offset_y_m: f64,
    /// Bulb colour when lit.
    pub bulb_on_rgb: Rgb,
}

/// The three blocks, by colour name.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum BlockColor {
    /// The red block.
    Red,
    /// The blue block.
    Blue,
    /// The pink block.
    Pink,
}

impl BlockColor {
    /// All three, in CALVIN's scene_obs order.
    pub const ALL: [BlockColor; 3] = [BlockColor::Red, BlockColor::Blue, BlockColor::Pink];

    /// Lower-case name, as in task names.
    pub fn name(self) -> &'static str {
        match self {
            BlockColor::Red => "red",
            BlockColor::Blue => "blue",
            BlockColor::Pink => "pink",
        }
    }

    /// Index in [`BlockColor::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One block.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Block {
    /// Which block this is.
    pub color: BlockColor,
    /// Half sizes along the block's x, y, z.
    pub half_extents_m: [f64; 3],
    /// Colour.
    pub rgb: Rgb,
}

/// Area of the desk where blocks may start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// (min, max) along x.
    pub x_m: [f64; 2],
    /// (min, max) along y.
    pub y_m: [f64; 2],
}

/// A fixed camera looking at the desk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StaticCamera {
    /// Eye position.
    pub eye_m: [f64; 3],
    /// Point looked at.
    pub target_m: [f64; 3],
    /// Vertical field of view.
    pub fov_y_deg: f64,
    /// Image width.
    pub width_px: u32,
    /// Image height.
    pub height_px: u32,
}

/// The camera on the hand, looking along the fingers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GripperCamera {
    /// Vertical field of view.
    pub fov_y_deg: f64,
    /// Image width.
    pub width_px: u32,
    /// Image height.
    pub height_px: u32,
}

/// Both policy cameras.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Cameras {
    /// The static camera (CALVIN: 200×200, narrow field of view).
    pub static_view: StaticCamera,
    /// The gripper camera (CALVIN: 84×84, wide field of view).
    pub gripper_view: GripperCamera,
}

/// Light for the policy cameras.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Lighting {
    /// Direction pointing towards the (directional) light.
    pub direction_to_light: [f64; 3],
    /// Ambient share of the lit colour.
    pub ambient: f64,
    /// Diffuse share of the lit colour.
    pub diffuse: f64,
    /// Colour where nothing is drawn.
    pub background_rgb: Rgb,
}

/// A complete scene as written in a scene file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scene {
    /// Short name (`a`..`d` for the shipped ones).
    pub name: String,
    /// The desk.
    pub desk: Desk,
    /// The arm's mount.
    pub robot: Robot,
    /// Cabinet with sliding door.
    pub cabinet: Cabinet,
    /// Drawer.
    pub drawer: Drawer,
    /// Button and LED.
    pub button: Button,
    /// Switch and light bulb.
    pub switch: Switch,
    /// Red, blue and pink, once each.
    pub blocks: Vec<Block>,
    /// Where blocks on the desk may start.
    pub block_region: Region,
    /// Policy cameras.
    pub cameras: Cameras,
    /// Lighting of the policy cameras.
    pub lighting: Lighting,
}

/// Shortest pull or slide that still leaves a margin over CALVIN's 0.12 m drawer / 0.15 m slider thresholds.
const DRAWER_TRAVEL_MIN_M: f64 = 0.15;
const DOOR_TRAVEL_MIN_M: f64 = 0.18;

impl Scene {
    /// Resolves `name_or_path`: a shipped scene name (`a`..`d`) or a path to a scene file.
    pub fn resolve(name_or_path: &str) -> Result<Scene, SceneError> {
        if let Some((name, text)) = BUILTIN_SCENES.iter().find(|(name, _)| *name == name_or_path) {
            return Scene::parse(&format!("scenes/{name}.ron"), text);
        }
        let path = Path::new(name_or_path);
        if path.exists() {
            return Scene::load(path);
        }
        Err(SceneError::Unknown(name_or_path.to_owned()))
    }

    /// Reads and validates a scene file.
    pub fn load(path: &Path) -> Result<Scene, SceneError> {
        let source_name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|error| SceneError::Io { source_name: source_name.clone(), error })?;
        Scene::parse(&source_name, &text)
    }

    /// Parses and validates scene text; `source_name` is used in error messages.
    pub fn parse(source_name: &str, text: &str) -> Result<Scene, SceneError> {
        let scene: Scene = ron::from_str(text).map_err(|error| SceneError::Syntax {
            source_name: source_name.to_owned(),
            line: error.span.start.line,
            column: error.span.start.col,
            message: error.code.to_string(),
        })?;
        scene.validate().map_err(|(field, reason)| SceneError::Invalid {
            source_name: source_name.to_owned(),
            field,
            reason,
        })?;
        Ok(scene)
    }

    /// The block of a given colour (validation guarantees each exists once).
    pub fn block(&self, color: BlockColor) -> &Block {
        self.blocks
            .iter()
            .find(|block| block.color == color)
            .expect("validated scenes hold each block colour exactly once")
    }

    /// Checks physical consistency; on failure returns (field path, what is wrong).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let fail = |field: &str, reason: String| Err((field.to_owned(), reason));
        let desk = &self.desk;
        positive("desk.thickness_m", desk.thickness_m)?;
        positive("desk.half_width_m", desk.half_width_m)?;
        if desk.far_x_m <= desk.near_x_m + 0.3 {
            return fail(
                "desk.far_x_m",
                format!("must exceed near_x_m by more than 0.3 m, got {} vs {}", desk.far_x_m, desk.near_x_m),
            );
        }
        if self.robot.base_m[0] >= desk.near_x_m {
            return fail(
                "robot.base_m",
                format!(
                    "the robot must stand before the desk's near edge (x < {}), got x = {}",
                    desk.near_x_m, self.robot.base_m[0]
                ),
            );
        }

        let cabinet = &self.cabinet;
        for (field, value) in [
            ("cabinet.depth_m", cabinet.depth_m),
            ("cabinet.width_m", cabinet.width_m),
            ("cabinet.height_m", cabinet.height_m),
            ("cabinet.wall_m", cabinet.wall_m),
        ] {
            positive(field, value)?;
        }
        if cabinet.width_m / 2.0 < DOOR_TRAVEL_MIN_M {
            return fail(
                "cabinet.width_m",
                format!(
                    "the door slides by half the width, which must be at least {DOOR_TRAVEL_MIN_M} m so move_slider can pass CALVIN's 0.15 m threshold; got width {}",
                    cabinet.width_m
                ),
            );
        }
        let cabinet_back_x = cabinet.front_x_m + cabinet.depth_m + cabinet.wall_m;
        if cabinet.front_x_m <= desk.near_x_m || cabinet_back_x > desk.far_x_m {
            return fail(
                "cabinet.front_x_m",
                format!(
                    "the cabinet (x {}..{}) must stand on the desk (x {}..{})",
                    cabinet.front_x_m, cabinet_back_x, desk.near_x_m, desk.far_x_m
                ),
            );
        }
        let cabinet_half_outer = cabinet.width_m / 2.0 + cabinet.wall_m;
        if cabinet.center_y_m.abs() + cabinet_half_outer > desk.half_width_m {
            return fail(
                "cabinet.center_y_m",
                format!("the cabinet (half width {cabinet_half_outer}) overhangs the desk's side"),
            );
        }
        for (field, offset) in
            [("switch.offset_y_m", self.switch.offset_y_m), ("switch.bulb_offset_y_m", self.switch.bulb_offset_y_m)]
        {
            if offset.abs() > cabinet_half_outer {
                return fail(
                    field,
                    format!("{offset} places it off the cabinet roof (half width {cabinet_half_outer})"),
                );
            }
        }
        positive("switch.travel_m", self.switch.travel_m)?;
        let rail_m = [self.switch.offset_y_m - 0.03, self.switch.offset_y_m + self.switch.travel_m + 0.03];
        if rail_m[1] > cabinet_half_outer || rail_m[0] < -cabinet_half_outer {
            return fail(
                "switch.travel_m",
                format!(
                    "the switch rail (y {:.3}..{:.3} from the cabinet centre) runs off the roof",
                    rail_m[0], rail_m[1]
                ),
            );
        }
        let bulb_clearance_m = 0.08;
        if (rail_m[0] - bulb_clearance_m..rail_m[1] + bulb_clearance_m).contains(&self.switch.bulb_offset_y_m) {
            return fail(
                "switch.bulb_offset_y_m",
                format!("the bulb must stand at least {bulb_clearance_m} m clear of the switch rail"),
            );
        }

        let drawer = &self.drawer;
        for (field, value) in [
            ("drawer.width_m", drawer.width_m),
            ("drawer.depth_m", drawer.depth_m),
            ("drawer.height_m", drawer.height_m),
        ] {
            positive(field, value)?;
        }
        if drawer.travel_m < DRAWER_TRAVEL_MIN_M || drawer.travel_m > drawer.depth_m * 0.8 {
            return fail(
                "drawer.travel_m",
                format!(
                    "must lie in [{DRAWER_TRAVEL_MIN_M}, 0.8 × depth = {:.3}] so open_drawer can pass CALVIN's 0.12 m threshold and the drawer stays in its runners; got {}",
                    drawer.depth_m * 0.8,
                    drawer.travel_m
                ),
            );
        }
        if drawer.center_y_m.abs() + drawer.width_m / 2.0 > desk.half_width_m {
            return fail("drawer.center_y_m", "the drawer sticks out of the desk's side".to_owned());
        }
        let robot_clearance_m = 0.12;
        if (drawer.center_y_m - self.robot.base_m[1]).abs() < drawer.width_m / 2.0 + robot_clearance_m {
            return fail(
                "drawer.center_y_m",
                format!(
                    "an opened drawer would hit the robot's pedestal: keep its centre at least {} m to the side of the robot",
                    drawer.width_m / 2.0 + robot_clearance_m
                ),
            );
        }

        let button = &self.button;
        positive("button.radius_m", button.radius_m)?;
        positive("button.travel_m", button.travel_m)?;
        for (field, [x, y]) in
            [("button.position_m", button.position_m), ("button.led_position_m", button.led_position_m)]
        {
            if !(desk.near_x_m + 0.03..cabinet.front_x_m - 0.03).contains(&x) || y.abs() > desk.half_width_m - 0.03 {
                return fail(
                    field,
                    format!("({x}, {y}) is not on the free desk between the near edge and the cabinet"),
                );
            }
        }

        let mut seen = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            if seen.contains(&block.color) {
                return fail(&format!("blocks[{i}].color"), format!("{} appears twice", block.color.name()));
            }
            seen.push(block.color);
            for (axis, half) in block.half_extents_m.iter().enumerate() {
                if !(0.01..=0.04).contains(half) {
                    return fail(
                        &format!("blocks[{i}].half_extents_m[{axis}]"),
                        format!("{half} is outside the graspable 0.01–0.04 m (the gripper opens 0.08 m)"),
                    );
                }
            }
        }
        if seen.len() != 3 {
            return fail("blocks", format!("needs exactly red, blue and pink, got {}", seen.len()));
        }

        let region = &self.block_region;
        if region.x_m[0] >= region.x_m[1] || region.y_m[0] >= region.y_m[1] {
            return fail("block_region", "each range must be (min, max) with min < max".to_owned());
        }
        if region.x_m[0] < desk.near_x_m + 0.04
            || region.x_m[1] > cabinet.front_x_m - 0.04
            || region.y_m[0].abs().max(region.y_m[1].abs()) > desk.half_width_m - 0.04
        {
            return fail(
                "block_region",
                "must lie on the desk, 4 cm clear of the near edge, the sides and the cabinet".to_owned(),
            );
        }

        for (field, camera_size) in [
            ("cameras.static_view.width_px", self.cameras.static_view.width_px),
            ("cameras.static_view.height_px", self.cameras.static_view.height_px),
            ("cameras.gripper_view.width_px", self.cameras.gripper_view.width_px),
            ("cameras.gripper_view.height_px", self.cameras.gripper_view.height_px),
        ] {
            if !(16..=1024).contains(&camera_size) {
                return fail(field, format!("{camera_size} px is outside 16–1024"));
            }
        }
        for (field, fov) in [
            ("cameras.static_view.fov_y_deg", self.cameras.static_view.fov_y_deg),
            ("cameras.gripper_view.fov_y_deg", self.cameras.gripper_view.fov_y_deg),
        ] {
            if !(10.0..=150.0).contains(&fov) {
                return fail(field, format!("{fov}° is outside 10–150°"));
            }
        }
        let lighting = &self.lighting;
        if lighting.direction_to_light.iter().all(|c| *c == 0.0) {
            return fail("lighting.direction_to_light", "must not be the zero vector".to_owned());
        }
        if lighting.ambient < 0.0 || lighting.diffuse < 0.0 {
            return fail("lighting", "ambient and diffuse must not be negative".to_owned());
        }
        Ok(())
    }
}

fn positive(field: &str, value: f64) -> Result<(), (String, String)> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err((field.to_owned(), format!("must be a positive length, got {value}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_scenes_load_and_differ() {
        let scenes: Vec<Scene> = ["a", "b", "c", "d"].iter().map(|name| Scene::resolve(name).unwrap()).collect();
        for (i, a) in scenes.iter().enumerate() {
            for b in &scenes[i + 1..] {
                let same_layout = a.drawer.center_y_m == b.drawer.center_y_m
                    && a.desk.rgb == b.desk.rgb
                    && a.cabinet.center_y_m == b.cabinet.center_y_m;
                assert!(!same_layout, "{} and {} look alike", a.name, b.name);
            }
        }
    }

    #[test]
    fn syntax_error_names_file_and_position() {
        let text = BUILTIN_SCENES[3].1.replacen("near_x_m:", "near_x_m =", 1);
        let error = Scene::parse("broken.ron", &text).unwrap_err().to_string();
        assert!(error.starts_with("broken.ron:"), "{error}");
    }

    #[test]
    fn missing_field_is_named() {
        let text = BUILTIN_SCENES[3].1.replacen("travel_m: 0.2,", "", 1);
        let error = Scene::parse("d.ron", &text).unwrap_err().to_string();
        assert!(error.contains("d.ron") && error.contains("travel_m"), "{error}");
    }

    #[test]
    fn inconsistent_value_names_field_and_reason() {
        let text = BUILTIN_SCENES[3].1.replacen("travel_m: 0.2,", "travel_m: 0.05,", 1);
        let error = Scene::parse("d.ron", &text).unwrap_err().to_string();
        assert!(error.contains("d.ron: field `drawer.travel_m`"), "{error}");
        assert!(error.contains("0.12"), "{error}");
    }

    #[test]
    fn unknown_scene_name_is_rejected() {
        assert!(matches!(Scene::resolve("zz"), Err(SceneError::Unknown(_))));
    }
}
