//! The rollout browser's logic, without any UI: a trajectory's failure class,
//! the table's columns, filters and sort order. Tested without a window.

use virl_engine::session::TrajectoryRecord;

/// IoU at which a zoom counts as a hit for the per-trajectory `Acc_rat`
/// column (the metric's threshold, DESIGN §6).
pub const RAT_IOU: f64 = virl_engine::metrics::RAT_IOU;

/// How a trajectory failed, if it did (DESIGN §6 failure signatures, per trajectory).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TrajClass {
    /// Answered without a single zoom.
    Collapsed,
    /// Zoomed, but every zoom missed every rationale (σ = −1 throughout).
    Superficial,
    /// Hit `max_rounds` zooms without answering.
    Exploded,
    /// None of the above.
    Ok,
}

impl TrajClass {
    /// Every class, in display order.
    pub const ALL: [Self; 4] = [Self::Ok, Self::Collapsed, Self::Superficial, Self::Exploded];

    /// The class of a trajectory. A sample without rationale boxes cannot be
    /// superficial (nothing to miss).
    pub fn of(t: &TrajectoryRecord) -> Self {
        if t.hit_max_rounds {
            Self::Exploded
        } else if t.scored.actions.is_empty() {
            Self::Collapsed
        } else if t.scored.actions.iter().all(|a| a.score.sigma == Some(-1)) {
            Self::Superficial
        } else {
            Self::Ok
        }
    }

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

/// Whether the answer equals the truth (after trimming; case-insensitive).
pub fn correct(t: &TrajectoryRecord) -> bool {
    t.answer
        .as_deref()
        .is_some_and(|a| a.trim().eq_ignore_ascii_case(t.truth.trim()))
}

/// Fraction of the trajectory's zooms with IoU ≥ [`RAT_IOU`]; `None` without
/// zooms or without rationale boxes.
pub fn acc_rat(t: &TrajectoryRecord) -> Option<f64> {
    let ious: Vec<f64> = t
        .scored
        .actions
        .iter()
        .filter_map(|a| a.score.iou)
        .collect();
    (!ious.is_empty())
        .then(|| ious.iter().filter(|&&i| i >= RAT_IOU).count() as f64 / ious.len() as f64)
}

/// The browser's columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Column {
    /// Iteration.
    Iteration,
    /// Sample id.
    Sample,
    /// Answer correct.
    Correct,
    /// Total reward.
    Reward,
    /// `R_rat`.
    RRat,
    /// Per-trajectory `Acc_rat`.
    AccRat,
    /// Zoom count.
    Zooms,
    /// Trajectory advantage `A_i`.
    Advantage,
    /// Failure class.
    Class,
}

impl Column {
    /// Every column, in display order.
    pub const ALL: [Self; 9] = [
        Self::Iteration,
        Self::Sample,
        Self::Correct,
        Self::Reward,
        Self::RRat,
        Self::AccRat,
        Self::Zooms,
        Self::Advantage,
        Self::Class,
    ];

    /// Header text.
    pub fn title(self) -> &'static str {
        match self {
            Self::Iteration => "iter",
            Self::Sample => "sample",
            Self::Correct => "correct",
            Self::Reward => "R",
            Self::RRat => "R_rat",
            Self::AccRat => "Acc_rat",
            Self::Zooms => "zooms",
            Self::Advantage => "A_i",
            Self::Class => "class",
        }
    }

    fn cmp(self, a: &TrajectoryRecord, b: &TrajectoryRecord) -> std::cmp::Ordering {
        let f = |x: f64, y: f64| x.total_cmp(&y);
        match self {
            Self::Iteration => a.iteration.cmp(&b.iteration),
            Self::Sample => a.scored.sample.cmp(&b.scored.sample),
            Self::Correct => correct(a).cmp(&correct(b)),
            Self::Reward => f(a.scored.rewards.total, b.scored.rewards.total),
            Self::RRat => f(a.scored.rewards.rat, b.scored.rewards.rat),
            Self::AccRat => f(acc_rat(a).unwrap_or(-1.0), acc_rat(b).unwrap_or(-1.0)),
            Self::Zooms => a.scored.actions.len().cmp(&b.scored.actions.len()),
            Self::Advantage => f(a.scored.advantage, b.scored.advantage),
            Self::Class => (TrajClass::of(a) as u8).cmp(&(TrajClass::of(b) as u8)),
        }
    }
}

/// A three-way choice for boolean filters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Tri {
    /// No filter.
    #[default]
    Any,
    /// Only true.
    Yes,
    /// Only false.
    No,
}

impl Tri {
    fn keeps(self, v: bool) -> bool {
        match self {
            Self::Any => true,
            Self::Yes => v,
            Self::No => !v,
        }
    }
}

/// The browser's filters.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RowFilter {
    /// Correct answer.
    pub correct: Tri,
    /// Only this failure class.
    pub class: Option<TrajClass>,
    /// Sample id contains this text.
    pub sample: String,
    /// At least this many zooms.
    pub min_zooms: usize,
    /// At most this many zooms (`None`: no limit).
    pub max_zooms: Option<usize>,
    /// Total reward at least this.
    pub min_reward: Option<f64>,
}

impl RowFilter {
    /// Whether `t` passes.
    pub fn keeps(&self, t: &TrajectoryRecord) -> bool {
        let k = t.scored.actions.len();
        self.correct.keeps(correct(t))
            && self.class.is_none_or(|c| TrajClass::of(t) == c)
            && (self.sample.is_empty() || t.scored.sample.contains(self.sample.trim()))
            && k >= self.min_zooms
            && self.max_zooms.is_none_or(|m| k <= m)
            && self.min_reward.is_none_or(|r| t.scored.rewards.total >= r)
    }
}

/// Sort order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SortBy {
    /// Column.
    pub column: Column,
    /// Descending.
    pub descending: bool,
}

impl Default for SortBy {
    /// Best first: total reward, descending.
    fn default() -> Self {
        Self {
            column: Column::Reward,
            descending: true,
        }
    }
}

/// A row: which loaded iteration, which trajectory in it.
pub type RowRef = (u64, usize);

/// The rows that pass `filter`, sorted by `sort` (stable: ties keep the
/// iteration / trajectory order). `get` resolves a row to its record.
pub fn view<'a>(
    rows: impl Iterator<Item = (RowRef, &'a TrajectoryRecord)>,
    filter: &RowFilter,
    sort: SortBy,
) -> Vec<RowRef> {
    let mut kept: Vec<(RowRef, &TrajectoryRecord)> =
        rows.filter(|(_, t)| filter.keeps(t)).collect();
    kept.sort_by(|a, b| {
        let o = sort.column.cmp(a.1, b.1);
        if sort.descending { o.reverse() } else { o }
    });
    kept.into_iter().map(|(r, _)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use virl_engine::credit::ActionCredit;
    use virl_engine::geometry::BBox;
    use virl_engine::reward::{ActionScore, Rewards};
    use virl_engine::score::{ScoredAction, ScoredTrajectory};

    pub(crate) fn record(
        iteration: u64,
        sample: &str,
        answer: Option<&str>,
        ious: &[f64],
        total: f64,
        max_rounds: bool,
    ) -> TrajectoryRecord {
        let actions = ious
            .iter()
            .map(|&iou| ScoredAction {
                score: ActionScore {
                    bbox: Some(BBox::new(0.0, 0.0, 10.0, 10.0)),
                    iou: Some(iou),
                    gt: Some(0),
                    sigma: Some(if iou >= 0.3 { 1 } else { -1 }),
                    beta: Some(0.0),
                    redundant: false,
                    fidelity: 0.0,
                },
                credit: ActionCredit {
                    quality: 0.0,
                    modulator: 1.0,
                    advantage: 0.0,
                },
            })
            .collect::<Vec<_>>();
        TrajectoryRecord {
            iteration,
            truth: "7".into(),
            answer: answer.map(str::to_string),
            proposed: vec![BBox::new(0.0, 0.0, 10.0, 10.0); ious.len()],
            executed: vec![BBox::new(0.0, 0.0, 10.0, 10.0); ious.len()],
            hit_max_rounds: max_rounds,
            logp: vec![0.0; ious.len() + 1],
            turns: Vec::new(),
            scored: ScoredTrajectory {
                sample: sample.into(),
                group: sample.into(),
                rewards: Rewards {
                    ans: 0.0,
                    rat: 0.0,
                    fmt: 0.0,
                    total,
                },
                coverage: None,
                advantage: total,
                actions,
                facts: Default::default(),
            },
        }
    }

    #[test]
    fn classes() {
        assert_eq!(
            TrajClass::of(&record(0, "a", Some("7"), &[], 0.0, false)),
            TrajClass::Collapsed
        );
        assert_eq!(
            TrajClass::of(&record(0, "a", Some("7"), &[0.1, 0.2], 0.0, false)),
            TrajClass::Superficial
        );
        assert_eq!(
            TrajClass::of(&record(0, "a", Some("7"), &[0.1, 0.6], 0.0, false)),
            TrajClass::Ok
        );
        assert_eq!(
            TrajClass::of(&record(0, "a", None, &[0.6; 6], 0.0, true)),
            TrajClass::Exploded
        );
    }

    #[test]
    fn per_trajectory_acc_rat_and_correctness() {
        let t = record(0, "a", Some(" 7 "), &[0.1, 0.5, 0.9, 0.49], 0.0, false);
        assert_eq!(acc_rat(&t), Some(0.5));
        assert!(correct(&t));
        assert!(!correct(&record(0, "a", Some("1"), &[], 0.0, false)));
        assert!(!correct(&record(0, "a", None, &[], 0.0, false)));
        assert_eq!(acc_rat(&record(0, "a", None, &[], 0.0, false)), None);
    }

    #[test]
    fn filter_and_sort() {
        let recs = [
            record(0, "s1", Some("7"), &[0.6], 1.0, false),
            record(0, "s2", Some("3"), &[], -0.5, false),
            record(1, "s1", Some("7"), &[0.1, 0.2], 0.3, false),
            record(1, "s3", None, &[0.1; 6], -1.0, true),
        ];
        let rows = || recs.iter().enumerate().map(|(i, r)| ((r.iteration, i), r));
        let by_reward = SortBy {
            column: Column::Reward,
            descending: true,
        };
        assert_eq!(
            view(rows(), &RowFilter::default(), by_reward),
            vec![(0, 0), (1, 2), (0, 1), (1, 3)]
        );
        assert_eq!(SortBy::default(), by_reward);
        let f = RowFilter {
            correct: Tri::Yes,
            ..Default::default()
        };
        let by_iter = SortBy {
            column: Column::Iteration,
            descending: false,
        };
        assert_eq!(view(rows(), &f, by_iter), vec![(0, 0), (1, 2)]);
        let f = RowFilter {
            class: Some(TrajClass::Exploded),
            ..Default::default()
        };
        assert_eq!(view(rows(), &f, by_iter), vec![(1, 3)]);
        let f = RowFilter {
            sample: "s1".into(),
            min_zooms: 2,
            ..Default::default()
        };
        assert_eq!(view(rows(), &f, by_iter), vec![(1, 2)]);
    }
}
