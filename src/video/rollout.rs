//! Recording a rollout: the scripted expert or a VLA on one task or one evaluation chain, run through the
//! shared episode loop, with an observer that composes and records a frame every control step.
//!
//! The video shows the start state, then one frame per control step at the control rate (30 fps
//! is real time), then holds the final frame so the outcome can be read.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;

use super::compose::{Caption, ComposeOptions, Composer, SubtaskStatus};
use super::recorder::{Recorder, RecordingSummary};
use crate::lang::instructions::Instructions;
use crate::sim::camera::Image;
use crate::sim::chains::{self, EVAL_SEED};
use crate::sim::episode::{self, MAX_STEPS_PER_SUBTASK, StepReport, SubtaskOutcome};
use crate::sim::expert::Policy;
use crate::sim::scene::Scene;
use crate::sim::tasks::Task;
use crate::sim::world::{CONTROL_HZ, World};

/// What to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// One task from a seeded start state (setup tasks, if any, run unrecorded first).
    Task {
        /// The task.
        task: Task,
        /// Seed of the start state.
        seed: u64,
    },
    /// Evaluation chain `index` (seed [`EVAL_SEED`], as evaluation uses).
    Chain {
        /// Chain index.
        index: u64,
    },
}

/// How to record a rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordSettings {
    /// What to record.
    pub rollout: Rollout,
    /// Frame size and inset.
    pub compose: ComposeOptions,
    /// Stop after this many control steps (for short clips); `None` runs the episode to its end.
    pub max_steps: Option<usize>,
    /// How long the final frame stays on screen when the episode ends by itself.
    pub hold_final_s: f64,
}

/// What a recording run produced.
#[derive(Debug, Clone)]
pub struct RecordedRollout {
    /// The finished file.
    pub summary: RecordingSummary,
    /// One outcome per attempted subtask (the last one is cut short if `stopped`).
    pub outcomes: Vec<SubtaskOutcome>,
    /// The run was stopped (by the stop flag or `max_steps`) before the episode ended.
    pub stopped: bool,
    /// The last frame recorded.
    pub last_frame: Image,
}

/// The caption text for `task`: its held-out evaluation phrasing, the words CALVIN's protocol
/// gives a policy.
pub fn instruction(task: Task) -> String {
    Instructions::embedded().eval_phrasing(task).to_string()
}

/// Follows an episode's step reports and says what the caption shows: the current subtask, its
/// step and oracle status, and for chains every subtask's status.
#[derive(Debug, Clone)]
pub struct Progress {
    tasks: Vec<Task>,
    statuses: Vec<SubtaskStatus>,
    current: usize,
    step: usize,
    show_chain: bool,
}

impl Progress {
    /// Before the first step of `tasks`; `show_chain` draws the chain chips.
    pub fn new(tasks: &[Task], show_chain: bool) -> Progress {
        let mut statuses = vec![SubtaskStatus::Pending; tasks.len()];
        statuses[0] = SubtaskStatus::Running;
        Progress { tasks: tasks.to_vec(), statuses, current: 0, step: 0, show_chain }
    }

    /// Takes in one step's report.
    pub fn update(&mut self, report: StepReport) {
        // Step 1 after an earlier step means the episode moved on to the next subtask.
        if report.step == 1 && self.step > 0 {
            self.current = (self.current + 1).min(self.tasks.len() - 1);
        }
        self.step = report.step;
        self.statuses[self.current] = if report.success {
            SubtaskStatus::Succeeded
        } else if report.step >= MAX_STEPS_PER_SUBTASK {
            SubtaskStatus::Failed
        } else {
            SubtaskStatus::Running
        };
    }

    /// The caption for the current step.
    pub fn caption(&self) -> Caption {
        Caption {
            instruction: instruction(self.tasks[self.current]),
            step: self.step,
            budget: MAX_STEPS_PER_SUBTASK,
            status: self.statuses[self.current],
            chain: if self.show_chain { self.statuses.clone() } else { Vec::new() },
        }
    }
}

/// A recording of the scripted expert, set up and ready to run.
pub struct RolloutRecording {
    settings: RecordSettings,
    world: World,
    composer: Composer,
    recorder: Recorder,
    progress: Progress,
}

impl RolloutRecording {
    /// Builds the start state (running any setup tasks), the composer and the file `out` (.mp4
    /// or .gif), so every error that does not depend on the episode surfaces here.
    pub fn new(scene: &Scene, settings: &RecordSettings, out: &Path) -> Result<RolloutRecording> {
        let (world, tasks) = match settings.rollout {
            Rollout::Task { task, seed } => (episode::task_world(scene, task, seed)?, vec![task]),
            Rollout::Chain { index } => {
                let chain = chains::chain(EVAL_SEED, index);
                (episode::chain_world(scene, &chain, index)?, chain.tasks.to_vec())
            }
        };
        let composer = Composer::new(&world, settings.compose)?;
        let ComposeOptions { width, height, .. } = settings.compose;
        let recorder = Recorder::create(out, width, height, CONTROL_HZ)?;
        let progress = Progress::new(&tasks, matches!(settings.rollout, Rollout::Chain { .. }));
        Ok(RolloutRecording { settings: settings.clone(), world, composer, recorder, progress })
    }

    /// Runs the episode with `policy` (the scripted expert, or a VLA told the evaluation
    /// phrasings), recording every step. Setting `stop` (e.g. from a Ctrl-C handler) ends the run
    /// after the current step, with the file finished.
    pub fn run(self, policy: &mut dyn Policy, stop: &AtomicBool) -> Result<RecordedRollout> {
        let RolloutRecording { settings, mut world, mut composer, mut recorder, mut progress } = self;
        recorder.push(composer.compose(&world, &progress.caption()))?;
        let (mut steps, mut stopped, mut failure) = (0, false, None);
        let mut observe = |world: &World, report: StepReport| {
            progress.update(report);
            steps += 1;
            if let Err(error) = recorder.push(composer.compose(world, &progress.caption())) {
                failure = Some(error);
                return ControlFlow::Break(());
            }
            stopped = stop.load(Ordering::Relaxed) || settings.max_steps.is_some_and(|max| steps >= max);
            if stopped { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        };
        let outcomes = match settings.rollout {
            Rollout::Task { task, .. } => {
                vec![episode::run_subtask(&mut world, policy, task, MAX_STEPS_PER_SUBTASK, &mut observe)]
            }
            Rollout::Chain { index } => {
                episode::run_chain(&mut world, &chains::chain(EVAL_SEED, index), policy, &mut observe)
            }
        };
        if let Some(error) = failure {
            return Err(error);
        }
        let last_frame = composer.frame().clone();
        if !stopped {
            let hold_frames = (settings.hold_final_s * CONTROL_HZ).round() as usize;
            for _ in 0..hold_frames {
                recorder.push(&last_frame)?;
            }
        }
        Ok(RecordedRollout { summary: recorder.finish()?, outcomes, stopped, last_frame })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(task: Task, step: usize, success: bool) -> StepReport {
        StepReport { task, step, success }
    }

    #[test]
    fn progress_marks_each_subtask_of_a_chain_in_turn() {
        let tasks = [Task::OpenDrawer, Task::TurnOnLed];
        let mut progress = Progress::new(&tasks, true);
        assert_eq!(progress.caption().chain, [SubtaskStatus::Running, SubtaskStatus::Pending]);
        progress.update(report(Task::OpenDrawer, 1, false));
        progress.update(report(Task::OpenDrawer, 2, true));
        let caption = progress.caption();
        assert_eq!((caption.step, caption.status), (2, SubtaskStatus::Succeeded));
        progress.update(report(Task::TurnOnLed, 1, false));
        let caption = progress.caption();
        assert_eq!(caption.instruction, Instructions::embedded().eval_phrasing(Task::TurnOnLed));
        assert_eq!(caption.chain, [SubtaskStatus::Succeeded, SubtaskStatus::Running]);
        progress.update(report(Task::TurnOnLed, MAX_STEPS_PER_SUBTASK, false));
        assert_eq!(progress.caption().chain, [SubtaskStatus::Succeeded, SubtaskStatus::Failed]);
    }

    #[test]
    fn single_task_captions_have_no_chain_chips() {
        let mut progress = Progress::new(&[Task::OpenDrawer], false);
        progress.update(report(Task::OpenDrawer, 1, false));
        assert!(progress.caption().chain.is_empty());
    }
}
