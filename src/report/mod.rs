//! Reports over evaluated models: vlasim's own Table V (backbones compared on the same chains),
//! as Markdown with PNG plots drawn by the deterministic 2-D drawing of [`crate::video::draw`].

pub mod backbones;
pub mod plot;
