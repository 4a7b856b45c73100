//! Teleoperated demonstrations: the GUI records an episode a person drove with the keyboard and
//! adds it to a LeRobot v3 dataset. Each demonstration is kept as a staged episode in the
//! dataset's `.teleop/` folder and the dataset is rewritten from all of them, so it grows one
//! demonstration at a time and is a complete, loadable dataset after each.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::episode::{self, EncodedEpisode, RawEpisode};
use super::lerobot::{self, DatasetSummary};

/// Where the GUI adds demonstrations unless told otherwise.
pub const DEFAULT_DEMOS_DIR: &str = "data/teleop";
/// The staged demonstrations inside the dataset folder.
pub const TELEOP_DIR: &str = ".teleop";

/// Adds `demo` to the dataset at `root` (created if missing) and rewrites it.
pub fn add_demo(root: &Path, demo: RawEpisode) -> Result<DatasetSummary> {
    let staging = root.join(TELEOP_DIR);
    std::fs::create_dir_all(&staging).with_context(|| format!("cannot create {}", staging.display()))?;
    let mut staged = staged_demos(&staging)?;
    let mut episodes: Vec<EncodedEpisode> = staged.iter().map(|path| episode::unstage(path)).collect::<Result<_>>()?;
    let encoded = EncodedEpisode::encode(demo)?;
    let path = staging.join(format!("{:06}.episode", staged.len()));
    episode::stage(&path, &encoded)?;
    staged.push(path);
    episodes.push(encoded);
    lerobot::write_dataset(root, &episodes, 0)
}

/// The staged demonstrations in recording order.
fn staged_demos(staging: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(staging).with_context(|| format!("cannot read {}", staging.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot read {}", staging.display()))?;
    paths.retain(|path| path.extension().is_some_and(|ext| ext == "episode"));
    paths.sort();
    Ok(paths)
}
