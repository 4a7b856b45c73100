//! End-to-end checks of the simulation core: determinism, scene-file errors, the policy cameras,
//! and the scripted expert solving tasks through the 7-D action interface.

use vlasim::sim::camera::{PolicyCameras, View};
use vlasim::sim::chains::{self, EVAL_SEED};
use vlasim::sim::episode::{self, MAX_STEPS_PER_SUBTASK};
use vlasim::sim::expert::{Expert, ExpertSettings, Policy};
use vlasim::sim::scene::{BlockColor, Scene, SceneError};
use vlasim::sim::start::StartState;
use vlasim::sim::tasks::Task;
use vlasim::sim::world::World;

/// FNV-1a, to compare long byte streams by a short fingerprint.
fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Runs the expert (with noise, so the seed matters) on chain `index` for `steps` control steps and
/// fingerprints every observation and the final camera images.
fn rollout_fingerprint(scene: &Scene, index: u64, steps: usize) -> (u64, u64) {
    let chain = chains::chain(EVAL_SEED, index);
    let mut world = episode::chain_world(scene, &chain, index).expect("chain start");
    let mut expert = Expert::new(ExpertSettings { noise_std: 0.3, seed: index });
    expert.begin(chain.tasks[0], &world);
    let mut observations = Vec::new();
    for _ in 0..steps {
        let action = expert.act(&world);
        world.step(&action);
        observations.extend(world.robot_obs().iter().chain(world.scene_obs().iter()).flat_map(|v| v.to_le_bytes()));
    }
    let mut cameras = PolicyCameras::new(&world);
    let images = [View::Static, View::Gripper].map(|view| cameras.render(&world, view).rgb);
    (fnv1a(observations), fnv1a(images.concat()))
}

#[test]
fn same_seed_gives_the_same_trajectory_and_pixels() {
    let scene = Scene::resolve("d").unwrap();
    let first = rollout_fingerprint(&scene, 3, 120);
    assert_eq!(first, rollout_fingerprint(&scene, 3, 120));
    assert_ne!(first, rollout_fingerprint(&scene, 4, 120), "another seed must give another rollout");
}

#[test]
fn malformed_scene_file_names_file_and_field() {
    let dir = std::env::temp_dir().join(format!("vlasim-scene-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = include_str!("../scenes/d.ron").replacen("half_width_m: 0.6", "half_width_m: -0.6", 1);
    let path = dir.join("broken.ron");
    std::fs::write(&path, text).unwrap();
    let error = Scene::load(&path).unwrap_err();
    assert!(matches!(error, SceneError::Invalid { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("broken.ron") && message.contains("desk.half_width_m"), "{message}");
    std::fs::write(&path, "(name: \"x\", desk: (").unwrap();
    let message = Scene::load(&path).unwrap_err().to_string();
    assert!(message.contains("broken.ron:1:"), "{message}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn static_camera_shows_the_blocks_and_the_lit_led() {
    let scene = Scene::resolve("d").unwrap();
    // A chain whose start state has the LED on, so the emissive colour must appear.
    let index = (0..50).find(|i| chains::chain(EVAL_SEED, *i).initial.led).unwrap();
    let world = episode::chain_world(&scene, &chains::chain(EVAL_SEED, index), index).unwrap();
    let image = PolicyCameras::new(&world).render(&world, View::Static);
    let count = |predicate: &dyn Fn([u8; 3]) -> bool| {
        (0..image.height)
            .flat_map(|y| (0..image.width).map(move |x| (x, y)))
            .filter(|&(x, y)| predicate(image.pixel(x, y)))
            .count()
    };
    let led = scene.button.led_on_rgb;
    assert!(count(&|p| p == led) > 0, "the lit LED is drawn emissive in its exact colour");
    assert!(count(&|[r, g, b]| r > 120 && g < 40 && b < 40) > 4, "red block");
    assert!(count(&|[r, g, b]| b > 120 && r < 40 && g < 80) > 4, "blue block");
    assert!(count(&|p| p == scene.lighting.background_rgb) > 0, "background");
}

/// Start states per task in [`expert_solves_every_task_through_the_action_interface`].
const SEEDS_PER_TASK: u64 = 8;

/// `vlasim bench expert --episodes 100` (BENCHMARKS.md) measures every task at ≥ 98 % on scene d
/// except `lift_red_block_drawer` (97 %), `place_in_drawer` (96 %) and `lift_pink_block_drawer`
/// (95 %); among the seeds below [`SEEDS_PER_TASK`] it fails only these, which may fail here too.
/// Every other task must succeed on all its seeds.
const KNOWN_FAILURES: [(&str, u64); 2] = [("lift_pink_block_drawer", 1), ("push_into_drawer", 1)];

#[test]
fn expert_solves_every_task_through_the_action_interface() {
    let scene = Scene::resolve("d").unwrap();
    let mut shortfalls = Vec::new();
    for task in Task::all() {
        let failed: Vec<u64> = (0..SEEDS_PER_TASK)
            .filter(|seed| {
                !episode::task_world(&scene, task, *seed).is_ok_and(|mut world| {
                    let mut expert = Expert::new(ExpertSettings::default());
                    episode::run_subtask(
                        &mut world,
                        &mut expert,
                        task,
                        MAX_STEPS_PER_SUBTASK,
                        &mut episode::no_observer,
                    )
                    .success
                })
            })
            .collect();
        let unexpected: Vec<u64> =
            failed.iter().copied().filter(|seed| !KNOWN_FAILURES.contains(&(task.name().as_str(), *seed))).collect();
        if !unexpected.is_empty() {
            shortfalls.push(format!("{task} failed seeds {failed:?}"));
        }
    }
    assert!(shortfalls.is_empty(), "{shortfalls:?}");
}

/// Evaluation chains in [`expert_completes_evaluation_chains`].
const CHAINS: u64 = 100;
/// Of those, how many the expert must complete (all 5 subtasks): the goal of 95. Measured: 98 of
/// these 100 (BENCHMARKS.md has all 1000).
const MIN_COMPLETED_CHAINS: usize = 95;

#[test]
fn expert_completes_evaluation_chains() {
    let scene = Scene::resolve("d").unwrap();
    let mut incomplete = Vec::new();
    for index in 0..CHAINS {
        let chain = chains::chain(EVAL_SEED, index);
        let mut world = episode::chain_world(&scene, &chain, index).unwrap();
        let mut expert = Expert::new(ExpertSettings::default());
        let outcomes = episode::run_chain(&mut world, &chain, &mut expert, &mut episode::no_observer);
        let completed = outcomes.iter().filter(|o| o.success).count();
        if completed < chains::CHAIN_LENGTH {
            incomplete.push(format!("chain {index} stopped at {}", chain.tasks[completed]));
        }
    }
    let completed = CHAINS as usize - incomplete.len();
    assert!(completed >= MIN_COMPLETED_CHAINS, "{completed}/{CHAINS} chains completed: {incomplete:?}");
}

#[test]
fn a_random_policy_rarely_achieves_anything() {
    let scene = Scene::resolve("d").unwrap();
    let chain = chains::chain(EVAL_SEED, 0);
    let mut world = episode::chain_world(&scene, &chain, 0).unwrap();
    struct Random(vlasim::sim::rng::Rng);
    impl Policy for Random {
        fn begin(&mut self, _: Task, _: &vlasim::sim::world::World) {}
        fn act(&mut self, _: &vlasim::sim::world::World) -> vlasim::sim::arm::Action {
            vlasim::sim::arm::Action::Relative(std::array::from_fn(|_| self.0.uniform(-1.0, 1.0)))
        }
    }
    let outcomes =
        episode::run_chain(&mut world, &chain, &mut Random(vlasim::sim::rng::Rng::new(1)), &mut episode::no_observer);
    assert!(outcomes.iter().filter(|o| o.success).count() <= 1, "{outcomes:?}");
}

#[test]
fn perceiving_a_sampled_start_gives_back_its_symbolic_state() {
    for name in ["a", "d"] {
        let scene = Scene::resolve(name).unwrap();
        for index in 0..60 {
            let chain = chains::chain(EVAL_SEED, index);
            let world = episode::chain_world(&scene, &chain, index).unwrap();
            let seen = vlasim::sim::oracle::perceive(&scene, &world.state());
            assert_eq!(seen, chain.initial, "scene {name}, chain {index}");
        }
    }
}

#[test]
fn a_mid_chain_start_leaves_the_arm_elsewhere_and_the_task_ready() {
    let scene = Scene::resolve("d").unwrap();
    let tasks = ["turn_on_led", "move_slider_left", "push_red_block_right", "close_drawer"];
    let mut moved = 0;
    for (seed, name) in tasks.iter().enumerate() {
        let task = Task::from_name(name).unwrap();
        let seed = seed as u64;
        let neutral = episode::task_world(&scene, task, seed).unwrap();
        let same = episode::task_world_mid_chain(&scene, task, seed, 0).unwrap();
        assert_eq!(neutral.robot_obs(), same.robot_obs(), "{task}: no lead-in is the plain start");
        assert_eq!(neutral.scene_obs(), same.scene_obs(), "{task}: no lead-in is the plain start");
        // The expert fails a lead-in now and then (four tasks of a chain in a row: about 6 times in
        // 100, BENCHMARKS.md) and collection discards those: take the first of three starts it sets up.
        let mut world = (0..3)
            .find_map(|retry| episode::task_world_mid_chain(&scene, task, seed + 100 * retry, 4).ok())
            .unwrap_or_else(|| panic!("the expert failed three lead-ins before {task}"));
        let [x, y, z] = [0, 1, 2].map(|i| world.robot_obs()[i] - neutral.robot_obs()[i]);
        if (x * x + y * y + z * z).sqrt() > 0.05 {
            moved += 1;
        }
        let mut expert = Expert::new(ExpertSettings::default());
        let outcome =
            episode::run_subtask(&mut world, &mut expert, task, MAX_STEPS_PER_SUBTASK, &mut episode::no_observer);
        assert!(outcome.success, "the expert fails {task} after the lead-in");
    }
    assert!(moved >= 3, "the lead-in should leave the hand away from the neutral start; moved {moved} of 4");
}

#[test]
fn a_block_beside_the_desk_comes_to_rest_on_the_floor() {
    let scene = Scene::resolve("d").unwrap();
    let chain = chains::chain(EVAL_SEED, 0);
    let mut start = StartState::sample(&scene, &chain.initial, &mut vlasim::sim::rng::Rng::new(0)).unwrap();
    let beside_the_desk = nalgebra::Translation3::new(0.5, scene.desk.half_width_m + 0.3, 0.1);
    start.block_poses[BlockColor::Red.index()] = beside_the_desk.into();
    let mut world = World::new(scene.clone(), &start);
    let hold = world.hold_action();
    for _ in 0..90 {
        world.step(&hold);
    }
    let floor_z = vlasim::sim::build::floor_z_m(&scene.desk) as f64;
    let half_height = scene.block(BlockColor::Red).half_extents_m[2];
    let resting_z = world.block_pose(BlockColor::Red).translation.z;
    assert!((resting_z - (floor_z + half_height)).abs() < 0.005, "block at z = {resting_z} m, floor at {floor_z} m");
}
