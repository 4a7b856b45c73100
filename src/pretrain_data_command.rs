//! `vlasim pretrain-data`: write a vision-language pre-training corpus (manifest, description and,
//! for inspection, the images of its first samples).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;

use vlasim::pretrain::{write_corpus, write_images};

/// Arguments of `vlasim pretrain-data`.
#[derive(Args)]
pub struct PretrainDataArgs {
    /// Number of samples (scenes); a corpus is the first N samples of its seed, so smaller corpora
    /// of the same seed are prefixes of larger ones.
    #[arg(long)]
    samples: u64,
    /// Corpus seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder: samples.jsonl and info.json go here.
    #[arg(long, default_value = "data/pretrain")]
    out: PathBuf,
    /// Also write PNGs of the static and gripper images (and a .txt of the texts) of the first K samples into OUT/images.
    #[arg(long, value_name = "K")]
    images: Option<u64>,
    /// Enlarge the PNGs this many times (nearest neighbour), for people to look at.
    #[arg(long, default_value_t = 1, requires = "images")]
    zoom: u32,
}

/// Runs `vlasim pretrain-data`.
pub fn run(args: PretrainDataArgs) -> Result<()> {
    if args.samples == 0 {
        bail!("--samples must be at least 1");
    }
    if args.zoom == 0 {
        bail!("--zoom must be at least 1");
    }
    let begin = Instant::now();
    let info = write_corpus(&args.out, args.seed, args.samples)
        .with_context(|| format!("cannot write the corpus into {}", args.out.display()))?;
    let elapsed = begin.elapsed().as_secs_f64();
    println!(
        "wrote {} samples (seed {}) into {} in {elapsed:.1} s: {:.1} MB manifest, {} text pairs",
        info.samples,
        info.seed,
        args.out.display(),
        info.manifest_bytes as f64 / 1e6,
        info.text_kinds.values().sum::<u64>()
    );
    if let Some(count) = args.images {
        let count = count.min(args.samples);
        let written = write_images(&args.out, args.seed, count, args.zoom)?;
        println!("wrote {} image and text files for the first {count} samples", written.len());
    }
    Ok(())
}
