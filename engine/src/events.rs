//! Commands in, events out: what the trainer reports while it runs, and the
//! one trait every front end receives it through (DESIGN §1). The studio's
//! channel sink and the headless progress line are two implementations of
//! [`EventSink`], so a live view and a headless run share one code path.

use crate::config::TrainerConfig;
use crate::metrics::{FailureSignature, IterationMetrics};
use crate::reward::RewardConfig;
use crate::trajectory::Trajectory;
use std::path::PathBuf;
use std::sync::Arc;

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
        trajectories: Arc<Vec<Trajectory>>,
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
        /// Whether it was stopped before the configured iterations were done.
        stopped: bool,
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
