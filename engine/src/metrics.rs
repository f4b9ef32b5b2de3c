//! Metrics of an iteration or an evaluation, and failure-signature detectors
//! (DESIGN §6).
//!
//! | metric | definition |
//! |---|---|
//! | `acc_ans` | fraction of trajectories with `R_ans = 1` |
//! | `acc_rat` | fraction of zoom actions (on samples with M ≥ 1) whose IoU with some ground-truth box is ≥ `rat_iou` (0.5) |
//! | `coverage` | fraction of ground-truth boxes (over all trajectories) some zoom of the trajectory hit at IoU ≥ `rat_iou` |
//! | `zooms` | mean zoom actions per trajectory |
//! | `max_rounds_frac` | fraction of trajectories cut off at `max_rounds` |
//! | `answered_frac` | fraction of trajectories that gave an answer |
//! | `reward_*` | mean reward parts |
//!
//! Detectors run over a window of recent iterations (see [`DetectorConfig`]).

use crate::trajectory::Trajectory;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

pub use crate::trajectory::RAT_IOU;

/// The metrics of one iteration (or one evaluation).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IterationMetrics {
    /// Iteration number (0-based).
    pub iteration: u64,
    /// Whether the iteration's update was the supervised warm-up, not RL.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warmup: bool,
    /// Trajectories scored.
    pub trajectories: usize,
    /// Answer accuracy.
    pub acc_ans: f64,
    /// Per-invocation rationale accuracy; `None` when no zoom was made on a
    /// sample with ground truth.
    pub acc_rat: Option<f64>,
    /// Rationale coverage at [`RAT_IOU`]; `None` when no sample had ground truth.
    pub coverage: Option<f64>,
    /// Mean zoom actions per trajectory.
    pub zooms: f64,
    /// Fraction of trajectories that hit `max_rounds`.
    pub max_rounds_frac: f64,
    /// Fraction of trajectories that gave an answer.
    pub answered_frac: f64,
    /// Mean total reward.
    pub reward_total: f64,
    /// Mean `R_ans`.
    pub reward_ans: f64,
    /// Mean `R_rat`.
    pub reward_rat: f64,
    /// Mean `R_fmt`.
    pub reward_fmt: f64,
    /// Mean loss of the update (set by the trainer).
    pub loss: Option<f64>,
    /// Mean policy entropy (set by the trainer).
    pub entropy: Option<f64>,
    /// Fraction of clipped probability ratios (set by the trainer).
    pub clip_frac: Option<f64>,
    /// Approximate KL to the rollout policy (set by the trainer).
    pub approx_kl: Option<f64>,
    /// Imitation iterations: mean NLL of the ground-truth answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_nll: Option<f64>,
    /// Imitation iterations: mean NLL of the ground-truth zooms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoom_nll: Option<f64>,
}

impl IterationMetrics {
    /// The value of a numeric field, by its name in `metrics.jsonl`
    /// (`acc_ans`, `reward_total`, …); `None` for an unknown or absent one.
    pub fn value(&self, name: &str) -> Option<f64> {
        serde_json::to_value(self).ok()?.get(name)?.as_f64()
    }

    /// The names of the numeric fields (those [`IterationMetrics::value`]
    /// reads), the counters `iteration` and `trajectories` left out.
    pub fn numeric_fields() -> Vec<String> {
        let full = IterationMetrics {
            acc_rat: Some(0.0),
            coverage: Some(0.0),
            loss: Some(0.0),
            entropy: Some(0.0),
            clip_frac: Some(0.0),
            approx_kl: Some(0.0),
            answer_nll: Some(0.0),
            zoom_nll: Some(0.0),
            ..Default::default()
        };
        match serde_json::to_value(&full) {
            Ok(serde_json::Value::Object(o)) => o
                .into_iter()
                .filter(|(k, v)| v.is_number() && k != "iteration" && k != "trajectories")
                .map(|(k, _)| k)
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Computes the metrics of a batch of scored trajectories. `rat_iou` is the
/// IoU for `Acc_rat` and coverage ([`RAT_IOU`] by default).
pub fn summarize(iteration: u64, trajs: &[Trajectory], rat_iou: f64) -> IterationMetrics {
    let n = trajs.len();
    let mean = |f: &dyn Fn(&Trajectory) -> f64| {
        if n == 0 {
            0.0
        } else {
            trajs.iter().map(f).sum::<f64>() / n as f64
        }
    };
    let ious: Vec<f64> = trajs
        .iter()
        .flat_map(|t| t.actions.iter().filter_map(|a| a.score.iou))
        .collect();
    let acc_rat = (!ious.is_empty())
        .then(|| ious.iter().filter(|&&v| v >= rat_iou).count() as f64 / ious.len() as f64);
    let gts: Vec<f64> = trajs
        .iter()
        .flat_map(|t| t.gt_best_iou.iter().copied())
        .collect();
    let coverage = (!gts.is_empty())
        .then(|| gts.iter().filter(|&&v| v >= rat_iou).count() as f64 / gts.len() as f64);
    IterationMetrics {
        iteration,
        warmup: false,
        trajectories: n,
        acc_ans: mean(&|t| t.rewards.ans),
        acc_rat,
        coverage,
        zooms: mean(&|t| t.actions.len() as f64),
        max_rounds_frac: mean(&|t| f64::from(u8::from(t.truncated))),
        answered_frac: mean(&|t| f64::from(u8::from(t.answered()))),
        reward_total: mean(&|t| t.rewards.total),
        reward_ans: mean(&|t| t.rewards.ans),
        reward_rat: mean(&|t| t.rewards.rat),
        reward_fmt: mean(&|t| t.rewards.fmt),
        loss: None,
        entropy: None,
        clip_frac: None,
        approx_kl: None,
        answer_nll: None,
        zoom_nll: None,
    }
}

/// Thresholds of the failure-signature detectors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// Iterations a condition must hold (collapse, superficial) or the span
    /// compared (explosion). Default 5.
    pub window: usize,
    /// Collapse: mean zooms per trajectory below this. Default 0.1.
    pub collapse_zooms: f64,
    /// Collapse: while at least this fraction of trajectories still answers. Default 0.5.
    pub collapse_min_answered: f64,
    /// Explosion: more than this fraction of trajectories hit `max_rounds`. Default 0.5.
    pub explosion_max_rounds_frac: f64,
    /// Explosion: or zooms per trajectory grew by this factor over the window. Default 2.0.
    pub explosion_growth: f64,
    /// Explosion: while `Acc_ans` fell by more than this over the window. Default 0.05.
    pub explosion_acc_drop: f64,
    /// Superficial grounding: at least this many zooms per trajectory. Default 1.0.
    pub superficial_min_zooms: f64,
    /// Superficial grounding: while `Acc_rat` stays below this. Default 0.3.
    pub superficial_acc_rat: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            window: 5,
            collapse_zooms: 0.1,
            collapse_min_answered: 0.5,
            explosion_max_rounds_frac: 0.5,
            explosion_growth: 2.0,
            explosion_acc_drop: 0.05,
            superficial_min_zooms: 1.0,
            superficial_acc_rat: 0.3,
        }
    }
}

/// The failure signatures of DESIGN §6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Visual thinking collapse: the policy stopped zooming but keeps answering.
    Collapse,
    /// Invocation explosion: zooms surge while answer accuracy drops.
    Explosion,
    /// Superficial grounding: zooms are made but miss the rationale.
    Superficial,
}

impl FailureKind {
    /// A short title for banners.
    pub fn title(self) -> &'static str {
        match self {
            Self::Collapse => "visual thinking collapse",
            Self::Explosion => "invocation explosion",
            Self::Superficial => "superficial grounding",
        }
    }
}

/// A detected failure signature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailureSignature {
    /// Which failure.
    pub kind: FailureKind,
    /// The iteration at which the condition began.
    pub began_at: u64,
    /// The iteration at which it was confirmed and reported.
    pub detected_at: u64,
    /// A sentence with the numbers behind it.
    pub message: String,
}

/// Watches the metric series as it grows and reports each failure signature
/// once when it is confirmed; a signature is reported again only after its
/// condition has cleared.
#[derive(Clone, Debug)]
pub struct FailureMonitor {
    cfg: DetectorConfig,
    recent: VecDeque<IterationMetrics>,
    /// For collapse, explosion, superficial: the first iteration of the
    /// current run in which the condition held.
    run_start: [Option<u64>; 3],
    /// Consecutive iterations the condition held.
    run_len: [usize; 3],
    reported: [bool; 3],
}

impl FailureMonitor {
    /// A monitor with these thresholds.
    pub fn new(cfg: DetectorConfig) -> Self {
        Self {
            cfg,
            recent: VecDeque::new(),
            run_start: [None; 3],
            run_len: [0; 3],
            reported: [false; 3],
        }
    }

    /// Adds one iteration's metrics; returns the signatures confirmed by it.
    /// Warm-up iterations are passed over: the signatures describe what RL
    /// does to a policy, and an imitating policy is still being taught to
    /// look (RESULTS.md §2 saw them fire there in every arm alike).
    pub fn push(&mut self, m: &IterationMetrics) -> Vec<FailureSignature> {
        if m.warmup {
            return Vec::new();
        }
        let c = &self.cfg;
        let w = c.window.max(1);
        self.recent.push_back(m.clone());
        while self.recent.len() > w {
            self.recent.pop_front();
        }
        let first = &self.recent[0];
        let collapse = m.zooms < c.collapse_zooms && m.answered_frac >= c.collapse_min_answered;
        let superficial = m.zooms >= c.superficial_min_zooms
            && m.acc_rat.is_some_and(|a| a < c.superficial_acc_rat);
        let surging = |x: &IterationMetrics| {
            x.max_rounds_frac > c.explosion_max_rounds_frac
                || (first.zooms > 0.0 && x.zooms >= c.explosion_growth * first.zooms)
        };
        let explosion = self.recent.len() == w
            && surging(m)
            && m.acc_ans < first.acc_ans - c.explosion_acc_drop;
        let mut out = Vec::new();
        for (k, (holds, kind)) in [
            (collapse, FailureKind::Collapse),
            (explosion, FailureKind::Explosion),
            (superficial, FailureKind::Superficial),
        ]
        .into_iter()
        .enumerate()
        {
            if !holds {
                self.run_start[k] = None;
                self.run_len[k] = 0;
                self.reported[k] = false;
                continue;
            }
            self.run_len[k] += 1;
            let began = match kind {
                // The surge began where the window first shows it.
                FailureKind::Explosion => self
                    .recent
                    .iter()
                    .find(|x| surging(x))
                    .map_or(m.iteration, |x| x.iteration),
                _ => *self.run_start[k].get_or_insert(m.iteration),
            };
            let confirmed = match kind {
                FailureKind::Explosion => true,
                _ => self.run_len[k] >= w,
            };
            if confirmed && !self.reported[k] {
                self.reported[k] = true;
                let message = match kind {
                    FailureKind::Collapse => format!(
                        "{:.2} zooms per trajectory (< {}) while {:.0}% of trajectories still answer, for {} iterations",
                        m.zooms,
                        c.collapse_zooms,
                        100.0 * m.answered_frac,
                        self.run_len[k]
                    ),
                    FailureKind::Explosion => format!(
                        "zooms per trajectory {:.2} → {:.2}, {:.0}% hit max_rounds, while Acc_ans fell {:.2} → {:.2}",
                        first.zooms,
                        m.zooms,
                        100.0 * m.max_rounds_frac,
                        first.acc_ans,
                        m.acc_ans
                    ),
                    FailureKind::Superficial => format!(
                        "{:.2} zooms per trajectory but Acc_rat {:.2} (< {}) for {} iterations",
                        m.zooms,
                        m.acc_rat.unwrap_or(0.0),
                        c.superficial_acc_rat,
                        self.run_len[k]
                    ),
                };
                out.push(FailureSignature {
                    kind,
                    began_at: began,
                    detected_at: m.iteration,
                    message,
                });
            }
        }
        out
    }
}

/// Runs the detectors over a whole series, as if it arrived live.
pub fn detect(series: &[IterationMetrics], cfg: &DetectorConfig) -> Vec<FailureSignature> {
    let mut mon = FailureMonitor::new(cfg.clone());
    series.iter().flat_map(|m| mon.push(m)).collect()
}

pub mod seeds;

#[cfg(test)]
mod tests;
