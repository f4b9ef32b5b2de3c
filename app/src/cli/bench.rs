//! `virl bench`: speed measurements reported in BENCHMARKS.md.

use clap::{Args, Subcommand};
use std::time::Instant;
use virl_engine::rng::SplitMix64;
use virl_engine::dataset::{Rationale, Sample};
use virl_engine::geometry::BBox;
use virl_engine::reward::RewardConfig;
use virl_engine::score::{assign_credit, score_trajectory};
use virl_engine::trajectory::{Trajectory, ZoomAction};

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

/// Options of `virl bench vlm`.
#[derive(Debug, Args)]
pub struct VlmBench {
    /// The checkpoint folder (`virl vlm init --preset tiny|2b`).
    #[arg(long)]
    model: std::path::PathBuf,
    /// Side of the square image (a multiple of 32: no resize).
    #[arg(long, default_value_t = 512)]
    image_side: u32,
    /// Text tokens around the image.
    #[arg(long, default_value_t = 64)]
    text_tokens: usize,
    /// Tokens decoded after the prefill.
    #[arg(long, default_value_t = 64)]
    new_tokens: usize,
    /// Side of the crop of the second turn (0: one turn only).
    #[arg(long, default_value_t = 256)]
    crop_side: u32,
    /// Timed repetitions (after one warm-up).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Rollouts decoded together after the shared prefill (a GRPO group);
    /// decode tokens/s counts all of them. Only with --crop-side 0.
    #[arg(long, default_value_t = 1)]
    group: usize,
    /// f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    dtype: virl_engine::policy::qwen_vl::Precision,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: virl_engine::policy::DeviceKind,
}

/// The benchmark's image: a deterministic gradient with a checkerboard.
pub fn bench_image(side: u32) -> image::RgbImage {
    image::RgbImage::from_fn(side, side, |x, y| {
        image::Rgb([
            (x * 255 / side.max(1)) as u8,
            (y * 255 / side.max(1)) as u8,
            if (x / 32 + y / 32) % 2 == 0 { 200 } else { 40 },
        ])
    })
}

fn vlm(b: VlmBench) -> anyhow::Result<()> {
    use virl_engine::policy::qwen_vl::image::prepare;
    use virl_engine::policy::qwen_vl::{KvCache, LogitsOf, Piece, QwenVl};
    let dev = virl_engine::policy::device(b.device).map_err(anyhow::Error::msg)?;
    let t0 = Instant::now();
    let m = QwenVl::load(&b.model, b.dtype, &dev)?;
    let load_s = t0.elapsed().as_secs_f64();
    let tok = &m.tokenizer;
    let img =
        prepare(&bench_image(b.image_side), &m.image_config, None).map_err(anyhow::Error::msg)?;
    let crop = (b.crop_side > 0)
        .then(|| prepare(&bench_image(b.crop_side), &m.image_config, None))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    // The same ids as bench/qwen3vl_speed.py: byte tokens of 'a' (97)
    // around the image, half before, half after.
    let half = b.text_tokens / 2;
    let before: Vec<u32> = std::iter::once(tok.im_start)
        .chain(std::iter::repeat_n(97, half))
        .chain(std::iter::once(tok.vision_start))
        .collect();
    let after: Vec<u32> = std::iter::once(tok.vision_end)
        .chain(std::iter::repeat_n(97, b.text_tokens - half))
        .collect();
    let argmax = |l: &candle_core::Tensor| -> anyhow::Result<u32> {
        Ok(l.squeeze(0)?.argmax(0)?.to_scalar::<u32>()?)
    };
    let sync = |d: &candle_core::Device| d.synchronize();
    let mut rows = Vec::new();
    for rep in 0..=b.reps {
        let mut cache = KvCache::default();
        let t = Instant::now();
        let l = m.extend(
            &mut cache,
            &[
                Piece::Text(&before),
                Piece::Image(&img),
                Piece::Text(&after),
            ],
            LogitsOf::Last,
        )?;
        let mut next = argmax(&l)?;
        sync(&dev)?;
        let mut prefill_s = t.elapsed().as_secs_f64();
        let mut prefill_tokens = cache.len();
        let mut decode_s = 0.0;
        let mut decoded = 0;
        let turns: Vec<Option<&virl_engine::policy::qwen_vl::PreparedImage>> =
            std::iter::once(None)
                .chain(crop.as_ref().map(Some))
                .collect();
        for (k, turn) in turns.iter().enumerate() {
            if let Some(c) = turn {
                // The second turn: the crop as a tool response.
                let lead = [next, tok.im_end, tok.im_start, tok.vision_start];
                let tail = [tok.vision_end, tok.im_end, tok.im_start];
                let n0 = cache.len();
                let t = Instant::now();
                let l = m.extend(
                    &mut cache,
                    &[Piece::Text(&lead), Piece::Image(c), Piece::Text(&tail)],
                    LogitsOf::Last,
                )?;
                next = argmax(&l)?;
                sync(&dev)?;
                prefill_s += t.elapsed().as_secs_f64();
                prefill_tokens += cache.len() - n0;
            }
            let n = if k == 0 {
                b.new_tokens
            } else {
                b.new_tokens / 2
            };
            if b.group > 1 {
                // G forks of the conversation, decoded in batched steps.
                let mut forks: Vec<KvCache> = (0..b.group)
                    .map(|_| cache.fork())
                    .collect::<candle_core::Result<_>>()?;
                let mut ids = vec![next; b.group];
                let t = Instant::now();
                for _ in 0..n {
                    let mut refs: Vec<&mut KvCache> = forks.iter_mut().collect();
                    let rows = m.decode_batch(&mut refs, &ids)?;
                    for (id, r) in ids.iter_mut().zip(&rows) {
                        *id = r
                            .iter()
                            .enumerate()
                            .fold(
                                (0, f32::NEG_INFINITY),
                                |a, (i, &v)| {
                                    if v > a.1 { (i, v) } else { a }
                                },
                            )
                            .0 as u32;
                    }
                }
                sync(&dev)?;
                decode_s += t.elapsed().as_secs_f64();
                decoded += n * b.group;
                break;
            }
            let t = Instant::now();
            for _ in 0..n {
                let l = m.extend(&mut cache, &[Piece::Text(&[next])], LogitsOf::Last)?;
                next = argmax(&l)?;
            }
            sync(&dev)?;
            decode_s += t.elapsed().as_secs_f64();
            decoded += n;
        }
        if rep > 0 {
            rows.push((prefill_tokens, prefill_s, decoded, decode_s));
        }
    }
    // (prefill tokens, prefill s, decoded tokens, decode s) per repetition.
    type Row = (usize, f64, usize, f64);
    let med = |f: &dyn Fn(&Row) -> f64| {
        let mut v: Vec<f64> = rows.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let out = serde_json::json!({
        "impl": "virl (candle)",
        "model": b.model,
        "device": b.device.to_string(),
        "dtype": b.dtype.to_string(),
        "image_side": b.image_side,
        "crop_side": b.crop_side,
        "image_tokens": img.tokens(),
        "prefill_tokens": rows[0].0,
        "decode_tokens": rows[0].2,
        "load_s": load_s,
        "prefill_tokens_per_s": med(&|r| r.0 as f64 / r.1),
        "decode_tokens_per_s": med(&|r| r.2 as f64 / r.3),
        "reps": b.reps,
        "group": b.group,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
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
}

fn studio(b: StudioBench) -> anyhow::Result<()> {
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
    let answers: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    let net = ZoomNet::new(
        ZoomNetConfig::default(),
        view,
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
    let globals = bytes(U * px);
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
        },
        EpisodeBatch {
            episodes: (0..B).map(|_| episode(1)).collect(),
            samples: vec![0; B],
            global: Vec::new(),
            crop: crops,
            prev_crop: vec![128; B * px],
            view: view as u32,
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
        "{{\"impl\": \"virl (candle)\", \"device\": \"{}\", \"iters\": {}, \"rollout_ms\": {:.2}, \"update_ms\": {:.2}, \"actions_per_s\": {:.1}, \"trajectories_per_s\": {:.1}}}",
        b.device,
        b.iters,
        roll * 1e3,
        upd * 1e3,
        (2 * B) as f64 / (roll + upd),
        B as f64 / (roll + upd)
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
