//! End-to-end checks of rollout recording: the MP4's boxes (read by the library's own small box walker,
//! so no MP4 library is trusted to check itself), its H.264 samples decoded back by OpenH264 and
//! compared with the frames that went in, the GIF fallback, the frame layout, and a `vlasim
//! record` process stopped with SIGINT still leaving a complete MP4.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use vlasim::sim::camera::{Image, PolicyCameras, View};
use vlasim::sim::chains::{self, EVAL_SEED};
use vlasim::sim::episode;
use vlasim::sim::expert::{Expert, ExpertSettings};
use vlasim::sim::scene::Scene;
use vlasim::sim::tasks::Task;
use vlasim::video::mp4_read::{decode, read_mp4};
use vlasim::video::rollout::{RecordSettings, Rollout, RolloutRecording};
use vlasim::video::{Caption, ComposeOptions, Composer, SubtaskStatus};
use vlasim::vla::catalog::{DEFAULT_MODEL, SHIPPED_MODELS};

/// Colour of the caption bar (`compose.rs`), which fills the frame's bottom-right corner.
const BAR_RGB: [u8; 3] = [24, 26, 30];

/// A folder of the test's own, removed when the test ends.
fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("vlasim-video-").tempdir().expect("temp dir")
}

fn mean_abs_difference(a: &Image, b: &Image) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    a.rgb.iter().zip(&b.rgb).map(|(&x, &y)| f64::from(x.abs_diff(y))).sum::<f64>() / a.rgb.len() as f64
}

fn assert_close(actual: [u8; 3], expected: [u8; 3], tolerance: u8) {
    assert!(actual.iter().zip(expected).all(|(&a, e)| a.abs_diff(e) <= tolerance), "{actual:?} vs {expected:?}");
}

#[test]
fn expert_rollout_records_a_decodable_mp4_of_the_expected_length() {
    let scene = Scene::resolve("d").expect("scene");
    let scratch = scratch_dir();
    let path = scratch.path().join("turn_on_led.mp4");
    let settings = RecordSettings {
        rollout: Rollout::Task { task: Task::TurnOnLed, seed: 2 },
        compose: ComposeOptions { width: 320, height: 240, inset: true },
        max_steps: None,
        hold_final_s: 0.5,
    };
    let recorded = RolloutRecording::new(&scene, &settings, &path)
        .and_then(|r| r.run(&mut Expert::new(ExpertSettings::default()), &AtomicBool::new(false)))
        .expect("record");
    let outcome = recorded.outcomes[0];
    assert!(outcome.success, "the expert turns on the LED");
    // The start state, one frame per step, then half a second of the final frame.
    let frames = 1 + outcome.steps + 15;
    assert_eq!(recorded.summary.frames, frames);
    assert_eq!((recorded.summary.width, recorded.summary.height), (320, 240));
    assert!((recorded.summary.duration_s - frames as f64 / 30.0).abs() < 1e-9);

    let video = read_mp4(&path).expect("a readable MP4");
    assert_eq!(&video.major_brand, b"isom");
    assert_eq!((video.width, video.height), (320, 240));
    assert_eq!(video.samples.len(), frames);
    let duration_s = video.duration as f64 / f64::from(video.timescale);
    assert!((duration_s - frames as f64 / 30.0).abs() <= 1.0 / 30.0, "mdhd says {duration_s} s");

    let decoded = decode(&video).expect("every frame decodes");
    assert_eq!(decoded.len(), frames);
    let last = decoded.last().expect("frames");
    // Lossy, but close to what went in; the flat caption bar keeps its colour.
    let error = mean_abs_difference(last, &recorded.last_frame);
    assert!(error < 4.0, "mean error {error:.2} per channel");
    assert_close(last.pixel(318, 238), BAR_RGB, 6);
    // The arm moves: at some point a clear share of the pixels differs from the first frame.
    let changed_share = |frame: &Image| {
        let pixels = decoded[0].rgb.chunks(3).zip(frame.rgb.chunks(3));
        let changed = pixels.filter(|(a, b)| a.iter().zip(*b).any(|(x, y)| x.abs_diff(*y) > 40)).count();
        changed as f64 / f64::from(frame.width * frame.height)
    };
    let share = decoded.iter().map(changed_share).fold(0.0, f64::max);
    assert!(share > 0.01, "at most {:.2} % of the pixels changed", 100.0 * share);
}

#[test]
fn gif_fallback_has_one_frame_per_step_at_the_requested_size() {
    let scene = Scene::resolve("d").expect("scene");
    let scratch = scratch_dir();
    let path = scratch.path().join("clip.gif");
    let settings = RecordSettings {
        rollout: Rollout::Chain { index: 1 },
        compose: ComposeOptions { width: 240, height: 180, inset: false },
        max_steps: Some(12),
        hold_final_s: 1.0,
    };
    let recorded = RolloutRecording::new(&scene, &settings, &path)
        .and_then(|r| r.run(&mut Expert::new(ExpertSettings::default()), &AtomicBool::new(false)))
        .expect("record");
    assert!(recorded.stopped);
    assert_eq!(recorded.summary.frames, 13, "start + 12 steps, no hold after a stop");

    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = options.read_info(std::fs::File::open(&path).expect("open gif")).expect("gif header");
    assert_eq!((decoder.width(), decoder.height()), (240, 180));
    let mut frames = 0;
    while let Some(frame) = decoder.read_next_frame().expect("gif frame") {
        assert_eq!((frame.width, frame.height, frame.delay), (240, 180, 3));
        frames += 1;
    }
    assert_eq!(frames, 13);
}

#[test]
fn frame_shows_the_scene_the_policy_insets_and_the_caption() {
    let scene = Scene::resolve("d").expect("scene");
    let chain = chains::chain(EVAL_SEED, 0);
    let world = episode::chain_world(&scene, &chain, 0).expect("world");
    let mut composer =
        Composer::new(&world, ComposeOptions { width: 640, height: 480, inset: true }).expect("composer");
    use SubtaskStatus::*;
    let caption = Caption {
        instruction: "open the drawer".into(),
        step: 12,
        budget: 360,
        status: Running,
        chain: vec![Succeeded, Failed, Running, Pending, Pending],
    };
    let frame = composer.compose(&world, &caption).clone();
    assert_eq!((frame.width, frame.height), (640, 480));
    assert_eq!(frame, *composer.compose(&world, &caption), "composing is deterministic");

    // Caption bar: 56 px at this size (text scale 2), chips right-aligned on its second line,
    // 16 px squares 4 px apart ending 8 px from the right edge.
    assert_eq!(frame.pixel(639, 479), BAR_RGB);
    let chip_left = |i: u32| 640 - 8 - 5 * 20 + 4 + i * 20;
    let chip_row = 480 - 56 + 8 + 16 + 8 + 15;
    let statuses = [Succeeded, Failed, Running, Pending, Pending];
    for (i, status) in statuses.into_iter().enumerate() {
        assert_eq!(frame.pixel(chip_left(i as u32), chip_row), status.rgb(), "chip {}", i + 1);
    }

    // The static camera's image sits unscaled (128 px, a third of the view) in the top-right corner.
    let static_image = PolicyCameras::new(&world).render(&world, View::Static);
    let (left, top) = (640 - 8 - 128, 8);
    for (x, y) in [(64, 64), (100, 20), (127, 127)] {
        assert_eq!(frame.pixel(left + x, top + y), static_image.pixel(x, y), "static inset at ({x}, {y})");
    }
    // The presentation view is drawn: the view is not all background.
    let background = scene.lighting.background_rgb;
    let drawn = (0..424).step_by(8).flat_map(|y| (0..400).step_by(8).map(move |x| (x, y)));
    assert!(drawn.filter(|&(x, y)| frame.pixel(x, y) != background).count() > 1000);
}

#[cfg(unix)]
#[test]
fn sigint_mid_recording_leaves_a_complete_mp4() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let scratch = scratch_dir();
    let path = scratch.path().join("interrupted.mp4");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vlasim"))
        .args(["record", "--chain", "0", "--inset", "--out"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vlasim record");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("first line");
    assert!(line.starts_with("recording"), "{line}");
    // The handler is installed before that line; let a few dozen frames be recorded first.
    std::thread::sleep(std::time::Duration::from_millis(400));
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let output = child.wait_with_output().expect("vlasim exits");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("stdout");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}: {stderr}", output.status);
    assert!(rest.contains("stopped early"), "the chain must not finish within 0.4 s: {rest}");

    let video = read_mp4(&path).expect("a readable MP4");
    assert_eq!((video.width, video.height), (640, 480));
    assert!(!video.samples.is_empty());
    let reported = rest.split("wrote ").nth(1).and_then(|s| s.split(": ").nth(1)).and_then(|s| s.split(' ').next());
    assert_eq!(reported.and_then(|n| n.parse().ok()), Some(video.samples.len()), "{rest}");
    assert_eq!(decode(&video).expect("every frame decodes").len(), video.samples.len());
}

#[test]
fn recorder_and_composer_can_be_bevy_resources_or_move_to_a_thread() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<vlasim::video::Recorder>();
    send_and_sync::<Composer>();
}

/// `vlasim rollout ARGS` with the shipped model; its stdout.
fn rollout(args: &[&str]) -> String {
    let output = rollout_with(&shipped_model(), args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8")
}

fn shipped_model() -> String {
    Path::new(SHIPPED_MODELS).join(DEFAULT_MODEL).to_str().expect("UTF-8 path").to_string()
}

/// `vlasim rollout --model MODEL ARGS`.
fn rollout_with(model: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_vlasim"))
        .args(["rollout", "--model", model])
        .args(args)
        .output()
        .expect("run vlasim rollout")
}

#[test]
fn the_expert_rolls_out_the_task_the_words_name_and_refuses_what_it_cannot_start() {
    let args = ["--instruction", "pull the handle to open the drawer", "--seed", "0", "--json"];
    let output = rollout_with("expert", &args);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("--json prints JSON");
    assert_eq!(report["task_can_start"], true, "{report}");
    assert!(report["completed"].as_array().unwrap().contains(&"open_drawer".into()), "{report}");

    let refused = rollout_with("expert", &["--instruction", "close the drawer", "--seed", "0"]);
    assert!(!refused.status.success(), "the drawer starts closed at seed 0");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot start close_drawer"));
    let wordless = rollout_with("expert", &["--instruction", "dance", "--seed", "0"]);
    assert!(String::from_utf8_lossy(&wordless.stderr).contains("needs words that name one task"));
}

#[test]
fn expert_first_hands_over_mid_chain_where_the_expert_left_the_arm() {
    let push = ["--expert-first", "push the blue block to the left", "--seed", "1", "--json"];
    let output = rollout_with("expert", &[&push[..], &["--instruction", "rotate the blue block to the left"]].concat());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("--json prints JSON");
    assert_eq!(report["expert_first"], serde_json::json!(["push_blue_block_left"]), "{report}");
    assert_eq!(report["completed"], serde_json::json!(["rotate_blue_block_left"]), "the push came before the start");
    // The push ends with the closed fingertips at the block, far below where chains start the arm.
    let first_z = report["steps"][0]["robot_obs"][2].as_f64().unwrap();
    assert!(first_z < 0.05, "the rotation starts where the push left the arm, not at the neutral pose: z {first_z}");

    let refused = rollout_with("expert", &["--expert-first", "close the drawer", "--instruction", "open the drawer"]);
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("close_drawer cannot start"), "the drawer starts closed at seed 0: {message}");
    let after = rollout_with("expert", &["--expert-first", "open the drawer", "--instruction", "open the drawer"]);
    assert!(String::from_utf8_lossy(&after.stderr).contains("cannot start open_drawer"), "the drawer is open now");
    let wordless = rollout_with("expert", &["--expert-first", "dance", "--instruction", "open the drawer"]);
    assert!(String::from_utf8_lossy(&wordless.stderr).contains("--expert-first \"dance\" names no single task"));
}

#[test]
fn a_headless_rollout_reports_the_oracle_each_step_and_records_it() {
    let scratch = scratch_dir();
    let path = scratch.path().join("rollout.mp4");
    let args = ["--instruction", "pull the handle to open the drawer", "--seed", "0", "--steps", "90", "--json"];
    let report: serde_json::Value = serde_json::from_str(&rollout(&args)).expect("--json prints JSON");
    assert_eq!((&report["task"], &report["task_can_start"]), (&"open_drawer".into(), &true.into()));
    let steps = report["steps"].as_array().unwrap();
    let done_at = steps.iter().position(|step| step["achieved"].as_array().unwrap().contains(&"open_drawer".into()));
    assert!(steps.iter().all(|step| step["action"].as_array().unwrap().len() == 7), "every step's action");
    assert!(steps.iter().all(|step| step["robot_obs"].as_array().unwrap().len() == 15), "every step's robot state");
    assert!(steps.iter().all(|step| step["scene_obs"].as_array().unwrap().len() == 24), "every step's scene state");
    let drawer = |step: &serde_json::Value| step["scene_obs"][1].as_f64().unwrap();
    // The run ends at the step the named task is done, or runs out of steps without it.
    match done_at {
        Some(step) => {
            assert_eq!(step + 1, steps.len(), "the run ends once the named task is done");
            assert!(drawer(&steps[step]) > drawer(&steps[0]), "the scene state shows the drawer opened");
        }
        None => assert_eq!(steps.len(), 90),
    }
    let again: serde_json::Value =
        serde_json::from_str(&rollout(&[&args[..], &["--out", path.to_str().unwrap()]].concat())).unwrap();
    assert_eq!(again, report, "same model, seed and words: same rollout");
    let video = read_mp4(&path).expect("a readable MP4");
    assert_eq!(video.samples.len(), steps.len() + 1, "the start frame, then one per step");

    let garbage: serde_json::Value =
        serde_json::from_str(&rollout(&["--instruction", "dance 🤖", "--steps", "5", "--json"])).unwrap();
    assert_eq!((garbage["task"].clone(), garbage["steps"].as_array().unwrap().len()), (serde_json::Value::Null, 5));
    assert!(garbage["unknown_words"].as_array().unwrap().contains(&"dance".into()), "{garbage}");

    let open_already = ["--instruction", "open the drawer", "--seed", "3", "--steps", "1"];
    let output = rollout_with(&shipped_model(), &open_already);
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("open_drawer cannot start from seed 3"), "chain 3 starts with the drawer open: {message}");
}
