//! `vlasim bench`: the measurements BENCHMARKS.md reports.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Result;

use vlasim::data::batch::{BatchSettings, Sampler};
use vlasim::data::collect::{self, CollectSettings, Collected};
use vlasim::data::reader::Dataset;
use vlasim::eval::{self, EvalSettings, Shard};
use vlasim::parallel;
use vlasim::pretrain;
use vlasim::sim::arm::Action;
use vlasim::sim::camera::{Image, PolicyCameras, View};
use vlasim::sim::chains::{self, EVAL_SEED};
use vlasim::sim::episode::{self, MAX_STEPS_PER_SUBTASK, StepReport};
use vlasim::sim::expert::{Expert, ExpertSettings, Policy};
use vlasim::sim::scene::Scene;
use vlasim::sim::tasks::Task;
use vlasim::video::rollout::Progress;
use vlasim::video::{ComposeOptions, Composer, Recorder};

/// Control steps per second and camera frames per second, single thread.
pub fn sim(scene_name: &str) -> Result<()> {
    let scene = Scene::resolve(scene_name)?;
    let chain = chains::chain(EVAL_SEED, 0);
    let mut world = episode::chain_world(&scene, &chain, 0)?;
    let mut expert = Expert::new(ExpertSettings::default());
    // The expert drives, so contacts, grasps and joints are exercised as in real episodes.
    let steps = 2000;
    let begin = Instant::now();
    let mut task_index = 0;
    expert.begin(chain.tasks[0], &world);
    for step in 0..steps {
        if step % 300 == 299 {
            task_index = (task_index + 1) % chain.tasks.len();
            expert.begin(chain.tasks[task_index], &world);
        }
        let action = expert.act(&world);
        world.step(&action);
    }
    let elapsed = begin.elapsed().as_secs_f64();
    println!(
        "physics: {:.0} control steps/s ({:.0} physics steps/s at 8 substeps), scene {}",
        steps as f64 / elapsed,
        8.0 * steps as f64 / elapsed,
        scene.name
    );

    let mut cameras = PolicyCameras::new(&world);
    for (view, name) in [(View::Static, "static"), (View::Gripper, "gripper")] {
        let mut image = Image::new(0, 0);
        cameras.render_into(&world, view, &mut image);
        let frames = 3000;
        let begin = Instant::now();
        for _ in 0..frames {
            cameras.render_into(&world, view, &mut image);
        }
        let elapsed = begin.elapsed().as_secs_f64();
        println!("camera {name} {}x{}: {:.0} frames/s", image.width, image.height, frames as f64 / elapsed);
    }
    let idle_steps = 1000;
    let begin = Instant::now();
    for _ in 0..idle_steps {
        world.step(&Action::IDLE);
    }
    println!("physics, arm at rest: {:.0} control steps/s", idle_steps as f64 / begin.elapsed().as_secs_f64());
    Ok(())
}

/// Expert success per task over `episodes` start states each, and over `chain_count` evaluation chains.
pub fn expert(scene_name: &str, episodes: u64, chain_count: u64) -> Result<()> {
    let scene = Scene::resolve(scene_name)?;
    let begin = Instant::now();
    let tasks = Task::all();
    let results = parallel::map(tasks.len(), |i| {
        let task = tasks[i];
        let mut successes = 0;
        let mut steps = 0;
        let mut failed_seeds = Vec::new();
        for seed in 0..episodes {
            let outcome = episode::task_world(&scene, task, seed).map(|mut world| {
                let mut expert = Expert::new(ExpertSettings::default());
                episode::run_subtask(&mut world, &mut expert, task, MAX_STEPS_PER_SUBTASK, &mut episode::no_observer)
            });
            match outcome {
                Ok(outcome) if outcome.success => {
                    successes += 1;
                    steps += outcome.steps;
                }
                _ => failed_seeds.push(seed),
            }
        }
        (successes, steps, failed_seeds)
    });
    println!("| task | success | mean steps | failed seeds |");
    println!("|---|---|---|---|");
    let mut worst = 1.0f64;
    for (task, (successes, steps, failed)) in tasks.iter().zip(&results) {
        let rate = *successes as f64 / episodes as f64;
        worst = worst.min(rate);
        let shown: Vec<String> = failed.iter().take(8).map(|s| s.to_string()).collect();
        println!(
            "| {} | {:.1} % | {:.0} | {} |",
            task,
            100.0 * rate,
            *steps as f64 / (*successes).max(1) as f64,
            shown.join(" ")
        );
    }
    println!(
        "worst task: {:.1} %; {} episodes in {:.1} s",
        100.0 * worst,
        episodes * tasks.len() as u64,
        begin.elapsed().as_secs_f64()
    );

    let settings = EvalSettings {
        model: "expert".into(),
        scene,
        seed: EVAL_SEED,
        total_chains: chain_count,
        shard: Shard::WHOLE,
        threads: parallel::available_threads(),
    };
    let results = eval::evaluate(&settings, &|| Ok(Box::new(Expert::new(ExpertSettings::default()))), &|_| {})?;
    println!("wall time {:.1} s on {} threads", results.wall_time_s, results.threads);
    print!("{}", results.metrics.summary());
    Ok(())
}

/// Recording speed on one thread at the default 640×480: composing frames along an expert
/// rollout (without and with the policy-camera inset), then encoding them as MP4 and as GIF.
pub fn record(scene_name: &str) -> Result<()> {
    let scene = Scene::resolve(scene_name)?;
    let chain = chains::chain(EVAL_SEED, 0);
    let mut world = episode::chain_world(&scene, &chain, 0)?;
    let mut expert = Expert::new(ExpertSettings::default());
    expert.begin(chain.tasks[0], &world);
    let options = ComposeOptions::default();
    let mut plain = Composer::new(&world, options)?;
    let mut with_inset = Composer::new(&world, ComposeOptions { inset: true, ..options })?;
    let mut progress = Progress::new(&chain.tasks, true);
    // Moving frames, as in a real recording: a still scene would flatter the encoders.
    let count = 150;
    let (mut plain_s, mut inset_s) = (0.0, 0.0);
    let mut frames = Vec::with_capacity(count);
    for step in 1..=count {
        let action = expert.act(&world);
        world.step(&action);
        progress.update(StepReport { task: chain.tasks[0], step, success: false });
        let caption = progress.caption();
        let begin = Instant::now();
        plain.compose(&world, &caption);
        plain_s += begin.elapsed().as_secs_f64();
        let begin = Instant::now();
        with_inset.compose(&world, &caption);
        inset_s += begin.elapsed().as_secs_f64();
        frames.push(with_inset.frame().clone());
    }
    let (width, height) = (options.width, options.height);
    println!("compose {width}x{height}: {:.0} frames/s", count as f64 / plain_s);
    println!("compose {width}x{height} with inset: {:.0} frames/s", count as f64 / inset_s);

    let dir = std::env::temp_dir().join(format!("vlasim-bench-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for extension in ["mp4", "gif"] {
        let path = dir.join(format!("bench.{extension}"));
        let begin = Instant::now();
        let mut recorder = Recorder::create(&path, width, height, 30.0)?;
        for frame in &frames {
            recorder.push(frame)?;
        }
        let summary = recorder.finish()?;
        let elapsed = begin.elapsed().as_secs_f64();
        let bytes = std::fs::metadata(&path)?.len() as f64;
        println!(
            "encode {extension} {width}x{height}: {:.0} frames/s, {:.0} kB for {:.1} s ({:.0} kbit/s)",
            frames.len() as f64 / elapsed,
            bytes / 1e3,
            summary.duration_s,
            8.0 * bytes / 1e3 / summary.duration_s
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Data collection and loading: a dataset of `episodes` demonstrations per task on `scene_name`
/// collected on all cores (demonstrations per minute, MB per 1000 frames), then read back
/// (decoding time) and sampled into augmented batches of RoboVLMs' shape on one core (samples/s).
pub fn data(scene_name: &str, episodes: u64) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("vlasim-bench-data-{}", std::process::id()));
    let settings = CollectSettings {
        scenes: vec![scene_name.to_owned()],
        tasks: Task::all().iter().map(|t| t.name()).collect(),
        episodes_per_task: episodes as usize,
        play_sequences: 0,
        play_tasks: 0,
        window_steps: 64,
        noise_std: 0.1,
        seed: 0,
    };
    let workers = parallel::available_threads();
    let begin = Instant::now();
    let collected = collect::collect(&settings, &dir, workers, &AtomicBool::new(false), &|_| {})?;
    let collect_s = begin.elapsed().as_secs_f64();
    let Collected::Finished(summary) = collected else {
        anyhow::bail!("the benchmark collection did not finish");
    };
    println!(
        "collect: {} demonstrations ({} frames, {} failed attempts discarded) in {collect_s:.1} s on {workers} threads: {:.1} demonstrations/min, {:.0} frames/s",
        summary.episodes,
        summary.frames,
        summary.failed_attempts,
        summary.episodes as f64 * 60.0 / collect_s,
        summary.frames as f64 / collect_s
    );
    println!(
        "size: {:.2} MB per 1000 frames ({:.1} MB in all)",
        summary.bytes as f64 / 1e6 * 1000.0 / summary.frames as f64,
        summary.bytes as f64 / 1e6
    );

    let begin = Instant::now();
    let dataset = Dataset::open(&dir)?;
    let open_s = begin.elapsed().as_secs_f64();
    println!("open (parquet + decode both cameras): {open_s:.2} s, {:.0} frames/s", dataset.frames() as f64 / open_s);
    let all: Vec<usize> = (0..dataset.episodes.len()).collect();
    for (name, settings) in [
        ("with random shift", BatchSettings::default()),
        ("without augmentation", BatchSettings { static_shift_px: 0, gripper_shift_px: 0, ..BatchSettings::default() }),
    ] {
        let mut sampler = Sampler::new(&dataset, &all, settings, 0)?;
        let mut batch = sampler.next_batch();
        let batches = 200;
        let begin = Instant::now();
        for _ in 0..batches {
            sampler.fill(&mut batch);
        }
        let elapsed = begin.elapsed().as_secs_f64();
        println!(
            "reader {name}: {:.0} samples/s (batch {}, history {}, chunk {}, one thread)",
            (batches * settings.batch_size) as f64 / elapsed,
            settings.batch_size,
            settings.history,
            settings.chunk
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Pre-training corpus speed: samples drawn and described per second on one thread, samples
/// rendered (world built, both cameras) per second on one thread, and a 100k-sample manifest
/// written on all cores, with its size per 1000 samples.
pub fn pretrain_data() -> Result<()> {
    let seed = 0;
    let described = 20_000;
    let begin = Instant::now();
    let mut pairs = 0;
    for index in 0..described {
        pairs += pretrain::describe(&pretrain::sample_state(seed, index)).len();
    }
    let elapsed = begin.elapsed().as_secs_f64();
    println!(
        "sample + describe, 1 thread: {:.0} samples/s ({:.1} text pairs per sample)",
        described as f64 / elapsed,
        pairs as f64 / described as f64
    );

    let rendered = 2_000;
    let mut renderer = pretrain::SampleRenderer::default();
    let begin = Instant::now();
    for index in 0..rendered {
        renderer.render(&pretrain::sample_state(seed, index));
    }
    println!(
        "sample + world + static and gripper images, 1 thread: {:.0} samples/s",
        rendered as f64 / begin.elapsed().as_secs_f64()
    );

    let written = 100_000;
    let dir = std::env::temp_dir().join(format!("vlasim-bench-pretrain-{}", std::process::id()));
    let begin = Instant::now();
    let info = pretrain::write_corpus(&dir, seed, written)?;
    let elapsed = begin.elapsed().as_secs_f64();
    println!(
        "manifest of {written} samples on {} threads: {:.1} s ({:.0} samples/s), {:.0} kB per 1000 samples",
        parallel::available_threads(),
        elapsed,
        written as f64 / elapsed,
        info.manifest_bytes as f64 / written as f64
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
