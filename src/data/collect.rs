//! `vlasim collect`: runs the scripted expert on every (scene, task, episode) unit and every play
//! sequence on worker threads, stages each finished unit on disk, and assembles the LeRobot v3
//! dataset once all are done.
//!
//! Each unit's seed is derived from (global seed, scene, task or play, index) alone, and the
//! dataset is assembled in unit order, so the same arguments give the same bytes whatever the
//! thread count and however often the run was interrupted. A unit counts as done once its marker
//! file exists (written after its episodes, atomically); resuming skips those and redoes the rest,
//! so an interrupted unit is simply simulated again.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result, bail, ensure};
use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::episode::{self, EncodedEpisode};
use super::lerobot;
use super::simulate::{self, DaggerLabels, DemoOutcome, SimulateSettings};
use crate::sim::rng::Rng;
use crate::sim::scene::Scene;
use crate::sim::tasks::Task;
use crate::vla::driver::VlaDriver;

/// Where unfinished collections keep their finished units, inside the output folder.
pub const STAGING_DIR: &str = ".staging";
/// The collection's arguments, kept beside the staged units (and in the finished dataset's meta/)
/// so a resume with different arguments is refused instead of mixing two datasets.
pub const SETTINGS_FILE: &str = "vlasim_collect.json";
/// Attempts per demonstration unit: a failed attempt is discarded and retried from a new seed.
pub const ATTEMPTS_PER_DEMO: u64 = 4;

/// Everything that determines a collected dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectSettings {
    /// Scenes, by name or path.
    pub scenes: Vec<String>,
    /// Tasks demonstrated (ids).
    pub tasks: Vec<String>,
    /// Successful demonstrations wanted per (scene, task).
    pub episodes_per_task: usize,
    /// Play sequences per scene.
    pub play_sequences: usize,
    /// Tasks attempted per play sequence.
    pub play_tasks: usize,
    /// Shortest play window (steps).
    pub window_steps: usize,
    /// DART noise on the executed actions (action units).
    pub noise_std: f64,
    /// Share of demonstrations that begin mid-chain (see [`SimulateSettings::mid_chain_share`]).
    #[serde(default)]
    pub mid_chain_share: f64,
    /// Global seed.
    pub seed: u64,
    /// DAgger episodes driven by a trained model, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dagger: Option<DaggerSettings>,
}

/// Episodes in which a trained model acts, labelled by the expert or by the model itself (see
/// [`simulate::dagger`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaggerSettings {
    /// The model folder that acts.
    pub model: PathBuf,
    /// Episodes per (scene, task).
    pub episodes_per_task: usize,
    /// Who labels what.
    #[serde(flatten)]
    pub labels: DaggerLabels,
}

/// One piece of work.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unit {
    Demo { scene: usize, task: Task, index: usize },
    Play { scene: usize, index: usize },
    Dagger { scene: usize, task: Task, index: usize },
}

/// What a finished unit produced; its marker file holds this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct UnitResult {
    episodes: usize,
    failed: usize,
}

/// Progress reported after every finished unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Units finished (including those found staged).
    pub units_done: usize,
    /// Units in all.
    pub units: usize,
    /// Episodes staged so far.
    pub episodes: usize,
    /// Expert attempts discarded as failures so far.
    pub failed: usize,
}

/// How a collection ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Collected {
    /// The dataset was written.
    Finished(lerobot::DatasetSummary),
    /// Stopped from outside: finished units are staged, the run can be resumed.
    Stopped(Progress),
    /// The output folder already holds this dataset.
    AlreadyComplete,
}

/// A 64-bit FNV-1a hash, to turn unit names into seed streams.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

impl Unit {
    fn name(&self, scenes: &[Scene]) -> String {
        match self {
            Unit::Demo { scene, task, index } => format!("demo-{}-{task}-{index:05}", scenes[*scene].name),
            Unit::Play { scene, index } => format!("play-{}-{index:05}", scenes[*scene].name),
            Unit::Dagger { scene, task, index } => format!("dagger-{}-{task}-{index:05}", scenes[*scene].name),
        }
    }

    fn seed(&self, global_seed: u64, scenes: &[Scene]) -> u64 {
        Rng::stream(global_seed, fnv1a(&self.name(scenes))).next_u64()
    }
}

/// Collects into `out`, calling `progress` after every unit; stops early (resumably) when `stop` is set.
pub fn collect(
    settings: &CollectSettings,
    out: &Path,
    workers: usize,
    stop: &AtomicBool,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Collected> {
    let scenes = settings.scenes.iter().map(|s| Scene::resolve(s)).collect::<Result<Vec<_>, _>>()?;
    let tasks = settings
        .tasks
        .iter()
        .map(|name| {
            Task::from_name(name).with_context(|| format!("unknown task `{name}` (see `vlasim expert --list`)"))
        })
        .collect::<Result<Vec<_>>>()?;
    let dagger_episodes = settings.dagger.as_ref().map_or(0, |dagger| dagger.episodes_per_task);
    ensure!(settings.episodes_per_task > 0 || settings.play_sequences > 0 || dagger_episodes > 0, "nothing to collect");
    ensure!(settings.noise_std.is_finite() && settings.noise_std >= 0.0, "noise must be ≥ 0");
    ensure!((0.0..=1.0).contains(&settings.mid_chain_share), "the mid-chain share must be in [0, 1]");
    let learner = match &settings.dagger {
        Some(dagger) => {
            if let DaggerLabels::Shadow { expert_share } = dagger.labels {
                ensure!((0.0..=1.0).contains(&expert_share), "the expert's share of steps must be in [0, 1]");
            }
            let driver = VlaDriver::load(&dagger.model, &Device::Cpu)
                .with_context(|| format!("cannot load the DAgger model in {}", dagger.model.display()))?;
            Some(driver)
        }
        None => None,
    };
    let names: Vec<&String> = scenes.iter().map(|s| &s.name).collect();
    ensure!(
        names.iter().enumerate().all(|(i, n)| !names[..i].contains(n)),
        "scenes must have distinct names, got {names:?}"
    );
    let settings_json = serde_json::to_string_pretty(settings)?;
    let finished_settings = out.join("meta").join(SETTINGS_FILE);
    if out.join(lerobot::INFO_PATH).exists() {
        let existing = std::fs::read_to_string(&finished_settings).unwrap_or_default();
        ensure!(
            existing == settings_json,
            "{} already holds a dataset collected with other arguments (see {}); choose another --out",
            out.display(),
            finished_settings.display()
        );
        return Ok(Collected::AlreadyComplete);
    }
    let staging = out.join(STAGING_DIR);
    std::fs::create_dir_all(&staging).with_context(|| format!("cannot create {}", staging.display()))?;
    let staged_settings = staging.join(SETTINGS_FILE);
    match std::fs::read_to_string(&staged_settings) {
        Ok(existing) if existing != settings_json => bail!(
            "{} holds an unfinished collection with other arguments (see {}); resume it with those, or choose another --out",
            out.display(),
            staged_settings.display()
        ),
        Ok(_) => {}
        Err(_) => std::fs::write(&staged_settings, &settings_json)
            .with_context(|| format!("cannot write {}", staged_settings.display()))?,
    }

    let mut units = Vec::new();
    for scene in 0..scenes.len() {
        for &task in &tasks {
            units.extend((0..settings.episodes_per_task).map(|index| Unit::Demo { scene, task, index }));
        }
    }
    for scene in 0..scenes.len() {
        units.extend((0..settings.play_sequences).map(|index| Unit::Play { scene, index }));
    }
    for scene in 0..scenes.len() {
        for &task in &tasks {
            units.extend((0..dagger_episodes).map(|index| Unit::Dagger { scene, task, index }));
        }
    }
    let simulate_settings = SimulateSettings {
        noise_std: settings.noise_std,
        mid_chain_share: settings.mid_chain_share,
        play_tasks: settings.play_tasks,
        window_steps: settings.window_steps,
    };

    let mut results: Vec<Option<UnitResult>> = units.iter().map(|u| read_marker(&staging, &u.name(&scenes))).collect();
    let pending: Vec<usize> = (0..units.len()).filter(|&i| results[i].is_none()).collect();
    let tally = Mutex::new(Progress {
        units_done: units.len() - pending.len(),
        units: units.len(),
        episodes: results.iter().flatten().map(|r| r.episodes).sum(),
        failed: results.iter().flatten().map(|r| r.failed).sum(),
    });
    progress(*tally.lock().expect("no worker panicked holding the tally"));
    let next = AtomicUsize::new(0);
    let run_worker = || -> Result<Vec<(usize, UnitResult)>> {
        let mut done = Vec::new();
        let mut learner = learner.as_ref().map(VlaDriver::fresh);
        let labels = settings.dagger.as_ref().map(|dagger| dagger.labels);
        while !stop.load(Ordering::Relaxed) {
            let Some(&unit_index) = pending.get(next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            let unit = &units[unit_index];
            let learner = learner.as_mut().zip(labels);
            let Some(result) = run_unit(unit, &scenes, settings.seed, &simulate_settings, learner, &staging, stop)?
            else {
                break;
            };
            done.push((unit_index, result));
            let mut tally = tally.lock().expect("no worker panicked holding the tally");
            tally.units_done += 1;
            tally.episodes += result.episodes;
            tally.failed += result.failed;
            progress(*tally);
        }
        Ok(done)
    };
    let finished: Vec<Result<Vec<(usize, UnitResult)>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.max(1)).map(|_| scope.spawn(run_worker)).collect();
        handles.into_iter().map(|h| h.join().expect("a collection worker panicked")).collect()
    });
    for worker in finished {
        for (unit_index, result) in worker? {
            results[unit_index] = Some(result);
        }
    }
    let tally = *tally.lock().expect("workers are done");
    if results.iter().any(Option::is_none) {
        return Ok(Collected::Stopped(tally));
    }

    let mut episodes: Vec<EncodedEpisode> = Vec::with_capacity(tally.episodes);
    for (unit, result) in units.iter().zip(&results) {
        let result = result.expect("every unit finished");
        for k in 0..result.episodes {
            episodes.push(episode::unstage(&episode_path(&staging, &unit.name(&scenes), k))?);
        }
    }
    let summary = lerobot::write_dataset(out, &episodes, tally.failed)?;
    std::fs::write(&finished_settings, &settings_json)
        .with_context(|| format!("cannot write {}", finished_settings.display()))?;
    std::fs::remove_dir_all(&staging).with_context(|| format!("cannot remove {}", staging.display()))?;
    Ok(Collected::Finished(summary))
}

fn episode_path(staging: &Path, unit_name: &str, k: usize) -> PathBuf {
    staging.join(format!("{unit_name}-{k:03}.episode"))
}

fn marker_path(staging: &Path, unit_name: &str) -> PathBuf {
    staging.join(format!("{unit_name}.done"))
}

fn read_marker(staging: &Path, unit_name: &str) -> Option<UnitResult> {
    let text = std::fs::read_to_string(marker_path(staging, unit_name)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Simulates, encodes and stages one unit; `None` when stopped.
fn run_unit(
    unit: &Unit,
    scenes: &[Scene],
    global_seed: u64,
    settings: &SimulateSettings,
    learner: Option<(&mut VlaDriver, DaggerLabels)>,
    staging: &Path,
    stop: &AtomicBool,
) -> Result<Option<UnitResult>> {
    let seed = unit.seed(global_seed, scenes);
    let (raw, failed) = match *unit {
        Unit::Demo { scene, task, .. } => {
            let mut failed = 0;
            let mut success = None;
            for attempt in 0..ATTEMPTS_PER_DEMO {
                match simulate::demo(&scenes[scene], task, Rng::stream(seed, attempt).next_u64(), settings, stop) {
                    DemoOutcome::Success(raw) => {
                        success = Some(raw);
                        break;
                    }
                    DemoOutcome::Failed => failed += 1,
                    DemoOutcome::Stopped => return Ok(None),
                }
            }
            (success.into_iter().collect::<Vec<_>>(), failed)
        }
        Unit::Play { scene, .. } => match simulate::play(&scenes[scene], seed, settings, stop)? {
            Some(windows) => windows,
            None => return Ok(None),
        },
        Unit::Dagger { scene, task, .. } => {
            let (learner, labels) = learner.expect("DAgger units exist only with a learner");
            // No episode counts as failed, like a demonstration that could not be set up or done.
            match simulate::dagger(&scenes[scene], task, seed, settings, learner, labels, stop)? {
                Some(raw) => (vec![raw], 0),
                None if stop.load(Ordering::Relaxed) => return Ok(None),
                None => (Vec::new(), 1),
            }
        }
    };
    let name = unit.name(scenes);
    let episodes = raw.len();
    for (k, raw) in raw.into_iter().enumerate() {
        episode::stage(&episode_path(staging, &name, k), &EncodedEpisode::encode(raw)?)?;
    }
    let result = UnitResult { episodes, failed };
    let marker = marker_path(staging, &name);
    let partial = marker.with_extension("partial");
    std::fs::write(&partial, serde_json::to_string(&result)?)
        .and_then(|()| std::fs::rename(&partial, &marker))
        .with_context(|| format!("cannot write {}", marker.display()))?;
    Ok(Some(result))
}
