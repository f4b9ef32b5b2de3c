//! The editable document of one split, without any UI: its samples with
//! every correction applied, the correction journal, and the undo / redo
//! history as a value history of whole rationale lists (egui's `Undoer`
//! pattern). Every edit is journalled (and synced) before it is applied.

use std::sync::Arc;
use virl_engine::dataset::annotations::{Edit, Journal};
use virl_engine::dataset::{Dataset, Rationale, Sample};
use virl_engine::env::ImageStore;

/// One undoable edit: a sample's rationales before and after.
#[derive(Clone, Debug, PartialEq)]
struct Step {
    sample: String,
    before: Vec<Rationale>,
    after: Vec<Rationale>,
}

/// One split's samples as edited, with its journal and history.
pub struct Doc {
    /// 0: training split, 1: evaluation split.
    pub split: usize,
    /// The samples with every correction applied.
    pub dataset: Dataset,
    /// Where the images come from.
    pub store: Arc<ImageStore>,
    /// The correction journal.
    pub journal: Journal,
    /// Generated data (no manifest to compact into).
    pub generated: bool,
    /// Corrections in the journal that are not in the manifest yet.
    pub uncompacted: usize,
    /// `filter-report.json` beside the manifest, when the dataset is a
    /// `virl filter` output (or the error reading it).
    pub filter_report: Option<Result<virl_engine::filter::FilterReport, String>>,
    undo: Vec<Step>,
    redo: Vec<Step>,
}

/// What an undo or redo did: the sample it changed, as it is now.
pub struct Undone {
    /// The sample's id.
    pub sample: String,
    /// The sample with its rationales after the step.
    pub now: Sample,
}

impl Doc {
    /// The document of one split's image store; its journal is beside the
    /// manifest, or in the session folder for generated data.
    pub fn new(split: usize, store: Arc<ImageStore>, session: &std::path::Path) -> Self {
        let dataset = (**store.dataset()).clone();
        let generated = store.is_generated();
        let journal = Journal::new(virl_engine::trainer::journal_path(
            &dataset, generated, session,
        ));
        let uncompacted = if generated {
            0
        } else {
            dataset.pending_edits()
        };
        let report_path = dataset.root().join(virl_engine::filter::REPORT);
        let filter_report = (!generated && report_path.is_file()).then(|| {
            std::fs::read(&report_path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
                .map_err(|e| format!("{e}: {}", report_path.display()))
        });
        Self {
            split,
            dataset,
            store,
            journal,
            generated,
            uncompacted,
            filter_report,
            undo: Vec::new(),
            redo: Vec::new(),
        }
    }

    /// Appends the edit to the journal (synced), then applies it. On a
    /// write error nothing changes and the error is returned.
    fn apply(&mut self, id: &str, op: &str, after: Vec<Rationale>) -> Result<Sample, String> {
        let before = self
            .dataset
            .get(id)
            .map(|s| s.rationales.clone())
            .ok_or_else(|| format!("no sample {id}"))?;
        self.journal
            .append(&Edit::now(id, op, before, after.clone()))
            .map_err(|e| format!("the edit was not saved: {e}"))?;
        self.dataset.set_rationales(id, after);
        if !self.generated {
            self.uncompacted += 1;
        }
        self.dataset
            .get(id)
            .cloned()
            .ok_or_else(|| format!("no sample {id}"))
    }

    /// Records an edit of sample `id` (its rationales become `after`): the
    /// journal line first (synced), then the value and the undo history.
    /// `Ok(None)` when nothing changes.
    pub fn edit(
        &mut self,
        id: &str,
        op: &str,
        after: Vec<Rationale>,
    ) -> Result<Option<Sample>, String> {
        let before = self
            .dataset
            .get(id)
            .map(|s| s.rationales.clone())
            .ok_or_else(|| format!("no sample {id}"))?;
        if before == after {
            return Ok(None);
        }
        let s = self.apply(id, op, after.clone())?;
        self.undo.push(Step {
            sample: id.to_string(),
            before,
            after,
        });
        self.redo.clear();
        Ok(Some(s))
    }

    /// Undoes (or, with `undo = false`, redoes) the last step, journalled
    /// like any edit. `Ok(None)`: nothing to undo or redo. On a write error
    /// the history is as it was.
    pub fn undo_redo(&mut self, undo: bool) -> Result<Option<Undone>, String> {
        let step = if undo {
            self.undo.pop()
        } else {
            self.redo.pop()
        };
        let Some(step) = step else { return Ok(None) };
        let target = if undo {
            step.before.clone()
        } else {
            step.after.clone()
        };
        match self.apply(&step.sample, if undo { "undo" } else { "redo" }, target) {
            Ok(now) => {
                let sample = step.sample.clone();
                if undo {
                    self.redo.push(step);
                } else {
                    self.undo.push(step);
                }
                Ok(Some(Undone { sample, now }))
            }
            Err(e) => {
                if undo {
                    self.undo.push(step);
                } else {
                    self.redo.push(step);
                }
                Err(e)
            }
        }
    }

    /// Steps that can be undone and redone.
    pub fn history(&self) -> (usize, usize) {
        (self.undo.len(), self.redo.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virl_engine::dataset::zoombench::{ZoomBench, ZoomBenchConfig};
    use virl_engine::env::ImageSource;
    use virl_engine::geometry::BBox;

    fn doc(dir: &std::path::Path) -> Doc {
        let zb = ZoomBench::new(ZoomBenchConfig::default()).expect("zb");
        let ds = Dataset::new(
            "zoombench:seed=0",
            (0..3).map(|i| zb.sample(0, i)).collect(),
        );
        let store = Arc::new(ImageStore::new(
            Arc::new(ds),
            ImageSource::ZoomBench(zb),
            64,
            2,
        ));
        Doc::new(0, store, dir)
    }

    #[test]
    fn edits_are_journalled_and_undo_redo_walks_the_history() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut d = doc(tmp.path());
        let id = d.dataset.samples()[1].id.clone();
        let orig = d.dataset.get(&id).expect("s").rationales.clone();
        let moved = vec![Rationale {
            bbox: BBox::new(1.0, 2.0, 30.0, 40.0),
            label: "moved".into(),
        }];
        assert!(
            d.edit(&id, "move", orig.clone()).expect("same").is_none(),
            "no change, no edit"
        );
        let s = d
            .edit(&id, "move", moved.clone())
            .expect("edit")
            .expect("changed");
        assert_eq!(s.rationales, moved);
        assert_eq!(d.history(), (1, 0));
        let u = d.undo_redo(true).expect("undo").expect("a step");
        assert_eq!((u.sample.as_str(), &u.now.rationales), (id.as_str(), &orig));
        assert_eq!(d.history(), (0, 1));
        let r = d.undo_redo(false).expect("redo").expect("a step");
        assert_eq!(r.now.rationales, moved);
        assert!(d.undo_redo(false).expect("nothing").is_none());
        // Three journal lines (edit, undo, redo), replayed onto a fresh copy.
        let text = std::fs::read_to_string(d.journal.path()).expect("journal");
        assert_eq!(text.lines().count(), 3);
        let mut fresh = doc(tmp.path()).dataset;
        fresh.apply_journal(d.journal.path()).expect("replay");
        assert_eq!(fresh.get(&id).expect("s").rationales, moved);
    }
}
