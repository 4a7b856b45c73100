//! The Bevy-free simulation core: scene files, rapier physics, the Panda arm and its controller,
//! the 34 CALVIN tasks with their oracle, the scripted expert, start states and evaluation chains,
//! and the deterministic policy cameras.

pub mod arm;
pub mod build;
pub mod camera;
pub mod chains;
pub mod episode;
pub mod expert;
pub mod kinematics;
pub mod oracle;
pub mod render;
pub mod rng;
pub mod scene;
pub mod start;
pub mod tasks;
pub mod visual;
pub mod world;
