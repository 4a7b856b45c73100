//! Evaluation under CALVIN's protocol: 5-task chains from sampled start states, held-out
//! phrasings, 360 steps per subtask, reset only per chain, the first failure ends the chain.
//! [`harness`] runs the chains (in shards, on all cores); [`results`] computes SR@1..5 and
//! Avg. Len., and writes and merges `results.json`.

pub mod harness;
pub mod results;

pub use harness::{EvalSettings, InstructedModel, Wording, WorkerPolicy, evaluate};
pub use results::{ChainRecord, EvalResults, Metrics, Shard};
