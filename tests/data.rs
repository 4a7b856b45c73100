//! Demonstration datasets end to end: collect a small LeRobot dataset, read it back and compare
//! with what the simulation produced (numbers bit for bit, images within the H.264 tolerance the
//! README states), resume an interrupted collection to the same bytes, and name the file at fault
//! when one is broken or missing.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use common::{collect_into, out_dir};
use vlasim::data::batch::{BatchSettings, Sampler};
use vlasim::data::collect::{self, CollectSettings, Collected};
use vlasim::data::episode::{ACTION_DIM, ROBOT_OBS_DIM, RawEpisode, SCENE_OBS_DIM, Source};
use vlasim::data::lerobot;
use vlasim::data::reader::{Dataset, EpisodeData, Frames, Selection};
use vlasim::data::simulate::{self, DaggerLabels, DemoOutcome, SimulateSettings};
use vlasim::sim::camera::Image;
use vlasim::sim::scene::Scene;
use vlasim::sim::tasks::Task;
use vlasim::vla::catalog::{DEFAULT_MODEL, SHIPPED_MODELS};
use vlasim::vla::driver::VlaDriver;

/// The codec tolerance the README states: every decoded frame within this PSNR of the rendered one…
const MIN_FRAME_PSNR_DB: f64 = 28.0;
/// …and the mean absolute error over all pixels of an episode below this (8-bit levels).
const MAX_MEAN_ABS_ERROR: f64 = 4.5;

fn small_settings() -> CollectSettings {
    common::small_settings(&["turn_on_led", "push_red_block_left"])
}

fn psnr_and_abs_error(decoded: &[u8], rendered: &Image) -> (f64, f64) {
    assert_eq!(decoded.len(), rendered.rgb.len());
    let (mut squared, mut absolute) = (0.0, 0.0);
    for (a, b) in decoded.iter().zip(&rendered.rgb) {
        let d = f64::from(*a) - f64::from(*b);
        squared += d * d;
        absolute += d.abs();
    }
    let n = decoded.len() as f64;
    let mse = squared / n;
    (if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0 * 255.0 / mse).log10() }, absolute / n)
}

fn check_images(frames: &Frames, rendered: impl Iterator<Item = Image>, what: &str) {
    let (mut worst_psnr, mut total_abs, mut count) = (f64::INFINITY, 0.0, 0);
    for (t, image) in rendered.enumerate() {
        assert_eq!((frames.width, frames.height), (image.width as usize, image.height as usize));
        let (psnr, abs) = psnr_and_abs_error(&frames.frame(t), &image);
        worst_psnr = worst_psnr.min(psnr);
        total_abs += abs;
        count += 1;
    }
    let mean_abs = total_abs / count as f64;
    eprintln!("{what}: worst frame PSNR {worst_psnr:.1} dB, mean abs error {mean_abs:.2}");
    assert!(worst_psnr >= MIN_FRAME_PSNR_DB, "{what}: a frame at {worst_psnr:.1} dB");
    assert!(mean_abs <= MAX_MEAN_ABS_ERROR, "{what}: mean abs error {mean_abs:.2}");
}

#[test]
fn a_collected_dataset_reads_back_as_simulated() {
    let dir = out_dir("data-round-trip");
    let settings = small_settings();
    let summary = collect_into(&dir, &settings, 2);
    let dataset = Dataset::open(&dir).expect("open");
    assert_eq!(dataset.episodes.len(), summary.episodes);
    assert_eq!(dataset.frames(), summary.frames);
    let demos: Vec<_> = dataset.episodes.iter().filter(|e| e.source == "demo").collect();
    assert_eq!(demos.iter().map(|e| e.task.as_str()).collect::<Vec<_>>(), ["turn_on_led", "push_red_block_left"]);
    assert!(dataset.episodes.iter().any(|e| e.source == "play"), "the play sequence yields a labelled window");

    let scene = Scene::resolve("d").expect("scene");
    let simulate_settings = SimulateSettings { noise_std: 0.1, mid_chain_share: 0.5, play_tasks: 2, window_steps: 48 };
    let never = AtomicBool::new(false);
    let mut play_windows: BTreeMap<u64, Vec<RawEpisode>> = BTreeMap::new();
    for episode in &dataset.episodes {
        let raw = if episode.source == "demo" {
            let task = Task::from_name(&episode.task).expect("task id");
            match simulate::demo(&scene, task, episode.seed, &simulate_settings, &never) {
                DemoOutcome::Success(raw) => raw,
                other => panic!("episode {} does not replay: {other:?}", episode.index),
            }
        } else {
            let windows = play_windows.entry(episode.seed).or_insert_with(|| {
                simulate::play(&scene, episode.seed, &simulate_settings, &never).expect("play").expect("not stopped").0
            });
            windows.remove(0)
        };
        assert_eq!(raw.info.task, episode.task);
        assert_eq!(raw.info.instruction, episode.instruction);
        assert_eq!(raw.frames.len(), episode.len(), "episode {}", episode.index);
        let bits = |values: &[f32]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let flat = |f: &dyn Fn(usize) -> Vec<f32>| (0..raw.frames.len()).flat_map(f).collect::<Vec<_>>();
        assert_eq!(bits(&episode.robot_obs), bits(&flat(&|t| raw.frames[t].robot_obs.to_vec())));
        assert_eq!(bits(&episode.scene_obs), bits(&flat(&|t| raw.frames[t].scene_obs.to_vec())));
        assert_eq!(bits(&episode.actions), bits(&flat(&|t| raw.frames[t].action.to_vec())));
        assert_eq!(episode.robot_obs.len(), episode.len() * ROBOT_OBS_DIM);
        assert_eq!(episode.scene_obs.len(), episode.len() * SCENE_OBS_DIM);
        let what = format!("episode {} ({})", episode.index, episode.task);
        check_images(
            &episode.static_frames,
            raw.frames.iter().map(|f| f.static_image.clone()),
            &format!("{what} static"),
        );
        check_images(
            &episode.gripper_frames,
            raw.frames.iter().map(|f| f.gripper_image.clone()),
            &format!("{what} gripper"),
        );
        let rgb_bytes = episode.static_frames.kept() * episode.static_frames.frame_bytes();
        let memory = episode.static_frames.memory_bytes();
        assert!(memory * 2 < rgb_bytes, "{what}: its static frames take {memory} bytes in memory, {rgb_bytes} as RGB");
    }

    // Batches: shapes, the action chunk padded past the episode's end, reproducible from the seed.
    let all: Vec<usize> = (0..dataset.episodes.len()).collect();
    let settings = BatchSettings { batch_size: 4, ..BatchSettings::default() };
    let batch = Sampler::new(&dataset, &all, settings, 3).expect("sampler").next_batch();
    assert_eq!(batch, Sampler::new(&dataset, &all, settings, 3).expect("sampler").next_batch());
    let (b, h, c) = (4, settings.history, settings.chunk);
    assert_eq!(batch.static_images.len(), b * h * 128 * 128 * 3);
    assert_eq!(batch.gripper_images.len(), b * h * 64 * 64 * 3);
    assert_eq!(batch.robot_obs.len(), b * h * ROBOT_OBS_DIM);
    assert_eq!(batch.actions.len(), b * h * c * ACTION_DIM);
    for (sample, &(e, last)) in batch.origins.iter().enumerate() {
        let episode = &dataset.episodes[e];
        assert_eq!(batch.instructions[sample], episode.instruction);
        for (slot, t) in (last + 1 - h..=last).enumerate() {
            for k in 0..c {
                let i = (sample * h + slot) * c + k;
                assert_eq!(batch.action_mask[i], t + k < episode.len());
                let source = (t + k).min(episode.len() - 1);
                assert_eq!(
                    batch.actions[i * ACTION_DIM..][..ACTION_DIM],
                    episode.actions[source * ACTION_DIM..][..ACTION_DIM]
                );
            }
        }
    }
    let (train, validation) = dataset.split(0.25, 1);
    assert_eq!(train.len() + validation.len(), dataset.episodes.len());
    assert!(!validation.is_empty() && validation.iter().all(|v| !train.contains(v)));

    let half = Selection { scenes: vec!["d".into()], share: 0.5, seed: 2, gripper_camera: true, frame_stride: 1 };
    let selected = Dataset::open_selected(&dir, &half).expect("open a selection");
    assert_eq!(selected.episodes.len(), (dataset.episodes.len() as f64 * 0.5).round() as usize);
    for episode in &selected.episodes {
        assert_eq!(episode, &dataset.episodes[episode.index], "a selected episode differs from the whole read");
    }
    let static_only = Dataset::open_selected(&dir, &Selection { gripper_camera: false, ..half.clone() }).unwrap();
    for (episode, full) in static_only.episodes.iter().zip(&selected.episodes) {
        assert_eq!(episode.gripper_frames.kept(), 0, "the gripper camera was not asked for");
        assert_eq!(episode.static_frames, full.static_frames);
    }
    // Every other frame's images: frames 0, 2, 4, … as decoded in full, and one-frame windows end
    // only there; a longer history cannot be drawn.
    let strided = Dataset::open_selected(&dir, &Selection { frame_stride: 2, ..half.clone() }).unwrap();
    for (episode, full) in strided.episodes.iter().zip(&selected.episodes) {
        assert_eq!((episode.len(), &episode.actions, &episode.robot_obs), (full.len(), &full.actions, &full.robot_obs));
        let kept: Vec<usize> = (0..full.len()).step_by(2).collect();
        assert_eq!(episode.static_frames.kept(), kept.len());
        for &t in &kept {
            assert_eq!(episode.static_frames.frame(t), full.static_frames.frame(t), "static frame {t}");
            assert_eq!(episode.gripper_frames.frame(t), full.gripper_frames.frame(t), "gripper frame {t}");
        }
    }
    let episodes: Vec<usize> = (0..strided.episodes.len()).collect();
    let one_frame = BatchSettings { batch_size: 8, history: 1, static_shift_px: 0, gripper_shift_px: 0, ..settings };
    let mut sampler = Sampler::new(&strided, &episodes, one_frame, 4).expect("one-frame windows");
    assert_eq!(sampler.windows(), strided.episodes.iter().map(|e| e.len().div_ceil(2)).sum::<usize>());
    let batch = sampler.next_batch();
    for (sample, &(e, last)) in batch.origins.iter().enumerate() {
        assert_eq!(last % 2, 0, "a window ends at frame {last}, whose image was not kept");
        let bytes = strided.episodes[e].static_frames.frame_bytes();
        assert_eq!(&batch.static_images[sample * bytes..][..bytes], selected.episodes[e].static_frames.frame(last));
    }
    let error = Sampler::new(&strided, &episodes, settings, 4).expect_err("consecutive frames are missing").to_string();
    assert!(error.contains("one frame in 2"), "{error}");
    // A history whose frames are the stride apart has every image it needs.
    let spaced = BatchSettings { history: 3, history_spacing: 2, ..one_frame };
    let batch = Sampler::new(&strided, &episodes, spaced, 4).expect("windows of kept frames").next_batch();
    for (sample, &(e, last)) in batch.origins.iter().enumerate() {
        let bytes = strided.episodes[e].static_frames.frame_bytes();
        for h in 0..3 {
            let t = last.saturating_sub((2 - h) * 2);
            let image = &batch.static_images[(sample * 3 + h) * bytes..][..bytes];
            assert_eq!(image, selected.episodes[e].static_frames.frame(t), "window ending at {last}, frame {h}");
        }
    }

    // Two datasets read as one: the second's episodes follow the first's, numbered on from them.
    let twice = Dataset::open_all(&[dir.clone(), dir.clone()], &half).expect("two datasets as one");
    let count = dataset.episodes.len();
    let expected: Vec<usize> =
        selected.episodes.iter().map(|e| e.index).chain(selected.episodes.iter().map(|e| count + e.index)).collect();
    assert_eq!(twice.episodes.iter().map(|e| e.index).collect::<Vec<_>>(), expected);
    for (episode, once) in twice.episodes.iter().zip(selected.episodes.iter().cycle()) {
        assert_eq!(&EpisodeData { index: once.index, ..episode.clone() }, once, "episode {}", episode.index);
    }

    let elsewhere = Selection { scenes: vec!["a".into()], ..half };
    let error = format!("{:#}", Dataset::open_selected(&dir, &elsewhere).expect_err("no episode in scene a"));
    assert!(error.contains("scene \"a\""), "{error}");
    // A scene is needed in one of several datasets, not in each.
    let dir_a = out_dir("data-round-trip-scene-a");
    let in_a = CollectSettings {
        scenes: vec!["a".into()],
        tasks: vec!["turn_on_led".into()],
        play_sequences: 0,
        ..small_settings()
    };
    collect_into(&dir_a, &in_a, 2);
    for share in [1.0, 0.5] {
        let only_a = Selection { share, ..elsewhere.clone() };
        let both = Dataset::open_all(&[dir.clone(), dir_a.clone()], &only_a).expect("scene a is in the second dataset");
        let indices: Vec<usize> = both.episodes.iter().map(|e| e.index).collect();
        assert_eq!(indices, [count], "share {share}: the one episode of scene a, numbered after the first dataset's");
        assert_eq!(both.episodes[0].scene, "a");
    }
}

fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                found.insert(path.strip_prefix(dir).expect("inside").to_path_buf(), bytes);
            }
        }
    }
    found
}

#[test]
fn an_interrupted_collection_resumes_to_the_same_bytes() {
    let settings = small_settings();
    let whole = out_dir("data-whole");
    collect_into(&whole, &settings, 1);

    let resumed = out_dir("data-resumed");
    let stop = AtomicBool::new(false);
    let stop_after_first = |progress: collect::Progress| {
        if progress.units_done >= 1 {
            stop.store(true, Ordering::Relaxed);
        }
    };
    let first = collect::collect(&settings, &resumed, 2, &stop, &stop_after_first).expect("first run");
    let Collected::Stopped(progress) = first else {
        panic!("the first run should stop early, got {first:?}");
    };
    assert!(progress.units_done < progress.units);
    // A unit cut off mid-write leaves a partial file, which the resumed run ignores.
    let staging = resumed.join(collect::STAGING_DIR);
    std::fs::write(staging.join("play-d-00000-000.partial"), b"cut off").expect("partial");
    let mut different = settings.clone();
    different.noise_std = 0.2;
    let refused = collect::collect(&different, &resumed, 2, &AtomicBool::new(false), &|_| {}).expect_err("other args");
    assert!(refused.to_string().contains("other arguments"), "{refused}");
    collect_into(&resumed, &settings, 2);
    assert!(!staging.exists(), "the staging folder is removed once the dataset is written");

    let (whole_files, resumed_files) = (files(&whole), files(&resumed));
    assert_eq!(whole_files.keys().collect::<Vec<_>>(), resumed_files.keys().collect::<Vec<_>>());
    for (path, bytes) in &whole_files {
        assert!(bytes == &resumed_files[path], "{} differs", path.display());
    }
    let again = collect::collect(&settings, &resumed, 2, &AtomicBool::new(false), &|_| {}).expect("rerun");
    assert_eq!(again, Collected::AlreadyComplete);
}

#[test]
fn a_broken_or_missing_file_is_named() {
    let dir = out_dir("data-broken");
    let settings = CollectSettings { play_sequences: 0, tasks: vec!["turn_on_led".into()], ..small_settings() };
    collect_into(&dir, &settings, 1);
    let error_of = |dir: &Path| format!("{:#}", Dataset::open(dir).expect_err("broken dataset"));

    let video = dir.join(lerobot::video_path(lerobot::GRIPPER_CAMERA_KEY, 0, 0));
    let saved = std::fs::read(&video).expect("video");
    std::fs::write(&video, &saved[..saved.len() / 2]).expect("truncate");
    let error = error_of(&dir);
    assert!(error.contains(&video.display().to_string()), "{error}");
    std::fs::remove_file(&video).expect("remove");
    let error = error_of(&dir);
    assert!(error.contains(&video.display().to_string()), "{error}");
    std::fs::write(&video, &saved).expect("restore");

    let data = dir.join(lerobot::data_path(0, 0));
    std::fs::write(&data, b"PAR1 not really").expect("corrupt");
    let error = error_of(&dir);
    assert!(error.contains(&data.display().to_string()), "{error}");

    let info = dir.join(lerobot::INFO_PATH);
    std::fs::remove_file(&info).expect("remove info");
    let error = error_of(&dir);
    assert!(error.contains(&info.display().to_string()), "{error}");
}

#[test]
fn a_dagger_episode_follows_the_model_and_records_the_expert() {
    let scene = Scene::resolve("d").expect("scene");
    let task = Task::from_name("open_drawer").expect("task");
    let settings = SimulateSettings { noise_std: 0.0, mid_chain_share: 0.0, play_tasks: 0, window_steps: 64 };
    let never = AtomicBool::new(false);
    let DemoOutcome::Success(demo) = simulate::demo(&scene, task, 3, &settings, &never) else {
        panic!("the expert opens the drawer from seed 3");
    };
    let mut learner = VlaDriver::load(&Path::new(SHIPPED_MODELS).join(DEFAULT_MODEL), &candle_core::Device::Cpu)
        .expect("the shipped model");
    let dagger = |expert_share: f64, learner: &mut VlaDriver| {
        let labels = DaggerLabels::Shadow { expert_share };
        simulate::dagger(&scene, task, 3, &settings, learner, labels, &never).unwrap().expect("set up")
    };

    let expert_only = dagger(1.0, &mut learner);
    assert_eq!(expert_only.info.source, Source::Dagger);
    assert_eq!(expert_only.frames, demo.frames, "with β = 1 the expert does every step: its demonstration");

    let learner_driven = dagger(0.0, &mut learner);
    assert_eq!(learner_driven.frames[0], demo.frames[0], "the same start state, labelled by the same expert");
    let diverged = learner_driven.frames.iter().zip(&demo.frames).position(|(a, b)| a.robot_obs != b.robot_obs);
    assert!(diverged.is_some(), "with β = 0 the model's actions move the arm, not the expert's");

    let takeover = |max_model_steps: usize, learner: &mut VlaDriver| {
        let labels = DaggerLabels::Takeover { max_model_steps };
        simulate::dagger(&scene, task, 3, &settings, learner, labels, &never).unwrap()
    };
    let at_once = takeover(0, &mut learner).expect("the expert opens the drawer");
    assert_eq!(at_once.frames, demo.frames, "taking over before the model acts is the demonstration");
    let later = takeover(30, &mut learner).expect("the expert opens the drawer from where the model left it");
    assert_ne!(later.frames[0].robot_obs, demo.frames[0].robot_obs, "the recording starts where the model stopped");
}

#[test]
fn an_own_success_episode_records_the_model_acting_alone_and_only_when_it_succeeds() {
    let scene = Scene::resolve("d").expect("scene");
    let settings = SimulateSettings { noise_std: 0.0, mid_chain_share: 0.0, play_tasks: 0, window_steps: 64 };
    let never = AtomicBool::new(false);
    let mut learner = VlaDriver::load(&Path::new(SHIPPED_MODELS).join(DEFAULT_MODEL), &candle_core::Device::Cpu)
        .expect("the shipped model");
    let mut episode = |task: &str, labels: DaggerLabels| {
        let task = Task::from_name(task).expect("task");
        simulate::dagger(&scene, task, 3, &settings, &mut learner, labels, &never).unwrap()
    };

    let own = episode("turn_on_lightbulb", DaggerLabels::OwnSuccesses).expect("the shipped model turns the bulb on");
    let shadowed = episode("turn_on_lightbulb", DaggerLabels::Shadow { expert_share: 0.0 }).expect("set up");
    assert_eq!(own.info.source, Source::OwnSuccess);
    assert_eq!(own.frames.len(), shadowed.frames.len(), "both end where the model turned the bulb on");
    for (own_frame, shadowed_frame) in own.frames.iter().zip(&shadowed.frames) {
        assert_eq!(own_frame.robot_obs, shadowed_frame.robot_obs, "the model acted in both");
        assert!([-1.0, 1.0].contains(&own_frame.action[ACTION_DIM - 1]), "the gripper it executed, not a score");
    }
    let relabelled = own.frames.iter().zip(&shadowed.frames).filter(|(own, shadowed)| own.action != shadowed.action);
    assert!(relabelled.count() > own.frames.len() / 2, "labelled with the model's actions, not the expert's");

    assert!(episode("stack_block", DaggerLabels::Shadow { expert_share: 0.0 }).is_some(), "the task can be set up");
    assert!(
        episode("stack_block", DaggerLabels::OwnSuccesses).is_none(),
        "the shipped model stacks nothing: no episode"
    );
}
