//! What the GUI is doing, as plain Rust: the world, who drives the arm, the subtask or chain being
//! attempted, the oracle's verdict each step and the history of typed commands. Bevy systems only
//! call into it, so its behaviour is testable without a window.

use anyhow::Result;
use bevy::prelude::Resource;

use crate::data::episode::{EpisodeInfo, RawEpisode, RawFrame, Source};
use crate::lang::instructions::Instructions;
use crate::lang::{self, Problem, Understanding};
use crate::sim::arm::Action;
use crate::sim::camera::{Image, PolicyCameras, View};
use crate::sim::chains::{self, Chain, EVAL_SEED};
use crate::sim::episode::{self, Attempt, MAX_STEPS_PER_SUBTASK, StepReport};
use crate::sim::expert::{Expert, ExpertSettings};
use crate::sim::oracle;
use crate::sim::scene::{BlockColor, Scene};
use crate::sim::tasks::{Category, Symbolic, Task};
use crate::sim::world::World;
use crate::video::compose::SubtaskStatus;
use crate::vla::attention_maps::PatchAttention;
use crate::vla::catalog::ModelCard;
use crate::vla::driver::{DriverError, VlaDriver};

/// Teleop's action with no key held: stay, gripper open.
const OPEN_GRIPPER_STILL: [f64; 7] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0];

/// Who moves the arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Driver {
    /// The scripted expert carries out the task the instruction names.
    Expert,
    /// A person moves the end-effector with the keyboard; the oracle watches the named task.
    Teleop,
    /// The selected VLA reads the typed words, the policy cameras and the robot state each step.
    Vla,
}

impl Driver {
    /// Shown in the driver selector.
    pub fn label(self) -> &'static str {
        match self {
            Driver::Expert => "Scripted expert",
            Driver::Teleop => "Keyboard teleop",
            Driver::Vla => "VLA",
        }
    }
}

/// How a typed command ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Still being attempted.
    Running,
    /// The oracle saw the task achieved after this many steps.
    Succeeded(usize),
    /// The step budget ran out, or the command was interrupted, after this many steps.
    Failed(usize),
    /// Not attempted: the text names no task, or the task cannot start from this state.
    Rejected(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Running => f.write_str("running"),
            Outcome::Succeeded(steps) => write!(f, "succeeded in {steps} steps"),
            Outcome::Failed(steps) => write!(f, "failed after {steps} steps"),
            Outcome::Rejected(reason) => write!(f, "rejected: {reason}"),
        }
    }
}

/// One typed command and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// What the person typed (or the chain's instruction).
    pub instruction: String,
    /// The task it was understood as.
    pub task: Option<Task>,
    /// Its outcome.
    pub outcome: Outcome,
}

/// The oracle's view of the current subtask, one entry per control step, and the chain's results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// The subtask being watched.
    pub task: Option<Task>,
    /// The oracle's verdict after each step of the subtask.
    pub oracle: Vec<bool>,
    /// The subtask's step budget.
    pub budget: usize,
    /// For a chain: one entry per subtask, `None` until attempted.
    pub chain: Vec<Option<bool>>,
}

/// The VLA driving the arm, and what it attended to at its last step.
struct ActiveModel {
    card: ModelCard,
    driver: VlaDriver,
    /// Capture attention each step (it costs a full pass over the history window).
    watch_attention: bool,
    /// Also run the occlusion check each step (one batched pass per patch-grid cell).
    check_occlusion: bool,
    attention: Option<PatchAttention>,
}

enum Activity {
    Idle,
    Subtask(Attempt),
    Chain { chain: Chain, index: usize, attempt: Attempt },
}

/// The live simulation behind the GUI.
#[derive(Resource)]
pub struct Session {
    scene: Scene,
    seed: u64,
    world: World,
    cameras: PolicyCameras,
    static_image: Image,
    gripper_image: Image,
    driver: Driver,
    expert: Expert,
    /// The relative action the keyboard asks for this step (teleop).
    teleop_action: [f64; 7],
    activity: Activity,
    history: Vec<Command>,
    timeline: Timeline,
    /// What the language layer made of the last instruction, when it has something to warn about.
    warning: Option<Understanding>,
    /// Bumped whenever the world is rebuilt, so views respawn their entities.
    generation: u64,
    model: Option<ActiveModel>,
    /// Why the VLA stopped, until the next attempt.
    model_problem: Option<String>,
    /// Side-by-side mode: a second session with another model, given every instruction, chain,
    /// reset and step this one gets.
    partner: Option<Box<Session>>,
    /// The teleoperated subtask's frames so far.
    teleop_frames: Vec<RawFrame>,
    /// The last teleoperated subtask the oracle saw done, until it is taken.
    demo: Option<RawEpisode>,
}

impl Session {
    /// A session on `scene`, starting from evaluation chain `seed`'s start state.
    pub fn new(scene: Scene, seed: u64) -> Result<Self> {
        let world = start_world(&scene, seed)?;
        let mut cameras = PolicyCameras::new(&world);
        let static_image = cameras.render(&world, View::Static);
        let gripper_image = cameras.render(&world, View::Gripper);
        Ok(Self {
            scene,
            seed,
            world,
            cameras,
            static_image,
            gripper_image,
            driver: Driver::Expert,
            expert: Expert::new(ExpertSettings::default()),
            teleop_action: OPEN_GRIPPER_STILL,
            activity: Activity::Idle,
            history: Vec::new(),
            timeline: Timeline::default(),
            warning: None,
            generation: 0,
            model: None,
            model_problem: None,
            partner: None,
            teleop_frames: Vec::new(),
            demo: None,
        })
    }

    /// Rebuilds the world on `scene` from chain `seed`'s start state; the history is kept.
    pub fn reset(&mut self, scene: Scene, seed: u64) -> Result<()> {
        if let Some(partner) = &mut self.partner {
            partner.reset(scene.clone(), seed)?;
        }
        self.reset_own(scene, seed)
    }

    fn reset_own(&mut self, scene: Scene, seed: u64) -> Result<()> {
        let world = start_world(&scene, seed)?;
        self.stop_attempt();
        self.cameras = PolicyCameras::new(&world);
        self.world = world;
        self.scene = scene;
        self.seed = seed;
        self.timeline = Timeline::default();
        self.teleop_action = OPEN_GRIPPER_STILL;
        self.generation += 1;
        self.render_cameras();
        Ok(())
    }

    /// The simulated world.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The scene being simulated.
    pub fn scene(&self) -> &Scene {
        &self.scene
    }

    /// The start-state seed (the evaluation chain whose start state this is).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Counts world rebuilds.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The image the policy's static camera saw after the last step.
    pub fn static_image(&self) -> &Image {
        &self.static_image
    }

    /// The image the policy's gripper camera saw after the last step.
    pub fn gripper_image(&self) -> &Image {
        &self.gripper_image
    }

    /// Who drives the arm.
    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// Changes the driver; whatever was being attempted is interrupted.
    pub fn set_driver(&mut self, driver: Driver) {
        if driver != self.driver {
            self.stop_attempt();
            self.driver = driver;
        }
    }

    /// Hands the arm to `driver` (from `vla::catalog::load`) for the VLA driver; whatever it
    /// was attempting is interrupted.
    pub fn set_model(&mut self, card: ModelCard, driver: VlaDriver) {
        if self.driver == Driver::Vla {
            self.stop_attempt();
        }
        let (watch_attention, check_occlusion) =
            self.model.as_ref().map_or((false, false), |model| (model.watch_attention, model.check_occlusion));
        self.model = Some(ActiveModel { card, driver, watch_attention, check_occlusion, attention: None });
    }

    /// The VLA the VLA driver uses, if one is loaded.
    pub fn model(&self) -> Option<&ModelCard> {
        self.model.as_ref().map(|model| &model.card)
    }

    /// Whether the VLA's attention is captured each step.
    pub fn watches_attention(&self) -> bool {
        self.model.as_ref().is_some_and(|model| model.watch_attention)
    }

    /// Captures (or stops capturing) the VLA's attention each step.
    pub fn watch_attention(&mut self, watch: bool) {
        if let Some(partner) = &mut self.partner {
            partner.watch_attention(watch);
        }
        if let Some(model) = &mut self.model {
            model.watch_attention = watch;
            if !watch {
                model.attention = None;
            }
        }
    }

    /// Runs (or stops running) the occlusion check with the attention each step.
    pub fn check_occlusion(&mut self, check: bool) {
        if let Some(partner) = &mut self.partner {
            partner.check_occlusion(check);
        }
        if let Some(model) = &mut self.model {
            model.check_occlusion = check;
        }
    }

    /// Where the VLA's action token attended at its last step, with the static image it saw.
    pub fn attention(&self) -> Option<(&PatchAttention, &Image)> {
        let model = self.model.as_ref()?;
        Some((model.attention.as_ref()?, model.driver.last_images().0))
    }

    /// Why the VLA stopped acting, if it failed.
    pub fn model_problem(&self) -> Option<&str> {
        self.model_problem.as_deref()
    }

    /// Sets the keyboard's relative action for the next steps (teleop only).
    pub fn set_teleop_action(&mut self, action: [f64; 7]) {
        self.teleop_action = action;
    }

    /// The gripper command the keyboard holds (+1 open, -1 closed).
    pub fn teleop_gripper(&self) -> f64 {
        self.teleop_action[6]
    }

    /// Typed commands, oldest first.
    pub fn history(&self) -> &[Command] {
        &self.history
    }

    /// The oracle's per-step view of the current or last subtask.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// The last instruction's unknown words or problem, with suggestions, until the next one.
    pub fn warning(&self) -> Option<&Understanding> {
        self.warning.as_ref()
    }

    /// The current or last subtask as the oracle sees it.
    pub fn subtask_status(&self) -> SubtaskStatus {
        match self.timeline.oracle.last() {
            _ if self.timeline.task.is_none() => SubtaskStatus::Pending,
            Some(true) => SubtaskStatus::Succeeded,
            _ if self.is_busy() => SubtaskStatus::Running,
            _ => SubtaskStatus::Failed,
        }
    }

    /// Every subtask of the chain being run, in order; empty outside a chain.
    pub fn chain_statuses(&self) -> Vec<SubtaskStatus> {
        let current = self.timeline.chain.iter().take_while(|r| r.is_some()).count();
        let running = self.is_busy();
        let status = |(i, result): (usize, &Option<bool>)| match result {
            Some(true) => SubtaskStatus::Succeeded,
            Some(false) => SubtaskStatus::Failed,
            None if i == current && running => SubtaskStatus::Running,
            None => SubtaskStatus::Pending,
        };
        self.timeline.chain.iter().enumerate().map(status).collect()
    }

    /// Whether a subtask or chain is in progress.
    pub fn is_busy(&self) -> bool {
        !matches!(self.activity, Activity::Idle)
    }

    /// Starts side-by-side mode: both this session and a second one driven by `driver` restart
    /// from this scene's and seed's start state, and from then on get the same instructions.
    pub fn compare_with(&mut self, card: ModelCard, driver: VlaDriver) -> Result<()> {
        self.partner = None;
        let mut partner = Session::new(self.scene.clone(), self.seed)?;
        partner.set_driver(Driver::Vla);
        partner.set_model(card, driver);
        partner.watch_attention(self.watches_attention());
        self.reset(self.scene.clone(), self.seed)?;
        self.partner = Some(Box::new(partner));
        Ok(())
    }

    /// Ends side-by-side mode.
    pub fn stop_comparing(&mut self) {
        self.partner = None;
    }

    /// The second session of side-by-side mode.
    pub fn partner(&self) -> Option<&Session> {
        self.partner.as_deref()
    }

    /// Understands a typed instruction and starts the task it names from the current state.
    /// An instruction that fits several tasks ("lift the red block") is read as the only one of
    /// them that can start from the current state, if there is exactly one. Returns what the
    /// language layer made of it, so the panel can show unknown words.
    pub fn submit(&mut self, instruction: &str) -> Understanding {
        if let Some(partner) = &mut self.partner {
            partner.submit(instruction);
        }
        let mut understanding = lang::understand(instruction);
        let instruction = instruction.trim().to_string();
        let now = oracle::perceive(&self.scene, &self.world.state());
        if understanding.problem == Some(Problem::Ambiguous) {
            let mut feasible = understanding.suggestions.iter().filter(|(task, _)| task.apply(&now).is_some());
            if let (Some((task, _)), None) = (feasible.next(), feasible.next()) {
                understanding.task = Some(*task);
                understanding.problem = None;
            }
        }
        self.warning =
            (understanding.problem.is_some() || !understanding.unknown_words.is_empty()).then(|| understanding.clone());
        let task = match (&understanding.problem, understanding.task) {
            (None, Some(task)) => task,
            _ => {
                let reason = describe_problem(&understanding);
                self.history.push(Command { instruction, task: None, outcome: Outcome::Rejected(reason) });
                return understanding;
            }
        };
        if task.apply(&now).is_none() {
            let reason = format!("{task} cannot start from this state ({})", describe_state(&now, task));
            self.history.push(Command { instruction, task: Some(task), outcome: Outcome::Rejected(reason) });
            return understanding;
        }
        // Only a command that starts replaces the one in progress; a rejected one leaves it running.
        let attempt = match self.begin(task, &instruction) {
            Ok(attempt) => attempt,
            Err(reason) => {
                self.history.push(Command { instruction, task: Some(task), outcome: Outcome::Rejected(reason) });
                return understanding;
            }
        };
        self.stop_attempt();
        self.history.push(Command { instruction, task: Some(task), outcome: Outcome::Running });
        self.activity = Activity::Subtask(attempt);
        self.timeline =
            Timeline { task: Some(task), oracle: Vec::new(), budget: MAX_STEPS_PER_SUBTASK, chain: Vec::new() };
        understanding
    }

    /// Resets to evaluation chain `index`'s start state and attempts its five subtasks in order,
    /// each under its held-out evaluation phrasing, stopping at the first failure (CALVIN's protocol).
    pub fn run_chain(&mut self, index: u64) -> Result<()> {
        if let Some(partner) = &mut self.partner {
            partner.run_chain(index)?;
        }
        let scene = self.scene.clone();
        self.reset_own(scene, index)?;
        let chain = chains::chain(EVAL_SEED, index);
        let first = chain.tasks[0];
        let instruction = Instructions::embedded().eval_phrasing(first).to_string();
        let attempt = self.begin(first, &instruction).map_err(anyhow::Error::msg)?;
        self.history.push(Command { instruction, task: Some(first), outcome: Outcome::Running });
        self.timeline = Timeline {
            task: Some(first),
            oracle: Vec::new(),
            budget: MAX_STEPS_PER_SUBTASK,
            chain: vec![None; chain.tasks.len()],
        };
        self.activity = Activity::Chain { chain, index: 0, attempt };
        Ok(())
    }

    /// Stops whatever is being attempted; a running command counts as failed.
    pub fn interrupt(&mut self) {
        if let Some(partner) = &mut self.partner {
            partner.interrupt();
        }
        self.stop_attempt();
    }

    fn stop_attempt(&mut self) {
        if let Activity::Subtask(attempt) | Activity::Chain { attempt, .. } = &self.activity {
            let steps = attempt.steps();
            self.finish_command(Outcome::Failed(steps));
        }
        self.activity = Activity::Idle;
    }

    /// One 30 Hz control step: the driver acts, the world steps, the oracle judges, the cameras render.
    pub fn step(&mut self) -> Option<StepReport> {
        if let Some(partner) = &mut self.partner {
            partner.step();
        }
        let action = match (self.driver, self.is_busy()) {
            (Driver::Expert, _) | (Driver::Vla, false) => None,
            (Driver::Teleop, busy) => {
                if busy {
                    self.record_teleop_frame();
                }
                Some(Action::Relative(self.teleop_action))
            }
            (Driver::Vla, true) => match self.vla_action() {
                Ok(action) => Some(action),
                Err(error) => {
                    // The arm holds still from here: the attempt ends and the panel says why.
                    self.stop_attempt();
                    self.model_problem = Some(format!("the model failed: {error}"));
                    None
                }
            },
        };
        let report = match &mut self.activity {
            Activity::Idle => {
                let hold = self.world.hold_action();
                self.world.step(action.as_ref().unwrap_or(&hold));
                None
            }
            Activity::Subtask(attempt) | Activity::Chain { attempt, .. } => Some(match &action {
                Some(action) => attempt.step_with(&mut self.world, action),
                None => attempt.step(&mut self.world, &mut self.expert),
            }),
        };
        if let Some(report) = report {
            self.timeline.oracle.push(report.success);
            self.advance_after(report);
        }
        self.render_cameras();
        report
    }

    /// Starts `task` under `instruction` with the current driver; says why it cannot.
    fn begin(&mut self, task: Task, instruction: &str) -> Result<Attempt, String> {
        self.model_problem = None;
        match self.driver {
            Driver::Expert => Ok(Attempt::begin(&self.world, &mut self.expert, task, MAX_STEPS_PER_SUBTASK)),
            Driver::Teleop => {
                self.teleop_frames.clear();
                Ok(Attempt::watch(&self.world, task, MAX_STEPS_PER_SUBTASK))
            }
            Driver::Vla => {
                let model = self.model.as_mut().ok_or("no VLA model is loaded")?;
                model.attention = None;
                model
                    .driver
                    .begin(instruction, &self.world)
                    .map_err(|error| format!("the model cannot start: {error}"))?;
                Ok(Attempt::watch(&self.world, task, MAX_STEPS_PER_SUBTASK))
            }
        }
    }

    /// Keeps the observation a teleop action is taken from, for the demonstration.
    fn record_teleop_frame(&mut self) {
        let as_f32 = |values: &[f64]| values.iter().map(|v| *v as f32).collect::<Vec<f32>>();
        self.teleop_frames.push(RawFrame {
            static_image: self.static_image.clone(),
            gripper_image: self.gripper_image.clone(),
            robot_obs: as_f32(&self.world.robot_obs()).try_into().expect("15 values"),
            scene_obs: as_f32(&self.world.scene_obs()).try_into().expect("24 values"),
            action: as_f32(&self.teleop_action).try_into().expect("7 values"),
        });
    }

    /// The last teleoperated subtask the oracle saw done, as a demonstration; taken once.
    pub fn take_demo(&mut self) -> Option<RawEpisode> {
        self.demo.take()
    }

    /// Whether a teleoperated demonstration waits to be saved.
    pub fn has_demo(&self) -> bool {
        self.demo.is_some()
    }

    fn vla_action(&mut self) -> Result<Action, DriverError> {
        let model = self.model.as_mut().ok_or(DriverError::NotStarted)?;
        if !model.watch_attention {
            return model.driver.act(&self.world);
        }
        let (action, mut attention) = model.driver.act_with_attention(&self.world)?;
        if let Some(attention) = attention.as_mut().filter(|_| model.check_occlusion) {
            attention.occlusion = Some(model.driver.occlusion(attention.grid)?);
        }
        model.attention = attention;
        Ok(action)
    }

    /// Ends a finished subtask, and in a chain moves on to the next one or stops at a failure.
    fn advance_after(&mut self, report: StepReport) {
        let over = match &self.activity {
            Activity::Subtask(attempt) | Activity::Chain { attempt, .. } => attempt.is_over(),
            Activity::Idle => false,
        };
        if !over {
            return;
        }
        let frames = std::mem::take(&mut self.teleop_frames);
        if self.driver == Driver::Teleop && report.success {
            let instruction = self.history.iter().rev().find(|c| c.outcome == Outcome::Running);
            self.demo = Some(RawEpisode {
                info: EpisodeInfo {
                    scene: self.scene.name.clone(),
                    task: report.task.name(),
                    instruction: instruction.map_or_else(|| report.task.name(), |c| c.instruction.clone()),
                    source: Source::Teleop,
                    seed: self.seed,
                },
                frames,
            });
        }
        let outcome = if report.success { Outcome::Succeeded(report.step) } else { Outcome::Failed(report.step) };
        self.finish_command(outcome);
        let activity = std::mem::replace(&mut self.activity, Activity::Idle);
        if let Activity::Chain { chain, index, .. } = activity {
            self.timeline.chain[index] = Some(report.success);
            let next = index + 1;
            if report.success && next < chain.tasks.len() {
                let task = chain.tasks[next];
                let instruction = Instructions::embedded().eval_phrasing(task).to_string();
                match self.begin(task, &instruction) {
                    Ok(attempt) => {
                        self.history.push(Command { instruction, task: Some(task), outcome: Outcome::Running });
                        self.timeline.task = Some(task);
                        self.timeline.oracle.clear();
                        self.activity = Activity::Chain { chain, index: next, attempt };
                    }
                    Err(reason) => {
                        self.history.push(Command {
                            instruction,
                            task: Some(task),
                            outcome: Outcome::Rejected(reason),
                        });
                        self.timeline.chain[next] = Some(false);
                    }
                }
            }
        }
    }

    fn finish_command(&mut self, outcome: Outcome) {
        // Rejected commands typed meanwhile may follow the running one in the history.
        if let Some(command) = self.history.iter_mut().rev().find(|c| c.outcome == Outcome::Running) {
            command.outcome = outcome;
        }
    }

    fn render_cameras(&mut self) {
        self.cameras.render_into(&self.world, View::Static, &mut self.static_image);
        self.cameras.render_into(&self.world, View::Gripper, &mut self.gripper_image);
    }
}

fn start_world(scene: &Scene, seed: u64) -> Result<World> {
    let chain = chains::chain(EVAL_SEED, seed);
    Ok(episode::chain_world(scene, &chain, seed)?)
}

/// Why a typed instruction names no task, in words for the panel.
fn describe_problem(understanding: &Understanding) -> String {
    let mut reason = match &understanding.problem {
        Some(problem) => problem.to_string(),
        None => "it names no task".to_string(),
    };
    if !understanding.unknown_words.is_empty() {
        reason += &format!("; unknown words: {}", understanding.unknown_words.join(", "));
    }
    if let Some((_, phrasing)) = understanding.suggestions.first() {
        reason += &format!("; did you mean \"{phrasing}\"?");
    }
    reason
}

/// The part of the symbolic state that blocks `task`, in words.
fn describe_state(state: &Symbolic, task: Task) -> String {
    match task.category() {
        Category::Drawer => format!("the drawer is {}", if state.drawer_open { "open" } else { "closed" }),
        Category::Slider => format!("the door is on the {}", state.slider.name()),
        Category::Lightbulb => format!("the bulb is {}", if state.lightbulb { "on" } else { "off" }),
        Category::Led => format!("the LED is {}", if state.led { "on" } else { "off" }),
        _ => {
            let places: Vec<String> =
                BlockColor::ALL.iter().map(|c| format!("{} {}", c.name(), state.blocks[c.index()])).collect();
            format!("blocks: {}", places.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::tokenizer;
    use crate::sim::episode::run_chain;
    use crate::vla::Vla;
    use crate::vla::presets::preset_with;
    use crate::vla::test_support::shrunk;

    fn session(seed: u64) -> Session {
        Session::new(Scene::resolve("d").unwrap(), seed).unwrap()
    }

    fn run_until_idle(session: &mut Session) {
        for _ in 0..=chains::CHAIN_LENGTH * MAX_STEPS_PER_SUBTASK {
            if !session.is_busy() {
                return;
            }
            session.step();
        }
        panic!("still busy");
    }

    #[test]
    fn a_typed_instruction_runs_the_expert_to_success() {
        let mut session = session(0);
        let led_on = session.world().state().led_on;
        let instruction = if led_on {
            "press the button to turn off the green light"
        } else {
            "press the button to turn on the green light"
        };
        let understanding = session.submit(instruction);
        assert!(understanding.problem.is_none(), "{understanding:?}");
        assert!(session.is_busy());
        run_until_idle(&mut session);
        let command = &session.history()[0];
        assert!(matches!(command.outcome, Outcome::Succeeded(_)), "{command:?}");
        assert_eq!(session.world().state().led_on, !led_on);
        assert_eq!(session.timeline().oracle.last(), Some(&true));
    }

    #[test]
    fn a_rejected_instruction_leaves_the_running_task_alone() {
        let mut session = session(0);
        let led_on = session.world().state().led_on;
        session.submit(if led_on { "turn off the led" } else { "turn on the led" });
        session.step();
        session.submit("asdf qwer");
        assert!(session.is_busy());
        run_until_idle(&mut session);
        assert!(matches!(session.history()[0].outcome, Outcome::Succeeded(_)), "{:?}", session.history());
        assert!(matches!(session.history()[1].outcome, Outcome::Rejected(_)), "{:?}", session.history());
    }

    #[test]
    fn a_task_whose_precondition_fails_is_rejected_with_the_reason() {
        let mut session = session(0);
        let open = oracle::perceive(session.scene(), &session.world().state()).drawer_open;
        session.submit(if open { "open the drawer" } else { "close the drawer" });
        let Outcome::Rejected(reason) = &session.history()[0].outcome else { panic!("{:?}", session.history()) };
        assert!(reason.contains(if open { "the drawer is open" } else { "the drawer is closed" }), "{reason}");
        assert!(!session.is_busy());
    }

    #[test]
    fn garbage_is_rejected_and_the_arm_stays_put() {
        let mut session = session(1);
        let long = "lorem ipsum ".repeat(1000);
        for text in ["", "   ", "asdf qwer", "請打開抽屜", "🤖🦾", long.as_str()] {
            let before = session.world().ee_pose().position_m;
            session.submit(text);
            assert!(matches!(session.history().last().unwrap().outcome, Outcome::Rejected(_)), "{text:.30}");
            for _ in 0..10 {
                session.step();
            }
            let moved = (session.world().ee_pose().position_m - before).norm();
            assert!(moved < 0.002, "the arm moved {moved} m after `{text:.30}`");
        }
    }

    #[test]
    fn a_chain_in_the_gui_matches_the_headless_evaluation() {
        let index = 4;
        let mut session = session(0);
        session.run_chain(index).unwrap();
        run_until_idle(&mut session);
        let chain = chains::chain(EVAL_SEED, index);
        let mut world = start_world(session.scene(), index).unwrap();
        let outcomes =
            run_chain(&mut world, &chain, &mut Expert::new(ExpertSettings::default()), &mut episode::no_observer);
        let gui: Vec<Option<bool>> = session.timeline().chain.clone();
        let headless: Vec<Option<bool>> = (0..chain.tasks.len()).map(|i| outcomes.get(i).map(|o| o.success)).collect();
        assert_eq!(gui, headless);
        assert_eq!(session.world().scene_obs(), world.scene_obs(), "same seed, same trajectory");
    }

    #[test]
    fn side_by_side_gives_both_sessions_the_same_start_and_instructions() {
        let mut session = session(2);
        for _ in 0..5 {
            session.step();
        }
        let model = Vla::new(shrunk(preset_with("uform", "policy_head").unwrap()), &candle_core::Device::Cpu).unwrap();
        let card = ModelCard {
            name: "untrained".into(),
            dir: "untrained".into(),
            preset: "uform".into(),
            image_tokens: model.image_tokens(),
            parameters: model.params().parameter_count(),
            members: 1,
            evaluation: None,
        };
        let tokenizer = tokenizer::train([], tokenizer::DEFAULT_VOCAB_SIZE).unwrap();
        session.compare_with(card, VlaDriver::new(model, tokenizer)).unwrap();
        let partner = session.partner().unwrap();
        assert_eq!((session.world().steps(), partner.world().steps()), (0, 0), "both restart");
        assert_eq!(session.world().robot_obs(), partner.world().robot_obs());
        assert_eq!(session.world().scene_obs(), partner.world().scene_obs());

        let led_on = session.world().state().led_on;
        session.submit(if led_on { "turn off the led" } else { "turn on the led" });
        for _ in 0..4 {
            session.step();
        }
        let partner = session.partner().unwrap();
        assert_eq!(partner.history().len(), 1);
        assert_eq!(partner.history()[0].task, session.history()[0].task);
        assert_eq!(partner.driver(), Driver::Vla);
        assert_eq!((partner.timeline().oracle.len(), session.timeline().oracle.len()), (4, 4));
        assert_ne!(partner.world().robot_obs(), session.world().robot_obs(), "the expert and the VLA move differently");
        session.interrupt();
        assert!(!session.is_busy() && !session.partner().unwrap().is_busy(), "stopping stops both");
        session.stop_comparing();
        assert!(session.partner().is_none());
    }

    #[test]
    fn a_teleoperated_success_becomes_a_demonstration_in_a_lerobot_dataset() {
        use crate::data::reader::Dataset;
        use crate::sim::expert::Policy;

        let mut session = session(0);
        session.set_driver(Driver::Teleop);
        let led_on = session.world().state().led_on;
        session.submit(if led_on { "turn off the led" } else { "turn on the led" });
        let task = session.timeline().task.unwrap();
        // The keyboard's actions, played by the expert's hand.
        let mut hand = Expert::new(ExpertSettings::default());
        hand.begin(task, session.world());
        while session.is_busy() {
            let Action::Relative(action) = hand.act(session.world()) else { panic!("the expert acts relatively") };
            session.set_teleop_action(action);
            session.step();
        }
        let Outcome::Succeeded(steps) = session.history()[0].outcome else { panic!("{:?}", session.history()) };
        let demo = session.take_demo().expect("a succeeded teleop subtask is a demonstration");
        assert!(session.take_demo().is_none(), "taken once");
        assert_eq!((demo.frames.len(), demo.info.task.as_str()), (steps, task.name().as_str()));

        let dir = std::env::temp_dir().join(format!("vlasim-teleop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        crate::data::teleop::add_demo(&dir, demo.clone()).unwrap();
        let summary = crate::data::teleop::add_demo(&dir, demo.clone()).unwrap();
        assert_eq!(summary.episodes, 2, "demonstrations accumulate");
        let dataset = Dataset::open(&dir).unwrap();
        let episode = &dataset.episodes[1];
        assert_eq!((episode.source.as_str(), episode.task.as_str()), ("teleop", task.name().as_str()));
        assert_eq!(episode.instruction, session.history()[0].instruction);
        let actions: Vec<f32> = demo.frames.iter().flat_map(|f| f.action).collect();
        assert_eq!(episode.actions, actions, "the keyboard's actions, exactly");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pausing_between_commands_keeps_a_lifted_block_in_the_gripper() {
        let mut session = session(0);
        let start = oracle::perceive(session.scene(), &session.world().state());
        let color = BlockColor::ALL.into_iter().find(|c| start.is_free_on_table(*c)).unwrap();
        session.submit(&format!("lift the {} block from the table", color.name()));
        run_until_idle(&mut session);
        assert!(matches!(session.history()[0].outcome, Outcome::Succeeded(_)), "{:?}", session.history());
        for _ in 0..60 {
            session.step();
        }
        assert_eq!(session.world().grasped(), Some(color));
    }
}
