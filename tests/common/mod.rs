//! What the dataset and training tests share: fresh output folders and a small collection.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use vlasim::data::collect::{self, CollectSettings, Collected};
use vlasim::data::lerobot::DatasetSummary;

/// An empty folder `name` under the test's scratch space.
pub fn out_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A few expert demonstrations and one play window on scene d, seed 7.
pub fn small_settings(tasks: &[&str]) -> CollectSettings {
    CollectSettings {
        scenes: vec!["d".into()],
        tasks: tasks.iter().map(|t| t.to_string()).collect(),
        episodes_per_task: 1,
        play_sequences: 1,
        play_tasks: 2,
        window_steps: 48,
        noise_std: 0.1,
        mid_chain_share: 0.5,
        seed: 7,
        dagger: None,
    }
}

/// Collects `settings` into `dir` on `workers` threads, to the end.
pub fn collect_into(dir: &Path, settings: &CollectSettings, workers: usize) -> DatasetSummary {
    match collect::collect(settings, dir, workers, &AtomicBool::new(false), &|_| {}).expect("collect") {
        Collected::Finished(summary) => summary,
        other => panic!("collection did not finish: {other:?}"),
    }
}
