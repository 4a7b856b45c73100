//! Running policies on tasks and chains under CALVIN's protocol: each subtask gets at most 360
//! control steps and ends early on success; a chain resets only at its start, and its first
//! failure ends it.
//!
//! The step loop lives here once; everything that watches an episode (CLI printing, video
//! recording, the GUI) does so through an observer called after every control step, which may
//! also stop the episode early (Ctrl-C, a failed write).

use std::ops::ControlFlow;

use super::arm::Action;
use super::chains::{self, Chain, TaskStart};
use super::expert::{Expert, ExpertSettings, Policy};
use super::oracle;
use super::rng::Rng;
use super::scene::Scene;
use super::start::{StartError, StartState};
use super::tasks::Task;
use super::world::{SceneState, World};

/// CALVIN's step budget per subtask.
pub const MAX_STEPS_PER_SUBTASK: usize = 360;

/// What happened in one control step, for observers (CLI printing, recorders, the GUI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepReport {
    /// The subtask being attempted.
    pub task: Task,
    /// Steps taken in this subtask so far (1 after the first step).
    pub step: usize,
    /// Whether the oracle sees the subtask achieved now.
    pub success: bool,
}

/// Called after every control step with the world and what happened; `Break` stops the episode.
pub type Observer<'a> = dyn FnMut(&World, StepReport) -> ControlFlow<()> + 'a;

/// The observer for callers that only want the outcome.
pub fn no_observer(_: &World, _: StepReport) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

/// Result of one subtask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubtaskOutcome {
    /// The subtask.
    pub task: Task,
    /// Achieved within the budget.
    pub success: bool,
    /// Steps used.
    pub steps: usize,
    /// The observer stopped the episode before success or the end of the budget.
    pub stopped: bool,
}

/// One subtask in progress, advanced a control step at a time, so a caller that owns the loop (the
/// GUI, once per fixed tick) runs exactly what [`run_subtask`] runs.
#[derive(Debug, Clone)]
pub struct Attempt {
    task: Task,
    start: SceneState,
    budget: usize,
    steps: usize,
    success: bool,
}

impl Attempt {
    /// Starts `task` from the current state: the oracle compares later states with this one.
    pub fn begin(world: &World, policy: &mut dyn Policy, task: Task, budget: usize) -> Self {
        policy.begin(task, world);
        Self { task, start: world.state(), budget, steps: 0, success: false }
    }

    /// Starts watching `task` without a policy (a person drives the arm).
    pub fn watch(world: &World, task: Task, budget: usize) -> Self {
        Self { task, start: world.state(), budget, steps: 0, success: false }
    }

    /// The state the subtask began in, which the oracle compares against.
    pub fn start(&self) -> &SceneState {
        &self.start
    }

    /// Steps taken so far.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Achieved, or out of steps.
    pub fn is_over(&self) -> bool {
        self.success || self.steps >= self.budget
    }

    /// Steps the world with `action` and asks the oracle.
    pub fn step_with(&mut self, world: &mut World, action: &Action) -> StepReport {
        world.step(action);
        self.steps += 1;
        self.success = oracle::succeeded(self.task, &self.start, &world.state());
        StepReport { task: self.task, step: self.steps, success: self.success }
    }

    /// One control step driven by `policy`.
    pub fn step(&mut self, world: &mut World, policy: &mut dyn Policy) -> StepReport {
        let action = policy.act(world);
        self.step_with(world, &action)
    }
}

/// Runs `policy` on `task` from the current state until the oracle fires, the budget is spent or
/// `observe` stops it.
pub fn run_subtask(
    world: &mut World,
    policy: &mut dyn Policy,
    task: Task,
    max_steps: usize,
    observe: &mut Observer,
) -> SubtaskOutcome {
    let mut attempt = Attempt::begin(world, policy, task, max_steps);
    while !attempt.is_over() {
        let report = attempt.step(world, policy);
        if observe(world, report).is_break() {
            return SubtaskOutcome { task, success: attempt.success, steps: attempt.steps, stopped: !attempt.success };
        }
    }
    SubtaskOutcome { task, success: attempt.success, steps: attempt.steps, stopped: false }
}

/// Builds the world for a chain's symbolic start state (start sampled with `seed`).
pub fn chain_world(scene: &Scene, chain: &Chain, seed: u64) -> Result<World, StartError> {
    let start = StartState::sample(scene, &chain.initial, &mut Rng::new(seed))?;
    Ok(World::new(scene.clone(), &start))
}

/// Runs a chain; stops at the first failure or when `observe` stops it. Returns one outcome per
/// attempted subtask.
pub fn run_chain(
    world: &mut World,
    chain: &Chain,
    policy: &mut dyn Policy,
    observe: &mut Observer,
) -> Vec<SubtaskOutcome> {
    let mut outcomes = Vec::new();
    for task in chain.tasks {
        let outcome = run_subtask(world, policy, task, MAX_STEPS_PER_SUBTASK, observe);
        outcomes.push(outcome);
        if !outcome.success {
            break;
        }
    }
    outcomes
}

/// Why a single-task episode could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// No concrete start state.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The expert failed a setup task, so the episode never reached the task's precondition.
    #[error("the expert failed setup task {0}")]
    Expert(Task),
}

/// A world ready for `task`: a start sampled with `seed`, with any setup tasks already done by the expert.
pub fn task_world(scene: &Scene, task: Task, seed: u64) -> Result<World, SetupError> {
    task_world_mid_chain(scene, task, seed, 0)
}

/// Like [`task_world`], with up to `lead_in` random tasks (see [`chains::lead_in`]) done by the
/// expert after the setup: the arm and the scene are then where an evaluation chain's earlier
/// subtasks leave them, not at the neutral start. `lead_in` 0 gives exactly [`task_world`]'s world.
pub fn task_world_mid_chain(scene: &Scene, task: Task, seed: u64, lead_in: usize) -> Result<World, SetupError> {
    let mut rng = Rng::new(seed);
    let TaskStart { initial, mut setup } = chains::task_start(task, &mut rng);
    let start = StartState::sample(scene, &initial, &mut rng)?;
    if lead_in > 0 {
        let after_setup = setup
            .iter()
            .try_fold(initial, |state, setup_task| setup_task.apply(&state))
            .expect("task_start's setup tasks apply in turn");
        setup.extend(chains::lead_in(task, &after_setup, lead_in, &mut rng));
    }
    let mut world = World::new(scene.clone(), &start);
    let mut expert = Expert::new(ExpertSettings::default());
    for setup_task in setup {
        let outcome = run_subtask(&mut world, &mut expert, setup_task, MAX_STEPS_PER_SUBTASK, &mut no_observer);
        if !outcome.success {
            return Err(SetupError::Expert(setup_task));
        }
    }
    Ok(world)
}
