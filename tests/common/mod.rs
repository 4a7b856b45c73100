//! An MP4 reader for tests: a small box walker (so no MP4 library is trusted to check itself) and
//! OpenH264 decoding of the samples back to RGB.

// Each test crate that includes this module reads a different subset of it.
#![allow(dead_code)]

use std::path::Path;

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

use vlasim::sim::camera::Image;

/// An MP4 box: its four-character type and its payload.
struct Mp4Box<'a> {
    kind: [u8; 4],
    payload: &'a [u8],
}

fn be_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(bytes[at..at + 2].try_into().expect("2 bytes"))
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn be_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// The boxes directly inside `data`, with 64-bit and to-the-end sizes; panics on a truncated box.
fn boxes(data: &[u8]) -> Vec<Mp4Box<'_>> {
    let mut found = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let kind: [u8; 4] = data[at + 4..at + 8].try_into().expect("box type");
        let (size, header) = match be_u32(data, at) {
            0 => ((data.len() - at) as u64, 8),
            1 => (be_u64(data, at + 8), 16),
            size => (u64::from(size), 8),
        };
        let end = at + size as usize;
        assert!(
            size >= header as u64 && end <= data.len(),
            "box {} overruns its parent",
            String::from_utf8_lossy(&kind)
        );
        found.push(Mp4Box { kind, payload: &data[at + header..end] });
        at = end;
    }
    found
}

/// The single child of type `kind`.
fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> &'a [u8] {
    let matching: Vec<_> = boxes(data).into_iter().filter(|b| &b.kind == kind).collect();
    assert_eq!(matching.len(), 1, "expected one {} box", String::from_utf8_lossy(kind));
    matching[0].payload
}

/// What the test needs from an MP4 with one H.264 video track.
pub struct Mp4Video {
    pub major_brand: [u8; 4],
    pub timescale: u32,
    pub duration: u64,
    pub width: u16,
    pub height: u16,
    /// SPS and PPS from `avcC`, and the NAL length-prefix size.
    pub parameter_sets: Vec<Vec<u8>>,
    pub nal_length_size: usize,
    /// Each sample's bytes, located through stsc/stco/stsz.
    pub samples: Vec<Vec<u8>>,
}

pub fn read_mp4(path: &Path) -> Mp4Video {
    let file = std::fs::read(path).expect("read mp4");
    let top = boxes(&file);
    assert_eq!(&top[0].kind, b"ftyp", "ftyp comes first");
    let major_brand = top[0].payload[..4].try_into().expect("brand");
    let moov = child(&file, b"moov");
    assert!(top.iter().any(|b| &b.kind == b"mdat"));
    let mdia = child(child(moov, b"trak"), b"mdia");
    let mdhd = child(mdia, b"mdhd");
    let (timescale, duration) = match mdhd[0] {
        0 => (be_u32(mdhd, 12), u64::from(be_u32(mdhd, 16))),
        _ => (be_u32(mdhd, 20), be_u64(mdhd, 24)),
    };
    let stbl = child(child(mdia, b"minf"), b"stbl");

    let stsd = child(stbl, b"stsd");
    assert_eq!(be_u32(stsd, 4), 1, "one sample description");
    let avc1 = child(&stsd[8..], b"avc1");
    let (width, height) = (be_u16(avc1, 24), be_u16(avc1, 26));
    // The visual sample entry's fixed fields take 78 bytes; avcC follows.
    let avcc = child(&avc1[78..], b"avcC");
    let nal_length_size = usize::from(avcc[4] & 3) + 1;
    let mut parameter_sets = Vec::new();
    let mut at = 5;
    for _ in 0..2 {
        // First the SPS count (low 5 bits), then the PPS count.
        let count = if parameter_sets.is_empty() { avcc[at] & 0x1f } else { avcc[at] };
        at += 1;
        for _ in 0..count {
            let length = usize::from(be_u16(avcc, at));
            parameter_sets.push(avcc[at + 2..at + 2 + length].to_vec());
            at += 2 + length;
        }
    }

    let stsz = child(stbl, b"stsz");
    let (uniform_size, count) = (be_u32(stsz, 4), be_u32(stsz, 8) as usize);
    let sizes: Vec<usize> =
        (0..count).map(|i| if uniform_size != 0 { uniform_size } else { be_u32(stsz, 12 + 4 * i) } as usize).collect();
    let stsc = child(stbl, b"stsc");
    let runs: Vec<(u32, u32)> =
        (0..be_u32(stsc, 4) as usize).map(|i| (be_u32(stsc, 8 + 12 * i), be_u32(stsc, 12 + 12 * i))).collect();
    let offsets: Vec<u64> = match boxes(stbl).iter().find(|b| &b.kind == b"stco" || &b.kind == b"co64") {
        Some(b) if &b.kind == b"stco" => {
            (0..be_u32(b.payload, 4) as usize).map(|i| u64::from(be_u32(b.payload, 8 + 4 * i))).collect()
        }
        Some(b) => (0..be_u32(b.payload, 4) as usize).map(|i| be_u64(b.payload, 8 + 8 * i)).collect(),
        None => panic!("no chunk offsets"),
    };
    let mut samples = Vec::new();
    for (chunk, &offset) in offsets.iter().enumerate() {
        let chunk_number = chunk as u32 + 1;
        let per_chunk = runs.iter().rev().find(|(first, _)| *first <= chunk_number).expect("stsc covers every chunk").1;
        let mut at = offset as usize;
        for _ in 0..per_chunk {
            let size = sizes[samples.len()];
            samples.push(file[at..at + size].to_vec());
            at += size;
        }
    }
    assert_eq!(samples.len(), count, "stsc and stco account for every sample in stsz");
    Mp4Video { major_brand, timescale, duration, width, height, parameter_sets, nal_length_size, samples }
}

/// Decodes every sample to RGB (length-prefixed NAL units become Annex B start codes).
pub fn decode(video: &Mp4Video) -> Vec<Image> {
    let mut decoder = Decoder::new().expect("decoder");
    let mut annex_b = Vec::new();
    for set in &video.parameter_sets {
        annex_b.extend([0, 0, 0, 1]);
        annex_b.extend(set);
    }
    assert!(decoder.decode(&annex_b).expect("parameter sets").is_none());
    let mut frames = Vec::new();
    for sample in &video.samples {
        annex_b.clear();
        let mut at = 0;
        while at < sample.len() {
            let length = sample[at..at + video.nal_length_size].iter().fold(0, |n, &b| n << 8 | usize::from(b));
            at += video.nal_length_size;
            annex_b.extend([0, 0, 0, 1]);
            annex_b.extend(&sample[at..at + length]);
            at += length;
        }
        let yuv = decoder.decode(&annex_b).expect("sample decodes").expect("one picture per sample");
        let (width, height) = yuv.dimensions();
        let mut image = Image::new(width as u32, height as u32);
        yuv.write_rgb8(&mut image.rgb);
        frames.push(image);
    }
    frames
}
