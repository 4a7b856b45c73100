//! The VLA model zoo in candle: vision towers, connectors, language models, action heads, the backbone
//! presets of RoboVLMs' comparison in miniature, and loading real SigLIP weights.
//!
//! Every network is our own candle code made of differentiable ops (DESIGN.md §2.4): the fused CPU
//! kernels of [`ops`] carry their own backward pass. Every attention layer can return its weights.
//! Models run on the CPU, or on a GPU named by [`device::DeviceName`] in builds with its feature.
//!
//! Entry points: [`presets::preset`] → [`VlaConfig`] → [`Vla::new`]; [`Vla::forward`] and
//! [`Vla::loss`] for training; [`VlaPolicy`] for closed-loop control; [`Vla::save`] / [`Vla::load`]
//! for HF-style model folders; [`attention_maps`] for what the GUI draws; [`Vla::answer_loss`] for
//! vision-language pre-training.

use std::path::{Path, PathBuf};

pub mod attention;
pub mod attention_maps;
pub mod backbone;
pub mod catalog;
pub mod config;
pub mod conv_encoder;
pub mod cross_attention;
pub mod decoder;
pub mod device;
pub mod driver;
pub mod ensemble;
pub mod film;
pub mod heads;
pub mod hf_siglip;
pub mod linear;
pub mod mixture;
pub mod mlp;
pub mod model;
pub mod norm;
pub mod ops;
pub mod params;
pub mod policy;
pub mod presets;
pub mod pretraining;
pub mod projector;
pub mod readout;
pub mod resampler;
pub mod scene_state;
pub mod steps_left;
pub mod vit;

pub use config::VlaConfig;
pub use model::{ActionOutput, ActionTargets, AttentionCapture, ForwardOptions, Vla, VlaInput, VlaOutput};
pub use policy::VlaPolicy;

/// Why a model could not be built, saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum VlaError {
    /// The config is inconsistent; the message names the field.
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    /// `config.json` is not valid JSON for the expected struct.
    #[error("{}: {reason}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing failed. The message carries the cause, so it is not also a `source`
    /// (which `{:#}` would print a second time).
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// A weights file lacks a tensor the model needs.
    #[error("{}: missing tensor `{name}` (expected shape {expected:?})", file.display())]
    MissingTensor {
        /// The weights file.
        file: PathBuf,
        /// The tensor's name in the file.
        name: String,
        /// The shape the model needs.
        expected: Vec<usize>,
    },
    /// A tensor has the wrong shape.
    #[error("{}: tensor `{name}` has shape {found:?}, expected {expected:?}", file.display())]
    TensorShape {
        /// The weights file.
        file: PathBuf,
        /// The tensor's name in the file.
        name: String,
        /// The shape the model needs.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A weights file holds a tensor the model does not have (a different architecture or size).
    #[error("{}: unexpected tensor `{name}`: the file was written for a different model", file.display())]
    UnexpectedTensor {
        /// The weights file.
        file: PathBuf,
        /// The tensor's name in the file.
        name: String,
    },
    /// A weights file to start from shares no parameter with the model.
    #[error("{}: no tensor of this file matches a parameter of the model", file.display())]
    NothingShared {
        /// The weights file.
        file: PathBuf,
    },
    /// The weights file is unreadable or corrupt, or candle failed.
    #[error("{}: {cause}", file.display())]
    TensorFile {
        /// The weights file.
        file: PathBuf,
        /// The cause.
        cause: candle_core::Error,
    },
    /// Building the model failed inside candle.
    #[error("building the model: {0}")]
    Candle(candle_core::Error),
}

// By hand rather than `#[from]`, which would also make the cause a `source` that `{:#}` prints twice.
impl From<candle_core::Error> for VlaError {
    fn from(error: candle_core::Error) -> Self {
        VlaError::Candle(error)
    }
}

impl VlaError {
    fn tensor_file(file: &Path, cause: candle_core::Error) -> Self {
        Self::TensorFile { file: file.to_path_buf(), cause }
    }
}

/// Reads and validates a `config.json`.
pub fn read_config(path: &Path) -> Result<VlaConfig, VlaError> {
    let text = std::fs::read_to_string(path).map_err(|cause| VlaError::Io { path: path.to_path_buf(), cause })?;
    let config: VlaConfig = serde_json::from_str(&text)
        .map_err(|e| VlaError::ConfigFile { path: path.to_path_buf(), reason: e.to_string() })?;
    config.validate().map_err(|reason| VlaError::ConfigFile { path: path.to_path_buf(), reason })?;
    Ok(config)
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod training_tests;
