//! Training: the optimiser and learning-rate schedules the VLA and pre-training loops share, the
//! VLA training loop (`vlasim train`), the vision-language pre-training loop (`vlasim pretrain`),
//! and their checkpoints.

pub mod checkpoint;
pub mod optim;
pub mod pretrainer;
pub mod schedule;
mod steps;
pub mod tensors;
pub mod trainer;
