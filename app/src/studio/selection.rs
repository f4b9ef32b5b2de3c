//! What is selected in the rollouts: the rows in view (filtered and
//! sorted), the selected trajectory and action, and keyboard stepping. The
//! browser's table and the inspector both read and move it.

use super::rows::{RowFilter, RowRef, SortBy, view};
use super::run::Run;
use virl_engine::metrics::FailureKind;
use virl_engine::trajectory::{FailureClass, Trajectory};

/// Which trajectories the table lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// One iteration (the timeline's).
    #[default]
    Iteration,
    /// Every loaded iteration.
    All,
}

/// The browser's state.
#[derive(Default)]
pub struct BrowserState {
    /// Filters.
    pub filter: RowFilter,
    /// Sort order.
    pub sort: SortBy,
    /// One iteration or all loaded.
    pub scope: Scope,
    /// The iteration shown (scope = one iteration).
    pub iteration: Option<u64>,
    /// Jump to the newest iteration as it arrives.
    pub follow: bool,
    /// The rows in view order.
    pub rows: Vec<RowRef>,
    /// The selected trajectory.
    pub selected: Option<RowRef>,
    /// The selected action (0-based; `zooms` = the answer).
    pub action: usize,
    key: Option<(RowFilter, SortBy, Scope, Option<u64>, usize, usize)>,
    /// Scroll the table to the selected row on the next frame.
    pub(crate) scroll_to_selected: bool,
}

impl BrowserState {
    /// Recomputes the rows when the data or the filters changed; follows the
    /// newest iteration when asked to.
    pub fn update(&mut self, r: &Run) {
        let newest = r.newest();
        if (self.follow || self.iteration.is_none()) && newest.is_some() && self.iteration != newest
        {
            self.iteration = newest;
            if self.follow {
                self.selected = None;
            }
        }
        let total: usize = r.rollouts.values().map(|v| v.len()).sum();
        let key = (
            self.filter.clone(),
            self.sort,
            self.scope,
            self.iteration,
            r.rollouts.len(),
            total,
        );
        if self.key.as_ref() == Some(&key) {
            return;
        }
        self.key = Some(key);
        self.rows = match self.scope {
            Scope::Iteration => match self
                .iteration
                .and_then(|i| r.rollouts.get(&i).map(|v| (i, v)))
            {
                Some((i, v)) => view(
                    v.iter().enumerate().map(|(k, t)| ((i, k), t)),
                    &self.filter,
                    self.sort,
                ),
                None => Vec::new(),
            },
            Scope::All => view(
                r.rollouts
                    .iter()
                    .flat_map(|(&i, v)| v.iter().enumerate().map(move |(k, t)| ((i, k), t))),
                &self.filter,
                self.sort,
            ),
        };
        if (self.follow || self.selected.is_none_or(|s| !self.rows.contains(&s)))
            && let Some(&first) = self.rows.first()
        {
            if self.selected != Some(first) {
                self.action = 0;
            }
            self.selected = Some(first);
        }
    }

    /// Moves the selection by `d` rows.
    pub fn step_row(&mut self, d: i64) {
        if self.rows.is_empty() {
            return;
        }
        let pos = self
            .selected
            .and_then(|s| self.rows.iter().position(|&r| r == s))
            .map(|p| p as i64 + d)
            .unwrap_or(0)
            .clamp(0, self.rows.len() as i64 - 1);
        self.selected = Some(self.rows[pos as usize]);
        self.action = 0;
        self.follow = false;
        self.scroll_to_selected = true;
    }

    /// Moves the action cursor by `d` within the selected trajectory (its
    /// zooms, then the answer).
    pub fn step_action(&mut self, r: Option<&Run>, d: i64) {
        let Some(t) = r.and_then(|r| self.record(r)) else {
            return;
        };
        let n = t.actions.len() as i64 + 1;
        self.action = (self.action as i64 + d).clamp(0, n - 1) as usize;
    }

    /// The selected trajectory.
    pub fn record<'a>(&self, r: &'a Run) -> Option<&'a Trajectory> {
        let (i, k) = self.selected?;
        r.rollouts.get(&i)?.get(k)
    }

    /// Shows the trajectories of a failure signature's class, across iterations.
    pub fn show_failure(&mut self, kind: FailureKind) {
        self.filter = RowFilter {
            class: Some(match kind {
                FailureKind::Collapse => FailureClass::Collapsed,
                FailureKind::Superficial => FailureClass::Superficial,
                FailureKind::Explosion => FailureClass::Exploded,
            }),
            ..Default::default()
        };
        self.follow = false;
        self.selected = None;
    }
}
