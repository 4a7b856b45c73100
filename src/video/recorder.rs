//! [`Recorder`]: RGB frames in, a finished MP4 (H.264) or GIF file out, the format chosen by the
//! file's extension.
//!
//! A recording is finalised by [`Recorder::finish`], or, if the owner goes away first (the GUI
//! window closes mid-recording, an error unwinds the record loop), by `Drop`, so a file that was
//! started is always playable. Only a killed process (SIGKILL, power loss) leaves no video behind:
//! both formats are written or completed at the end.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

use super::gif::GifWriter;
use super::mp4::Mp4Writer;
use crate::sim::camera::Image;

/// File extensions [`Recorder::create`] understands.
pub const SUPPORTED_EXTENSIONS: [&str; 2] = ["mp4", "gif"];

/// What a finished recording holds.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingSummary {
    /// The file written.
    pub path: PathBuf,
    /// Frames in the file.
    pub frames: usize,
    /// Frame width in the file (px); MP4 rounds odd sizes up to even.
    pub width: u32,
    /// Frame height in the file (px); MP4 rounds odd sizes up to even.
    pub height: u32,
    /// Playing time (s).
    pub duration_s: f64,
}

enum Writer {
    /// Boxed: OpenH264's bitstream info makes it 8 kB.
    Mp4(Box<Mp4Writer>),
    Gif(GifWriter),
}

/// Writes a video file frame by frame.
pub struct Recorder {
    path: PathBuf,
    /// Size of the frames [`Recorder::push`] accepts.
    frame_size: (u32, u32),
    /// Size in the file.
    file_size: (u32, u32),
    frame_duration_s: f64,
    frames: usize,
    /// `None` once finished.
    writer: Option<Writer>,
}

impl Recorder {
    /// Creates `path` for `width`×`height` frames shown at `fps`; `.mp4` gives H.264 in MP4,
    /// `.gif` an animated GIF. The file exists from here on, so an unwritable path fails now.
    pub fn create(path: &Path, width: u32, height: u32, fps: f64) -> Result<Recorder> {
        let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        let Some(extension) = extension.filter(|e| SUPPORTED_EXTENSIONS.contains(&e.as_str())) else {
            bail!("cannot record to {}: unsupported file extension (use .mp4 or .gif)", path.display());
        };
        ensure!(width > 0 && height > 0, "cannot record {width}x{height} frames to {}", path.display());
        ensure!(fps.is_finite() && fps > 0.0, "cannot record at {fps} frames/s to {}", path.display());
        let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let (writer, file_size, frame_duration_s) = if extension == "mp4" {
            let mp4 = Mp4Writer::new(file, width, height, fps)?;
            let size = mp4.encoded_size();
            (Writer::Mp4(Box::new(mp4)), size, 1.0 / fps)
        } else {
            let gif = GifWriter::new(file, width, height, fps)?;
            let duration = gif.frame_duration_s();
            (Writer::Gif(gif), (width, height), duration)
        };
        Ok(Recorder {
            path: path.to_path_buf(),
            frame_size: (width, height),
            file_size,
            frame_duration_s,
            frames: 0,
            writer: Some(writer),
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Appends `frame`, which must have the size given to [`Recorder::create`].
    pub fn push(&mut self, frame: &Image) -> Result<()> {
        let (width, height) = self.frame_size;
        ensure!(
            (frame.width, frame.height) == self.frame_size,
            "frame {} is {}x{}, but {} records {width}x{height}",
            self.frames,
            frame.width,
            frame.height,
            self.path.display()
        );
        let writer = self.writer.as_mut().expect("only finish() takes the writer, and it consumes the recorder");
        match writer {
            Writer::Mp4(mp4) => mp4.push(&frame.rgb),
            Writer::Gif(gif) => gif.push(&frame.rgb),
        }
        .with_context(|| format!("while recording {}", self.path.display()))?;
        self.frames += 1;
        Ok(())
    }

    /// Completes the file and says what it holds. A recording without frames is an error, and
    /// its empty file is removed.
    pub fn finish(mut self) -> Result<RecordingSummary> {
        self.complete()?;
        Ok(RecordingSummary {
            path: self.path.clone(),
            frames: self.frames,
            width: self.file_size.0,
            height: self.file_size.1,
            duration_s: self.frames as f64 * self.frame_duration_s,
        })
    }

    fn complete(&mut self) -> Result<()> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        if self.frames == 0 {
            drop(writer);
            std::fs::remove_file(&self.path).with_context(|| format!("cannot remove {}", self.path.display()))?;
            bail!("no frames were recorded, so {} was not written", self.path.display());
        }
        match writer {
            Writer::Mp4(mp4) => mp4.finish(),
            Writer::Gif(gif) => gif.finish(),
        }
        .with_context(|| format!("while finishing {}", self.path.display()))
    }
}

impl Drop for Recorder {
    /// Finishes an abandoned recording; there is no caller left to return an error to, so it is printed.
    fn drop(&mut self) {
        if let Err(error) = self.complete() {
            eprintln!("warning: {error:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder of the test's own, removed when the test ends.
    fn scratch_dir() -> tempfile::TempDir {
        tempfile::Builder::new().prefix("vlasim-recorder-").tempdir().expect("temp dir")
    }

    #[test]
    fn unsupported_extension_names_the_path_and_the_formats() {
        let scratch = scratch_dir();
        for name in ["clip.avi", "clip"] {
            let path = scratch.path().join(name);
            let message = format!("{:#}", Recorder::create(&path, 64, 48, 30.0).err().expect("must fail"));
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(".mp4") && message.contains(".gif"), "{message}");
            assert!(!path.exists());
        }
    }

    #[test]
    fn unwritable_path_fails_at_create() {
        let path = Path::new("/nonexistent-vlasim-dir/clip.mp4");
        let message = format!("{:#}", Recorder::create(path, 64, 48, 30.0).err().expect("must fail"));
        assert!(message.contains("/nonexistent-vlasim-dir/clip.mp4"), "{message}");
    }

    #[test]
    fn frame_of_the_wrong_size_is_rejected_and_recording_goes_on() {
        let scratch = scratch_dir();
        let path = scratch.path().join("size.gif");
        let mut recorder = Recorder::create(&path, 8, 6, 30.0).expect("create");
        let message = format!("{:#}", recorder.push(&Image::new(6, 8)).expect_err("wrong size"));
        assert!(message.contains("6x8") && message.contains("8x6"), "{message}");
        recorder.push(&Image::new(8, 6)).expect("right size");
        assert_eq!(recorder.finish().expect("finish").frames, 1);
    }

    #[test]
    fn finishing_without_frames_is_an_error_and_leaves_no_file() {
        let scratch = scratch_dir();
        let path = scratch.path().join("empty.mp4");
        let recorder = Recorder::create(&path, 64, 48, 30.0).expect("create");
        assert!(path.exists());
        assert!(format!("{:#}", recorder.finish().expect_err("no frames")).contains("no frames"));
        assert!(!path.exists());
    }

    #[test]
    fn dropping_an_unfinished_recording_still_finishes_the_file() {
        let scratch = scratch_dir();
        let (mp4, gif) = (scratch.path().join("dropped.mp4"), scratch.path().join("dropped.gif"));
        for path in [&mp4, &gif] {
            let mut recorder = Recorder::create(path, 32, 24, 30.0).expect("create");
            for _ in 0..3 {
                recorder.push(&Image::new(32, 24)).expect("push");
            }
        }
        let bytes = std::fs::read(&mp4).expect("mp4 written");
        assert_eq!(&bytes[4..8], b"ftyp");
        assert!(bytes.windows(4).any(|w| w == b"moov"), "the index is written");
        let bytes = std::fs::read(&gif).expect("gif written");
        assert_eq!(bytes.last(), Some(&0x3b), "the GIF trailer is written");
    }

    #[test]
    fn odd_sizes_are_padded_to_even_for_mp4_only() {
        let frame = Image::new(33, 21);
        let scratch = scratch_dir();
        for (name, size) in [("odd.mp4", (34, 22)), ("odd.gif", (33, 21))] {
            let path = scratch.path().join(name);
            let mut recorder = Recorder::create(&path, 33, 21, 30.0).expect("create");
            recorder.push(&frame).expect("push");
            let summary = recorder.finish().expect("finish");
            assert_eq!((summary.width, summary.height), size, "{name}");
        }
    }
}
