//! `--device`, for every command that runs a network.

use anyhow::Result;
use candle_core::Device;
use clap::Args;
use vlasim::parallel;
use vlasim::vla::device::DeviceName;

#[derive(Args)]
pub struct DeviceArgs {
    /// Where the networks run: cpu, cuda[:N] or metal[:N]; a GPU needs a vlasim built with
    /// `--features cuda` (or `metal`).
    #[arg(long, default_value_t)]
    pub device: DeviceName,
}

impl DeviceArgs {
    /// The device, opened.
    pub fn open(&self) -> Result<Device> {
        Ok(self.device.open()?)
    }

    /// Data-parallel training workers: those asked for, else one per core on the CPU and one on a
    /// GPU (which runs a whole batch at once; shards would only queue on it).
    pub fn training_workers(&self, asked: Option<usize>) -> usize {
        let default = || if self.device == DeviceName::Cpu { parallel::available_threads() } else { 1 };
        asked.unwrap_or_else(default).max(1)
    }
}
