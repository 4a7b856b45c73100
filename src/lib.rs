//! vlasim: a simulator and visualizer for Vision-Language-Action models.
//!
//! [`sim`] is the headless simulation core every other part (data collection, training,
//! evaluation, the GUI) is a client of; [`data`] collects demonstrations into LeRobot datasets and
//! reads them back as training batches; [`eval`] runs CALVIN's chain evaluation and computes its
//! metrics; [`lang`] holds the instructions, understands typed ones and tokenizes them for the
//! models; [`pretrain`] generates the vision-language pre-training corpus; [`video`] records
//! rollouts as MP4 or GIF; [`vla`] holds the candle models and [`train`] their optimiser; [`app`]
//! is the Bevy GUI.

pub mod app;
pub mod data;
pub mod eval;
pub mod lang;
pub mod parallel;
pub mod pretrain;
pub mod report;
pub mod sim;
pub mod train;
pub mod video;
pub mod vla;
