//! Training: the optimiser and learning-rate schedules the VLA and pre-training loops share, and
//! the VLA training loop (`vlasim train`) with its checkpoints.

pub mod checkpoint;
pub mod optim;
pub mod schedule;
pub mod tensors;
pub mod trainer;
