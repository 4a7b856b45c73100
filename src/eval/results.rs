//! What an evaluation produces: one record per chain, the CALVIN metrics computed from them, and
//! the `results.json` file that holds both. Shards of one evaluation are merged by concatenating
//! their chain records, so the metrics of a merged file are exactly those of a single run.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::harness::Wording;
use crate::sim::chains::CHAIN_LENGTH;

/// One attempted subtask of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskRecord {
    /// CALVIN's task name.
    pub task: String,
    /// The oracle saw it achieved within the budget.
    pub success: bool,
    /// Control steps used.
    pub steps: usize,
}

/// One evaluation chain: its five tasks and the subtasks attempted (up to the first failure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainRecord {
    /// Index among the chains of the evaluation seed.
    pub index: u64,
    /// The chain's five task names.
    pub tasks: Vec<String>,
    /// The subtasks attempted, in order; all but possibly the last succeeded.
    pub subtasks: Vec<SubtaskRecord>,
}

impl ChainRecord {
    /// Consecutive subtasks completed (0–5).
    pub fn completed(&self) -> usize {
        self.subtasks.iter().take_while(|s| s.success).count()
    }
}

/// Attempts and successes of one task across all chains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCount {
    /// Times the task was attempted (reached in a chain).
    pub attempts: usize,
    /// Times it succeeded.
    pub successes: usize,
}

impl TaskCount {
    /// Successes per attempt, or `None` when never attempted.
    pub fn rate(&self) -> Option<f64> {
        (self.attempts > 0).then(|| self.successes as f64 / self.attempts as f64)
    }
}

/// CALVIN's metrics over a set of chains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Chains evaluated.
    pub chains: usize,
    /// Share of chains with at least i consecutive successes, i = 1..5.
    pub success_rates: [f64; CHAIN_LENGTH],
    /// Mean number of consecutive successes (0–5).
    pub avg_len: f64,
    /// Per task, over every attempt in every chain.
    pub per_task: BTreeMap<String, TaskCount>,
}

impl Metrics {
    /// The metrics of `records`.
    pub fn of(records: &[ChainRecord]) -> Metrics {
        let chains = records.len();
        let completed: Vec<usize> = records.iter().map(ChainRecord::completed).collect();
        let share = |i: usize| completed.iter().filter(|c| **c >= i).count() as f64 / chains.max(1) as f64;
        let mut per_task: BTreeMap<String, TaskCount> = BTreeMap::new();
        for subtask in records.iter().flat_map(|r| &r.subtasks) {
            let count = per_task.entry(subtask.task.clone()).or_default();
            count.attempts += 1;
            count.successes += usize::from(subtask.success);
        }
        Metrics {
            chains,
            success_rates: std::array::from_fn(|i| share(i + 1)),
            avg_len: completed.iter().sum::<usize>() as f64 / chains.max(1) as f64,
            per_task,
        }
    }

    /// A human-readable summary: SR@1..5, Avg. Len. and the per-task table.
    pub fn summary(&self) -> String {
        let rates: Vec<String> = self.success_rates.iter().map(|r| format!("{:.1} %", 100.0 * r)).collect();
        let mut text = format!(
            "{} chains: SR@1..5 {}; Avg. Len. {:.3}\n\n| task | success | attempts |\n|---|---|---|\n",
            self.chains,
            rates.join(", "),
            self.avg_len
        );
        for (task, count) in &self.per_task {
            let rate = count.rate().map_or("-".into(), |r| format!("{:.1} %", 100.0 * r));
            text.push_str(&format!("| {task} | {rate} | {} |\n", count.attempts));
        }
        text
    }
}

/// Which part of an evaluation a run covers: slice `index` of `count` equal contiguous slices of
/// the chains, so a batch scheduler's array job (Slurm `--array=0-(n-1)`, a Kubernetes indexed
/// job) can split one evaluation across machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 0-based slice index.
    pub index: usize,
    /// Number of slices.
    pub count: usize,
}

impl Shard {
    /// The whole evaluation in one run.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// The chain indices this shard evaluates out of `total`.
    pub fn range(self, total: u64) -> Range<u64> {
        let bound = |i: usize| (total as u128 * i as u128 / self.count as u128) as u64;
        bound(self.index)..bound(self.index + 1)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// Parses `k/n`, e.g. `3/8` for the fourth of eight slices.
    fn from_str(text: &str) -> Result<Shard, String> {
        let invalid = || format!("invalid shard `{text}`: expected k/n with 0 <= k < n, e.g. 0/4");
        let (index, count) = text.split_once('/').ok_or_else(invalid)?;
        let index: usize = index.trim().parse().map_err(|_| invalid())?;
        let count: usize = count.trim().parse().map_err(|_| invalid())?;
        if count == 0 || index >= count {
            return Err(invalid());
        }
        Ok(Shard { index, count })
    }
}

/// The contents of `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalResults {
    /// The policy evaluated: a model folder, or `expert`.
    pub model: String,
    /// Scene name.
    pub scene: String,
    /// Seed the chains were drawn with.
    pub seed: u64,
    /// Chains in the whole evaluation (all shards).
    pub total_chains: u64,
    /// Leading subtasks of every chain the scripted expert did instead of the policy (see
    /// [`EvalSettings::expert_leads`](super::EvalSettings::expert_leads)); 0 in a plain evaluation.
    #[serde(default)]
    pub expert_leads: usize,
    /// The words the model was told; held-out phrasings in CALVIN's protocol (and in every file
    /// written before the choice existed).
    #[serde(default)]
    pub wording: Wording,
    /// The shards these records come from (one for a single run; all of them after a merge).
    pub shards: Vec<Shard>,
    /// Metrics over `chains`.
    pub metrics: Metrics,
    /// Seconds of wall time, summed over shards.
    pub wall_time_s: f64,
    /// Worker threads per shard.
    pub threads: usize,
    /// One record per chain, in index order.
    pub chains: Vec<ChainRecord>,
}

/// Why results could not be read or merged.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// The file is not valid results JSON.
    #[error("{path}: not a vlasim results file: {source}")]
    Parse { path: String, source: serde_json::Error },
    /// The files come from different evaluations.
    #[error("cannot merge {path}: its {field} is {found}, the first file's is {expected}")]
    Mismatch { path: String, field: &'static str, found: String, expected: String },
    /// Chains are missing or repeated across the files.
    #[error("cannot merge: {0}")]
    Coverage(String),
}

impl EvalResults {
    /// Reads a results file.
    pub fn load(path: &Path) -> Result<EvalResults, ResultsError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ResultsError::Io { path: name.clone(), source })?;
        serde_json::from_str(&text).map_err(|source| ResultsError::Parse { path: name, source })
    }

    /// Writes the results as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), ResultsError> {
        let io = |source| ResultsError::Io { path: path.display().to_string(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let text = serde_json::to_string_pretty(self).expect("results serialise");
        std::fs::write(path, text + "\n").map_err(io)
    }

    /// Combines the shards of one evaluation; every chain must appear exactly once, unless
    /// `allow_partial`, in which case missing chains are allowed (the metrics cover those present).
    pub fn merge(parts: &[(String, EvalResults)], allow_partial: bool) -> Result<EvalResults, ResultsError> {
        let Some((_, first)) = parts.first() else {
            return Err(ResultsError::Coverage("no files given".into()));
        };
        for (path, part) in &parts[1..] {
            let check = |field: &'static str, found: String, expected: String| {
                if found == expected {
                    Ok(())
                } else {
                    Err(ResultsError::Mismatch { path: path.clone(), field, found, expected })
                }
            };
            check("model", part.model.clone(), first.model.clone())?;
            check("scene", part.scene.clone(), first.scene.clone())?;
            check("seed", part.seed.to_string(), first.seed.to_string())?;
            check("total_chains", part.total_chains.to_string(), first.total_chains.to_string())?;
            check("expert_leads", part.expert_leads.to_string(), first.expert_leads.to_string())?;
            check("wording", part.wording.name(), first.wording.name())?;
        }
        let mut chains: Vec<ChainRecord> = parts.iter().flat_map(|(_, p)| p.chains.iter().cloned()).collect();
        chains.sort_by_key(|c| c.index);
        if let Some(pair) = chains.windows(2).find(|w| w[0].index == w[1].index) {
            return Err(ResultsError::Coverage(format!("chain {} appears in more than one file", pair[0].index)));
        }
        if let Some(outside) = chains.iter().find(|c| c.index >= first.total_chains) {
            return Err(ResultsError::Coverage(format!(
                "chain {} is outside the evaluation's {} chains",
                outside.index, first.total_chains
            )));
        }
        let missing = first.total_chains as usize - chains.len();
        if missing > 0 && !allow_partial {
            let present: std::collections::HashSet<u64> = chains.iter().map(|c| c.index).collect();
            let examples: Vec<String> =
                (0..first.total_chains).filter(|i| !present.contains(i)).take(5).map(|i| i.to_string()).collect();
            return Err(ResultsError::Coverage(format!(
                "{missing} of {} chains are missing (e.g. {}); pass --allow-partial to merge anyway",
                first.total_chains,
                examples.join(", ")
            )));
        }
        let mut shards: Vec<Shard> = parts.iter().flat_map(|(_, p)| p.shards.iter().copied()).collect();
        shards.sort_by_key(|s| (s.count, s.index));
        Ok(EvalResults {
            model: first.model.clone(),
            scene: first.scene.clone(),
            seed: first.seed,
            total_chains: first.total_chains,
            expert_leads: first.expert_leads,
            wording: first.wording,
            shards,
            metrics: Metrics::of(&chains),
            wall_time_s: parts.iter().map(|(_, p)| p.wall_time_s).sum(),
            threads: first.threads,
            chains,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(index: u64, outcomes: &[bool]) -> ChainRecord {
        let tasks: Vec<String> = (0..CHAIN_LENGTH).map(|i| format!("task_{i}")).collect();
        ChainRecord {
            index,
            subtasks: outcomes
                .iter()
                .enumerate()
                .map(|(i, &success)| SubtaskRecord { task: tasks[i].clone(), success, steps: 10 })
                .collect(),
            tasks,
        }
    }

    fn results(records: Vec<ChainRecord>, total_chains: u64, shard: Shard) -> EvalResults {
        EvalResults {
            model: "m".into(),
            scene: "d".into(),
            seed: 1000,
            total_chains,
            expert_leads: 0,
            wording: Wording::HeldOut,
            shards: vec![shard],
            metrics: Metrics::of(&records),
            wall_time_s: 1.0,
            threads: 2,
            chains: records,
        }
    }

    #[test]
    fn metrics_follow_calvin_definitions() {
        let records = [
            record(0, &[true, true, true, true, true]),
            record(1, &[true, true, false]),
            record(2, &[false]),
            record(3, &[true, false]),
        ];
        let metrics = Metrics::of(&records);
        assert_eq!(metrics.success_rates, [0.75, 0.5, 0.25, 0.25, 0.25]);
        assert_eq!(metrics.avg_len, (5 + 2 + 1) as f64 / 4.0);
        assert_eq!(metrics.per_task["task_0"], TaskCount { attempts: 4, successes: 3 });
        assert_eq!(metrics.per_task["task_2"], TaskCount { attempts: 2, successes: 1 });
        assert_eq!(metrics.per_task["task_4"].rate(), Some(1.0));
    }

    #[test]
    fn shards_partition_the_chains() {
        for (total, count) in [(1000u64, 7usize), (5, 8), (1, 1), (999, 2)] {
            let mut next = 0;
            for index in 0..count {
                let range = Shard { index, count }.range(total);
                assert_eq!(range.start, next, "{total} chains in {count} shards");
                next = range.end;
            }
            assert_eq!(next, total);
        }
        assert_eq!("3/8".parse(), Ok(Shard { index: 3, count: 8 }));
        for bad in ["8/8", "1/0", "3", "a/b", "-1/4"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn merging_shards_gives_the_metrics_of_the_whole_and_rejects_gaps_and_overlaps() {
        let all: Vec<ChainRecord> = (0..6).map(|i| record(i, &[true; 5][..(i as usize % 5) + 1])).collect();
        let whole = results(all.clone(), 6, Shard::WHOLE);
        let first = results(all[..2].to_vec(), 6, Shard { index: 0, count: 3 });
        let second = results(all[2..4].to_vec(), 6, Shard { index: 1, count: 3 });
        let third = results(all[4..].to_vec(), 6, Shard { index: 2, count: 3 });
        let parts = |parts: &[&EvalResults]| -> Vec<(String, EvalResults)> {
            parts.iter().enumerate().map(|(i, p)| (format!("part{i}.json"), (*p).clone())).collect()
        };
        let merged = EvalResults::merge(&parts(&[&third, &first, &second]), false).unwrap();
        assert_eq!(merged.chains, whole.chains);
        assert_eq!(merged.metrics, whole.metrics);
        assert_eq!(merged.wall_time_s, 3.0);

        let gap = EvalResults::merge(&parts(&[&first, &third]), false).unwrap_err();
        assert!(gap.to_string().contains("2 of 6 chains are missing (e.g. 2, 3)"), "{gap}");
        let partial = EvalResults::merge(&parts(&[&first, &third]), true).unwrap();
        assert_eq!(partial.metrics.chains, 4);
        let overlap = EvalResults::merge(&parts(&[&first, &first, &second, &third]), false).unwrap_err();
        assert!(overlap.to_string().contains("chain 0 appears in more than one file"), "{overlap}");
        let other_model = EvalResults { model: "other".into(), ..second.clone() };
        let mismatch = EvalResults::merge(&parts(&[&first, &other_model, &third]), false).unwrap_err();
        assert!(mismatch.to_string().contains("part1.json: its model is other"), "{mismatch}");
        let other_words = EvalResults { wording: Wording::Training, ..second.clone() };
        let mismatch = EvalResults::merge(&parts(&[&first, &other_words, &third]), false).unwrap_err();
        assert!(mismatch.to_string().contains("its wording is training, the first file's is held-out"), "{mismatch}");
    }

    #[test]
    fn results_survive_a_round_trip_and_a_corrupt_file_is_named() {
        let dir = std::env::temp_dir().join(format!("vlasim-results-{}", std::process::id()));
        let path = dir.join("nested").join("results.json");
        let original = results(vec![record(0, &[true, false])], 1, Shard::WHOLE);
        original.save(&path).unwrap();
        assert_eq!(EvalResults::load(&path).unwrap(), original);
        let mut older = serde_json::to_value(&original).unwrap();
        older.as_object_mut().unwrap().remove("wording");
        let older: EvalResults = serde_json::from_value(older).unwrap();
        assert_eq!(older.wording, Wording::HeldOut, "files from before the choice are held-out evaluations");
        std::fs::write(&path, "{\"model\": 3").unwrap();
        let error = EvalResults::load(&path).unwrap_err().to_string();
        assert!(error.contains("results.json: not a vlasim results file"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
