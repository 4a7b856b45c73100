//! MP4/H.264 output: frames are encoded by OpenH264 (built from its bundled source, so no system
//! codec is needed) and muxed by muxide, a pure-Rust MP4 writer.
//!
//! H.264 4:2:0 needs even dimensions; an odd-sized frame is padded by one column and/or row that
//! repeats its last one (repeating rather than black keeps the chroma of the edge pixels clean),
//! and the file reports the padded size.
//!
//! muxide keeps the encoded samples in memory (about 2 MB per minute at 640×480) and writes the
//! whole file, `moov` first so it streams, when [`Mp4Writer::finish`] runs.

use std::fs::File;
use std::io::BufWriter;

use anyhow::{Context, Result, bail};
use muxide::api::{Muxer, MuxerBuilder, VideoCodec};
use openh264::OpenH264API;
use openh264::encoder::{Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode, VuiConfig};
use openh264::formats::{RgbSliceU8, YUVBuffer};

/// A keyframe every this many seconds, so players can seek.
const KEYFRAME_INTERVAL_S: f64 = 2.0;

/// Encodes RGB frames into H.264 access units (Annex B), one per frame. Each new encoder starts
/// with an IDR frame carrying its SPS/PPS, so streams from several encoders with the same size and
/// settings can be muxed one after another into one track (LeRobot concatenates episodes so).
pub struct H264Encoder {
    encoder: Encoder,
    /// Size of the frames pushed.
    source_size: (u32, u32),
    /// Size in the stream: `source_size` rounded up to even.
    encoded_size: (u32, u32),
    frames: usize,
    /// Reused buffers: the padded RGB frame (odd sizes only) and its YUV.
    padded_rgb: Vec<u8>,
    yuv: YUVBuffer,
}

impl H264Encoder {
    /// An encoder for `width`×`height` frames at `fps`.
    pub fn new(width: u32, height: u32, fps: f64) -> Result<H264Encoder> {
        let encoded_size = (width.next_multiple_of(2), height.next_multiple_of(2));
        let (encoded_width, encoded_height) = encoded_size;
        let config = EncoderConfig::new()
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            // A skipped frame has no bitstream, and every control step must become a frame.
            .skip_frames(false)
            // Constant quality (OpenH264's default quantiser) instead of a bitrate target:
            // OpenH264 cannot hold a bitrate without skipping frames, and flat-shaded frames with
            // caption text come out crisp at 1–3 kB per frame at 640×480 (about 260 kbit/s).
            .rate_control_mode(RateControlMode::Off)
            // One thread: recording shares the core with the simulation, and threads would make
            // the bitstream depend on scheduling.
            .num_threads(1)
            .intra_frame_period(IntraFramePeriod::from_num_frames((KEYFRAME_INTERVAL_S * fps).round().max(1.0) as u32))
            // OpenH264 converts RGB with BT.601 limited-range coefficients; say so in the stream.
            .vui(VuiConfig::bt601());
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| anyhow::anyhow!("cannot start the H.264 encoder: {e}"))?;
        Ok(H264Encoder {
            encoder,
            source_size: (width, height),
            encoded_size,
            frames: 0,
            padded_rgb: Vec::new(),
            yuv: YUVBuffer::new(encoded_width as usize, encoded_height as usize),
        })
    }

    /// Width and height in the stream (even).
    pub fn encoded_size(&self) -> (u32, u32) {
        self.encoded_size
    }

    /// Encodes one `width * height * 3` RGB frame into `bitstream` (cleared first, Annex B);
    /// returns whether it is a keyframe.
    pub fn encode(&mut self, rgb: &[u8], bitstream: &mut Vec<u8>) -> Result<bool> {
        let rgb = if self.source_size == self.encoded_size {
            rgb
        } else {
            pad_by_repeating_edges(rgb, self.source_size, self.encoded_size, &mut self.padded_rgb);
            &self.padded_rgb
        };
        let (width, height) = self.encoded_size;
        self.yuv.read_rgb8(RgbSliceU8::new(rgb, (width as usize, height as usize)));
        let encoded = self.encoder.encode(&self.yuv).map_err(|e| anyhow::anyhow!("H.264 encoding failed: {e}"))?;
        let keyframe = matches!(encoded.frame_type(), FrameType::IDR | FrameType::I);
        bitstream.clear();
        encoded.write_vec(bitstream);
        if bitstream.is_empty() {
            bail!("the H.264 encoder produced no data for frame {}", self.frames);
        }
        self.frames += 1;
        Ok(keyframe)
    }
}

/// Muxes H.264 access units into an MP4 file, one per 1/fps s.
pub struct Mp4Muxer {
    muxer: Muxer<BufWriter<File>>,
    fps: f64,
    frames: usize,
}

impl Mp4Muxer {
    /// Prepares to write a `width`×`height` (even) H.264 track at `fps` into `file`.
    pub fn new(file: File, width: u32, height: u32, fps: f64) -> Result<Mp4Muxer> {
        let muxer = MuxerBuilder::new(BufWriter::new(file))
            .video(VideoCodec::H264, width, height, fps)
            .build()
            .context("cannot start the MP4 muxer")?;
        Ok(Mp4Muxer { muxer, fps, frames: 0 })
    }

    /// Appends one Annex B access unit.
    pub fn push(&mut self, bitstream: &[u8], keyframe: bool) -> Result<()> {
        let pts_s = self.frames as f64 / self.fps;
        self.muxer.write_video(pts_s, bitstream, keyframe).context("cannot add a frame to the MP4")?;
        self.frames += 1;
        Ok(())
    }

    /// Writes the file and closes it.
    pub fn finish(mut self) -> Result<()> {
        self.muxer.finish_in_place().context("cannot finalise the MP4")?;
        let writer = self.muxer.into_writer();
        writer.into_inner().map_err(|e| e.into_error()).context("cannot write the MP4")?;
        Ok(())
    }
}

/// Encodes RGB frames into an MP4 file.
pub struct Mp4Writer {
    encoder: H264Encoder,
    muxer: Mp4Muxer,
    /// The reused Annex B bitstream.
    bitstream: Vec<u8>,
}

impl Mp4Writer {
    /// Prepares to write `width`×`height` frames at `fps` into `file`.
    pub fn new(file: File, width: u32, height: u32, fps: f64) -> Result<Mp4Writer> {
        let encoder = H264Encoder::new(width, height, fps)?;
        let (encoded_width, encoded_height) = encoder.encoded_size();
        let muxer = Mp4Muxer::new(file, encoded_width, encoded_height, fps)?;
        Ok(Mp4Writer { encoder, muxer, bitstream: Vec::new() })
    }

    /// Width and height in the file (even).
    pub fn encoded_size(&self) -> (u32, u32) {
        self.encoder.encoded_size()
    }

    /// Encodes one `width * height * 3` RGB frame shown for 1/fps s.
    pub fn push(&mut self, rgb: &[u8]) -> Result<()> {
        let keyframe = self.encoder.encode(rgb, &mut self.bitstream)?;
        self.muxer.push(&self.bitstream, keyframe)
    }

    /// Writes the file and closes it.
    pub fn finish(self) -> Result<()> {
        self.muxer.finish()
    }
}

/// Copies a `source`-sized RGB frame into `padded` of size `target` (≥ source), repeating the
/// last column and row into the extra ones.
fn pad_by_repeating_edges(rgb: &[u8], source: (u32, u32), target: (u32, u32), padded: &mut Vec<u8>) {
    let (source_width, source_height) = (source.0 as usize, source.1 as usize);
    let (target_width, target_height) = (target.0 as usize, target.1 as usize);
    padded.clear();
    for y in 0..target_height {
        let row = &rgb[y.min(source_height - 1) * source_width * 3..][..source_width * 3];
        padded.extend_from_slice(row);
        for _ in source_width..target_width {
            padded.extend_from_slice(&row[(source_width - 1) * 3..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_repeats_the_last_column_and_row() {
        // 3×1 → 4×2.
        let rgb = [1, 1, 1, 2, 2, 2, 3, 3, 3];
        let mut padded = Vec::new();
        pad_by_repeating_edges(&rgb, (3, 1), (4, 2), &mut padded);
        let row = [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3];
        assert_eq!(padded, [row, row].concat());
    }
}
