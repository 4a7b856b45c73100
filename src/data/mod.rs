//! Demonstration datasets in LeRobot's v3.0 format: simulating expert demonstrations and
//! CALVIN-style labelled play ([`simulate`]), collecting them on all cores with resume
//! ([`collect`]), writing the parquet/MP4/JSON layout ([`lerobot`]), and reading it back into
//! augmented training batches ([`reader`], [`batch`]).

pub mod batch;
pub mod collect;
pub mod episode;
pub mod lerobot;
pub mod reader;
pub mod simulate;
pub mod stats;
pub mod table;
pub mod teleop;
