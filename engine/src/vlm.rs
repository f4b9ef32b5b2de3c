//! Running a vision-language policy over a dataset: grouped rollouts,
//! scored with the same [`score_trajectory`] / [`assign_credit`] as
//! ZoomNet's, as session records (`virl rollout`, `virl eval --policy
//! qwen-vl`, the studio's "Run VLM rollouts").

use crate::config::SessionConfig;
use crate::env::ImageStore;
use crate::metrics::{IterationMetrics, RAT_IOU, summarize};
use crate::policy::qwen_vl::protocol::{Forced, RolloutConfig};
use crate::policy::qwen_vl::rollout::VlmPolicy;
use crate::policy::qwen_vl::sampling::{Sampler, TokenChooser};
use crate::policy::qwen_vl::transcript::VlmTrajectory;
use crate::reward::RewardConfig;
use crate::rng::SplitMix64;
use crate::score::{assign_credit, score_trajectory};
use crate::session::Session;
use crate::trajectory::Trajectory;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a VLM run does.
#[derive(Clone, Debug, PartialEq)]
pub struct VlmRunConfig {
    /// The protocol and sampling.
    pub rollout: RolloutConfig,
    /// Rollouts per sample (one GRPO group).
    pub group: usize,
    /// Sampling seed: rollout `i` of the sample at index `k` draws from
    /// `SplitMix64::for_item(seed, k · group + i)`.
    pub seed: u64,
    /// The rewards and credit.
    pub reward: RewardConfig,
}

/// Speed of a run, prefill and decode apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Prompt and tool-response tokens run.
    pub prefill_tokens: usize,
    /// Seconds of prefill.
    pub prefill_secs: f64,
    /// Tokens generated.
    pub decode_tokens: usize,
    /// Seconds of decoding.
    pub decode_secs: f64,
}

impl Throughput {
    /// Adds a trajectory's counts.
    pub fn add(&mut self, t: &VlmTrajectory) {
        self.prefill_tokens += t.prefill_tokens;
        self.prefill_secs += t.prefill_secs;
        self.decode_tokens += t.decode_tokens;
        self.decode_secs += t.decode_secs;
    }

    /// Prefill tokens per second.
    pub fn prefill_tps(&self) -> f64 {
        self.prefill_tokens as f64 / self.prefill_secs.max(1e-9)
    }

    /// Decode tokens per second.
    pub fn decode_tps(&self) -> f64 {
        self.decode_tokens as f64 / self.decode_secs.max(1e-9)
    }
}

/// Changes a sample's image before it is rolled out (the audit's
/// controls: the rationale masked out, or a blank image).
pub type ImageFn<'a> = dyn FnMut(&crate::dataset::Sample, &image::RgbImage) -> image::RgbImage + 'a;

/// Rolls out `cfg.group` trajectories for each listed sample of `store`
/// with seeded temperature / top-p sampling, scores each group.
/// `progress(done, total)` is called after each sample.
pub fn run(
    model: &dyn VlmPolicy,
    store: &ImageStore,
    samples: &[usize],
    cfg: &VlmRunConfig,
    iteration: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<Trajectory>, Throughput), String> {
    run_on(model, store, samples, cfg, iteration, None, progress)
}

/// [`run`] on images changed by `image(sample, original)` first, when
/// given; the trajectories are still scored against the sample's ground
/// truth.
pub fn run_on(
    model: &dyn VlmPolicy,
    store: &ImageStore,
    samples: &[usize],
    cfg: &VlmRunConfig,
    iteration: u64,
    image: Option<&mut ImageFn>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<Trajectory>, Throughput), String> {
    let (t, p, seed, g) = (
        cfg.rollout.temperature,
        cfg.rollout.top_p,
        cfg.seed,
        cfg.group,
    );
    let mut chooser = |k: usize, i: usize| -> Box<dyn TokenChooser> {
        Box::new(Sampler {
            temperature: t,
            top_p: p,
            rng: SplitMix64::for_item(seed, (k * g + i) as u64),
        })
    };
    rollouts(
        model,
        store,
        samples,
        cfg,
        iteration,
        &mut chooser,
        image,
        progress,
    )
}

/// [`run`] with the token chooser of rollout `i` of the `k`-th listed
/// sample given by `chooser(k, i)`.
pub fn run_with(
    model: &dyn VlmPolicy,
    store: &ImageStore,
    samples: &[usize],
    cfg: &VlmRunConfig,
    iteration: u64,
    chooser: &mut dyn FnMut(usize, usize) -> Box<dyn TokenChooser>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<Trajectory>, Throughput), String> {
    rollouts(
        model, store, samples, cfg, iteration, chooser, None, progress,
    )
}

#[allow(clippy::too_many_arguments)]
fn rollouts(
    model: &dyn VlmPolicy,
    store: &ImageStore,
    samples: &[usize],
    cfg: &VlmRunConfig,
    iteration: u64,
    chooser: &mut dyn FnMut(usize, usize) -> Box<dyn TokenChooser>,
    mut image: Option<&mut ImageFn>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<Trajectory>, Throughput), String> {
    cfg.rollout.validate()?;
    if cfg.group == 0 {
        return Err("group must be at least 1".into());
    }
    let ds = store.dataset().clone();
    let mut out = Vec::new();
    let mut speed = Throughput::default();
    for (k, &idx) in samples.iter().enumerate() {
        let sample = ds
            .samples()
            .get(idx)
            .ok_or_else(|| format!("no sample {idx} in {}", ds.root().display()))?;
        let original = store.image(idx).map_err(|e| e.to_string())?;
        // The original is only copied when a control changes it.
        let changed = image.as_mut().map(|f| f(sample, &original));
        let trajs = model
            .rollouts(
                sample,
                changed.as_ref().unwrap_or(&original),
                &cfg.rollout,
                cfg.group,
                &Forced::Nothing,
                &mut |i| chooser(k, i),
            )
            .map_err(|e| e.to_string())?;
        let mut group: Vec<Trajectory> = trajs
            .into_iter()
            .map(|t| {
                speed.add(&t);
                let mut r = t.record;
                r.iteration = iteration;
                score_trajectory(&mut r, sample, &cfg.reward);
                r
            })
            .collect();
        assign_credit(&mut group, &cfg.reward);
        out.extend(group);
        progress(k + 1, samples.len());
    }
    Ok((out, speed))
}

/// The metrics of DESIGN §6 over VLM records.
pub fn metrics(records: &[Trajectory], iteration: u64) -> IterationMetrics {
    summarize(iteration, records, RAT_IOU)
}

/// The data a VLM run reads: `zoombench` (the built-in evaluation split,
/// generated in memory) or a dataset folder (its journal applied). Returns
/// the image store, a session config naming the data (for
/// [`write_session`]) and the default number of samples (16 for
/// ZoomBench, all of a folder).
pub fn open_dataset(spec: &str) -> Result<(ImageStore, SessionConfig, usize), String> {
    let mut cfg = SessionConfig::default();
    let default_n = if spec.trim() == "zoombench" {
        16
    } else {
        let p = PathBuf::from(spec.trim());
        if !p.is_dir() {
            return Err(format!(
                "{}: no such dataset folder (or write `zoombench`)",
                p.display()
            ));
        }
        cfg.data.dataset = Some(p);
        usize::MAX
    };
    let (_, _, eval, es) = crate::trainer::load_splits(&cfg).map_err(|e| e.to_string())?;
    let n = eval.samples().len();
    Ok((
        ImageStore::new(Arc::new(eval), es, 64, 16),
        cfg,
        default_n.min(n),
    ))
}

/// Writes VLM records as a session folder the studio opens: the rollouts
/// as iteration 0, their metrics, and `policy.json` naming the model.
pub fn write_session(
    dir: &Path,
    cfg: &SessionConfig,
    recs: &[Trajectory],
    model: &Path,
) -> Result<(), String> {
    // The session's config says what was run: one iteration of rollouts,
    // this many samples and rollouts per sample, no training.
    let mut cfg = cfg.clone();
    let samples: std::collections::HashSet<&str> = recs.iter().map(|r| r.sample.as_str()).collect();
    cfg.trainer.iterations = 1;
    cfg.trainer.warmup_iterations = 0;
    cfg.trainer.samples_per_iter = samples.len().max(1);
    cfg.trainer.group = (recs.len() / samples.len().max(1)).max(1);
    let s = Session::create(dir, &cfg).map_err(|e| e.to_string())?;
    s.write_rollouts(0, recs).map_err(|e| e.to_string())?;
    s.append_metrics(&metrics(recs, 0))
        .map_err(|e| e.to_string())?;
    let note = serde_json::json!({"policy": "qwen-vl", "model": model});
    crate::fsutil::atomic_write(&dir.join("policy.json"), note.to_string().as_bytes())
        .map_err(|e| format!("{}: cannot write ({e})", dir.join("policy.json").display()))
}

/// The VLM as the data filter's policy (stages 2 and 3): stage 2 asks for
/// the answer with no tool offered; stage 3 makes the zooms onto the
/// ground-truth boxes for the model (forced tool calls and their crops),
/// then lets it answer. Sampling as configured, `k` rollouts per sample
/// sharing one prompt.
pub struct VlmProber<'m> {
    /// The model.
    pub model: &'m dyn VlmPolicy,
    /// Protocol and sampling.
    pub rollout: RolloutConfig,
    /// Sampling seed.
    pub seed: u64,
}

impl crate::filter::Prober for VlmProber<'_> {
    fn pass_rates(
        &mut self,
        ds: crate::dataset::Dataset,
        source: crate::env::ImageSource,
        k: usize,
        probe: crate::filter::Probe,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<f64>, String> {
        self.rollout.validate()?;
        let n = ds.len();
        let store = ImageStore::new(Arc::new(ds), source, 64, 4);
        let ds = store.dataset().clone();
        let mut out = Vec::with_capacity(n);
        for (idx, s) in ds.samples().iter().enumerate() {
            let img = store.image(idx).map_err(|e| e.to_string())?;
            let forced = match probe {
                crate::filter::Probe::NoZoom => Forced::NoZoom,
                crate::filter::Probe::GroundTruthZoom => Forced::Zooms(probe.zooms(s)),
            };
            let (t, p, seed) = (self.rollout.temperature, self.rollout.top_p, self.seed);
            let trajs = self
                .model
                .rollouts(s, &img, &self.rollout, k.max(1), &forced, &mut |i| {
                    Box::new(Sampler {
                        temperature: t,
                        top_p: p,
                        rng: SplitMix64::for_item(seed, (idx * k.max(1) + i) as u64),
                    })
                })
                .map_err(|e| e.to_string())?;
            let right = trajs
                .iter()
                .filter(|t| {
                    t.record
                        .answer
                        .as_deref()
                        .is_some_and(|a| crate::reward::answer_correct(a, &s.answer, &s.options))
                })
                .count();
            out.push(right as f64 / trajs.len().max(1) as f64);
            progress(idx + 1, n);
        }
        Ok(out)
    }
}
