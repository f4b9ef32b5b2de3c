//! `virl bench`: speed measurements reported in BENCHMARKS.md.

use clap::{Args, Subcommand};
use std::time::Instant;
use virl_engine::dataset::zoombench::SplitMix64;
use virl_engine::dataset::{Rationale, Sample};
use virl_engine::geometry::BBox;
use virl_engine::reward::RewardConfig;
use virl_engine::score::{TrajectoryInput, assign_credit, score_trajectory};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Scoring throughput: rewards (§4) and credit (§5) of synthetic trajectories on one thread.
    Score(ScoreBench),
    /// Training throughput: trajectories and environment steps per second of whole GRPO/PPO iterations.
    Train(TrainBench),
}

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
    use virl_engine::trainer::{NullSink, Trainer};
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

pub fn run(c: BenchCommand) -> anyhow::Result<()> {
    match c {
        BenchCommand::Score(b) => score(b),
        BenchCommand::Train(b) => train(b),
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
    let mut times = Vec::with_capacity(b.repeats);
    let mut checksum = 0.0;
    for _ in 0..b.repeats.max(1) {
        let t0 = Instant::now();
        let mut scored: Vec<_> = trajs
            .iter()
            .map(|(i, zooms, answer)| {
                let s = &samples[*i];
                score_trajectory(
                    &TrajectoryInput {
                        sample: s,
                        group: &s.id,
                        zooms,
                        answer: Some(answer),
                        format_ok: true,
                        hit_max_rounds: false,
                    },
                    &cfg,
                )
            })
            .collect();
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
