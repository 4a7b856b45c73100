//! CALVIN's evaluation protocol (DESIGN.md §4) over many chains, one policy per worker thread.
//!
//! Chain `i` always starts from the same state (its symbolic start sampled with seed `i`) and its
//! subtasks run through [`episode::run_chain`], the loop the GUI and the recorder use, so a result
//! does not depend on the thread count or on how the chains are split into shards.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::results::{ChainRecord, EvalResults, Metrics, Shard, SubtaskRecord};
use crate::lang::instructions::Instructions;
use crate::parallel;
use crate::sim::arm::Action;
use crate::sim::chains;
use crate::sim::episode;
use crate::sim::expert::{Expert, ExpertSettings, Policy};
use crate::sim::scene::Scene;
use crate::sim::tasks::Task;
use crate::sim::world::World;
use crate::vla::driver::VlaDriver;

/// A policy evaluated by one worker thread.
pub type WorkerPolicy = Box<dyn Policy + Send>;

/// Which words a model under evaluation is told for each subtask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Wording {
    /// The task's held-out evaluation phrasing, which never appeared in training: CALVIN's
    /// protocol.
    #[default]
    HeldOut,
    /// The task's first training phrasing. Not CALVIN's protocol: against a held-out evaluation
    /// of the same model on the same chains it measures what the unseen words cost.
    Training,
}

impl Wording {
    /// The name `--wording` and `results.json` use (both kebab-case, derived).
    pub fn name(self) -> String {
        let value = clap::ValueEnum::to_possible_value(&self).expect("no wording is skipped");
        value.get_name().to_owned()
    }

    /// The words for `task`.
    pub fn phrasing(self, task: Task) -> &'static str {
        let instructions = Instructions::embedded();
        match self {
            Wording::HeldOut => instructions.eval_phrasing(task),
            Wording::Training => &instructions.train.of(task)[0].text,
        }
    }
}

/// A trained model under evaluation: for each subtask it is told nothing but the task's phrasing
/// in its [`Wording`].
pub struct InstructedModel {
    driver: VlaDriver,
    wording: Wording,
}

impl InstructedModel {
    /// The model folder `dir` under evaluation, run on `device`; the error names the folder.
    pub fn load(dir: &Path, device: &Device, wording: Wording) -> Result<InstructedModel> {
        let driver =
            VlaDriver::load(dir, device).with_context(|| format!("cannot load the model in {}", dir.display()))?;
        Ok(InstructedModel { driver, wording })
    }
}

impl Policy for InstructedModel {
    fn begin(&mut self, task: Task, world: &World) {
        let instruction = self.wording.phrasing(task);
        // Loading checked the model and tokenizer, so a failure here is a bug, not bad input.
        if let Err(error) = self.driver.begin(instruction, world) {
            panic!("cannot start {task} with \"{instruction}\": {error}");
        }
    }

    fn act(&mut self, world: &World) -> Action {
        self.driver.act(world).unwrap_or_else(|error| panic!("{error}"))
    }
}

/// One chain's policy: the expert for the first `leads` subtasks, then `policy`.
struct ExpertLeads<'a> {
    expert: Expert,
    leads: usize,
    begun: usize,
    policy: &'a mut dyn Policy,
}

impl ExpertLeads<'_> {
    fn acting(&mut self) -> &mut dyn Policy {
        if self.begun <= self.leads { &mut self.expert } else { self.policy }
    }
}

impl Policy for ExpertLeads<'_> {
    fn begin(&mut self, task: Task, world: &World) {
        self.begun += 1;
        self.acting().begin(task, world);
    }

    fn act(&mut self, world: &World) -> Action {
        self.acting().act(world)
    }
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalSettings {
    /// Names the policy in the results (a model folder, or `expert`).
    pub model: String,
    /// The scene every chain runs in.
    pub scene: Scene,
    /// Seed the chains are drawn with (CALVIN-style evaluations use [`chains::EVAL_SEED`]).
    pub seed: u64,
    /// Chains in the whole evaluation.
    pub total_chains: u64,
    /// The scripted expert does this many leading subtasks of every chain, the policy the rest.
    /// With 1, the policy starts every chain's second subtask from a state the expert left, as
    /// the demonstrations' mid-chain starts do; against a plain evaluation (0), that separates what
    /// the policy's own ends of subtasks cost from what a mid-chain start costs as such.
    pub expert_leads: usize,
    /// The words a model is told (an expert reads the task, not words).
    pub wording: Wording,
    /// The slice of them this run covers.
    pub shard: Shard,
    /// Worker threads, each with its own policy and world.
    pub threads: usize,
}

/// Runs the chains of `settings.shard` with a policy from `make_policy` per thread, calling
/// `on_chain` as each chain finishes (from the worker threads, in completion order).
pub fn evaluate(
    settings: &EvalSettings,
    make_policy: &dyn Fn() -> Result<WorkerPolicy>,
    on_chain: &(dyn Fn(&ChainRecord) + Sync),
) -> Result<EvalResults> {
    let begin = Instant::now();
    let indices = settings.shard.range(settings.total_chains);
    let threads = settings.threads.clamp(1, (indices.end - indices.start).max(1) as usize);
    let policies = (0..threads).map(|_| make_policy()).collect::<Result<Vec<_>>>()?;
    let records = parallel::map_with(policies, (indices.end - indices.start) as usize, |policy, offset| {
        let index = indices.start + offset as u64;
        let record = run_chain(&settings.scene, settings.seed, index, settings.expert_leads, policy.as_mut());
        if let Ok(record) = &record {
            on_chain(record);
        }
        record
    });
    let chains = records.into_iter().collect::<Result<Vec<_>>>()?;
    Ok(EvalResults {
        model: settings.model.clone(),
        scene: settings.scene.name.clone(),
        seed: settings.seed,
        total_chains: settings.total_chains,
        expert_leads: settings.expert_leads,
        wording: settings.wording,
        shards: vec![settings.shard],
        metrics: Metrics::of(&chains),
        wall_time_s: begin.elapsed().as_secs_f64(),
        threads,
        chains,
    })
}

/// Chain `index` of `seed`, from its own start state, its first `expert_leads` subtasks done by
/// the scripted expert.
pub fn run_chain(
    scene: &Scene,
    seed: u64,
    index: u64,
    expert_leads: usize,
    policy: &mut dyn Policy,
) -> Result<ChainRecord> {
    let chain = chains::chain(seed, index);
    let mut world = episode::chain_world(scene, &chain, index)
        .with_context(|| format!("chain {index}: no start state in scene {}", scene.name))?;
    let mut led = ExpertLeads { expert: Expert::new(ExpertSettings::default()), leads: expert_leads, begun: 0, policy };
    let outcomes = episode::run_chain(&mut world, &chain, &mut led, &mut episode::no_observer);
    Ok(ChainRecord {
        index,
        tasks: chain.tasks.iter().map(|t| t.name()).collect(),
        subtasks: outcomes
            .iter()
            .map(|o| SubtaskRecord { task: o.task.name(), success: o.success, steps: o.steps })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uniform random arm actions and a random gripper command every step.
    struct RandomPolicy(crate::sim::rng::Rng);

    impl Policy for RandomPolicy {
        fn begin(&mut self, _: Task, _: &World) {}

        fn act(&mut self, _: &World) -> Action {
            let mut action = [0.0; 7];
            for value in &mut action[..6] {
                *value = self.0.uniform(-1.0, 1.0);
            }
            action[6] = if self.0.chance(0.5) { 1.0 } else { -1.0 };
            Action::Relative(action)
        }
    }

    fn settings(model: &str, total_chains: u64) -> EvalSettings {
        EvalSettings {
            model: model.into(),
            scene: Scene::resolve("d").unwrap(),
            seed: chains::EVAL_SEED,
            total_chains,
            expert_leads: 0,
            wording: Wording::HeldOut,
            shard: Shard::WHOLE,
            threads: 2,
        }
    }

    #[test]
    fn only_the_training_wording_tells_words_seen_in_training() {
        let instructions = Instructions::embedded();
        for (task, training) in instructions.train.by_task() {
            let seen = |words: &str| training.iter().any(|phrasing| phrasing.text == words);
            assert_eq!(Wording::HeldOut.phrasing(task), instructions.eval_phrasing(task));
            assert!(!seen(Wording::HeldOut.phrasing(task)), "{task}");
            assert!(seen(Wording::Training.phrasing(task)), "{task}");
        }
    }

    #[test]
    fn a_random_policy_completes_next_to_nothing() {
        let settings = settings("random", 6);
        let random = || Ok(Box::new(RandomPolicy(crate::sim::rng::Rng::new(5))) as WorkerPolicy);
        let results = evaluate(&settings, &random, &|_| {}).unwrap();
        assert!(
            results.metrics.avg_len <= 1.0 / 6.0,
            "random actions should complete almost nothing: {:?}",
            results.metrics
        );
        assert_eq!(results.metrics.success_rates[1], 0.0, "never two tasks in a row");
    }

    #[test]
    fn an_expert_lead_does_the_first_subtask_and_the_policy_the_rest() {
        let settings = EvalSettings { expert_leads: 1, ..settings("random", 6) };
        let random = || Ok(Box::new(RandomPolicy(crate::sim::rng::Rng::new(5))) as WorkerPolicy);
        let results = evaluate(&settings, &random, &|_| {}).unwrap();
        assert_eq!(results.expert_leads, 1);
        assert!(results.metrics.success_rates[0] >= 5.0 / 6.0, "the expert's first subtasks: {:?}", results.metrics);
        // The expert alone would do most second subtasks too; random actions do one by chance.
        assert!(
            results.metrics.success_rates[1] <= 1.0 / 6.0,
            "random actions after the expert: {:?}",
            results.metrics
        );
    }

    #[test]
    fn results_do_not_depend_on_threads_or_shards() {
        let settings = settings("expert", 4);
        let expert = || Ok(Box::new(Expert::new(ExpertSettings::default())) as WorkerPolicy);
        let seen = std::sync::Mutex::new(Vec::new());
        let whole = evaluate(&settings, &expert, &|record| seen.lock().unwrap().push(record.index)).unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, [0, 1, 2, 3]);
        assert!(whole.metrics.avg_len > 3.0, "the expert completes most of its chains: {:?}", whole.metrics);

        let shards: Vec<(String, EvalResults)> = (0..2)
            .map(|index| {
                let shard = EvalSettings { shard: Shard { index, count: 2 }, threads: 1, ..settings.clone() };
                (format!("shard {index}"), evaluate(&shard, &expert, &|_| {}).unwrap())
            })
            .collect();
        let merged = EvalResults::merge(&shards, false).unwrap();
        assert_eq!(merged.chains, whole.chains);
        assert_eq!(merged.metrics, whole.metrics);
    }
}
