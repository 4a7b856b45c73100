//! `vlasim bench`: the measurements BENCHMARKS.md reports.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Result, anyhow};

use vlasim::data::batch::{BatchSettings, Sampler};
use vlasim::data::collect::{self, CollectSettings, Collected};
use vlasim::data::reader::Dataset;
use vlasim::eval::{self, EvalSettings, Shard, Wording};
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
        expert_leads: 0,
        wording: Wording::HeldOut,
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
        mid_chain_share: 0.0,
        seed: 0,
        dagger: None,
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
    let (memory, rgb) = dataset.image_bytes();
    println!(
        "images in memory: {:.1} MB, {:.1} kB per frame with both cameras ({:.1} MB as RGB)",
        memory as f64 / 1e6,
        memory as f64 / 1e3 / dataset.frames() as f64,
        rgb as f64 / 1e6
    );
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

/// CPU time consumed by the calling thread, seconds. With `RAYON_NUM_THREADS=1` candle computes on
/// the calling thread, so this is the model's cost even when other processes share the cores (wall
/// time then also counts the time spent waiting for a core).
fn thread_cpu_secs() -> f64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec it is given and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9
}

/// Wall and thread-CPU seconds of `job`.
fn timed(mut job: impl FnMut() -> Result<()>) -> Result<(f64, f64)> {
    let (wall, cpu) = (Instant::now(), thread_cpu_secs());
    job()?;
    Ok((wall.elapsed().as_secs_f64(), thread_cpu_secs() - cpu))
}

/// Per preset: parameters, image tokens per frame, batch-1 closed-loop ms/step (`VlaPolicy::act`,
/// history cached) and training samples/s (forward, loss, backward, AdamW) at `batch`, each as
/// thread CPU time and wall time; first, the fused kernels against candle's differentiable
/// compositions. Run with `RAYON_NUM_THREADS=1` for single-threaded figures.
pub fn vla(presets: &[String], formulation: &str, history_window: Option<usize>, batch: usize) -> Result<()> {
    use candle_nn::Optimizer;
    use vlasim::vla::attention_maps::PatchAttention;
    use vlasim::vla::{ForwardOptions, Vla, VlaPolicy, presets as zoo};

    println!(
        "threads: RAYON_NUM_THREADS={}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "(unset: all cores)".into())
    );
    fused_kernels()?;
    let window = history_window.map_or_else(String::new, |frames| format!(", window {frames}"));
    println!("formulation {formulation}{window}, training batch {batch}");
    println!(
        "| preset | params | image tokens | inference ms/step (CPU / wall) | with attention maps | occlusion check | training samples/s (CPU / wall) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let names: Vec<String> =
        if presets.is_empty() { zoo::PRESETS.iter().map(|s| s.to_string()).collect() } else { presets.to_vec() };
    for name in &names {
        let mut config = match zoo::resolve(name, formulation) {
            Ok(config) => config,
            Err(_) if zoo::PRESETS.contains(&name.as_str()) => {
                println!("| {name} | — | — | (no {formulation}) | — |");
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        if let Some(frames) = history_window {
            config
                .formulation
                .set_history_window(frames)
                .map_err(|reason| anyhow!("formulation `{formulation}`: {reason}"))?;
        }
        let model = Vla::new(config.clone(), &candle_core::Device::Cpu)?;
        let (input, targets) = bench_batch(&config, batch)?;

        let mut policy = VlaPolicy::new(model.clone());
        let ids = input.instruction_ids.get(0)?.to_vec1::<u32>()?;
        let mask = input.instruction_mask.get(0)?.to_vec1::<u32>()?;
        policy.reset(&ids, &mask)?;
        let image = input.static_images.get(0)?.get(0)?;
        let obs = input.robot_obs.get(0)?.get(0)?.to_vec1::<f32>()?;
        for _ in 0..config.formulation.history_window {
            policy.act(&image, None, &obs)?;
        }
        let steps = 100;
        let (wall, cpu) = timed(|| {
            for _ in 0..steps {
                policy.act(&image, None, &obs)?;
            }
            Ok(())
        })?;
        let ms_per_step = |secs: f64| secs * 1000.0 / steps as f64;
        // What the GUI's overlay adds: a full pass over the window capturing attention, turned
        // into the patch maps; the occlusion check on top of it, over the map's grid.
        let (_, attention_cpu) = timed(|| {
            for _ in 0..steps {
                let (_, capture) = policy.predict_with_attention(&image, None, &obs)?;
                PatchAttention::of_newest_frame(&capture)?;
            }
            Ok(())
        })?;
        let occlusion_steps = 10;
        let (_, occlusion_cpu) = timed(|| {
            for _ in 0..occlusion_steps {
                policy.occlusion(8)?;
            }
            Ok(())
        })?;

        let mut optimizer = candle_nn::AdamW::new_lr(model.vars(), 1e-4)?;
        let options = ForwardOptions { capture_attention: false, teacher_actions: Some(&targets.actions) };
        let mut train_step = || -> Result<()> {
            let loss = model.loss(&model.forward(&input, options)?, &targets)?;
            optimizer.backward_step(&loss)?;
            Ok(())
        };
        train_step()?;
        let train_steps = 5;
        let (train_wall, train_cpu) = timed(|| (0..train_steps).try_for_each(|_| train_step()))?;
        let samples_per_sec = |secs: f64| (train_steps * batch) as f64 / secs;
        println!(
            "| {name} | {:.2} M | {} | {:.2} / {:.2} | {:.2} | {:.1} | {:.1} / {:.1} |",
            model.params().parameter_count() as f64 / 1e6,
            model.image_tokens(),
            ms_per_step(cpu),
            ms_per_step(wall),
            ms_per_step(attention_cpu),
            occlusion_cpu * 1000.0 / occlusion_steps as f64,
            samples_per_sec(train_cpu),
            samples_per_sec(train_wall),
        );
    }
    Ok(())
}

/// A random batch for `config`: images, `robot_obs`, an instruction and target actions.
fn bench_batch(
    config: &vlasim::vla::VlaConfig,
    batch: usize,
) -> Result<(vlasim::vla::VlaInput, vlasim::vla::ActionTargets)> {
    use candle_core::{DType, Device, Tensor};
    let window = config.formulation.history_window;
    let size = config.static_image_size;
    let length = config.max_text_len;
    let chunk = config.formulation.chunk();
    let cpu = &Device::Cpu;
    let input = vlasim::vla::VlaInput {
        static_images: Tensor::rand(0f32, 1.0, (batch, window, 3, size, size), cpu)?,
        gripper_images: None,
        robot_obs: Tensor::rand(-1f32, 1.0, (batch, window, config.robot_obs_dim), cpu)?,
        instruction_ids: Tensor::arange(4u32, 4 + length as u32, cpu)?.unsqueeze(0)?.repeat((batch, 1))?,
        instruction_mask: Tensor::ones((batch, length), DType::U32, cpu)?,
    };
    let targets = vlasim::vla::ActionTargets {
        actions: Tensor::rand(-1f32, 1.0, (batch, window, chunk, 7), cpu)?,
        mask: Tensor::ones((batch, window, chunk), DType::F32, cpu)?,
        scene_state: None,
        steps_left: None,
    };
    Ok((input, targets))
}

/// Forward + backward time of each fused kernel against candle's differentiable composition, on
/// attention-sized scores and token-sized activations.
fn fused_kernels() -> Result<()> {
    use candle_core::{D, Device, Tensor, Var};
    use vlasim::vla::ops;
    let scores = Var::from_tensor(&Tensor::randn(0f32, 1.0, (8, 4, 81, 81), &Device::Cpu)?)?;
    let tokens = Var::from_tensor(&Tensor::randn(0f32, 1.0, (8, 81, 64), &Device::Cpu)?)?;
    let weight = Tensor::ones(64, candle_core::DType::F32, &Device::Cpu)?;
    let bias = Tensor::zeros(64, candle_core::DType::F32, &Device::Cpu)?;
    type Kernel<'a> = Box<dyn Fn() -> candle_core::Result<Tensor> + 'a>;
    let pairs: Vec<(&str, Kernel, Kernel)> = vec![
        (
            "softmax [8,4,81,81]",
            Box::new(|| ops::scaled_masked_softmax(&scores, 1.0, None)),
            Box::new(|| candle_nn::ops::softmax(scores.as_tensor(), D::Minus1)),
        ),
        (
            "layer norm [8,81,64]",
            Box::new(|| ops::layer_norm(&tokens, &weight, &bias, 1e-5)),
            Box::new(|| candle_nn::ops::layer_norm_slow(&tokens, &weight, &bias, 1e-5)),
        ),
        (
            "rms norm [8,81,64]",
            Box::new(|| ops::rms_norm(&tokens, &weight, 1e-5)),
            Box::new(|| candle_nn::ops::rms_norm_slow(&tokens, &weight, 1e-5)),
        ),
        ("gelu [8,81,64]", Box::new(|| ops::gelu(&tokens)), Box::new(|| tokens.gelu())),
    ];
    let time = |kernel: &Kernel| -> Result<f64> {
        let repeats = 50;
        let (_, cpu) = timed(|| (0..repeats).try_for_each(|_| Ok(kernel()?.sum_all()?.backward().map(drop)?)))?;
        Ok(cpu * 1e6 / repeats as f64)
    };
    println!("| kernel (forward + backward, thread CPU time) | fused µs | candle differentiable µs |");
    println!("|---|---|---|");
    for (name, fused, slow) in &pairs {
        println!("| {name} | {:.0} | {:.0} |", time(fused)?, time(slow)?);
    }
    Ok(())
}
