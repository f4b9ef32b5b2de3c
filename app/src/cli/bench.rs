//! `virl bench`: speed measurements reported in BENCHMARKS.md.

use clap::{Args, Subcommand};
use std::time::Instant;
use virl_engine::dataset::{Rationale, Sample};
use virl_engine::geometry::BBox;
use virl_engine::reward::RewardConfig;
use virl_engine::rng::SplitMix64;
use virl_engine::score::{assign_credit, score_trajectory};
use virl_engine::trajectory::{Trajectory, ZoomAction};

mod vlm;
use vlm::{VlmBench, vlm};

/// The benchmarks `virl bench` runs (BENCHMARKS.md).
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Scoring throughput: rewards (§4) and credit (§5) of synthetic trajectories on one thread.
    Score(ScoreBench),
    /// Training throughput: trajectories and environment steps per second of whole GRPO/PPO iterations.
    Train(TrainBench),
    /// The policy alone: ZoomNet's rollout forward passes and PPO update on the
    /// workload of bench/torch_reference.py (prints JSON).
    Policy(PolicyBench),
    /// Studio frame times (headless layout + tessellation) with many
    /// trajectories loaded and a run training.
    Studio(StudioBench),
    /// Qwen3-VL tokens per second, prefill and decode apart, on the workload
    /// of bench/qwen3vl_speed.py (prints JSON).
    Vlm(VlmBench),
}

/// Options of `virl bench studio`.
#[derive(Debug, Args)]
pub struct StudioBench {
    /// Trajectories loaded in the browser ("all loaded").
    #[arg(long, default_value_t = 100_000)]
    trajectories: usize,
    /// Frames timed.
    #[arg(long, default_value_t = 600)]
    frames: usize,
    /// Config of the live run (default: the studio's ZoomBench default).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Instead: one WIDTHxHEIGHT image in the annotation canvas, zoomed from
    /// the overview to full resolution and panned (full-resolution tiles).
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    image: Option<(u32, u32)>,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("expected WIDTHxHEIGHT in pixels, such as 8192x8192, got {s:?}");
    let (w, h) = s.split_once(['x', 'X', '×']).ok_or_else(bad)?;
    match (w.trim().parse::<u32>(), h.trim().parse::<u32>()) {
        (Ok(w), Ok(h)) if (1..=65_535).contains(&w) && (1..=65_535).contains(&h) => Ok((w, h)),
        _ => Err(bad()),
    }
}

fn studio_image(w: u32, h: u32, frames: usize) -> anyhow::Result<()> {
    let t =
        crate::studio::bench_tiles::image_frame_times(w, h, frames).map_err(anyhow::Error::msg)?;
    println!(
        "studio image {w}x{h}: {} frames: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (layout + tessellation, no GPU); tile textures at most {:.0} MiB (bound {:.0} MiB); {} of {} frames at full resolution had every visible tile; PNG written in {:.1} s, overview shown {:.1} s after opening",
        t.ms.len(),
        t.quantile(0.5),
        t.quantile(0.9),
        t.quantile(0.99),
        t.quantile(1.0),
        t.peak_texture_bytes as f64 / (1 << 20) as f64,
        t.budget as f64 / (1 << 20) as f64,
        t.complete_frames,
        t.full_res_frames,
        t.setup_s.0,
        t.setup_s.1
    );
    Ok(())
}

fn studio(b: StudioBench) -> anyhow::Result<()> {
    if let Some((w, h)) = b.image {
        return studio_image(w, h, b.frames);
    }
    let cfg = match &b.config {
        Some(p) => virl_engine::config::SessionConfig::load(p).map_err(anyhow::Error::msg)?,
        None => crate::studio::default_config(),
    };
    let t = crate::studio::bench::frame_times(cfg, b.trajectories, b.frames)
        .map_err(anyhow::Error::msg)?;
    println!(
        "studio frames: {} frames, {} trajectories in the browser, {} live iterations during the frames: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (layout + tessellation, no GPU)",
        t.ms.len(),
        t.trajectories,
        t.live_iterations,
        t.quantile(0.5),
        t.quantile(0.9),
        t.quantile(0.99),
        t.quantile(1.0)
    );
    Ok(())
}

/// Flags of `virl bench train`.
#[derive(Debug, Args)]
pub struct TrainBench {
    /// Config (default: the defaults — 768 px ZoomBench, 64 px views, 16 samples × 8 rollouts).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Iterations timed (after one untimed warm-up iteration).
    #[arg(long, default_value_t = 10)]
    iters: u64,
    /// Device.
    #[arg(long, default_value = "cpu")]
    device: virl_engine::policy::DeviceKind,
}

fn train(b: TrainBench) -> anyhow::Result<()> {
    use virl_engine::events::NullSink;
    use virl_engine::trainer::Trainer;
    let mut cfg = match &b.config {
        Some(p) => virl_engine::config::SessionConfig::load(p).map_err(anyhow::Error::msg)?,
        None => virl_engine::config::SessionConfig::default(),
    };
    cfg.device = b.device;
    cfg.trainer.eval_every = 0;
    let mut t = Trainer::new(cfg, None).map_err(anyhow::Error::msg)?;
    t.step(&mut NullSink).map_err(anyhow::Error::msg)?;
    let start = Instant::now();
    let (mut trajs, mut steps) = (0usize, 0.0f64);
    for _ in 0..b.iters {
        let m = t.step(&mut NullSink).map_err(anyhow::Error::msg)?;
        trajs += m.trajectories;
        // each trajectory: its zooms plus the answer (unless cut off)
        steps += m.trajectories as f64 * (m.zooms + m.answered_frac);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "train ({}): {} iterations in {:.2} s: {:.3} s/iteration, {:.0} trajectories/s, {:.0} env steps/s (rollout + scoring + PPO update)",
        b.device,
        b.iters,
        secs,
        secs / b.iters as f64,
        trajs as f64 / secs,
        steps / secs
    );
    Ok(())
}

/// ZoomNet's rollout forward passes and PPO update alone, on the fixed
/// workload that `bench/torch_reference.py` runs in PyTorch: 16 samples × 8
/// rollouts = 128 episodes, two sampled actions each (step 0 on a blank crop,
/// step 1 on a crop), then 2 epochs of the PPO update over those 256 actions
/// in one minibatch. Inputs are random bytes of the real shapes.
#[derive(Debug, Args)]
pub struct PolicyBench {
    /// Iterations timed (after one untimed warm-up iteration); medians are reported.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Device.
    #[arg(long, default_value = "cpu")]
    device: virl_engine::policy::DeviceKind,
    /// Side of the global view (default: that of the default schedule, what
    /// `virl train` runs without a config).
    #[arg(long)]
    global_view: Option<u32>,
}

fn policy(b: PolicyBench) -> anyhow::Result<()> {
    use candle_core::Tensor;
    use virl_engine::env::EpisodeBatch;
    use virl_engine::optim::AdamW;
    use virl_engine::policy::zoomnet::{ZoomNet, ZoomNetConfig};
    use virl_engine::policy::{Policy, StepObs};
    use virl_engine::trainer::{adam_params, ppo_loss};
    const U: usize = 16;
    const G: usize = 8;
    const B: usize = U * G;
    let cfg = virl_engine::config::SessionConfig::default();
    let view = cfg.env.view as usize;
    let global = b
        .global_view
        .unwrap_or(crate::studio::default_config().env.global_view) as usize;
    let answers: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    let net = ZoomNet::new(
        ZoomNetConfig::default(),
        view,
        global,
        cfg.env.max_rounds,
        answers,
        b.device,
        0,
    )
    .map_err(anyhow::Error::msg)?;
    let mut opt = AdamW::new(net.named_vars(), adam_params(&cfg.trainer))?;
    let mut rng = SplitMix64::new(0);
    let px = view * view * 3;
    let mut bytes = |n: usize| -> Vec<u8> { (0..n).map(|_| rng.next_u64() as u8).collect() };
    let globals = bytes(U * global * global * 3);
    let crops = bytes(B * px);
    let mut rng = SplitMix64::new(1);
    let questions: Vec<Vec<f32>> = (0..B)
        .map(|_| {
            (0..cfg.policy.question_dim)
                .map(|_| f32::from(u8::from(rng.chance(0.06))))
                .collect()
        })
        .collect();
    let of_episode: Vec<usize> = (0..B).map(|i| i / G).collect();
    let sizes = vec![(768.0, 768.0); B];
    let episode = |step: usize| {
        let b = BBox::new(0.0, 0.0, 64.0, 64.0);
        let mut t = Trajectory::new("s", "s", 0, "7");
        t.actions = vec![ZoomAction::new(b, b, None, None); step];
        t
    };
    let batches = [
        EpisodeBatch {
            episodes: (0..B).map(|_| episode(0)).collect(),
            samples: vec![0; B],
            global: Vec::new(),
            crop: vec![128; B * px],
            prev_crop: vec![128; B * px],
            view: view as u32,
            global_view: global as u32,
        },
        EpisodeBatch {
            episodes: (0..B).map(|_| episode(1)).collect(),
            samples: vec![0; B],
            global: Vec::new(),
            crop: crops,
            prev_crop: vec![128; B * px],
            view: view as u32,
            global_view: global as u32,
        },
    ];
    let active: Vec<usize> = (0..B).collect();
    let t = &cfg.trainer;
    let mut iteration = |rng: &mut SplitMix64| -> anyhow::Result<(f64, f64)> {
        let t0 = Instant::now();
        let keys = net.encode_globals(&globals, U)?;
        let mut taken = Vec::with_capacity(2);
        for batch in &batches {
            taken.push(net.act(
                batch,
                &keys,
                &of_episode,
                &questions,
                &sizes,
                &active,
                Some(&mut *rng),
            )?);
        }
        let t1 = Instant::now();
        let mut obs = Vec::with_capacity(2 * B);
        let mut old = Vec::with_capacity(2 * B);
        for (batch, acts) in batches.iter().zip(&taken) {
            for (i, (_, choice, lp)) in acts.iter().enumerate() {
                obs.push(StepObs {
                    episode: of_episode[i],
                    step: batch.episodes[i].actions.len(),
                    question: &questions[i],
                    crop: batch.crop_of(i),
                    prev_crop: batch.prev_crop_of(i),
                    choice: *choice,
                });
                old.push(*lp);
            }
        }
        let dev = net.device();
        let old = Tensor::from_vec(old, 2 * B, dev)?;
        let adv: Vec<f32> = (0..2 * B).map(|_| rng.f64() as f32 * 2.0 - 1.0).collect();
        let adv = Tensor::from_vec(adv, 2 * B, dev)?;
        for _ in 0..t.epochs {
            let (lp, ent) = net.evaluate(&globals, U, &obs)?;
            let l = ppo_loss(&lp, &ent, &old, &adv, t.clip, t.entropy_coef)?;
            opt.backward_step(&l.loss)?;
        }
        // The step's last parameter update must have finished (CUDA is asynchronous).
        net.device().synchronize()?;
        Ok(((t1 - t0).as_secs_f64(), t1.elapsed().as_secs_f64()))
    };
    let mut rng = SplitMix64::new(2);
    iteration(&mut rng)?;
    let times = (0..b.iters.max(1))
        .map(|_| iteration(&mut rng))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let median = |f: fn(&(f64, f64)) -> f64| {
        let mut v: Vec<f64> = times.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (roll, upd) = (median(|t| t.0), median(|t| t.1));
    println!(
        "{{\"impl\": \"virl (candle)\", \"device\": \"{}\", \"iters\": {}, \"global_view\": {}, \"rollout_ms\": {:.2}, \"update_ms\": {:.2}, \"actions_per_s\": {:.1}, \"trajectories_per_s\": {:.1}}}",
        b.device,
        b.iters,
        global,
        roll * 1e3,
        upd * 1e3,
        (2 * B) as f64 / (roll + upd),
        B as f64 / (roll + upd)
    );
    Ok(())
}

/// Flags of `virl bench score`.
#[derive(Debug, Args)]
pub struct ScoreBench {
    /// Samples (GRPO groups) per batch.
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    /// Trajectories per sample (G).
    #[arg(long, default_value_t = 8)]
    group: usize,
    /// Most zooms per trajectory (each trajectory gets 0..=max uniformly).
    #[arg(long, default_value_t = 6)]
    max_zooms: u32,
    /// Timed repetitions (the median is reported).
    #[arg(long, default_value_t = 7)]
    repeats: usize,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// `virl bench`: runs one benchmark and prints its figures.
pub fn run(c: BenchCommand) -> anyhow::Result<()> {
    match c {
        BenchCommand::Score(b) => score(b),
        BenchCommand::Train(b) => train(b),
        BenchCommand::Policy(b) => policy(b),
        BenchCommand::Studio(b) => studio(b),
        BenchCommand::Vlm(b) => vlm(b),
    }
}

fn random_box(rng: &mut SplitMix64, near: Option<&BBox>) -> BBox {
    match near {
        // Around a ground-truth box: jittered, so IoUs spread over [0, 1].
        Some(g) => {
            let s = g.width().max(8.0);
            let j = |rng: &mut SplitMix64| (rng.f64() - 0.5) * s;
            BBox::new(
                g.x1 + j(rng),
                g.y1 + j(rng),
                g.x2 + j(rng) + 1.0,
                g.y2 + j(rng) + 1.0,
            )
        }
        None => {
            let (x, y) = (rng.f64() * 700.0, rng.f64() * 700.0);
            BBox::from_xywh(x, y, 10.0 + rng.f64() * 100.0, 10.0 + rng.f64() * 100.0)
        }
    }
}

fn score(b: ScoreBench) -> anyhow::Result<()> {
    let mut rng = SplitMix64::new(b.seed);
    let samples: Vec<Sample> = (0..b.samples)
        .map(|i| {
            let m = 1 + (rng.next_u64() % 2) as usize;
            Sample {
                id: format!("s{i}"),
                image: String::new(),
                width: 768,
                height: 768,
                question: String::new(),
                answer: "7".into(),
                options: vec![],
                rationales: (0..m)
                    .map(|_| Rationale {
                        bbox: BBox::from_xywh(
                            rng.f64() * 700.0,
                            rng.f64() * 700.0,
                            14.0 + rng.f64() * 14.0,
                            14.0 + rng.f64() * 14.0,
                        ),
                        label: String::new(),
                    })
                    .collect(),
                meta: None,
                extra: Default::default(),
            }
        })
        .collect();
    // (sample index, zooms, answer)
    let mut trajs: Vec<(usize, Vec<BBox>, &str)> = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        for _ in 0..b.group {
            let k = rng.range(0, b.max_zooms);
            let zooms = (0..k)
                .map(|_| {
                    let near = rng.chance(0.6).then(|| {
                        &s.rationales[(rng.next_u64() % s.rationales.len() as u64) as usize].bbox
                    });
                    random_box(&mut rng, near)
                })
                .collect();
            trajs.push((i, zooms, if rng.chance(0.5) { "7" } else { "3" }));
        }
    }
    let actions: usize = trajs.iter().map(|t| t.1.len()).sum();
    let cfg = RewardConfig::default();
    // The records as a rollout leaves them (unscored); the timed part is
    // what the trainer does to them: score each, then credit by group.
    let records: Vec<Trajectory> = trajs
        .iter()
        .map(|(i, zooms, answer): &(usize, Vec<BBox>, &str)| {
            let s = &samples[*i];
            let mut t = Trajectory::new(&s.id, &s.id, 0, &s.answer);
            t.answer = Some(answer.to_string());
            t.actions = zooms
                .iter()
                .map(|&z| ZoomAction::new(z, z, None, None))
                .collect();
            t
        })
        .collect();
    let mut times = Vec::with_capacity(b.repeats);
    let mut checksum = 0.0;
    for _ in 0..b.repeats.max(1) {
        let mut scored = records.clone();
        let t0 = Instant::now();
        for (t, (i, _, _)) in scored.iter_mut().zip(&trajs) {
            score_trajectory(t, &samples[*i], &cfg);
        }
        assign_credit(&mut scored, &cfg);
        times.push(t0.elapsed().as_secs_f64());
        checksum += scored.iter().map(|t| t.advantage.abs()).sum::<f64>();
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    println!(
        "score: {} trajectories ({} groups of {}), {} zoom actions, median of {} runs on one thread",
        trajs.len(),
        b.samples,
        b.group,
        actions,
        times.len()
    );
    println!(
        "  {:.1} ms per batch  |  {:.2} M actions/s  |  {:.2} M trajectories/s  (min {:.1} ms, max {:.1} ms; checksum {checksum:.3})",
        med * 1e3,
        actions as f64 / med / 1e6,
        trajs.len() as f64 / med / 1e6,
        times[0] * 1e3,
        times[times.len() - 1] * 1e3
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn an_image_size_is_width_x_height_in_pixels() {
        assert_eq!(parse_size("8192x8192"), Ok((8192, 8192)));
        assert_eq!(parse_size("15000×10000"), Ok((15000, 10000)));
        for bad in ["8192", "0x10", "10x", "x10", "-5x5", "70000x10"] {
            let e = parse_size(bad).expect_err(bad);
            assert!(e.contains("WIDTHxHEIGHT"), "{bad}: {e}");
        }
    }
}
