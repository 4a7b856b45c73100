//! Simulating what a dataset holds: expert demonstrations of single tasks (with DART noise: the
//! noisy action is executed, the clean one recorded), and CALVIN-style play — a long expert
//! sequence chaining feasible tasks from a random symbolic start, cut into windows, each
//! labelled with the task the oracle says was completed in it.
//!
//! Every episode is a pure function of its seed, so collection can run in any order, on any
//! number of threads, and resume without changing a byte.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::episode::{ACTION_DIM, EpisodeInfo, RawEpisode, RawFrame, Source};
use crate::lang::instructions::Instructions;
use crate::sim::arm::Action;
use crate::sim::camera::{PolicyCameras, View};
use crate::sim::chains::{self, CHAIN_LENGTH};
use crate::sim::episode::{self, Attempt, MAX_STEPS_PER_SUBTASK};
use crate::sim::expert::{Expert, ExpertSettings, Policy};
use crate::sim::oracle;
use crate::sim::rng::Rng;
use crate::sim::scene::Scene;
use crate::sim::start::StartState;
use crate::sim::tasks::Task;
use crate::sim::world::{SceneState, World};
use crate::vla::driver::VlaDriver;

/// Expert noise and play layout, shared by every episode of a collection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulateSettings {
    /// Standard deviation of the DART noise on the executed translation actions (action units).
    pub noise_std: f64,
    /// Share of single-task episodes that begin mid-chain: after 1 to 4 random expert tasks
    /// (unrecorded), where an evaluation chain's later subtasks begin, instead of at the neutral start.
    pub mid_chain_share: f64,
    /// Tasks the expert attempts in one play sequence.
    pub play_tasks: usize,
    /// Shortest play window: a window ends where its task completes and reaches back at least
    /// this many steps (further when the task itself took longer).
    pub window_steps: usize,
}

/// Outcome of simulating one demonstration.
#[derive(Debug)]
pub enum DemoOutcome {
    /// The expert succeeded.
    Success(RawEpisode),
    /// The expert failed from this seed, could not set the task up, or the physics came apart
    /// ([`World::intact`]) in the lead-in or the episode.
    Failed,
    /// Stopped from outside before the end.
    Stopped,
}

/// A training phrasing of `task`, chosen by `rng`.
fn instruction(task: Task, rng: &mut Rng) -> String {
    let phrasings = Instructions::embedded().train.of(task);
    rng.choose(phrasings).text.clone()
}

fn to_f32<const N: usize>(values: [f64; N]) -> [f32; N] {
    values.map(|v| v as f32)
}

fn action_values(action: Action) -> [f32; ACTION_DIM] {
    match action {
        Action::Relative(a) | Action::Absolute(a) => to_f32(a),
    }
}

/// One step of `attempt`: whether the task is done, or `None` once the physics came apart
/// ([`World::intact`]), after which the episode demonstrates nothing.
fn step_intact(attempt: &mut Attempt, world: &mut World, action: &Action) -> Option<bool> {
    let success = attempt.step_with(world, action).success;
    world.intact().then_some(success)
}

/// Records the observation of `world` now, with the action taken from it.
fn observe(world: &World, cameras: &mut PolicyCameras, action: Action) -> RawFrame {
    RawFrame {
        static_image: cameras.render(world, View::Static),
        gripper_image: cameras.render(world, View::Gripper),
        robot_obs: to_f32(world.robot_obs()),
        scene_obs: to_f32(world.scene_obs()),
        action: action_values(action),
    }
}

/// A single-task episode set up from `seed`: the world (setup tasks done first, unrecorded), the
/// expert begun on the task with its DART noise seeded from `seed` too, the episode's description,
/// and the rest of the seed's random stream.
struct SingleTask {
    world: World,
    expert: Expert,
    attempt: Attempt,
    info: EpisodeInfo,
    rng: Rng,
}

impl SingleTask {
    /// `None` when the task cannot be set up from this seed or its lead-in broke the physics.
    fn start(scene: &Scene, task: Task, seed: u64, settings: &SimulateSettings, source: Source) -> Option<SingleTask> {
        let mut rng = Rng::stream(seed, 0);
        // No draw at share 0, so such collections keep the episodes they had before.
        let lead_in = if settings.mid_chain_share > 0.0 && rng.chance(settings.mid_chain_share) {
            1 + rng.below(CHAIN_LENGTH - 1)
        } else {
            0
        };
        let world = episode::task_world_mid_chain(scene, task, rng.next_u64(), lead_in).ok()?;
        if !world.intact() {
            return None;
        }
        let mut expert = Expert::new(ExpertSettings { noise_std: settings.noise_std, seed: rng.next_u64() });
        let info = EpisodeInfo {
            scene: scene.name.clone(),
            task: task.name(),
            instruction: instruction(task, &mut rng),
            source,
            seed,
        };
        let attempt = Attempt::begin(&world, &mut expert, task, MAX_STEPS_PER_SUBTASK);
        Some(SingleTask { world, expert, attempt, info, rng })
    }
}

/// The expert demonstrating `task` from the start state of `seed`.
pub fn demo(scene: &Scene, task: Task, seed: u64, settings: &SimulateSettings, stop: &AtomicBool) -> DemoOutcome {
    let Some(SingleTask { mut world, mut expert, mut attempt, info, .. }) =
        SingleTask::start(scene, task, seed, settings, Source::Demo)
    else {
        return DemoOutcome::Failed;
    };
    let Ok(outcome) = record_attempt(info, &mut attempt, &mut world, stop, |world| {
        let executed = expert.act(world);
        Ok::<_, Infallible>((executed, expert.clean_action()))
    });
    outcome
}

/// Steps `attempt` until it is over, each step executing the first action `act` returns and
/// recording the second as the frame's label; a success when the task got done.
fn record_attempt<E>(
    info: EpisodeInfo,
    attempt: &mut Attempt,
    world: &mut World,
    stop: &AtomicBool,
    mut act: impl FnMut(&World) -> Result<(Action, Action), E>,
) -> Result<DemoOutcome, E> {
    let mut cameras = PolicyCameras::new(world);
    let mut frames = Vec::new();
    while !attempt.is_over() {
        if stop.load(Ordering::Relaxed) {
            return Ok(DemoOutcome::Stopped);
        }
        let (executed, label) = act(world)?;
        frames.push(observe(world, &mut cameras, label));
        match step_intact(attempt, world, &executed) {
            Some(true) => return Ok(DemoOutcome::Success(RawEpisode { info, frames })),
            Some(false) => {}
            None => break,
        }
    }
    Ok(DemoOutcome::Failed)
}

/// Who acts in an episode driven by a trained model, and who labels its frames.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "labels", rename_all = "snake_case")]
pub enum DaggerLabels {
    /// DAgger as Ross et al. (2011): the expert follows the model along and every frame records the
    /// expert's clean action for the state the model brought about; each step executes the
    /// expert's action instead with probability `expert_share` (β). The episode is kept whether or
    /// not the task got done. The expert's action depends on its plan's progress, not only on the
    /// state, so states the model reached out of order get labels that contradict the
    /// demonstrations' (measured: a model trained with them did far worse, BENCHMARKS.md).
    Shadow {
        /// Probability that a step executes the expert's action.
        expert_share: f64,
    },
    /// Recovery demonstrations (as in HG-DAgger, Kelly et al. 2019): the model acts for a number of
    /// steps drawn from `0..=max_model_steps`, then the expert takes over from the state it left
    /// and finishes the task; only the expert's steps are recorded, each labelled with the action it
    /// executed, and only when it succeeds.
    Takeover {
        /// Most steps the model acts before the expert takes over.
        max_model_steps: usize,
    },
    /// Self-imitation, filtered behaviour cloning on the model's own successes (as in RoboCat's
    /// self-improvement rounds, Bousmalis et al. 2023): the model acts alone for the whole episode,
    /// every frame records the action it executed, and the episode is kept only when the model got
    /// the task done. The states are the model's own, which the expert's demonstrations miss, and
    /// the labels are a function of what the cameras show, which the expert's plan is not.
    OwnSuccesses,
}

impl DaggerLabels {
    /// The source its episodes are stored under.
    fn source(self) -> Source {
        match self {
            DaggerLabels::Shadow { .. } | DaggerLabels::Takeover { .. } => Source::Dagger,
            DaggerLabels::OwnSuccesses => Source::OwnSuccess,
        }
    }
}

/// A DAgger episode of `task` from the start state of `seed`, `learner` acting as `labels` says.
/// `None` when stopped, when the task cannot be set up from this seed, when the physics came apart
/// ([`World::intact`]), when (takeover) the model finished the task before the expert took over
/// or the expert failed, or when (own successes) the model failed.
pub fn dagger(
    scene: &Scene,
    task: Task,
    seed: u64,
    settings: &SimulateSettings,
    learner: &mut VlaDriver,
    labels: DaggerLabels,
    stop: &AtomicBool,
) -> Result<Option<RawEpisode>> {
    let Some(SingleTask { mut world, mut expert, mut attempt, info, mut rng }) =
        SingleTask::start(scene, task, seed, settings, labels.source())
    else {
        return Ok(None);
    };
    learner.begin(&info.instruction, &world)?;
    match labels {
        DaggerLabels::Shadow { expert_share } => {
            let mut cameras = PolicyCameras::new(&world);
            let mut frames = Vec::new();
            while !attempt.is_over() {
                if stop.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                let expert_action = expert.act(&world);
                let learner_action = learner.act(&world)?;
                frames.push(observe(&world, &mut cameras, expert.clean_action()));
                let executed = if rng.chance(expert_share) { expert_action } else { learner_action };
                if step_intact(&mut attempt, &mut world, &executed).is_none() {
                    return Ok(None);
                }
            }
            Ok(Some(RawEpisode { info, frames }))
        }
        DaggerLabels::Takeover { max_model_steps } => {
            let model_steps = rng.below(max_model_steps + 1);
            while attempt.steps() < model_steps && !attempt.is_over() {
                if stop.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                let action = learner.act(&world)?;
                if step_intact(&mut attempt, &mut world, &action).is_none() {
                    return Ok(None);
                }
            }
            expert.take_over(task, attempt.start().clone(), &world);
            let outcome = record_attempt(info, &mut attempt, &mut world, stop, |world| {
                let executed = expert.act(world);
                Ok::<_, anyhow::Error>((executed, expert.clean_action()))
            })?;
            Ok(success(outcome))
        }
        DaggerLabels::OwnSuccesses => {
            let outcome = record_attempt(info, &mut attempt, &mut world, stop, |world| {
                let executed = learner.act(world)?;
                Ok::<_, anyhow::Error>((executed, executed))
            })?;
            Ok(success(outcome))
        }
    }
}

/// The episode of a successful attempt.
fn success(outcome: DemoOutcome) -> Option<RawEpisode> {
    match outcome {
        DemoOutcome::Success(raw) => Some(raw),
        DemoOutcome::Failed | DemoOutcome::Stopped => None,
    }
}

/// One play sequence: from a random symbolic start, the expert attempts `settings.play_tasks`
/// tasks, each chosen at random among those whose precondition holds in the state the oracle
/// perceives. Returns the labelled windows (`None` when stopped) and the number of failed tasks.
pub fn play(
    scene: &Scene,
    seed: u64,
    settings: &SimulateSettings,
    stop: &AtomicBool,
) -> Result<Option<(Vec<RawEpisode>, usize)>> {
    let mut rng = Rng::stream(seed, 0);
    let initial = chains::sample_initial(&mut rng);
    let start = StartState::sample(scene, &initial, &mut rng)?;
    let mut world = World::new(scene.clone(), &start);
    let mut expert = Expert::new(ExpertSettings { noise_std: settings.noise_std, seed: rng.next_u64() });
    let mut cameras = PolicyCameras::new(&world);
    let mut frames: Vec<RawFrame> = Vec::new();
    // states[k] is the scene before frame k's action; one more after the last.
    let mut states: Vec<SceneState> = vec![world.state()];
    let mut completed: Vec<(Task, usize, usize)> = Vec::new();
    let mut failed = 0;
    for _ in 0..settings.play_tasks {
        let symbolic = oracle::perceive(scene, &world.state());
        let feasible: Vec<Task> = Task::all().into_iter().filter(|task| task.apply(&symbolic).is_some()).collect();
        if feasible.is_empty() {
            break;
        }
        let task = *rng.choose(&feasible);
        let first_frame = frames.len();
        let mut attempt = Attempt::begin(&world, &mut expert, task, MAX_STEPS_PER_SUBTASK);
        let mut success = Some(false);
        while !attempt.is_over() && success.is_some() {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let executed = expert.act(&world);
            frames.push(observe(&world, &mut cameras, expert.clean_action()));
            success = step_intact(&mut attempt, &mut world, &executed);
            states.push(world.state());
        }
        match success {
            Some(true) => completed.push((task, first_frame, frames.len())),
            Some(false) => failed += 1,
            None => {
                // Nothing after this is a demonstration; the windows completed before it are.
                failed += 1;
                break;
            }
        }
    }
    let mut windows = Vec::new();
    for (task, first_frame, end) in completed {
        let begin = first_frame.min(end.saturating_sub(settings.window_steps));
        // CALVIN labels a window with what the oracle sees achieved between its first and last state.
        if !oracle::achieved(&states[begin], &states[end]).contains(&task) {
            continue;
        }
        let info = EpisodeInfo {
            scene: scene.name.clone(),
            task: task.name(),
            instruction: instruction(task, &mut rng),
            source: Source::Play,
            seed,
        };
        windows.push(RawEpisode { info, frames: frames[begin..end].to_vec() });
    }
    Ok(Some((windows, failed)))
}
