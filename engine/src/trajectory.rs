//! THE trajectory record: one type from rollout to screen.
//!
//! A [`Trajectory`] is what the zoom environment and the VLM driver
//! produce, what the scoring funnel ([`crate::score`]) fills in, what a
//! session's `rollouts/iter-N.jsonl` stores, what `virl rollout` writes,
//! what `virl score --format virl` reads and what the studio shows. It is
//! policy-agnostic: a ZoomNet episode and a Qwen3-VL conversation are the
//! same record, the VLM's conversation kept as an optional transcript of
//! [`Turn`]s.
//!
//! On disk (one JSON object per line):
//!
//! ```json
//! {"sample": "zb-s0-000007", "group": "zb-s0-000007", "iteration": 12,
//!  "truth": "7", "answer": "7", "answer_logp": -0.02, "truncated": false,
//!  "actions": [{"proposed": [400, 500, 432, 532], "executed": [400, 500, 432, 532],
//!               "logp": -1.3, "turn": 2, "bbox": [400, 500, 432, 532], "iou": 0.47, "gt": 0,
//!               "sigma": 1, "beta": 0.47, "redundant": false, "fidelity": 0.74,
//!               "quality": 0.86, "modulator": 1.43, "advantage": 1.31}],
//!  "rewards": {"ans": 1.0, "rat": 0.74, "fmt": 0.0, "total": 1.37},
//!  "coverage": 1.0, "advantage": 0.92, "gt_best_iou": [0.47]}
//! ```
//!
//! Reading is lenient about layout and strict about values ([`read`]):
//! the records written before this type existed (a session's
//! `proposed`/`executed`/`hit_max_rounds`/`logp`/`turns`, `virl rollout`'s
//! `zooms`/`truncated`/`turn_logp`) and `virl score`'s minimal input
//! (`{"sample", "zooms", "answer"}`) load into the same type; a box that is
//! not four finite numbers, or a field of the wrong type, is an error naming
//! the field.

pub(crate) mod parse;
pub use parse::parse_box;

use crate::credit::ActionCredit;
use crate::geometry::BBox;
use crate::reward::{ActionScore, Rewards};
use serde::{Deserialize, Serialize};

/// IoU at which a zoom counts as a hit for `Acc_rat` and coverage (DESIGN §6).
pub const RAT_IOU: f64 = 0.5;

/// One trajectory: what the policy did, and what the engine made of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value")]
pub struct Trajectory {
    /// The sample id.
    pub sample: String,
    /// The GRPO group key (the sample id for our own rollouts; verl's `uid`).
    pub group: String,
    /// The iteration it was sampled in (evaluations: the iteration they followed).
    pub iteration: u64,
    /// The correct answer.
    pub truth: String,
    /// The answer given, if any.
    pub answer: Option<String>,
    /// Log-probability of the answer action at rollout time (for a VLM: of
    /// the whole answering turn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_logp: Option<f32>,
    /// The zoom actions, in order.
    pub actions: Vec<ZoomAction>,
    /// Format problems of the model's text (`R_fmt = −1` when any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub format_errors: Vec<String>,
    /// Whether the episode hit `max_rounds` without answering.
    pub truncated: bool,
    /// For a policy that converses: the conversation, turn by turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transcript: Vec<Turn>,
    /// `R_ans`, `R_rat`, `R_fmt` and the total (filled by [`crate::score`]).
    pub rewards: Rewards,
    /// Rationale coverage `C` at `h0` (`None` when the sample has no rationale).
    pub coverage: Option<f64>,
    /// The trajectory advantage `A_i` (the answer action's advantage).
    pub advantage: f64,
    /// For each ground-truth box, the best IoU any zoom reached (the
    /// coverage metric at [`RAT_IOU`] reads it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gt_best_iou: Vec<f64>,
    /// For a run traced from outside (verl): the image the policy looked at,
    /// as a path (absolute, or relative to the dataset folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Which version of the sample's ground-truth boxes the scores used: the
    /// number of studio corrections to that sample applied when it was
    /// scored (0: the boxes as exported). `None` when not recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt_version: Option<u64>,
}

/// One zoom action: the box the policy proposed and the one executed, its
/// log-probability and turn, and its scores and credit (filled by
/// [`crate::score`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZoomAction {
    /// The box as the policy proposed it, in original-image pixels (what the
    /// rewards score).
    pub proposed: BBox,
    /// The box as executed: clipped, grown to the minimum side
    /// ([`crate::env::execute_box`]).
    pub executed: BBox,
    /// Log-probability of the action at rollout time (for a VLM: of the
    /// whole assistant turn that made it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logp: Option<f32>,
    /// Index into [`Trajectory::transcript`] of the turn that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<usize>,
    /// The rationale score (DESIGN §4).
    #[serde(flatten)]
    pub score: ActionScore,
    /// The credit (DESIGN §5).
    #[serde(flatten)]
    pub credit: ActionCredit,
}

impl ZoomAction {
    /// An unscored action.
    pub fn new(proposed: BBox, executed: BBox, logp: Option<f32>, turn: Option<usize>) -> Self {
        Self {
            proposed,
            executed,
            logp,
            turn,
            score: ActionScore::default(),
            credit: ActionCredit::neutral(),
        }
    }
}

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text (image placeholders written as `<image WxH>`).
    pub text: String,
    /// For an assistant turn that zoomed: the proposed box, original pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoom: Option<BBox>,
    /// For an assistant turn that was malformed: what was wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For an assistant turn: its log-probability at rollout time (the sum
    /// over its tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logp: Option<f32>,
}

impl Turn {
    /// A turn with only a role and text.
    pub fn new(role: &str, text: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            text: text.into(),
            zoom: None,
            error: None,
            logp: None,
        }
    }
}

/// How a trajectory failed, if it did: DESIGN §6's failure signatures, per
/// trajectory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureClass {
    /// Answered without a single zoom.
    Collapsed,
    /// Zoomed, but every zoom missed every rationale (σ = −1 throughout).
    Superficial,
    /// Hit `max_rounds` zooms without answering.
    Exploded,
    /// None of the above.
    Ok,
}

impl FailureClass {
    /// Every class, in display order.
    pub const ALL: [Self; 4] = [Self::Ok, Self::Collapsed, Self::Superficial, Self::Exploded];

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Collapsed => "collapsed",
            Self::Superficial => "superficial",
            Self::Exploded => "exploded",
            Self::Ok => "ok",
        }
    }
}

impl Trajectory {
    /// A trajectory not yet acted on or scored.
    pub fn new(sample: &str, group: &str, iteration: u64, truth: &str) -> Self {
        Self {
            sample: sample.into(),
            group: group.into(),
            iteration,
            truth: truth.into(),
            ..Default::default()
        }
    }

    /// Whether the answer is right: `R_ans = 1` as the engine scored it
    /// (numbers match numerically, option letters as their text).
    pub fn correct(&self) -> bool {
        self.rewards.ans > 0.0
    }

    /// Whether the episode has ended (answered, or cut off at `max_rounds`).
    pub fn finished(&self) -> bool {
        self.answer.is_some() || self.truncated
    }

    /// Whether an answer was given (not cut off at `max_rounds`).
    pub fn answered(&self) -> bool {
        self.answer.is_some() && !self.truncated
    }

    /// The proposed boxes, in order.
    pub fn proposed(&self) -> impl ExactSizeIterator<Item = BBox> + '_ {
        self.actions.iter().map(|a| a.proposed)
    }

    /// The executed boxes, in order.
    pub fn executed(&self) -> impl ExactSizeIterator<Item = BBox> + '_ {
        self.actions.iter().map(|a| a.executed)
    }

    /// The per-trajectory `Acc_rat`: the fraction of zooms with IoU ≥
    /// [`RAT_IOU`]; `None` without zooms or without rationale boxes.
    pub fn rat_accuracy(&self) -> Option<f64> {
        let ious: Vec<f64> = self.actions.iter().filter_map(|a| a.score.iou).collect();
        (!ious.is_empty())
            .then(|| ious.iter().filter(|&&i| i >= RAT_IOU).count() as f64 / ious.len() as f64)
    }

    /// The failure class. A sample without rationale boxes cannot be
    /// superficial (nothing to miss).
    pub fn failure(&self) -> FailureClass {
        if self.truncated {
            FailureClass::Exploded
        } else if self.actions.is_empty() {
            FailureClass::Collapsed
        } else if self.actions.iter().all(|a| a.score.sigma == Some(-1)) {
            FailureClass::Superficial
        } else {
            FailureClass::Ok
        }
    }

    /// The line `virl score` writes: `sample`, `group`, `rewards`,
    /// `coverage`, `advantage` and per action its clipped `bbox`, scores and
    /// credit (in that order).
    pub fn score_line(&self) -> ScoreLine<'_> {
        ScoreLine {
            sample: &self.sample,
            group: &self.group,
            rewards: &self.rewards,
            coverage: self.coverage,
            advantage: self.advantage,
            actions: self
                .actions
                .iter()
                .map(|a| ScoredAction {
                    score: &a.score,
                    credit: &a.credit,
                })
                .collect(),
        }
    }
}

/// The scores of one trajectory as `virl score` writes them
/// ([`Trajectory::score_line`]).
#[derive(Clone, Debug, Serialize)]
pub struct ScoreLine<'a> {
    /// The sample id.
    pub sample: &'a str,
    /// The group key.
    pub group: &'a str,
    /// The reward parts.
    pub rewards: &'a Rewards,
    /// `C`.
    pub coverage: Option<f64>,
    /// `A_i`.
    pub advantage: f64,
    /// Each zoom's score and credit.
    pub actions: Vec<ScoredAction<'a>>,
}

/// One action's score and credit, as one flat JSON object.
#[derive(Clone, Debug, Serialize)]
pub struct ScoredAction<'a> {
    /// The rationale score.
    #[serde(flatten)]
    pub score: &'a ActionScore,
    /// The credit.
    #[serde(flatten)]
    pub credit: &'a ActionCredit,
}

/// Reads one trajectory from a JSON value in any layout ViRL Studio has
/// written ([module docs](self)); the error names the field.
pub fn read(v: serde_json::Value) -> Result<Trajectory, String> {
    parse::from_value(v)
}

impl TryFrom<serde_json::Value> for Trajectory {
    type Error = String;
    fn try_from(v: serde_json::Value) -> Result<Self, String> {
        parse::from_value(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(iou: Option<f64>, sigma: Option<i8>) -> ZoomAction {
        let b = BBox::new(0.0, 0.0, 10.0, 10.0);
        let mut a = ZoomAction::new(b, b, Some(-1.0), None);
        a.score.iou = iou;
        a.score.sigma = sigma;
        a
    }

    #[test]
    fn derived_facts_come_from_the_engine_fields() {
        let mut t = Trajectory::new("a", "a", 3, "7");
        t.answer = Some("7.0".into());
        assert!(!t.correct(), "correctness is R_ans, not a string match");
        t.rewards.ans = 1.0;
        assert!(t.correct());
        assert_eq!(t.failure(), FailureClass::Collapsed);
        assert_eq!(t.rat_accuracy(), None);
        t.actions = vec![action(Some(0.6), Some(1)), action(Some(0.1), Some(-1))];
        assert_eq!(t.failure(), FailureClass::Ok);
        assert_eq!(t.rat_accuracy(), Some(0.5));
        t.actions.remove(0);
        assert_eq!(t.failure(), FailureClass::Superficial);
        t.truncated = true;
        assert_eq!(t.failure(), FailureClass::Exploded);
        assert!(!t.answered());
    }

    #[test]
    fn round_trips_through_json() {
        let mut t = Trajectory::new("a", "g", 3, "7");
        t.answer = Some("7".into());
        t.answer_logp = Some(-0.25);
        t.actions = vec![action(Some(0.6), Some(1))];
        t.format_errors = vec!["turn 1: oops".into()];
        t.transcript = vec![Turn::new("user", "hi")];
        t.coverage = Some(1.0);
        t.gt_best_iou = vec![0.6];
        let line = serde_json::to_string(&t).expect("json");
        let back: Trajectory = serde_json::from_str(&line).expect("read");
        assert_eq!(back, t);
        let sl = serde_json::to_value(t.score_line()).expect("json");
        assert_eq!(sl["actions"][0]["iou"], 0.6);
        assert!(sl["actions"][0].get("proposed").is_none());
    }
}
