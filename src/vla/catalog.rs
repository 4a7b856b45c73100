//! The model folders a user can pick from: every sub-folder of a models directory (the shipped
//! ones live in `assets/models/`) that holds a `config.json`, described by what the backbone
//! selector shows — preset, image tokens, size and, when `results.json` from `vlasim eval` lies
//! beside the weights, the Avg. Len. it reached.

use std::path::{Path, PathBuf};

use candle_core::Device;

use super::driver::{DriverError, VlaDriver};
use crate::eval::EvalResults;

/// The models shipped with vlasim.
pub const SHIPPED_MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/models");
/// The evaluation results kept in a model folder.
pub const RESULTS_FILE: &str = "results.json";
/// The model the GUI starts with when it is there.
pub const DEFAULT_MODEL: &str = "kosmos-wide";

/// What the selector says about a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCard {
    /// The folder's name.
    pub name: String,
    /// The folder.
    pub dir: PathBuf,
    /// Preset it was built from.
    pub preset: String,
    /// Image tokens per frame in the language model.
    pub image_tokens: usize,
    /// Parameter count, of every member for an ensemble.
    pub parameters: usize,
    /// Models whose predictions are averaged: 1, or an ensemble's size.
    pub members: usize,
    /// The folder's evaluation, if it has one.
    pub evaluation: Option<Evaluation>,
}

/// The headline of a `results.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Average number of consecutive subtasks completed (0–5).
    pub avg_len: f64,
    /// Chains it was measured on.
    pub chains: usize,
    /// Scene it was measured in.
    pub scene: String,
}

impl ModelCard {
    /// A one-line summary for lists.
    pub fn summary(&self) -> String {
        let evaluation = match &self.evaluation {
            Some(e) => format!("Avg. Len. {:.2} ({} chains, scene {})", e.avg_len, e.chains, e.scene),
            None => "not evaluated".to_string(),
        };
        let ensemble = if self.members > 1 { format!(" (an ensemble of {})", self.members) } else { String::new() };
        format!(
            "{}: {} image tokens, {:.2} M parameters{ensemble}, {evaluation}",
            self.name,
            self.image_tokens,
            self.parameters as f64 / 1e6
        )
    }
}

/// The model folders under `root`, sorted by name (none when `root` does not exist).
pub fn discover(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    let mut folders: Vec<PathBuf> =
        entries.flatten().map(|entry| entry.path()).filter(|path| path.join("config.json").is_file()).collect();
    folders.sort();
    folders
}

/// Loads the model folder `dir` and describes it. A broken `results.json` only loses the
/// evaluation; a broken model is an error naming the file.
pub fn load(dir: &Path) -> Result<(ModelCard, VlaDriver), DriverError> {
    let driver = VlaDriver::load(dir, &Device::Cpu)?;
    let model = driver.model();
    let evaluation = EvalResults::load(&dir.join(RESULTS_FILE)).ok().map(|results| Evaluation {
        avg_len: results.metrics.avg_len,
        chains: results.metrics.chains,
        scene: results.scene,
    });
    let card = ModelCard {
        name: dir.file_name().map_or_else(|| dir.display().to_string(), |name| name.to_string_lossy().into_owned()),
        dir: dir.to_path_buf(),
        preset: model.config().preset.clone(),
        image_tokens: model.image_tokens(),
        parameters: driver.parameter_count(),
        members: driver.members(),
        evaluation,
    };
    Ok((card, driver))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::tokenizer;
    use crate::vla::Vla;
    use crate::vla::driver::{ENSEMBLE_FILE, TOKENIZER_FILE};
    use crate::vla::presets::preset_with;
    use crate::vla::test_support::shrunk;

    #[test]
    fn model_folders_are_found_sorted_and_described() {
        let root = std::env::temp_dir().join(format!("vlasim-catalog-{}", std::process::id()));
        for name in ["uform", "kosmos"] {
            let dir = root.join(name);
            Vla::new(shrunk(preset_with(name, "policy_head").unwrap()), &Device::Cpu).unwrap().save(&dir).unwrap();
            tokenizer::train([], tokenizer::DEFAULT_VOCAB_SIZE).unwrap().save(&dir.join(TOKENIZER_FILE)).unwrap();
        }
        std::fs::create_dir_all(root.join("notes")).unwrap();
        let found = discover(&root);
        assert_eq!(found, vec![root.join("kosmos"), root.join("uform")], "only folders with a config.json");
        let (card, _) = load(&found[0]).unwrap();
        assert_eq!((card.name.as_str(), card.preset.as_str(), card.evaluation.as_ref()), ("kosmos", "kosmos", None));
        assert!(card.parameters > 0 && card.image_tokens > 0);
        assert!(card.summary().contains("not evaluated"), "{}", card.summary());

        std::fs::write(found[1].join("model.safetensors"), b"not a tensor file").unwrap();
        let error = load(&found[1]).err().expect("corrupt weights").to_string();
        assert!(error.contains("model.safetensors"), "{error}");
        assert!(discover(&root.join("missing")).is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_ensemble_folder_is_described_with_its_members() {
        let root = std::env::temp_dir().join(format!("vlasim-catalog-ensemble-{}", std::process::id()));
        for (name, seed) in [("kosmos", 0), ("kosmos-seed1", 1)] {
            let mut config = shrunk(preset_with("kosmos", "policy_head").unwrap());
            config.seed = seed;
            Vla::new(config, &Device::Cpu).unwrap().save(&root.join(name)).unwrap();
            tokenizer::train([], tokenizer::DEFAULT_VOCAB_SIZE)
                .unwrap()
                .save(&root.join(name).join(TOKENIZER_FILE))
                .unwrap();
        }
        let (single, _) = load(&root.join("kosmos")).unwrap();
        std::fs::write(root.join("kosmos").join(ENSEMBLE_FILE), r#"{"other_members": ["../kosmos-seed1"]}"#).unwrap();
        let (card, _) = load(&root.join("kosmos")).unwrap();
        assert_eq!((card.members, card.parameters), (2, 2 * single.parameters));
        assert!(card.summary().contains("(an ensemble of 2)"), "{}", card.summary());
        assert!(!single.summary().contains("ensemble"), "{}", single.summary());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn every_shipped_model_loads_with_its_evaluation() {
        let folders = discover(Path::new(SHIPPED_MODELS));
        assert!(folders.iter().any(|dir| dir.ends_with(DEFAULT_MODEL)), "{folders:?}");
        for dir in &folders {
            let (card, _) = load(dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
            let evaluation = card.evaluation.as_ref().unwrap_or_else(|| panic!("{} has no results.json", card.name));
            assert_eq!((evaluation.chains, evaluation.scene.as_str()), (1000, "d"), "{}", card.name);
            let expected_members = if card.name == "kosmos-wide-ensemble" { 2 } else { 1 };
            assert_eq!(card.members, expected_members, "{}", card.name);
        }
    }
}
