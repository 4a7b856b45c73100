//! vlasim: a simulator and visualizer for Vision-Language-Action models.
//!
//! [`sim`] is the headless simulation core every other part (data collection, training,
//! evaluation, the GUI) is a client of; [`lang`] holds the instructions, understands typed ones
//! and tokenizes them for the models; [`video`] records rollouts as MP4 or GIF; [`app`] is the
//! Bevy GUI; [`vla`] holds the candle models.

pub mod app;
pub mod lang;
pub mod sim;
pub mod video;
pub mod vla;
