//! GRPO-style PPO with ViRL credit (DESIGN §7).
//!
//! One iteration:
//! 1. **rollout**: `samples_per_iter` samples, each rolled out `group` times
//!    with the current policy (sampling), every action's log-probability kept;
//! 2. **score**: rewards and per-action advantages with
//!    [`score_trajectory`] and [`assign_credit`] — the same code as `virl score`;
//! 3. **update**: `epochs` passes of clipped-ratio policy gradient over
//!    shuffled minibatches of actions, each action weighted by its own
//!    advantage (`Â_k` for zooms, `A_i` for the answer), plus an entropy
//!    bonus; AdamW;
//! 4. metrics, failure signatures, the session files, and events to the sink.
//!
//! Deterministic on the CPU for a seed: weights, sampling noise and batch
//! order all come from seeded SplitMix64 streams.

use crate::config::{SessionConfig, TrainerConfig};
use crate::dataset::annotations::JOURNAL;
use crate::dataset::zoombench::{SplitMix64, ZoomBench};
use crate::dataset::{Dataset, Rationale, Sample};
use crate::env::{Action, EpisodeBatch, ImageSource, ImageStore, ZoomEnv};
use crate::geometry::BBox;
use crate::metrics::{FailureMonitor, FailureSignature, IterationMetrics, RAT_IOU, summarize};
use crate::optim::{AdamW, AdamWParams};
use crate::policy::zoomnet::{Choice, StepObs, ZoomNet};
use crate::policy::{Policy, UpdateStats, encode_question};
use crate::reward::RewardConfig;
use crate::score::{ScoredTrajectory, TrajectoryInput, assign_credit, score_trajectory};
use crate::session::{Session, SessionEvent, TrainState, TrajectoryRecord};
use candle_core::{DType, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The phases of an iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Sampling trajectories.
    Rollout,
    /// Computing rewards and advantages.
    Score,
    /// Policy-gradient epochs.
    Update,
    /// Greedy evaluation.
    Eval,
}

impl Phase {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rollout => "rollout",
            Self::Score => "score",
            Self::Update => "update",
            Self::Eval => "eval",
        }
    }
}

/// What the trainer reports.
#[derive(Clone, Debug)]
pub enum Event {
    /// Progress within a phase (`done` of `total` units: steps, trajectories, minibatches).
    Progress {
        /// Iteration.
        iteration: u64,
        /// Phase.
        phase: Phase,
        /// Units done.
        done: usize,
        /// Units in all.
        total: usize,
    },
    /// An iteration ended: its metrics and trajectories (shared, not copied).
    IterationDone {
        /// Metrics.
        metrics: IterationMetrics,
        /// The iteration's trajectories.
        trajectories: Arc<Vec<TrajectoryRecord>>,
        /// Wall time of the iteration in seconds.
        seconds: f64,
    },
    /// An evaluation ended.
    EvalDone {
        /// Metrics (greedy).
        metrics: IterationMetrics,
    },
    /// A failure signature was detected.
    Failure(FailureSignature),
    /// A checkpoint was written.
    CheckpointSaved {
        /// Iterations completed.
        iteration: u64,
        /// The file.
        path: PathBuf,
    },
    /// A reward or trainer config change was accepted; it is in force from
    /// iteration `from_iteration` on (and recorded in the session's events).
    ConfigApplied {
        /// The first iteration that uses it.
        from_iteration: u64,
        /// The reward config now in force.
        reward: RewardConfig,
        /// The trainer config now in force.
        trainer: TrainerConfig,
    },
    /// Something went wrong (training stopped, or a command was refused).
    Error(String),
    /// Training ended (all iterations done, or stopped).
    Finished {
        /// Iterations completed.
        iterations: u64,
    },
}

/// Where events go: the GUI's channel, the headless progress line, a test's
/// vector. One trait, so live view and headless runs share one code path.
pub trait EventSink {
    /// Receives one event.
    fn emit(&mut self, e: Event);
}

impl EventSink for Vec<Event> {
    fn emit(&mut self, e: Event) {
        self.push(e);
    }
}

/// A sink that drops everything.
pub struct NullSink;

impl EventSink for NullSink {
    fn emit(&mut self, _: Event) {}
}

/// A trainer error, in words (naming the file where there is one).
pub type TrainError = String;

fn ce(e: candle_core::Error) -> TrainError {
    format!("tensor error: {e}")
}

/// A split: dataset, images, environment, question encodings, image sizes.
struct Split {
    env: ZoomEnv,
    questions: Vec<Vec<f32>>,
    sizes: Vec<(f64, f64)>,
}

impl Split {
    fn new(
        ds: Dataset,
        source: ImageSource,
        cfg: &SessionConfig,
        qdim: usize,
    ) -> Result<Self, TrainError> {
        let questions = ds
            .samples()
            .iter()
            .map(|s| encode_question(&s.question, qdim))
            .collect();
        let sizes = ds
            .samples()
            .iter()
            .map(|s| (s.width as f64, s.height as f64))
            .collect();
        let store = Arc::new(ImageStore::new(
            Arc::new(ds),
            source,
            cfg.env.view,
            cfg.data.image_cache,
        ));
        Ok(Self {
            env: ZoomEnv::new(cfg.env.clone(), store)?,
            questions,
            sizes,
        })
    }

    fn samples(&self) -> &[Sample] {
        self.env.store().dataset().samples()
    }
}

/// One action of a rollout, as the update needs it.
struct StepRec {
    episode: usize,
    step: usize,
    crop: Vec<u8>,
    prev: Vec<u8>,
    choice: Choice,
    logp: f32,
}

impl StepRec {
    /// The step as the policy's evaluation takes it; `global` indexes the
    /// global views passed alongside.
    fn obs<'a>(&'a self, global: usize, question: &'a [f32]) -> StepObs<'a> {
        StepObs {
            episode: global,
            step: self.step,
            question,
            crop: &self.crop,
            prev_crop: &self.prev,
            choice: self.choice,
        }
    }
}

/// The result of rolling out a batch.
struct Rollout {
    batch: EpisodeBatch,
    steps: Vec<StepRec>,
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
}

/// How [`Trainer::probe`] forces the policy's actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Answer at once, without any zoom.
    NoZoom,
    /// Zoom on each ground-truth box in order, then answer.
    GroundTruthZoom,
}

/// The train and eval datasets of a config, with where their images come
/// from (ZoomBench samples are generated, not read), and the ground-truth
/// corrections of the session folder `session` applied to generated data
/// (a dataset folder's own corrections are applied when it loads; see
/// [`journal_path`]).
pub fn load_splits_for(
    cfg: &SessionConfig,
    session: Option<&std::path::Path>,
) -> Result<(Dataset, ImageSource, Dataset, ImageSource), TrainError> {
    let (mut train, ts, mut eval, es) = load_splits(cfg)?;
    if let Some(dir) = session {
        let j = dir.join(JOURNAL);
        for (ds, src) in [(&mut train, &ts), (&mut eval, &es)] {
            if matches!(src, ImageSource::ZoomBench(_)) {
                ds.apply_journal(&j).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok((train, ts, eval, es))
}

/// Where corrections of a sample of `ds` go: beside the manifest for a
/// dataset folder, in the session folder `session` for generated ZoomBench
/// data (which has no folder).
pub fn journal_path(ds: &Dataset, generated: bool, session: &std::path::Path) -> PathBuf {
    if generated {
        session.join(JOURNAL)
    } else {
        ds.journal_path()
    }
}

/// The train and eval datasets of a config, with where their images come
/// from (ZoomBench samples are generated, not read). No session journal is
/// applied ([`load_splits_for`] does).
pub fn load_splits(
    cfg: &SessionConfig,
) -> Result<(Dataset, ImageSource, Dataset, ImageSource), TrainError> {
    let zb =
        || ZoomBench::new(cfg.data.zoombench.clone()).map_err(|e| format!("[data.zoombench] {e}"));
    let zoombench = |seed: u64, n: u64| -> Result<(Dataset, ImageSource), TrainError> {
        let g = zb()?;
        let samples = (0..n).map(|i| g.sample(seed, i)).collect();
        Ok((
            Dataset::new(format!("zoombench:seed={seed}"), samples),
            ImageSource::ZoomBench(g),
        ))
    };
    let (train, ts) = match &cfg.data.dataset {
        Some(p) => (
            Dataset::load(p).map_err(|e| e.to_string())?,
            ImageSource::Folder,
        ),
        None => zoombench(cfg.data.train_seed, cfg.data.train_n)?,
    };
    let (eval, es) = match (&cfg.data.eval_dataset, &cfg.data.dataset) {
        (Some(p), _) => (
            Dataset::load(p).map_err(|e| e.to_string())?,
            ImageSource::Folder,
        ),
        (None, Some(_)) => (train.clone(), ImageSource::Folder),
        (None, None) => zoombench(cfg.data.eval_seed, cfg.data.eval_n.max(1))?,
    };
    Ok((train, ts, eval, es))
}

/// The answer classes: every answer of both splits, numbers first in numeric order.
fn answer_classes(a: &Dataset, b: &Dataset) -> Vec<String> {
    let mut v: Vec<String> = a
        .samples()
        .iter()
        .chain(b.samples())
        .map(|s| s.answer.clone())
        .collect();
    v.sort_by(|x, y| match (x.parse::<f64>(), y.parse::<f64>()) {
        (Ok(p), Ok(q)) => p.total_cmp(&q),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        _ => x.cmp(y),
    });
    v.dedup();
    v
}

impl Trainer {
    /// A fresh trainer (new weights from `cfg.seed`), writing to `session` if given.
    pub fn new(cfg: SessionConfig, session: Option<Session>) -> Result<Self, TrainError> {
        cfg.validate()?;
        let (train, ts, eval, es) = load_splits_for(&cfg, session.as_ref().map(Session::dir))?;
        let answers = answer_classes(&train, &eval);
        let net = ZoomNet::new(
            cfg.policy.clone(),
            cfg.env.view as usize,
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
            cfg,
        })
    }

    /// Resumes a session from its newest checkpoint (or starts it, if it has
    /// none); forgets metrics and rollouts written after that checkpoint.
    pub fn resume(dir: &std::path::Path) -> Result<Self, TrainError> {
        let (session, cfg) = Session::open(dir).map_err(|e| e.to_string())?;
        let mut t = Self::new(cfg, Some(session.clone()))?;
        if let Some((tensors, state)) = session
            .latest_checkpoint(t.net.device())
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
                .write_checkpoint(
                    &self.train_state(),
                    &self.checkpoint_tensors()?,
                    self.cfg.trainer.keep_checkpoints,
                )
                .map_err(|e| e.to_string())?;
            sink.emit(Event::CheckpointSaved {
                iteration: self.iteration,
                path,
            });
        }
        Ok(())
    }

    /// Rolls out one episode per entry of `samples` on a split; sampling
    /// when `explore`, greedy otherwise.
    fn rollout(
        &mut self,
        eval: bool,
        samples: &[usize],
        explore: bool,
        sink: &mut dyn EventSink,
        phase: Phase,
    ) -> Result<Rollout, TrainError> {
        let split = if eval { &self.eval } else { &self.train };
        let (mut batch, keys, of_episode, questions) =
            start_batch(self.net.as_ref(), split, samples)?;
        let sizes: Vec<(f64, f64)> = split.sizes.clone();
        let mut steps = Vec::new();
        let max = self.cfg.env.max_rounds + 1;
        for round in 0..max {
            let active = batch.active();
            if active.is_empty() {
                break;
            }
            let acts = self
                .net
                .act(
                    &batch,
                    &keys,
                    &of_episode,
                    &questions,
                    &sizes,
                    &active,
                    if explore { Some(&mut self.rng) } else { None },
                )
                .map_err(ce)?;
            let mut actions = Vec::with_capacity(active.len());
            for (&i, (a, c, lp)) in active.iter().zip(acts) {
                // The last round allows only an answer… except that the env
                // cuts an episode off at max_rounds zooms anyway.
                steps.push(StepRec {
                    episode: i,
                    step: batch.episodes[i].step(),
                    crop: batch.crop_of(i).to_vec(),
                    prev: batch.prev_crop_of(i).to_vec(),
                    choice: c,
                    logp: lp,
                });
                actions.push((i, a));
            }
            split
                .env
                .step(&mut batch, &actions)
                .map_err(|e| e.to_string())?;
            sink.emit(Event::Progress {
                iteration: self.iteration,
                phase,
                done: round + 1,
                total: max,
            });
        }
        Ok(Rollout { batch, steps })
    }

    /// Runs `k` sampled episodes of every sample of `ds` with the actions
    /// forced as `probe` says, and returns each sample's pass rate (the
    /// fraction answered correctly). The policy's own sampled answer is used
    /// in both probes; [`Probe::NoZoom`] answers at once, and
    /// [`Probe::GroundTruthZoom`] first zooms on each ground-truth box in
    /// order (at most `max_rounds − 1` of them). Used by the three-stage
    /// filter (`dataset::filter`). Images of `ds` are read from its folder.
    pub fn probe(
        &mut self,
        ds: Dataset,
        source: ImageSource,
        k: usize,
        probe: Probe,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<f64>, TrainError> {
        let qdim = self.cfg.policy.question_dim;
        let n = ds.len();
        let split = Split::new(ds, source, &self.cfg, qdim)?;
        let k = k.max(1);
        let mut right = vec![0usize; n];
        // Episodes in batches of about 256.
        let per = (256 / k).max(1);
        let mut done = 0;
        for chunk in (0..n).collect::<Vec<_>>().chunks(per) {
            let samples: Vec<usize> = chunk
                .iter()
                .flat_map(|&s| std::iter::repeat_n(s, k))
                .collect();
            let (mut batch, keys, of_episode, questions) =
                start_batch(self.net.as_ref(), &split, &samples)?;
            let max_zooms = self.cfg.env.max_rounds.saturating_sub(1);
            for round in 0..=self.cfg.env.max_rounds {
                let active = batch.active();
                if active.is_empty() {
                    break;
                }
                let acts = self
                    .net
                    .act(
                        &batch,
                        &keys,
                        &of_episode,
                        &questions,
                        &split.sizes,
                        &active,
                        Some(&mut self.rng),
                    )
                    .map_err(ce)?;
                let mut actions = Vec::with_capacity(active.len());
                for (&i, (_, c, _)) in active.iter().zip(acts) {
                    let s = &split.samples()[batch.episodes[i].sample];
                    let zooms = match probe {
                        Probe::NoZoom => 0,
                        Probe::GroundTruthZoom => s.rationales.len().min(max_zooms),
                    };
                    let a = if round < zooms {
                        Action::Zoom(s.rationales[round].bbox)
                    } else {
                        Action::Answer(
                            self.net
                                .answers()
                                .get(c.answer as usize)
                                .cloned()
                                .unwrap_or_default(),
                        )
                    };
                    actions.push((i, a));
                }
                split
                    .env
                    .step(&mut batch, &actions)
                    .map_err(|e| e.to_string())?;
            }
            for e in &batch.episodes {
                let s = &split.samples()[e.sample];
                if e.answer
                    .as_deref()
                    .is_some_and(|a| crate::reward::answer_correct(a, &s.answer, &s.options))
                {
                    right[e.sample] += 1;
                }
            }
            done += chunk.len();
            progress(done, n);
        }
        Ok(right.into_iter().map(|r| r as f64 / k as f64).collect())
    }

    fn score(&self, eval: bool, r: &Rollout) -> Vec<ScoredTrajectory> {
        let split = if eval { &self.eval } else { &self.train };
        let mut scored: Vec<ScoredTrajectory> = r
            .batch
            .episodes
            .iter()
            .map(|e| {
                let s = self.corrected(&split.samples()[e.sample]);
                score_trajectory(
                    &TrajectoryInput {
                        sample: &s,
                        group: &s.id,
                        zooms: &e.proposed,
                        answer: e.answer.as_deref(),
                        format_ok: true,
                        hit_max_rounds: e.hit_max_rounds,
                    },
                    &self.cfg.reward,
                )
            })
            .collect();
        assign_credit(&mut scored, &self.cfg.reward);
        scored
    }

    fn records(
        &self,
        eval: bool,
        r: &Rollout,
        scored: Vec<ScoredTrajectory>,
    ) -> Vec<TrajectoryRecord> {
        let split = if eval { &self.eval } else { &self.train };
        let mut logps: Vec<Vec<f32>> = vec![Vec::new(); r.batch.len()];
        for s in &r.steps {
            logps[s.episode].push(s.logp);
        }
        r.batch
            .episodes
            .iter()
            .zip(scored)
            .zip(logps)
            .map(|((e, sc), logp)| TrajectoryRecord {
                iteration: self.iteration,
                truth: split.samples()[e.sample].answer.clone(),
                answer: e.answer.clone(),
                proposed: e.proposed.clone(),
                executed: e.executed.clone(),
                hit_max_rounds: e.hit_max_rounds,
                logp,
                turns: Vec::new(),
                scored: sc,
            })
            .collect()
    }

    fn update(
        &mut self,
        r: &Rollout,
        scored: &[ScoredTrajectory],
        sink: &mut dyn EventSink,
    ) -> Result<UpdateStats, TrainError> {
        let t = self.cfg.trainer.clone();
        // Each action's advantage: Â_k for the k-th zoom, A_i for the answer.
        let adv: Vec<f32> = r
            .steps
            .iter()
            .map(|s| {
                let tr = &scored[s.episode];
                let a = if s.choice.kind == 0 {
                    tr.actions
                        .get(s.step)
                        .map_or(tr.advantage, |x| x.credit.advantage)
                } else {
                    tr.advantage
                };
                a as f32
            })
            .collect();
        let n = r.steps.len();
        let mut order: Vec<usize> = (0..n).collect();
        let (mut stats, mut batches) = (UpdateStats::default(), 0usize);
        let total = t.epochs * n.div_ceil(t.minibatch);
        let dev = self.net.device().clone();
        let questions: Vec<Vec<f32>> = r
            .batch
            .episodes
            .iter()
            .map(|e| self.train.questions[e.sample].clone())
            .collect();
        let samples: Vec<usize> = r.batch.episodes.iter().map(|e| e.sample).collect();
        let (uniq, of_episode) = unique_samples(&samples);
        let globals = globals_of(&r.batch, &of_episode, uniq.len());
        for _ in 0..t.epochs {
            // Fisher–Yates with the trainer's RNG.
            for i in (1..n).rev() {
                let j = (self.rng.next_u64() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            for chunk in order.chunks(t.minibatch) {
                let obs: Vec<StepObs> = chunk
                    .iter()
                    .map(|&k| {
                        let s = &r.steps[k];
                        s.obs(of_episode[s.episode], &questions[s.episode])
                    })
                    .collect();
                let (lp, ent) = self.net.evaluate(&globals, uniq.len(), &obs).map_err(ce)?;
                let old = Tensor::from_vec(
                    chunk.iter().map(|&k| r.steps[k].logp).collect::<Vec<_>>(),
                    chunk.len(),
                    &dev,
                )
                .map_err(ce)?;
                let a = Tensor::from_vec(
                    chunk.iter().map(|&k| adv[k]).collect::<Vec<_>>(),
                    chunk.len(),
                    &dev,
                )
                .map_err(ce)?;
                let PpoLoss {
                    loss,
                    clip_frac,
                    approx_kl: kl,
                    entropy: ent_mean,
                } = ppo_loss(&lp, &ent, &old, &a, t.clip, t.entropy_coef).map_err(ce)?;
                stats.grad_norm = self.opt.backward_step(&loss).map_err(ce)?;
                let sc = |x: &Tensor| {
                    x.to_dtype(DType::F64)
                        .and_then(|x| x.to_scalar::<f64>())
                        .unwrap_or(f64::NAN)
                };
                stats.loss += sc(&loss);
                stats.clip_frac += sc(&clip_frac);
                stats.approx_kl += sc(&kl);
                stats.entropy += sc(&ent_mean);
                batches += 1;
                sink.emit(Event::Progress {
                    iteration: self.iteration,
                    phase: Phase::Update,
                    done: batches,
                    total,
                });
            }
        }
        let b = batches.max(1) as f64;
        stats.loss /= b;
        stats.clip_frac /= b;
        stats.approx_kl /= b;
        stats.entropy /= b;
        Ok(stats)
    }

    /// One supervised step: teacher-forced ground-truth episodes of `samples`
    /// (zoom on each rationale box as the policy would express it, then the
    /// correct answer); loss `−mean log p(action)`.
    fn warmup_update(
        &mut self,
        samples: &[usize],
        sink: &mut dyn EventSink,
    ) -> Result<UpdateStats, TrainError> {
        let split = &self.train;
        let mut batch = split.env.reset(samples).map_err(|e| e.to_string())?;
        let mut steps: Vec<StepRec> = Vec::new();
        let max_zooms = self.cfg.env.max_rounds.saturating_sub(1);
        let jitter = self.cfg.trainer.imitation_jitter;
        for round in 0..=max_zooms {
            let mut actions = Vec::new();
            for i in batch.active() {
                let s = self.corrected(&split.samples()[batch.episodes[i].sample]);
                let gts = s.gt_boxes();
                let choice = if round < gts.len().min(max_zooms) {
                    self.net
                        .encode_box(&gts[round], s.width as f64, s.height as f64)
                } else {
                    match self.net.answer_class(&s.answer) {
                        Some(a) => Choice {
                            kind: 1,
                            answer: a as u32,
                            ..Default::default()
                        },
                        None => continue,
                    }
                };
                let (w, h) = (s.width as f64, s.height as f64);
                let action = match (choice.kind, round < gts.len()) {
                    (0, true) if jitter > 0.0 => {
                        let b = &gts[round];
                        let (cx, cy) = b.center();
                        let mut u = || self.rng.f64() * 2.0 - 1.0;
                        let (dx, dy) = (u() * jitter * b.width(), u() * jitter * b.height());
                        let k = 1.0 + u() * jitter;
                        let (hw, hh) = (b.width() * k / 2.0, b.height() * k / 2.0);
                        let (cx, cy) = (cx + dx, cy + dy);
                        Action::Zoom(BBox::new(cx - hw, cy - hh, cx + hw, cy + hh))
                    }
                    _ => self.net.decode(&choice, w, h),
                };
                steps.push(StepRec {
                    episode: i,
                    step: batch.episodes[i].step(),
                    crop: batch.crop_of(i).to_vec(),
                    prev: batch.prev_crop_of(i).to_vec(),
                    choice,
                    logp: 0.0,
                });
                actions.push((i, action));
            }
            if actions.is_empty() {
                break;
            }
            split
                .env
                .step(&mut batch, &actions)
                .map_err(|e| e.to_string())?;
        }
        let questions: Vec<Vec<f32>> = batch
            .episodes
            .iter()
            .map(|e| split.questions[e.sample].clone())
            .collect();
        let of_episode: Vec<usize> = (0..batch.len()).collect();
        let globals = globals_of(&batch, &of_episode, batch.len());
        let mut stats = UpdateStats::default();
        let mut n = 0usize;
        let (mut nll, mut rows) = ([0f64; 2], [0usize; 2]);
        let epochs = self.cfg.trainer.epochs;
        let total = epochs * steps.len().div_ceil(self.cfg.trainer.minibatch);
        for chunk in (0..epochs).flat_map(|_| steps.chunks(self.cfg.trainer.minibatch)) {
            let obs: Vec<StepObs> = chunk
                .iter()
                .map(|s| s.obs(s.episode, &questions[s.episode]))
                .collect();
            let (lp, ent) = self.net.evaluate(&globals, batch.len(), &obs).map_err(ce)?;
            let loss = lp.mean_all().and_then(|x| x.neg()).map_err(ce)?;
            stats.grad_norm = self.opt.backward_step(&loss).map_err(ce)?;
            for (s, l) in chunk.iter().zip(lp.to_vec1::<f32>().map_err(ce)?) {
                let k = usize::from(s.choice.kind == 1);
                nll[k] -= l as f64;
                rows[k] += 1;
            }
            stats.loss += loss.to_scalar::<f32>().map_err(ce)? as f64;
            stats.entropy += ent
                .mean_all()
                .and_then(|x| x.to_scalar::<f32>())
                .map_err(ce)? as f64;
            n += 1;
            sink.emit(Event::Progress {
                iteration: self.iteration,
                phase: Phase::Update,
                done: n,
                total,
            });
        }
        stats.loss /= n.max(1) as f64;
        stats.entropy /= n.max(1) as f64;
        let mean = |k: usize| (rows[k] > 0).then(|| nll[k] / rows[k] as f64);
        stats.zoom_nll = mean(0);
        stats.answer_nll = mean(1);
        Ok(stats)
    }

    /// Runs one training iteration; returns its metrics.
    pub fn step(&mut self, sink: &mut dyn EventSink) -> Result<IterationMetrics, TrainError> {
        let start = Instant::now();
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
        let scored = self.score(false, &rollout);
        sink.emit(Event::Progress {
            iteration: self.iteration,
            phase: Phase::Score,
            done: rollout.batch.len(),
            total: rollout.batch.len(),
        });
        let warmup = self.iteration < t.warmup_iterations;
        self.opt.params.lr = if warmup {
            t.lr
        } else {
            t.rl_lr.unwrap_or(t.lr)
        };
        let stats = if warmup {
            // Imitation needs no groups: as many distinct samples as rollouts.
            let n = self.train.samples().len() as u64;
            let warm: Vec<usize> = (0..samples.len())
                .map(|_| (self.rng.next_u64() % n) as usize)
                .collect();
            self.warmup_update(&warm, sink)?
        } else {
            self.update(&rollout, &scored, sink)?
        };
        let mut m = summarize(self.iteration, &scored, RAT_IOU);
        m.warmup = warmup;
        m.loss = Some(stats.loss);
        m.entropy = Some(stats.entropy);
        m.clip_frac = Some(stats.clip_frac);
        m.approx_kl = Some(stats.approx_kl);
        m.answer_nll = stats.answer_nll;
        m.zoom_nll = stats.zoom_nll;
        let records = self.records(false, &rollout, scored);
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
        Ok(m)
    }

    /// Greedy evaluation on the first `n` samples of the eval split.
    pub fn evaluate(
        &mut self,
        n: usize,
        sink: &mut dyn EventSink,
    ) -> Result<(IterationMetrics, Vec<TrajectoryRecord>), TrainError> {
        let n = n.min(self.eval.samples().len()).max(1);
        let samples: Vec<usize> = (0..n).collect();
        let r = self.rollout(true, &samples, false, sink, Phase::Eval)?;
        let scored = self.score(true, &r);
        let mut m = summarize(self.iteration, &scored, RAT_IOU);
        m.iteration = self.iteration;
        let recs = self.records(true, &r, scored);
        Ok((m, recs))
    }

    /// Runs until `trainer.iterations` are done or `stop` is set; emits
    /// `Finished` (or `Error`).
    pub fn run(&mut self, sink: &mut dyn EventSink, stop: &AtomicBool) -> Result<(), TrainError> {
        while self.iteration < self.cfg.trainer.iterations && !stop.load(Ordering::Relaxed) {
            if let Err(e) = self.step(sink) {
                self.log_event("error", e.clone());
                sink.emit(Event::Error(e.clone()));
                return Err(e);
            }
        }
        sink.emit(Event::Finished {
            iterations: self.iteration,
        });
        Ok(())
    }
}

/// The PPO objective of one minibatch and its diagnostics (scalars).
pub struct PpoLoss {
    /// `−mean(min(r·A, clip(r)·A)) − entropy_coef · mean(H)`.
    pub loss: Tensor,
    /// Fraction of ratios outside `1 ± clip`.
    pub clip_frac: Tensor,
    /// `mean((r − 1) − log r)`.
    pub approx_kl: Tensor,
    /// Mean entropy.
    pub entropy: Tensor,
}

/// The clipped-ratio policy-gradient loss (DESIGN §7) from the new
/// log-probabilities `lp` and entropies `ent` of a minibatch, the rollout's
/// log-probabilities `old` and the per-action advantages `adv`.
pub fn ppo_loss(
    lp: &Tensor,
    ent: &Tensor,
    old: &Tensor,
    adv: &Tensor,
    clip: f64,
    entropy_coef: f64,
) -> candle_core::Result<PpoLoss> {
    let log_ratio = (lp - old)?;
    let ratio = log_ratio.exp()?;
    let s1 = (&ratio * adv)?;
    let s2 = (ratio.clamp(1.0 - clip, 1.0 + clip)? * adv)?;
    let pg = s1.minimum(&s2)?.mean_all()?.neg()?;
    let entropy = ent.mean_all()?;
    let loss = (&pg - entropy.affine(entropy_coef, 0.0)?)?;
    let clip_frac = (ratio.affine(1.0, -1.0)?.abs()?.gt(clip)?)
        .to_dtype(DType::F32)?
        .mean_all()?;
    let approx_kl = ((ratio.affine(1.0, -1.0)? - log_ratio)?).mean_all()?;
    Ok(PpoLoss {
        loss,
        clip_frac,
        approx_kl,
        entropy,
    })
}

/// The distinct samples of a batch (in first-seen order) and, for each
/// episode, the index of its sample among them.
/// A batch ready to roll out: episodes, encoded global views, each
/// episode's global view index, and each episode's question encoding.
type Started = (EpisodeBatch, Tensor, Vec<usize>, Vec<Vec<f32>>);

/// Resets a batch of episodes of `samples` and encodes each distinct
/// sample's global view once (a GRPO group shares one, as do its episodes'
/// steps). Returns the batch, the encoded global views, each episode's index
/// among them, and each episode's question encoding.
fn start_batch(net: &dyn Policy, split: &Split, samples: &[usize]) -> Result<Started, TrainError> {
    let batch = split.env.reset(samples).map_err(|e| e.to_string())?;
    let (uniq, of_episode) = unique_samples(samples);
    let keys = net
        .encode_globals(&globals_of(&batch, &of_episode, uniq.len()), uniq.len())
        .map_err(ce)?;
    let questions = samples
        .iter()
        .map(|&s| split.questions[s].clone())
        .collect();
    Ok((batch, keys, of_episode, questions))
}

fn unique_samples(samples: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut uniq = Vec::new();
    let mut pos = HashMap::new();
    let of = samples
        .iter()
        .map(|&s| {
            *pos.entry(s).or_insert_with(|| {
                uniq.push(s);
                uniq.len() - 1
            })
        })
        .collect();
    (uniq, of)
}

/// The global views of the distinct samples, in order.
fn globals_of(batch: &EpisodeBatch, of_episode: &[usize], n: usize) -> Vec<u8> {
    let len = batch.global_of(0).len();
    let mut out = vec![0u8; n * len];
    for (e, &u) in of_episode.iter().enumerate() {
        out[u * len..(u + 1) * len].copy_from_slice(batch.global_of(e));
    }
    out
}

/// The AdamW hyper-parameters of a trainer config.
pub fn adam_params(t: &TrainerConfig) -> AdamWParams {
    AdamWParams {
        lr: t.lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: t.weight_decay,
        max_grad_norm: t.max_grad_norm,
    }
}
