//! Reading MP4 files with one H.264 track back into frames: a small box walker (so no MP4 library
//! is trusted to check our own muxing) and OpenH264 decoding, to RGB or to the packed YUV 4:2:0 the
//! decoder makes. The dataset reader decodes the camera streams with it, and the tests check
//! recordings with it.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

use crate::sim::camera::Image;

/// An MP4 box: its four-character type and its payload.
struct Mp4Box<'a> {
    kind: [u8; 4],
    payload: &'a [u8],
}

fn be_bytes<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N]> {
    let Some(slice) = bytes.get(at..at + N) else {
        bail!("truncated box: wanted {N} bytes at offset {at} of {}", bytes.len());
    };
    Ok(slice.try_into().expect("the slice has N bytes"))
}

fn be_u16(bytes: &[u8], at: usize) -> Result<u16> {
    Ok(u16::from_be_bytes(be_bytes(bytes, at)?))
}

fn be_u32(bytes: &[u8], at: usize) -> Result<u32> {
    Ok(u32::from_be_bytes(be_bytes(bytes, at)?))
}

fn be_u64(bytes: &[u8], at: usize) -> Result<u64> {
    Ok(u64::from_be_bytes(be_bytes(bytes, at)?))
}

fn kind_name(kind: &[u8; 4]) -> String {
    String::from_utf8_lossy(kind).into_owned()
}

/// The boxes directly inside `data`, with 64-bit and to-the-end sizes.
fn boxes(data: &[u8]) -> Result<Vec<Mp4Box<'_>>> {
    let mut found = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let kind: [u8; 4] = be_bytes(data, at + 4)?;
        let (size, header) = match be_u32(data, at)? {
            0 => ((data.len() - at) as u64, 8),
            1 => (be_u64(data, at + 8)?, 16),
            size => (u64::from(size), 8),
        };
        let end = at.saturating_add(size as usize);
        ensure!(size >= header as u64 && end <= data.len(), "box {} overruns its parent", kind_name(&kind));
        found.push(Mp4Box { kind, payload: &data[at + header..end] });
        at = end;
    }
    Ok(found)
}

/// The single child of type `kind`.
fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Result<&'a [u8]> {
    let matching: Vec<_> = boxes(data)?.into_iter().filter(|b| &b.kind == kind).collect();
    ensure!(matching.len() == 1, "expected one {} box, found {}", kind_name(kind), matching.len());
    Ok(matching[0].payload)
}

/// What an MP4 with one H.264 video track holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mp4Video {
    /// `ftyp` major brand.
    pub major_brand: [u8; 4],
    /// Ticks per second of the track.
    pub timescale: u32,
    /// Track duration in ticks.
    pub duration: u64,
    /// Frame width (px).
    pub width: u16,
    /// Frame height (px).
    pub height: u16,
    /// SPS and PPS from `avcC`.
    pub parameter_sets: Vec<Vec<u8>>,
    /// Bytes of each NAL unit's length prefix.
    pub nal_length_size: usize,
    /// Each sample's bytes, located through stsc/stco/stsz.
    pub samples: Vec<Vec<u8>>,
}

/// Reads the H.264 track of the MP4 file at `path`; errors name the file.
pub fn read_mp4(path: &Path) -> Result<Mp4Video> {
    let file = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_mp4(&file).with_context(|| format!("{} is not a readable MP4 with one H.264 track", path.display()))
}

fn parse_mp4(file: &[u8]) -> Result<Mp4Video> {
    let top = boxes(file)?;
    ensure!(top.first().is_some_and(|b| &b.kind == b"ftyp"), "ftyp does not come first");
    let major_brand = be_bytes(top[0].payload, 0)?;
    let moov = child(file, b"moov")?;
    ensure!(top.iter().any(|b| &b.kind == b"mdat"), "no mdat box");
    let mdia = child(child(moov, b"trak")?, b"mdia")?;
    let mdhd = child(mdia, b"mdhd")?;
    let (timescale, duration) = match mdhd.first() {
        Some(0) => (be_u32(mdhd, 12)?, u64::from(be_u32(mdhd, 16)?)),
        _ => (be_u32(mdhd, 20)?, be_u64(mdhd, 24)?),
    };
    let stbl = child(child(mdia, b"minf")?, b"stbl")?;

    let stsd = child(stbl, b"stsd")?;
    ensure!(be_u32(stsd, 4)? == 1, "expected one sample description");
    let avc1 = child(stsd.get(8..).unwrap_or_default(), b"avc1")?;
    let (width, height) = (be_u16(avc1, 24)?, be_u16(avc1, 26)?);
    // The visual sample entry's fixed fields take 78 bytes; avcC follows.
    let avcc = child(avc1.get(78..).unwrap_or_default(), b"avcC")?;
    let nal_length_size = usize::from(be_bytes::<1>(avcc, 4)?[0] & 3) + 1;
    let mut parameter_sets = Vec::new();
    let mut at = 5;
    for _ in 0..2 {
        // First the SPS count (low 5 bits), then the PPS count.
        let count_byte = be_bytes::<1>(avcc, at)?[0];
        let count = if parameter_sets.is_empty() { count_byte & 0x1f } else { count_byte };
        at += 1;
        for _ in 0..count {
            let length = usize::from(be_u16(avcc, at)?);
            let set = avcc.get(at + 2..at + 2 + length).context("truncated parameter set")?;
            parameter_sets.push(set.to_vec());
            at += 2 + length;
        }
    }

    let stsz = child(stbl, b"stsz")?;
    let (uniform_size, count) = (be_u32(stsz, 4)?, be_u32(stsz, 8)? as usize);
    let sizes: Vec<usize> = (0..count)
        .map(|i| Ok(if uniform_size != 0 { uniform_size } else { be_u32(stsz, 12 + 4 * i)? } as usize))
        .collect::<Result<_>>()?;
    let stsc = child(stbl, b"stsc")?;
    let runs: Vec<(u32, u32)> = (0..be_u32(stsc, 4)? as usize)
        .map(|i| Ok((be_u32(stsc, 8 + 12 * i)?, be_u32(stsc, 12 + 12 * i)?)))
        .collect::<Result<_>>()?;
    let stbl_boxes = boxes(stbl)?;
    let offsets: Vec<u64> = match stbl_boxes.iter().find(|b| &b.kind == b"stco" || &b.kind == b"co64") {
        Some(b) if &b.kind == b"stco" => (0..be_u32(b.payload, 4)? as usize)
            .map(|i| Ok(u64::from(be_u32(b.payload, 8 + 4 * i)?)))
            .collect::<Result<_>>()?,
        Some(b) => (0..be_u32(b.payload, 4)? as usize).map(|i| be_u64(b.payload, 8 + 8 * i)).collect::<Result<_>>()?,
        None => bail!("no chunk offsets"),
    };
    let mut samples = Vec::with_capacity(count);
    for (chunk, &offset) in offsets.iter().enumerate() {
        let chunk_number = chunk as u32 + 1;
        let per_chunk =
            runs.iter().rev().find(|(first, _)| *first <= chunk_number).context("stsc does not cover every chunk")?.1;
        let mut at = offset as usize;
        for _ in 0..per_chunk {
            let size = *sizes.get(samples.len()).context("stsc lists more samples than stsz")?;
            let sample = file.get(at..at + size).context("a sample lies outside the file")?;
            samples.push(sample.to_vec());
            at += size;
        }
    }
    ensure!(samples.len() == count, "stsc and stco account for {} of the {count} samples in stsz", samples.len());
    Ok(Mp4Video { major_brand, timescale, duration, width, height, parameter_sets, nal_length_size, samples })
}

/// Decodes every sample to RGB (length-prefixed NAL units become Annex B start codes).
pub fn decode(video: &Mp4Video) -> Result<Vec<Image>> {
    let mut frames = Vec::with_capacity(video.samples.len());
    decode_each(video, |image| {
        frames.push(image.clone());
        Ok(())
    })?;
    Ok(frames)
}

/// Decodes every sample to RGB and hands each frame to `frame` in order, reusing one image.
pub fn decode_each(video: &Mp4Video, mut frame: impl FnMut(&Image) -> Result<()>) -> Result<()> {
    let mut image = Image::new(u32::from(video.width), u32::from(video.height));
    decode_each_yuv420(video, |yuv, width, height| {
        if (image.width, image.height) != (width as u32, height as u32) {
            image = Image::new(width as u32, height as u32);
        }
        yuv420_to_rgb(yuv, width, height, &mut image.rgb);
        frame(&image)
    })
}

/// Decodes every sample and hands each picture to `frame` in order as the decoder made it, packed
/// YUV 4:2:0 ([`yuv420_len`] bytes), with its width and height: half the bytes of RGB.
pub fn decode_each_yuv420(video: &Mp4Video, mut frame: impl FnMut(&[u8], usize, usize) -> Result<()>) -> Result<()> {
    let mut decoder = Decoder::new().context("cannot start the H.264 decoder")?;
    let mut annex_b = Vec::new();
    for set in &video.parameter_sets {
        annex_b.extend([0, 0, 0, 1]);
        annex_b.extend(set);
    }
    decoder.decode(&annex_b).context("the parameter sets do not decode")?;
    let mut packed = Vec::new();
    for (index, sample) in video.samples.iter().enumerate() {
        annex_b.clear();
        let mut at = 0;
        while at < sample.len() {
            let prefix = sample.get(at..at + video.nal_length_size).context("truncated NAL length")?;
            let length = prefix.iter().fold(0, |n, &b| n << 8 | usize::from(b));
            at += video.nal_length_size;
            annex_b.extend([0, 0, 0, 1]);
            annex_b.extend(sample.get(at..at + length).context("truncated NAL unit")?);
            at += length;
        }
        let yuv = decoder
            .decode(&annex_b)
            .with_context(|| format!("sample {index} does not decode"))?
            .with_context(|| format!("sample {index} decodes to no picture"))?;
        let (width, height) = yuv.dimensions();
        let (chroma_width, chroma_height) = (width.div_ceil(2), height.div_ceil(2));
        let (y_stride, u_stride, v_stride) = yuv.strides();
        packed.clear();
        packed.extend(yuv.y().chunks(y_stride).take(height).flat_map(|row| &row[..width]));
        packed.extend(yuv.u().chunks(u_stride).take(chroma_height).flat_map(|row| &row[..chroma_width]));
        packed.extend(yuv.v().chunks(v_stride).take(chroma_height).flat_map(|row| &row[..chroma_width]));
        frame(&packed, width, height)?;
    }
    Ok(())
}

/// Bytes of a packed YUV 4:2:0 picture: the Y plane, then U and V at half the width and height
/// (rounded up), each row after row.
pub fn yuv420_len(width: usize, height: usize) -> usize {
    width * height + 2 * width.div_ceil(2) * height.div_ceil(2)
}

/// Converts a packed YUV 4:2:0 picture to RGB (`width × height × 3` bytes) with H.264's default
/// colours, limited-range BT.601, in 16-bit fixed point: OpenH264's formula, rounded, the same
/// pixels on every CPU.
pub fn yuv420_to_rgb(yuv: &[u8], width: usize, height: usize, rgb: &mut [u8]) {
    // The coefficients times 2^16: 255/219 for luma; 255/224 × (1.402, −1.402 × 0.299/0.587,
    // −1.772 × 0.114/0.587, 1.772) for chroma.
    const Y_SCALE: i32 = 76_309;
    const R_FROM_V: i32 = 104_597;
    const G_FROM_V: i32 = -53_279;
    const G_FROM_U: i32 = -25_675;
    const B_FROM_U: i32 = 132_201;
    const HALF: i32 = 1 << 15;
    assert_eq!(yuv.len(), yuv420_len(width, height), "a {width}×{height} YUV 4:2:0 picture");
    assert_eq!(rgb.len(), width * height * 3, "a {width}×{height} RGB picture");
    let chroma_width = width.div_ceil(2);
    let (luma, chroma) = yuv.split_at(width * height);
    let (u_plane, v_plane) = chroma.split_at(chroma.len() / 2);
    let channel = |value: i32| (value >> 16).clamp(0, 255) as u8;
    for (y, (luma_row, rgb_row)) in luma.chunks_exact(width).zip(rgb.chunks_exact_mut(width * 3)).enumerate() {
        let u_row = &u_plane[y / 2 * chroma_width..][..chroma_width];
        let v_row = &v_plane[y / 2 * chroma_width..][..chroma_width];
        let pixels = luma_row.chunks(2).zip(rgb_row.chunks_mut(6));
        for ((luma_pair, rgb_pair), (&u, &v)) in pixels.zip(u_row.iter().zip(v_row)) {
            let (u, v) = (i32::from(u) - 128, i32::from(v) - 128);
            let (r, g, b) = (R_FROM_V * v, G_FROM_V * v + G_FROM_U * u, B_FROM_U * u);
            for (&luma, pixel) in luma_pair.iter().zip(rgb_pair.chunks_exact_mut(3)) {
                let l = Y_SCALE * (i32::from(luma) - 16) + HALF;
                pixel.copy_from_slice(&[channel(l + r), channel(l + g), channel(l + b)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use openh264::formats::{RgbSliceU8, YUVBuffer};

    use super::*;

    /// OpenH264's RGB → YUV 4:2:0 (its encoder's) and back with [`yuv420_to_rgb`] gives the picture
    /// again; colours are constant over 2×2 blocks, so the half-resolution chroma loses nothing.
    #[test]
    fn yuv420_to_rgb_inverts_openh264s_conversion() {
        let (width, height) = (16, 6);
        let mut rgb = vec![0u8; width * height * 3];
        for (i, pixel) in rgb.chunks_exact_mut(3).enumerate() {
            let block = (i / width / 2) * (width / 2) + i % width / 2;
            pixel.copy_from_slice(&[
                (block * 37 % 256) as u8,
                (block * 91 % 256) as u8,
                (255 - block * 23 % 256) as u8,
            ]);
        }
        rgb[..6].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
        rgb[width * 3..width * 3 + 6].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
        let yuv = YUVBuffer::from_rgb8_source(RgbSliceU8::new(&rgb, (width, height)));
        let (y_stride, u_stride, v_stride) = yuv.strides();
        let mut packed: Vec<u8> = yuv.y().chunks(y_stride).flat_map(|row| &row[..width]).copied().collect();
        packed.extend(yuv.u().chunks(u_stride).flat_map(|row| &row[..width / 2]));
        packed.extend(yuv.v().chunks(v_stride).flat_map(|row| &row[..width / 2]));
        assert_eq!(packed.len(), yuv420_len(width, height));

        let mut back = vec![0u8; rgb.len()];
        yuv420_to_rgb(&packed, width, height, &mut back);
        let worst = rgb.iter().zip(&back).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        assert!(worst <= 3, "a channel off by {worst}");
        assert_eq!(&back[..3], &[0, 0, 0], "black stays black");
    }
}
