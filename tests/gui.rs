//! The GUI, launched for real under Xvfb with software Vulkan (lavapipe): screenshots must show the
//! scene and the panel, and typed instructions must reach the arm. `.ci/run` installs xvfb and
//! mesa-vulkan-drivers.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use vlasim::vla::catalog::DEFAULT_MODEL;

fn out_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `vlasim gui ARGS` in a virtual X server and returns its combined output.
fn run_gui(args: &[&str]) -> String {
    let output = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24", env!("CARGO_BIN_EXE_vlasim"), "gui"])
        .args(args)
        .env("WGPU_BACKEND", "vulkan")
        .output()
        .expect("xvfb-run must be installed to test the GUI (.ci/run installs xvfb and mesa-vulkan-drivers)");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the GUI failed:\n{text}");
    assert!(!text.contains("panicked"), "the GUI panicked:\n{text}");
    text
}

fn screenshot(name: &str, args: &[&str]) -> (image::RgbImage, Value) {
    let dir = out_dir(name);
    let png = dir.join("screenshot.png");
    let mut all = vec!["--screenshot", png.to_str().unwrap()];
    all.extend_from_slice(args);
    run_gui(&all);
    let image = image::open(&png).expect("screenshot written").to_rgb8();
    let probe: Value = serde_json::from_str(&std::fs::read_to_string(png.with_extension("json")).unwrap()).unwrap();
    (image, probe)
}

/// Pixels within `radius` of `centre` for which `wanted` holds.
fn count_near(image: &image::RgbImage, centre: [f64; 2], radius: i64, wanted: impl Fn([u8; 3]) -> bool) -> usize {
    let (cx, cy) = (centre[0].round() as i64, centre[1].round() as i64);
    let mut count = 0;
    for y in cy - radius..=cy + radius {
        for x in cx - radius..=cx + radius {
            if x >= 0 && y >= 0 && (x as u32) < image.width() && (y as u32) < image.height() {
                count += wanted(image.get_pixel(x as u32, y as u32).0) as usize;
            }
        }
    }
    count
}

fn block_px(probe: &Value, name: &str) -> [f64; 2] {
    let blocks = probe["blocks_px"].as_array().unwrap();
    let entry = blocks.iter().find(|b| b[0] == name).unwrap_or_else(|| panic!("{name} block not in view: {probe}"));
    [entry[1][0].as_f64().unwrap(), entry[1][1].as_f64().unwrap()]
}

#[test]
fn screenshot_shows_the_scene_and_the_panel() {
    let (image, probe) = screenshot("scene", &["--scene", "d", "--seed", "0", "--after-steps", "5"]);
    assert_eq!((image.width(), image.height()), (1280, 720));

    // Each block's colour appears where the camera projects the block.
    let red = |[r, g, b]: [u8; 3]| r > 120 && (r as u32) > 2 * g as u32 && (r as u32) > 2 * b as u32;
    let blue = |[r, g, b]: [u8; 3]| b > 90 && (b as u32) > r as u32 + 40 && b >= g;
    let pink = |[r, g, b]: [u8; 3]| r > 150 && b > 80 && (r as u32) > g as u32 + 50;
    for (name, is_colour) in [("red", &red as &dyn Fn([u8; 3]) -> bool), ("blue", &blue), ("pink", &pink)] {
        let at = block_px(&probe, name);
        let hits = count_near(&image, at, 5, is_colour);
        assert!(hits >= 20, "{name} block should be drawn around {at:?}: {hits} matching pixels of 121");
        // And that colour is not everywhere: the far corner of the 3D view shows no block.
        assert_eq!(count_near(&image, [20.0, 20.0], 5, is_colour), 0, "{name}'s colour fills the background");
    }

    // The panel is egui's dark panel with light text on it, right of the 3D view.
    let panel_left = probe["panel_left_px"].as_u64().unwrap() as u32;
    assert!((700..1000).contains(&panel_left), "panel starts at x = {panel_left}");
    let panel: Vec<[u8; 3]> = (panel_left + 5..1275)
        .flat_map(|x| (0..720).step_by(4).map(move |y| (x, y)))
        .map(|(x, y)| image.get_pixel(x, y).0)
        .collect();
    let dark = panel.iter().filter(|p| p.iter().all(|c| *c < 70)).count();
    let text = panel.iter().filter(|p| p.iter().all(|c| *c > 150)).count();
    assert!(dark > panel.len() / 2, "panel background should be dark: {dark} of {}", panel.len());
    assert!(text > 200, "panel should show text: {text} light pixels");
}

#[test]
fn a_typed_instruction_is_carried_out_by_the_expert() {
    let (_, probe) = screenshot(
        "typed",
        &[
            "--driver",
            "expert",
            "--scene",
            "d",
            "--seed",
            "3",
            "--instruction",
            "close the drawer",
            "--speed",
            "4",
            "--after-steps",
            "361",
        ],
    );
    let commands = probe["commands"].as_array().unwrap();
    assert_eq!(commands.len(), 1, "{probe}");
    assert_eq!(commands[0]["task"], "close_drawer", "{probe}");
    let outcome = commands[0]["outcome"].as_str().unwrap();
    assert!(outcome.starts_with("succeeded"), "close_drawer should succeed: {outcome}");
}

#[test]
fn a_garbage_instruction_shows_a_warning_and_nothing_moves() {
    let text = format!("🤖 請打開抽屜 {}", "blah ".repeat(2000));
    let (_, probe) = screenshot("garbage", &["--instruction", &text, "--after-steps", "3"]);
    let outcome = probe["commands"][0]["outcome"].as_str().unwrap();
    assert!(outcome.starts_with("rejected"), "should be rejected: {outcome}");
}

#[test]
fn closing_the_window_while_recording_leaves_a_playable_video() {
    let dir = out_dir("close");
    let video = dir.join("rollout.mp4");
    run_gui(&[
        "--driver",
        "expert",
        "--instruction",
        "open the drawer",
        "--record",
        video.to_str().unwrap(),
        "--close",
        "--after-steps",
        "45",
    ]);
    let mp4 = vlasim::video::mp4_read::read_mp4(&video).expect("a readable MP4");
    let frames = vlasim::video::mp4_read::decode(&mp4).expect("every frame decodes");
    // The start frame, then one per control step until the close request is handled.
    assert!(frames.len() >= 46, "{} frames", frames.len());
    assert_eq!((mp4.width, mp4.height), (640, 480));
    let seconds = mp4.duration as f64 / mp4.timescale as f64;
    assert!((seconds - frames.len() as f64 / 30.0).abs() < 0.1, "{seconds} s for {} frames", frames.len());
    let changed = frames[0].rgb.iter().zip(&frames.last().unwrap().rgb).filter(|(a, b)| a.abs_diff(**b) > 30).count();
    assert!(changed > 1000, "the arm should have moved: {changed} bytes changed");
}

/// Pixels right of the panel's left edge tinted by the overlay's heat colours (black, red, yellow):
/// red well above blue and green. Counting only the bright end would depend on how spread out the
/// model's attention happens to be.
fn heat_tinted_panel_pixels(image: &image::RgbImage, probe: &Value) -> usize {
    let panel_left = probe["panel_left_px"].as_u64().unwrap() as u32;
    image
        .enumerate_pixels()
        .filter(|(x, _, p)| *x >= panel_left && p[0] > p[1].saturating_add(40) && p[0] > p[2].saturating_add(40))
        .count()
}

#[test]
fn the_shipped_default_model_drives_the_arm_and_its_attention_is_drawn() {
    let args = ["--scene", "d", "--seed", "0", "--instruction", "open the drawer", "--after-steps", "30"];
    let (plain, probe) = screenshot("vla_plain", &args);
    assert_eq!((probe["driver"].as_str(), probe["model"].as_str()), (Some("VLA"), Some(DEFAULT_MODEL)), "{probe}");
    assert_eq!(probe["commands"][0]["task"], "open_drawer", "{probe}");
    assert_eq!(probe["attention_grid"], Value::Null, "no overlay unless asked for");

    let (watched, probe) = screenshot("vla_attention", &[&args[..], &["--attention"]].concat());
    assert_eq!(probe["attention_grid"], 8, "the 128 px image in 16 px patches: an 8×8 grid: {probe}");
    let (before, after) = (heat_tinted_panel_pixels(&plain, &probe), heat_tinted_panel_pixels(&watched, &probe));
    // The static image is drawn 256 px square, a 32 px square per patch. How many patches turn red
    // depends on how concentrated the model's attention is.
    assert!(
        after > before + 2 * 32 * 32,
        "the heat map should colour the static image: {before} → {after} tinted pixels"
    );
}

#[test]
fn side_by_side_runs_a_second_model_from_the_same_start_in_its_own_window() {
    let args = ["--scene", "d", "--seed", "0", "--instruction", "open the drawer", "--after-steps", "20"];
    let (alone, _) = screenshot("alone", &args);
    let (both, probe) = screenshot("side_by_side", &[&args[..], &["--compare", DEFAULT_MODEL]].concat());
    let partner = &probe["partner"];
    assert_eq!(partner["model"], DEFAULT_MODEL, "{probe}");
    assert_eq!(partner["commands"], probe["commands"], "the partner got the same instruction");
    assert_eq!(partner["step"], probe["step"]);
    assert_eq!(partner["scene_obs"], probe["scene_obs"], "same model, same start state: same trajectory");
    // The partner's window sits over the lower left of the 3D view.
    let changed = (20..400)
        .flat_map(|x| (420..700).map(move |y| (x, y)))
        .filter(|&(x, y)| {
            let (a, b) = (alone.get_pixel(x, y).0, both.get_pixel(x, y).0);
            a.iter().zip(b).any(|(a, b)| a.abs_diff(b) > 40)
        })
        .count();
    assert!(changed > 30_000, "the partner's window should cover the lower left: {changed} pixels changed");
}
