//! GRPO-style PPO with ViRL credit (DESIGN §7).
//!
//! One iteration:
//! 1. **rollout**: `samples_per_iter` samples, each rolled out `group` times
//!    with the current policy (sampling), every action's log-probability kept;
//! 2. **score**: rewards and per-action advantages with
//!    [`score_trajectory`](crate::score::score_trajectory) and
//!    [`assign_credit`](crate::score::assign_credit) — the same code as `virl score`;
//! 3. **update**: `epochs` passes of clipped-ratio policy gradient over
//!    shuffled minibatches of actions, each action weighted by its own
//!    advantage (`Â_k` for zooms, `A_i` for the answer), plus an entropy
//!    bonus; AdamW;
//! 4. metrics, failure signatures, the session files, and events to the sink.
//!
//! Deterministic on the CPU for a seed: weights, sampling noise and batch
//! order all come from seeded SplitMix64 streams.

//!
//! The rooms: [`data`] (the splits), [`rollout`] (the round loop, shared
//! with the filter's probes), [`ppo`] (the RL update), [`imitation`] (the
//! warm-up); events go out through [`crate::events`], checkpoints through
//! [`crate::checkpoint`].

mod data;
mod imitation;
mod ppo;
mod rollout;

pub use data::{journal_path, load_splits, load_splits_for};
pub use ppo::{PpoLoss, adam_params, ppo_loss};

use crate::checkpoint::{Strategy, TrainState};
use crate::config::{SessionConfig, TrainerConfig};
use crate::dataset::{Rationale, Sample};
use crate::env::ImageStore;
use crate::events::{Event, EventSink, Phase};
use crate::metrics::{FailureMonitor, IterationMetrics, RAT_IOU, summarize};
use crate::optim::AdamW;
use crate::policy::Policy;
use crate::policy::zoomnet::ZoomNet;
use crate::reward::RewardConfig;
use crate::rng::SplitMix64;
use crate::session::{Session, SessionEvent};
use crate::trajectory::Trajectory;
use candle_core::Tensor;
use data::{Split, answer_classes};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A trainer error, in words (naming the file where there is one).
pub type TrainError = String;

fn ce(e: candle_core::Error) -> TrainError {
    format!("tensor error: {e}")
}

/// The trainer.
pub struct Trainer {
    cfg: SessionConfig,
    train: Split,
    eval: Split,
    net: Box<dyn Policy>,
    opt: AdamW,
    rng: SplitMix64,
    iteration: u64,
    monitor: FailureMonitor,
    session: Option<Session>,
    history: Vec<IterationMetrics>,
    /// Ground truth corrected while training ([`Trainer::set_ground_truth`]),
    /// by sample id: used by the rewards and the imitation expert instead of
    /// the dataset's boxes.
    gt: HashMap<String, Vec<Rationale>>,
    /// Why training and evaluation cannot run (images too large to decode).
    undecodable: Option<String>,
}

impl Trainer {
    /// A fresh trainer (new weights from `cfg.seed`), writing to `session` if given.
    pub fn new(cfg: SessionConfig, session: Option<Session>) -> Result<Self, TrainError> {
        cfg.validate()?;
        let (train, ts, eval, es) = load_splits_for(&cfg, session.as_ref().map(Session::dir))?;
        let answers = answer_classes(&train, &eval);
        let undecodable = data::undecodable(&train).or_else(|| data::undecodable(&eval));
        let net = ZoomNet::new(
            cfg.policy.clone(),
            cfg.env.view as usize,
            cfg.env.global_view as usize,
            cfg.env.max_rounds,
            answers,
            cfg.device,
            cfg.seed,
        )?;
        let net: Box<dyn Policy> = Box::new(net);
        let opt = AdamW::new(net.named_vars(), adam_params(&cfg.trainer)).map_err(ce)?;
        let qdim = cfg.policy.question_dim;
        Ok(Self {
            train: Split::new(train, ts, &cfg, qdim)?,
            eval: Split::new(eval, es, &cfg, qdim)?,
            net,
            opt,
            rng: SplitMix64::new(cfg.seed ^ 0x7261_696E_0000_0001),
            iteration: 0,
            monitor: FailureMonitor::new(cfg.detectors.clone()),
            session,
            history: Vec::new(),
            gt: HashMap::new(),
            undecodable,
            cfg,
        })
    }

    /// Resumes a session from its newest checkpoint (or starts it, if it has
    /// none); forgets metrics and rollouts written after that checkpoint.
    pub fn resume(dir: &std::path::Path) -> Result<Self, TrainError> {
        let (session, cfg) = Session::open(dir).map_err(|e| e.to_string())?;
        let mut t = Self::new(cfg, Some(session.clone()))?;
        if let Some((tensors, state)) = session
            .checkpoints()
            .latest(t.net.device())
            .map_err(|e| e.to_string())?
        {
            t.load(&tensors, state)?;
        }
        session
            .truncate_after(t.iteration)
            .map_err(|e| e.to_string())?;
        t.history = session.read_metrics().map_err(|e| e.to_string())?;
        for m in t.history.clone() {
            t.monitor.push(&m);
        }
        Ok(t)
    }

    /// Loads a checkpoint's tensors and state.
    pub fn load(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        state: TrainState,
    ) -> Result<(), TrainError> {
        self.net.load_tensors(tensors).map_err(ce)?;
        self.opt.load_state(tensors).map_err(ce)?;
        self.opt.params = adam_params(&state.trainer);
        self.iteration = state.iteration;
        self.rng = SplitMix64::new(state.rng);
        self.cfg.reward = state.reward;
        self.cfg.trainer = state.trainer;
        Ok(())
    }

    /// The policy.
    pub fn policy(&self) -> &dyn Policy {
        self.net.as_ref()
    }

    /// The image stores of the train and eval splits (shared: a viewer that
    /// uses them reads the trainer's cache instead of loading images again).
    pub fn image_stores(&self) -> [Arc<ImageStore>; 2] {
        [
            self.train.env.store().clone(),
            self.eval.env.store().clone(),
        ]
    }

    /// The config in force.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// Iterations completed.
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// Metrics of every iteration so far.
    pub fn history(&self) -> &[IterationMetrics] {
        &self.history
    }

    /// The session, if any.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// Replaces the reward config from the next iteration on (recorded in the session's events).
    pub fn set_reward_config(&mut self, r: RewardConfig) -> Result<(), TrainError> {
        r.validate()?;
        self.log_event(
            "config",
            format!(
                "reward config changed: {}",
                serde_json::to_string(&r).unwrap_or_default()
            ),
        );
        self.cfg.reward = r;
        Ok(())
    }

    /// Uses `rationales` as the ground truth of sample `id` from the next
    /// iteration on (a correction made while training; the caller records it
    /// in the journal). Refused for an unknown sample or a box outside its image.
    pub fn set_ground_truth(
        &mut self,
        id: &str,
        rationales: Vec<Rationale>,
    ) -> Result<(), TrainError> {
        let s = self
            .train
            .env
            .store()
            .dataset()
            .get(id)
            .or_else(|| self.eval.env.store().dataset().get(id))
            .ok_or_else(|| format!("no sample {id:?} in this session's data"))?;
        for (i, r) in rationales.iter().enumerate() {
            if !r.bbox.is_well_formed() || !r.bbox.is_inside(s.width as f64, s.height as f64) {
                return Err(format!(
                    "box {i} of sample {id:?} ({:?}) is not a box inside the {}×{} image",
                    r.bbox.to_array(),
                    s.width,
                    s.height
                ));
            }
        }
        self.log_event(
            "ground_truth",
            format!("sample {id}: {} rationale boxes set", rationales.len()),
        );
        self.gt.insert(id.to_string(), rationales);
        Ok(())
    }

    /// A sample with its corrected ground truth, if it was corrected.
    fn corrected<'a>(&self, s: &'a Sample) -> std::borrow::Cow<'a, Sample> {
        match self.gt.get(&s.id) {
            Some(r) => std::borrow::Cow::Owned(Sample {
                rationales: r.clone(),
                ..s.clone()
            }),
            None => std::borrow::Cow::Borrowed(s),
        }
    }

    /// Replaces the trainer config from the next iteration on.
    pub fn set_trainer_config(&mut self, t: TrainerConfig) -> Result<(), TrainError> {
        t.validate()?;
        self.log_event(
            "config",
            format!(
                "trainer config changed: {}",
                serde_json::to_string(&t).unwrap_or_default()
            ),
        );
        self.opt.params = adam_params(&t);
        self.cfg.trainer = t;
        Ok(())
    }

    fn log_event(&self, kind: &str, message: String) {
        if let Some(s) = &self.session {
            let time = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            let _ = s.append_event(&SessionEvent {
                time,
                iteration: self.iteration,
                kind: kind.into(),
                message,
            });
        }
    }

    /// The tensors of a checkpoint: policy parameters and optimizer state.
    pub fn checkpoint_tensors(&self) -> Result<HashMap<String, Tensor>, TrainError> {
        let mut t = self.net.tensors().map_err(ce)?;
        t.extend(self.opt.state().map_err(ce)?);
        Ok(t)
    }

    /// The trainer state of a checkpoint.
    pub fn train_state(&self) -> TrainState {
        TrainState {
            iteration: self.iteration,
            rng: self.rng.state(),
            reward: self.cfg.reward.clone(),
            trainer: self.cfg.trainer.clone(),
        }
    }

    /// Writes a checkpoint to the session (if any).
    pub fn save_checkpoint(&self, sink: &mut dyn EventSink) -> Result<(), TrainError> {
        if let Some(s) = &self.session {
            let path = s
                .checkpoints()
                .write(
                    &self.train_state(),
                    &self.checkpoint_tensors()?,
                    &Strategy::of(&self.cfg.trainer),
                    self.history.last(),
                )
                .map_err(|e| e.to_string())?;
            sink.emit(Event::CheckpointSaved {
                iteration: self.iteration,
                path,
            });
        }
        Ok(())
    }

    /// Runs one training iteration; returns its metrics.
    pub fn step(&mut self, sink: &mut dyn EventSink) -> Result<IterationMetrics, TrainError> {
        let never = AtomicBool::new(false);
        self.step_unless(sink, &never)?
            .ok_or_else(|| "the iteration was stopped".to_string())
    }

    /// [`Trainer::step`], abandoned between the rollout and the update when
    /// `stop` is set by then: nothing of the iteration is written and the
    /// trainer is left exactly as it was before it (its sampling RNG
    /// included), so a checkpoint written now resumes as if it never began.
    /// Returns `None` when abandoned.
    pub fn step_unless(
        &mut self,
        sink: &mut dyn EventSink,
        stop: &AtomicBool,
    ) -> Result<Option<IterationMetrics>, TrainError> {
        if let Some(e) = &self.undecodable {
            return Err(e.clone());
        }
        let start = Instant::now();
        let rng_before = self.rng.state();
        let t = self.cfg.trainer.clone();
        let n = self.train.samples().len();
        let mut samples = Vec::with_capacity(t.samples_per_iter * t.group);
        for _ in 0..t.samples_per_iter {
            let s = (self.rng.next_u64() % n as u64) as usize;
            samples.extend(std::iter::repeat_n(s, t.group));
        }
        let rollout = self.rollout(false, &samples, true, sink, Phase::Rollout)?;
        sink.emit(Event::Progress {
            iteration: self.iteration,
            phase: Phase::Score,
            done: 0,
            total: rollout.batch.len(),
        });
        let records = self.finish(false, &rollout);
        sink.emit(Event::Progress {
            iteration: self.iteration,
            phase: Phase::Score,
            done: rollout.batch.len(),
            total: rollout.batch.len(),
        });
        if stop.load(Ordering::Relaxed) {
            self.rng = SplitMix64::new(rng_before);
            return Ok(None);
        }
        let warmup = self.iteration < t.warmup_iterations;
        self.opt.params.lr = t.lr_at(self.iteration);
        let stats = if warmup {
            // Imitation needs no groups: as many distinct samples as rollouts.
            self.warmup(samples.len(), sink)?
        } else {
            self.update(&rollout, &records, sink)?
        };
        let mut m = summarize(self.iteration, &records, RAT_IOU);
        m.warmup = warmup;
        m.loss = Some(stats.loss);
        m.entropy = Some(stats.entropy);
        m.clip_frac = Some(stats.clip_frac);
        m.approx_kl = Some(stats.approx_kl);
        m.answer_nll = stats.answer_nll;
        m.zoom_nll = stats.zoom_nll;
        if let Some(s) = &self.session {
            let keep = ((records.len() as f64) * t.save_rollouts).round() as usize;
            s.write_rollouts(self.iteration, &records[..keep.min(records.len())])
                .map_err(|e| e.to_string())?;
            s.append_metrics(&m).map_err(|e| e.to_string())?;
        }
        for f in self.monitor.push(&m) {
            self.log_event(
                "failure",
                format!(
                    "{} (began at iteration {}): {}",
                    f.kind.title(),
                    f.began_at,
                    f.message
                ),
            );
            sink.emit(Event::Failure(f));
        }
        self.history.push(m.clone());
        self.iteration += 1;
        if self.iteration.is_multiple_of(t.checkpoint_every) {
            self.save_checkpoint(sink)?;
        }
        sink.emit(Event::IterationDone {
            metrics: m.clone(),
            trajectories: Arc::new(records),
            seconds: start.elapsed().as_secs_f64(),
        });
        if t.eval_every > 0 && self.iteration.is_multiple_of(t.eval_every) {
            let (em, _) = self.evaluate(t.eval_n, sink)?;
            if let Some(s) = &self.session {
                s.append_eval(&em).map_err(|e| e.to_string())?;
            }
            sink.emit(Event::EvalDone { metrics: em });
        }
        Ok(Some(m))
    }

    /// Greedy evaluation on the first `n` samples of the eval split.
    pub fn evaluate(
        &mut self,
        n: usize,
        sink: &mut dyn EventSink,
    ) -> Result<(IterationMetrics, Vec<Trajectory>), TrainError> {
        if let Some(e) = &self.undecodable {
            return Err(e.clone());
        }
        let n = n.min(self.eval.samples().len()).max(1);
        let samples: Vec<usize> = (0..n).collect();
        let r = self.rollout(true, &samples, false, sink, Phase::Eval)?;
        let recs = self.finish(true, &r);
        let mut m = summarize(self.iteration, &recs, RAT_IOU);
        m.iteration = self.iteration;
        Ok((m, recs))
    }

    /// Runs until `trainer.iterations` are done or `stop` is set. `stop` is
    /// checked between iterations and between each rollout and its update
    /// (an iteration stopped there is abandoned, see
    /// [`Trainer::step_unless`]). When stopped, a checkpoint of the last
    /// complete iteration is written (if the session has none of it yet).
    /// Emits `Finished` (or `Error`).
    pub fn run(&mut self, sink: &mut dyn EventSink, stop: &AtomicBool) -> Result<(), TrainError> {
        let mut saved = true;
        while self.iteration < self.cfg.trainer.iterations && !stop.load(Ordering::Relaxed) {
            match self.step_unless(sink, stop) {
                Ok(Some(_)) => {
                    saved = self
                        .iteration
                        .is_multiple_of(self.cfg.trainer.checkpoint_every)
                }
                Ok(None) => break,
                Err(e) => {
                    self.log_event("error", e.clone());
                    sink.emit(Event::Error(e.clone()));
                    return Err(e);
                }
            }
        }
        let stopped = stop.load(Ordering::Relaxed);
        if stopped && !saved {
            self.save_checkpoint(sink)?;
        }
        sink.emit(Event::Finished {
            iterations: self.iteration,
            stopped,
        });
        Ok(())
    }
}
