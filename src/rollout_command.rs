//! `vlasim rollout`: a model folder acts on one free-form instruction from a start state, headless
//! — the scriptable twin of typing a command in the GUI. Every step prints which tasks the oracle
//! sees achieved since the start; at the end, every task it saw completed. `--model expert` runs the
//! scripted expert on the task the words name instead, as a reference; `--expert-first` has the
//! expert do other tasks before, so the model starts mid-chain.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::device_args::DeviceArgs;
use serde::Serialize;

use vlasim::lang;
use vlasim::sim::arm::Action;
use vlasim::sim::chains::{self, EVAL_SEED};
use vlasim::sim::episode::{self, MAX_STEPS_PER_SUBTASK};
use vlasim::sim::expert::{Expert, ExpertSettings, Policy};
use vlasim::sim::oracle;
use vlasim::sim::scene::Scene;
use vlasim::sim::tasks::Task;
use vlasim::sim::world::{CONTROL_HZ, World};
use vlasim::video::compose::{Caption, ComposeOptions, Composer, SubtaskStatus};
use vlasim::video::recorder::Recorder;
use vlasim::vla::driver::VlaDriver;

/// Arguments of `vlasim rollout`.
#[derive(Args)]
pub struct RolloutArgs {
    /// Model folder (config.json, model.safetensors, tokenizer.json), or `expert` (the scripted
    /// expert on the task the words name).
    #[arg(long)]
    model: PathBuf,
    /// What to tell the model, in any words.
    #[arg(long)]
    instruction: String,
    /// Scene: a, b, c, d or a path to a scene file.
    #[arg(long, default_value = "d")]
    scene: String,
    /// Start state: evaluation chain SEED's, as in the GUI.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A task the scripted expert does before the model acts, in any words that name one (repeat
    /// for several, done in turn): the model then starts where an evaluation chain's later
    /// subtask starts, from the state the expert left.
    #[arg(long = "expert-first", value_name = "WORDS")]
    expert_first: Vec<String>,
    /// Control steps at most; when the instruction names a task, the run also ends once it is done.
    #[arg(long, default_value_t = MAX_STEPS_PER_SUBTASK)]
    steps: usize,
    /// Also record the rollout (.mp4 or .gif), with the policy cameras inset.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the whole run as one JSON object instead of a line per step.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// What `--json` prints.
#[derive(Serialize)]
struct RolloutReport {
    instruction: String,
    /// The task the words name, when the language layer finds one.
    task: Option<String>,
    /// Whether that task can start from the state the model starts in (CALVIN's preconditions, as
    /// the GUI and the evaluation chains apply them); absent without a task.
    task_can_start: Option<bool>,
    unknown_words: Vec<String>,
    /// The tasks the expert did before (`--expert-first`), in order.
    expert_first: Vec<String>,
    /// Every step, in order.
    steps: Vec<StepReport>,
    /// Every task seen achieved at some step, in the order first seen.
    completed: Vec<String>,
}

/// One control step of `--json`: what the model did and what came of it.
#[derive(Serialize)]
struct StepReport {
    /// The 7-D action the model chose (relative: Δposition, ΔEuler, gripper).
    action: [f64; 7],
    /// CALVIN's 15-D robot state after the step.
    robot_obs: [f64; 15],
    /// CALVIN's 24-D scene state after the step (`World::scene_obs`: the articulations and lights,
    /// then each block's position and Euler angles).
    scene_obs: [f64; 24],
    /// The tasks achieved since the start.
    achieved: Vec<String>,
}

pub fn run(args: RolloutArgs) -> Result<()> {
    if args.instruction.trim().is_empty() {
        bail!("the instruction is empty: say what the arm should do, e.g. --instruction \"open the drawer\"");
    }
    let scene = Scene::resolve(&args.scene)?;
    let understanding = lang::understand(&args.instruction);
    let task = understanding.task.filter(|_| understanding.problem.is_none());
    let mut actor = if args.model.as_os_str() == "expert" {
        let Some(task) = task else {
            bail!("the expert needs words that name one task, e.g. --instruction \"open the drawer\"");
        };
        Actor::Expert(Expert::new(ExpertSettings::default()), task)
    } else {
        let driver = VlaDriver::load(&args.model, &args.device.open()?)
            .with_context(|| format!("cannot load the model in {}", args.model.display()))?;
        Actor::Model(driver)
    };
    if !args.json {
        if let Some(problem) = &understanding.problem {
            eprintln!("note: the words name no single task ({problem}); the model acts on them anyway");
        }
        if !understanding.unknown_words.is_empty() {
            eprintln!("note: words the instruction set never uses: {}", understanding.unknown_words.join(", "));
        }
    }

    let chain = chains::chain(EVAL_SEED, args.seed);
    let mut world = episode::chain_world(&scene, &chain, args.seed)?;
    let expert_first = args
        .expert_first
        .iter()
        .map(|words| expert_does(&mut world, words, args.json))
        .collect::<Result<Vec<Task>>>()?;
    let start = world.state();
    let task_can_start = task.map(|task| task.apply(&oracle::perceive(&scene, &start)).is_some());
    if let (Actor::Expert(..), Some(task), Some(false)) = (&actor, task, task_can_start) {
        bail!("the expert cannot start {task} from this state (the GUI would refuse it too)");
    }
    if let (false, Some(task), Some(false)) = (args.json, task, task_can_start) {
        eprintln!(
            "note: {task} cannot start from seed {}'s start state (CALVIN's preconditions; the GUI would refuse it), \
             so it cannot be seen done: the model acts anyway; another --seed starts elsewhere",
            args.seed
        );
    }
    actor.begin(&args.instruction, &world)?;
    let mut video = match &args.out {
        Some(path) => {
            let options = ComposeOptions { inset: true, ..ComposeOptions::default() };
            let composer = Composer::new(&world, options)?;
            Some((Recorder::create(path, options.width, options.height, CONTROL_HZ)?, composer))
        }
        None => None,
    };
    let caption = |step: usize, done: bool| Caption {
        instruction: args.instruction.clone(),
        step,
        budget: args.steps,
        status: if done { SubtaskStatus::Succeeded } else { SubtaskStatus::Running },
        chain: Vec::new(),
    };
    if let Some((recorder, composer)) = &mut video {
        recorder.push(composer.compose(&world, &caption(0, false)))?;
    }
    let mut report = RolloutReport {
        instruction: args.instruction.clone(),
        task: task.map(|t| t.name()),
        task_can_start,
        unknown_words: understanding.unknown_words.clone(),
        expert_first: expert_first.iter().map(|t| t.name()).collect(),
        steps: Vec::new(),
        completed: Vec::new(),
    };
    for step in 1..=args.steps {
        let action = actor.act(&world)?;
        world.step(&action);
        let achieved: Vec<String> = oracle::achieved(&start, &world.state()).iter().map(|t| t.name()).collect();
        for name in &achieved {
            if !report.completed.contains(name) {
                report.completed.push(name.clone());
            }
        }
        let done = task.is_some_and(|t| achieved.contains(&t.name()));
        if !args.json {
            let seen = if achieved.is_empty() { "-".to_string() } else { achieved.join(", ") };
            println!("step {step:3}: {seen}");
        }
        if let Some((recorder, composer)) = &mut video {
            recorder.push(composer.compose(&world, &caption(step, done)))?;
        }
        let (Action::Relative(action) | Action::Absolute(action)) = action;
        report.steps.push(StepReport { action, robot_obs: world.robot_obs(), scene_obs: world.scene_obs(), achieved });
        if done {
            break;
        }
    }
    if let Some((recorder, _)) = video {
        let summary = recorder.finish()?;
        if !args.json {
            println!("wrote {} ({} frames)", summary.path.display(), summary.frames);
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let completed = if report.completed.is_empty() { "none".to_string() } else { report.completed.join(", ") };
        println!("completed: {completed}");
        if let Some(task) = task {
            let verdict = if report.completed.contains(&task.name()) { "done" } else { "not done" };
            println!("{task}: {verdict} after {} steps", report.steps.len());
        }
    }
    Ok(())
}

/// The scripted expert does the task `words` name from the current state of `world`; an error when
/// the words name none, the task cannot start there, or the expert fails it.
fn expert_does(world: &mut World, words: &str, quiet: bool) -> Result<Task> {
    let understanding = lang::understand(words);
    let Some(task) = understanding.task.filter(|_| understanding.problem.is_none()) else {
        bail!("--expert-first \"{words}\" names no single task, e.g. --expert-first \"open the drawer\"");
    };
    if task.apply(&oracle::perceive(world.scene(), &world.state())).is_none() {
        bail!("--expert-first \"{words}\": {task} cannot start from this state");
    }
    let mut expert = Expert::new(ExpertSettings::default());
    let outcome = episode::run_subtask(world, &mut expert, task, MAX_STEPS_PER_SUBTASK, &mut episode::no_observer);
    if !outcome.success {
        bail!("--expert-first \"{words}\": the expert failed {task} within {MAX_STEPS_PER_SUBTASK} steps");
    }
    if !quiet {
        println!("expert: {task} done in {} steps", outcome.steps);
    }
    Ok(task)
}

/// Who acts: a model on the words, or the scripted expert on the task they name.
// One per run: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Actor {
    Model(VlaDriver),
    Expert(Expert, Task),
}

impl Actor {
    fn begin(&mut self, instruction: &str, world: &World) -> Result<()> {
        match self {
            Actor::Model(driver) => drop(driver.begin(instruction, world)?),
            Actor::Expert(expert, task) => expert.begin(*task, world),
        }
        Ok(())
    }

    fn act(&mut self, world: &World) -> Result<Action> {
        Ok(match self {
            Actor::Model(driver) => driver.act(world)?,
            Actor::Expert(expert, _) => expert.act(world),
        })
    }
}
