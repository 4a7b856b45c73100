//! Language: the instruction phrasings (training and held-out evaluation), the normalisation of
//! typed text, understanding a typed instruction as one of the 34 tasks, and the BPE tokenizer of
//! the VLAs' language models.

pub mod instructions;
pub mod matcher;
pub mod normalize;
pub mod spelling;
pub mod tokenizer;
pub mod understand;

pub use understand::{Problem, Understanding, understand};
