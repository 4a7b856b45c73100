//! Training: the optimiser and learning-rate schedules the VLA and pre-training loops share.

pub mod optim;
pub mod schedule;
