//! One session shown in the studio: trained live by an engine the studio owns,
//! or opened from disk (and followed while another process writes it).
//!
//! Nothing here blocks the UI thread: building a trainer, reading
//! `metrics.jsonl` or a rollout file, and generating the dataset index all
//! happen on background threads that answer over bounded channels and wake
//! the UI with `request_repaint`.

use crossbeam_channel::{Receiver, Sender, bounded};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use virl_engine::config::SessionConfig;
use virl_engine::dataset::Sample;
use virl_engine::engine::{Command, EngineHandle};
use virl_engine::events::{Event, Phase};
use virl_engine::metrics::{FailureSignature, IterationMetrics};
use virl_engine::reward::RewardConfig;
use virl_engine::session::Session;
use virl_engine::trainer::Trainer;
use virl_engine::trajectory::Trajectory;

mod follow;
mod samples;

use follow::{vlm_model, watch};
pub use samples::SampleIndex;

/// Wakes the UI.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// What a run is doing.
#[derive(Clone, Debug, PartialEq)]
pub enum RunStatus {
    /// The trainer is being built (dataset, images, weights).
    Starting,
    /// Ready; not training.
    Idle,
    /// Training.
    Training,
    /// Paused by the user.
    Paused,
    /// All iterations done (or stopped).
    Finished,
    /// A session on disk, read-only, followed for new lines.
    Watching,
    /// The engine reported an error and stopped.
    Failed(String),
}

/// Progress within the current iteration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// Iteration.
    pub iteration: u64,
    /// Phase.
    pub phase: Phase,
    /// Units done.
    pub done: usize,
    /// Units in all.
    pub total: usize,
}

/// What the UI asks the session's reader thread.
pub(super) enum IoRequest {
    Rollouts(u64),
}

/// What the reader thread (or the engine builder) answers.
pub(super) enum IoReply {
    /// Everything new in the session's logs since the last poll.
    Logs {
        metrics: Vec<IterationMetrics>,
        evals: Vec<IterationMetrics>,
        rollout_iterations: Vec<u64>,
    },
    Rollouts(u64, Result<Arc<Vec<Trajectory>>, String>),
    /// Lines were appended to this iteration's rollout file (a trace).
    Grew(u64),
    Index(Result<Arc<SampleIndex>, String>),
    Engine(Box<Result<EngineHandle, String>>),
    Error(String),
}

/// A session in the studio.
pub struct Run {
    /// Display name (the folder's name).
    pub name: String,
    /// The session folder.
    pub dir: PathBuf,
    /// Its config (the reward and trainer parts follow changes made here).
    pub cfg: SessionConfig,
    /// For a session of VLM rollouts: the model folder (from `policy.json`).
    pub vlm_model: Option<String>,
    /// Status.
    pub status: RunStatus,
    /// Metrics of every iteration so far.
    pub metrics: Vec<IterationMetrics>,
    /// Greedy evaluations.
    pub evals: Vec<IterationMetrics>,
    /// Failure signatures seen while this studio watched.
    pub failures: Vec<FailureSignature>,
    /// The current phase.
    pub progress: Option<Progress>,
    /// Wall time of the last iteration.
    pub last_seconds: Option<f64>,
    /// Loaded trajectories by iteration.
    pub rollouts: BTreeMap<u64, Arc<Vec<Trajectory>>>,
    /// Iterations with stored trajectories (loaded or not).
    pub stored: Vec<u64>,
    /// Iterations being loaded.
    pub loading: HashSet<u64>,
    /// Reward configs accepted by the engine: (first iteration, config).
    pub reward_history: Vec<(u64, RewardConfig)>,
    /// Samples and images, once indexed.
    pub index: Option<Arc<SampleIndex>>,
    /// Why the samples could not be indexed (a dataset folder that moved,
    /// say), shown where the image would be.
    pub index_error: Option<String>,
    /// Samples whose ground truth was corrected (in the annotation editor,
    /// or by the correction journal replayed at load), with their current boxes.
    pub corrected: HashMap<String, Sample>,
    /// Loaded trajectories of corrected samples re-scored against the
    /// corrected boxes, by (iteration, row); the stored scores stay as they
    /// were trained with.
    pub rescored: HashMap<(u64, usize), Trajectory>,
    /// Messages for the user (errors of loading, engine errors).
    pub messages: Vec<String>,
    engine: Option<EngineHandle>,
    io_tx: Option<Sender<IoRequest>>,
    io_rx: Receiver<IoReply>,
    /// Dropped with the run: stops its threads.
    alive: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Run {
    fn drop(&mut self) {
        self.alive
            .store(false, std::sync::atomic::Ordering::Relaxed);
        if let Some(e) = self.engine.take() {
            e.send(Command::Stop);
            // The engine thread finishes its iteration and writes the session;
            // it is not joined, so closing never waits on it.
        }
    }
}

impl Run {
    fn empty(
        name: String,
        dir: PathBuf,
        cfg: SessionConfig,
        status: RunStatus,
    ) -> (Self, Sender<IoReply>) {
        let (tx, rx) = bounded(64);
        (
            Self {
                vlm_model: vlm_model(&dir),
                name,
                dir,
                cfg,
                status,
                metrics: Vec::new(),
                evals: Vec::new(),
                failures: Vec::new(),
                progress: None,
                last_seconds: None,
                rollouts: BTreeMap::new(),
                stored: Vec::new(),
                loading: HashSet::new(),
                reward_history: Vec::new(),
                index: None,
                index_error: None,
                corrected: HashMap::new(),
                rescored: HashMap::new(),
                messages: Vec::new(),
                engine: None,
                io_tx: None,
                io_rx: rx,
                alive: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            },
            tx,
        )
    }

    /// A new session in `dir` trained by this studio. The trainer is built
    /// in the background; the run is `Starting` until it is ready.
    pub fn new_live(dir: PathBuf, cfg: SessionConfig, wake: Waker) -> Self {
        let name = folder_name(&dir);
        let (mut run, tx) = Self::empty(name, dir.clone(), cfg.clone(), RunStatus::Starting);
        run.reward_history.push((0, cfg.reward.clone()));
        std::thread::spawn(move || {
            let r = (|| -> Result<EngineHandle, String> {
                let session = Session::create(&dir, &cfg).map_err(|e| e.to_string())?;
                let t = Trainer::new(cfg, Some(session))?;
                let index = SampleIndex::from_stores(t.image_stores());
                let _ = tx.send(IoReply::Index(Ok(Arc::new(index))));
                Ok(EngineHandle::spawn(t, Some(wake.clone())))
            })();
            let _ = tx.send(IoReply::Engine(Box::new(r)));
            wake();
        });
        run
    }

    /// Opens a session folder read-only and follows it: new iterations that
    /// another process writes appear within a second. `dataset` replaces
    /// the dataset folder the session names.
    pub fn open(dir: &Path, dataset: Option<&Path>, wake: Waker) -> Result<Self, String> {
        let (session, mut cfg) = Session::open(dir).map_err(|e| e.to_string())?;
        if let Some(d) = dataset {
            cfg.data.dataset = Some(d.to_path_buf());
        }
        let (mut run, tx) = Self::empty(
            folder_name(dir),
            dir.to_path_buf(),
            cfg.clone(),
            RunStatus::Watching,
        );
        run.reward_history.push((0, cfg.reward.clone()));
        let (req_tx, req_rx) = bounded::<IoRequest>(64);
        run.io_tx = Some(req_tx);
        let alive = run.alive.clone();
        let tx2 = tx.clone();
        let w2 = wake.clone();
        let dir2 = dir.to_path_buf();
        std::thread::spawn(move || {
            let _ = tx2.send(IoReply::Index(
                SampleIndex::build(&cfg, Some(&dir2)).map(Arc::new),
            ));
            w2();
        });
        std::thread::spawn(move || watch(session, req_rx, tx, wake, alive));
        Ok(run)
    }

    /// Whether this studio trains the run.
    pub fn is_live(&self) -> bool {
        self.engine.is_some() || self.status == RunStatus::Starting
    }

    /// Sends a command to the engine (no-op for watched sessions).
    pub fn command(&mut self, c: Command) {
        let Some(e) = &self.engine else { return };
        let status = match &c {
            Command::Start | Command::Resume => Some(RunStatus::Training),
            Command::Pause => Some(RunStatus::Paused),
            Command::Step => Some(RunStatus::Training),
            _ => None,
        };
        if e.send(c) {
            if let Some(s) = status {
                self.status = s;
            }
        } else {
            self.messages
                .push("the engine's command queue is full; try again".into());
        }
    }

    /// Asks for the trajectories of an iteration (no-op when loaded, loading
    /// or not stored).
    pub fn request_rollouts(&mut self, iteration: u64) {
        if self.rollouts.contains_key(&iteration) || self.loading.contains(&iteration) {
            return;
        }
        let Some(tx) = &self.io_tx else { return };
        if self.stored.binary_search(&iteration).is_ok()
            && tx.try_send(IoRequest::Rollouts(iteration)).is_ok()
        {
            self.loading.insert(iteration);
        }
    }

    /// The newest iteration with trajectories.
    pub fn newest(&self) -> Option<u64> {
        let a = self.rollouts.keys().next_back().copied();
        let b = self.stored.last().copied();
        a.max(b)
    }

    /// Applies everything the engine and the background reader sent; returns
    /// whether anything changed.
    pub fn pump(&mut self) -> bool {
        let mut changed = false;
        while let Ok(r) = self.io_rx.try_recv() {
            changed = true;
            self.apply_io(r);
        }
        // Bounded work per frame: the UI never drains an unbounded backlog.
        for _ in 0..256 {
            let Some(ev) = self.engine.as_ref().and_then(|e| e.try_recv()) else {
                break;
            };
            changed = true;
            self.apply_event(ev);
        }
        changed
    }

    fn apply_io(&mut self, r: IoReply) {
        match r {
            IoReply::Logs {
                metrics,
                evals,
                rollout_iterations,
            } => {
                self.metrics.extend(metrics);
                self.evals.extend(evals);
                self.stored = rollout_iterations;
                self.progress = self.metrics.last().map(|m| Progress {
                    iteration: m.iteration,
                    phase: Phase::Update,
                    done: 1,
                    total: 1,
                });
            }
            IoReply::Rollouts(i, Ok(v)) => {
                self.loading.remove(&i);
                self.rollouts.insert(i, v);
                self.rescore_iteration(i);
            }
            IoReply::Grew(i) => {
                // Reload a shown iteration, keeping the old rows until the new
                // ones arrive; rows only ever append, so a selection stays valid.
                if self.rollouts.contains_key(&i)
                    && !self.loading.contains(&i)
                    && self
                        .io_tx
                        .as_ref()
                        .is_some_and(|tx| tx.try_send(IoRequest::Rollouts(i)).is_ok())
                {
                    self.loading.insert(i);
                }
            }
            IoReply::Rollouts(i, Err(e)) => {
                self.loading.remove(&i);
                self.messages.push(e);
            }
            IoReply::Index(Ok(ix)) => {
                // Samples the correction journal changed at load: their stored
                // trajectories may have been scored against the old boxes.
                for st in ix.stores() {
                    for id in st.dataset().journal_samples() {
                        if let Some(s) = st.dataset().get(id) {
                            self.corrected.insert(id.clone(), s.clone());
                        }
                    }
                }
                self.index = Some(ix);
                self.rescore_all();
            }
            IoReply::Index(Err(e)) => {
                let e = format!("cannot index the samples: {e}");
                self.index_error = Some(e.clone());
                self.messages.push(e);
            }
            IoReply::Engine(r) => match *r {
                Ok(e) => {
                    self.engine = Some(e);
                    if self.status == RunStatus::Starting {
                        self.status = RunStatus::Idle;
                    }
                }
                Err(e) => {
                    self.messages.push(format!("cannot start training: {e}"));
                    self.status = RunStatus::Failed(e);
                }
            },
            IoReply::Error(e) => self.messages.push(e),
        }
    }

    /// Applies one engine event (public for tests that feed events directly).
    pub fn apply_event(&mut self, ev: Event) {
        match ev {
            Event::Progress {
                iteration,
                phase,
                done,
                total,
            } => {
                self.progress = Some(Progress {
                    iteration,
                    phase,
                    done,
                    total,
                })
            }
            Event::IterationDone {
                metrics,
                trajectories,
                seconds,
            } => {
                let it = metrics.iteration;
                self.rollouts.insert(it, trajectories);
                self.rescore_iteration(it);
                if self.stored.last().is_none_or(|&l| l < metrics.iteration) {
                    self.stored.push(metrics.iteration);
                }
                self.metrics.push(metrics);
                self.last_seconds = Some(seconds);
            }
            Event::EvalDone { metrics } => self.evals.push(metrics),
            Event::Failure(f) => self.failures.push(f),
            Event::CheckpointSaved { .. } => {}
            Event::ConfigApplied {
                from_iteration,
                reward,
                trainer,
            } => {
                self.cfg.reward = reward.clone();
                self.cfg.trainer = trainer;
                self.reward_history.push((from_iteration, reward));
            }
            Event::Error(e) => {
                self.messages.push(e.clone());
                if self.status == RunStatus::Training {
                    self.status = RunStatus::Failed(e);
                }
            }
            Event::Finished { .. } => {
                self.status = RunStatus::Finished;
                self.progress = None;
            }
        }
    }

    /// The reward config in force at `iteration`.
    pub fn reward_at(&self, iteration: u64) -> RewardConfig {
        self.reward_history
            .iter()
            .rev()
            .find(|(from, _)| *from <= iteration)
            .or(self.reward_history.first())
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| self.cfg.reward.clone())
    }

    /// The current ground-truth boxes of a sample (corrected, if it was).
    pub fn gt_boxes(&self, id: &str) -> Option<Vec<virl_engine::geometry::BBox>> {
        if let Some(s) = self.corrected.get(id) {
            return Some(s.gt_boxes());
        }
        self.index.as_ref()?.get(id).map(|(s, _, _)| s.gt_boxes())
    }

    /// Records a correction of a sample's ground truth (already written to
    /// its journal by the editor): loaded trajectories of the sample are
    /// re-scored at once, and a live trainer uses the boxes from its next
    /// iteration.
    pub fn correct_ground_truth(&mut self, s: Sample) {
        let id = s.id.clone();
        if self.engine.is_some() {
            self.command(Command::SetGroundTruth {
                sample: id.clone(),
                rationales: s.rationales.clone(),
            });
        }
        self.corrected.insert(id.clone(), s);
        let its: Vec<u64> = self.rollouts.keys().copied().collect();
        for it in its {
            self.rescore_sample(it, &id);
        }
    }

    fn rescore_all(&mut self) {
        let its: Vec<u64> = self.rollouts.keys().copied().collect();
        for it in its {
            self.rescore_iteration(it);
        }
    }

    fn rescore_iteration(&mut self, it: u64) {
        if self.corrected.is_empty() {
            return;
        }
        let ids: Vec<String> = self.corrected.keys().cloned().collect();
        for id in ids {
            self.rescore_sample(it, &id);
        }
    }

    fn rescore_sample(&mut self, it: u64, id: &str) {
        let (Some(recs), Some(s)) = (self.rollouts.get(&it), self.corrected.get(id)) else {
            return;
        };
        let cfg = self.reward_at(it);
        for (row, sc) in virl_engine::session::rescore(recs, s, |_| cfg.clone()) {
            self.rescored.insert((it, row), sc);
        }
    }

    /// Trajectories per second over the last iteration.
    pub fn throughput(&self) -> Option<f64> {
        let m = self.metrics.last()?;
        self.last_seconds
            .filter(|&s| s > 0.0)
            .map(|s| m.trajectories as f64 / s)
    }
}

/// A session's display name: its folder's name.
pub(super) fn folder_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}
