//! Auxiliary training objectives read linearly out of the per-frame features the action head
//! reads: the simulator knows things the cameras only show (where each block is, how far the
//! demonstration is from done), and a read-out's loss pushes the features to carry them.
//! Training only: inference never runs a read-out.

use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};

use super::linear::{Linear, linear};
use super::model::huber;

/// A linear read-out of per-frame targets, trained with a Huber loss.
#[derive(Debug, Clone)]
pub struct Readout {
    linear: Linear,
    huber_delta: f64,
}

impl Readout {
    /// A read-out of `outputs` values from features of width `feature_size`, its loss quadratic
    /// up to errors of `huber_delta` target units and linear beyond.
    pub fn new(feature_size: usize, outputs: usize, huber_delta: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self { linear: linear(feature_size, outputs, vb.pp("readout"))?, huber_delta })
    }

    /// Mean Huber loss of the prediction from `features` `[B, F, d]` against the targets of the
    /// window's last `F` frames (`targets` `[B, T, outputs]`).
    pub fn loss(&self, features: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let frames = features.dim(1)?;
        let window = targets.dim(1)?;
        let targets = targets.narrow(1, window - frames, frames)?;
        huber(&(self.linear.forward(features)? - targets)?, self.huber_delta)?.mean_all()
    }
}
