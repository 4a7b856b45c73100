//! GIF output, the fallback for places that show GIFs but not MP4 (issue trackers, slides).
//!
//! Uses the `gif` crate directly (the one `image` wraps) because only it hands the writer back
//! when the trailer is written, so a failed final write is reported instead of lost in a drop.
//! GIF frame delays are whole centiseconds: 30 fps becomes 3 cs (33.3 fps). Browsers stretch
//! delays under 2 cs to 10 cs, so faster rates are capped at 50 fps.

use std::fs::File;
use std::io::BufWriter;

use anyhow::{Context, Result};
use gif::{Encoder, Frame, Repeat};

/// NeuQuant speed for frames with more than 256 colours (1 best … 30 fastest). Recording frames
/// are flat-shaded and usually fit 256 colours exactly, where this does not matter.
const QUANTISER_SPEED: i32 = 10;
/// The shortest delay every browser honours.
const MIN_DELAY_CS: u16 = 2;

/// Encodes RGB frames into an animated GIF that loops forever.
pub struct GifWriter {
    encoder: Encoder<BufWriter<File>>,
    size: (u16, u16),
    delay_cs: u16,
}

impl GifWriter {
    /// Prepares to write `width`×`height` frames at (about) `fps` into `file`.
    pub fn new(file: File, width: u32, height: u32, fps: f64) -> Result<GifWriter> {
        let side = |px: u32| u16::try_from(px).context("GIF frames are at most 65535 px a side");
        let size = (side(width)?, side(height)?);
        let mut encoder = Encoder::new(BufWriter::new(file), size.0, size.1, &[]).context("cannot start the GIF")?;
        encoder.set_repeat(Repeat::Infinite).context("cannot start the GIF")?;
        let delay_cs = ((100.0 / fps).round() as u16).max(MIN_DELAY_CS);
        Ok(GifWriter { encoder, size, delay_cs })
    }

    /// How long each frame is shown (s), after rounding to centiseconds.
    pub fn frame_duration_s(&self) -> f64 {
        f64::from(self.delay_cs) / 100.0
    }

    /// Appends one `width * height * 3` RGB frame.
    pub fn push(&mut self, rgb: &[u8]) -> Result<()> {
        let mut frame = Frame::from_rgb_speed(self.size.0, self.size.1, rgb, QUANTISER_SPEED);
        frame.delay = self.delay_cs;
        self.encoder.write_frame(&frame).context("cannot add a frame to the GIF")
    }

    /// Writes the trailer and closes the file.
    pub fn finish(self) -> Result<()> {
        let writer = self.encoder.into_inner().context("cannot finalise the GIF")?;
        writer.into_inner().map_err(|e| e.into_error()).context("cannot write the GIF")?;
        Ok(())
    }
}
