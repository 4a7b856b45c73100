//! Training: the optimiser and learning-rate schedules the VLA and pre-training loops share, the
//! VLA training loop (`vlasim train`), the vision-language pre-training loop (`vlasim pretrain`),
//! and their checkpoints.

use candle_core::Device;

pub mod checkpoint;
pub mod optim;
pub mod pretrainer;
pub mod schedule;
mod steps;
pub mod tensors;
pub mod trainer;

/// Where a run computes: the device the model lives on and the data-parallel worker threads, each
/// running a shard of every batch.
#[derive(Debug, Clone)]
pub struct Compute {
    pub device: Device,
    pub workers: usize,
}
