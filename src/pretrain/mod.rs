//! The vision-language pre-training corpus (RoboVLMs' Finding 5: backbones with vision-language
//! pre-training make better VLAs). The simulator renders unlimited scenes with exact ground truth,
//! so captions and question–answer pairs about colours, places, relations, the drawer, the sliding
//! door, the lights and the gripper cost nothing but the rendering.
//!
//! [`sample`] draws scene states as a pure function of (corpus seed, index), so corpora of 10k,
//! 100k and 1M samples are nested prefixes of each other; [`describe`] reads the texts off each
//! state; [`corpus`] writes the manifest and reads samples back, rendered on demand.

pub mod corpus;
pub mod describe;
pub mod sample;

pub use corpus::{
    CorpusError, CorpusInfo, PretrainCorpus, PretrainExample, SampleRenderer, write_corpus, write_images,
};
pub use describe::{TextKind, TextPair, describe};
pub use sample::{GENERATOR_VERSION, SceneSample, sample_state};
