//! The rollout browser's logic, without any UI: the table's columns,
//! filters and sort order. Tested without a window. Every value comes from
//! the record as the engine scored it (correctness is `R_ans`, the failure
//! class and the per-trajectory `Acc_rat` are the engine's): the studio
//! never re-derives a score.

use virl_engine::trajectory::{FailureClass, Trajectory};

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

    fn cmp(self, a: &Trajectory, b: &Trajectory) -> std::cmp::Ordering {
        let f = |x: f64, y: f64| x.total_cmp(&y);
        match self {
            Self::Iteration => a.iteration.cmp(&b.iteration),
            Self::Sample => a.sample.cmp(&b.sample),
            Self::Correct => a.correct().cmp(&b.correct()),
            Self::Reward => f(a.rewards.total, b.rewards.total),
            Self::RRat => f(a.rewards.rat, b.rewards.rat),
            Self::AccRat => f(
                a.rat_accuracy().unwrap_or(-1.0),
                b.rat_accuracy().unwrap_or(-1.0),
            ),
            Self::Zooms => a.actions.len().cmp(&b.actions.len()),
            Self::Advantage => f(a.advantage, b.advantage),
            Self::Class => (a.failure() as u8).cmp(&(b.failure() as u8)),
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
    pub class: Option<FailureClass>,
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
    pub fn keeps(&self, t: &Trajectory) -> bool {
        let k = t.actions.len();
        self.correct.keeps(t.correct())
            && self.class.is_none_or(|c| t.failure() == c)
            && (self.sample.is_empty() || t.sample.contains(self.sample.trim()))
            && k >= self.min_zooms
            && self.max_zooms.is_none_or(|m| k <= m)
            && self.min_reward.is_none_or(|r| t.rewards.total >= r)
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
    rows: impl Iterator<Item = (RowRef, &'a Trajectory)>,
    filter: &RowFilter,
    sort: SortBy,
) -> Vec<RowRef> {
    let mut kept: Vec<(RowRef, &Trajectory)> = rows.filter(|(_, t)| filter.keeps(t)).collect();
    kept.sort_by(|a, b| {
        let o = sort.column.cmp(a.1, b.1);
        if sort.descending { o.reverse() } else { o }
    });
    kept.into_iter().map(|(r, _)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use virl_engine::geometry::BBox;
    use virl_engine::trajectory::ZoomAction;

    /// A record as the engine leaves it: `correct` is its `R_ans`.
    pub(crate) fn record(
        iteration: u64,
        sample: &str,
        answer: Option<&str>,
        ious: &[f64],
        total: f64,
        max_rounds: bool,
    ) -> Trajectory {
        let b = BBox::new(0.0, 0.0, 10.0, 10.0);
        let mut t = Trajectory::new(sample, sample, iteration, "7");
        t.answer = answer.map(str::to_string);
        t.truncated = max_rounds;
        t.rewards.ans = f64::from(u8::from(answer == Some("7") && !max_rounds));
        t.rewards.total = total;
        t.advantage = total;
        t.actions = ious
            .iter()
            .map(|&iou| {
                let mut a = ZoomAction::new(b, b, Some(0.0), None);
                a.score.bbox = Some(b);
                a.score.iou = Some(iou);
                a.score.gt = Some(0);
                a.score.sigma = Some(if iou >= 0.3 { 1 } else { -1 });
                a.score.beta = Some(0.0);
                a
            })
            .collect();
        t
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
            class: Some(FailureClass::Exploded),
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

    #[test]
    fn correctness_is_the_engines_r_ans_not_a_string_match() {
        // "7.0" answering "7": the engine's numeric match scored R_ans = 1;
        // a trimmed, lower-cased string comparison would call it wrong.
        let mut t = record(0, "a", Some("7.0"), &[], 1.0, false);
        t.rewards.ans = 1.0;
        let f = RowFilter {
            correct: Tri::Yes,
            ..Default::default()
        };
        assert!(f.keeps(&t));
        // And a wrong answer that the engine scored 0 stays wrong even if the
        // strings look alike to a case-folding comparison.
        t.rewards.ans = 0.0;
        assert!(!f.keeps(&t));
    }
}
