//! The annotation editor (DESIGN §9, issue #5): browse a split's samples,
//! draw, select, move, resize, nudge, relabel, hide and delete ground-truth
//! boxes, with undo / redo as a value history. Keys follow CVAT (N draws,
//! Tab cycles, arrows nudge, Del deletes, H hides, F / D step samples,
//! Ctrl+Z / Ctrl+Shift+Z / Ctrl+Y, Ctrl+S saves).
//!
//! Rooms: [`document`] (the split's samples, journal and undo history,
//! UI-free), [`editing`] (box geometry of drags and handles), `canvas`,
//! `samples` (the list), `side_panel`, `thumbnails`. Drawing proposes edits;
//! [`AnnotateState::logic`] commits them.
//!
//! Every committed edit is appended to the correction journal
//! (`annotations.jsonl`, engine `dataset::annotations`) and synced to disk
//! before the editor shows it, so a crash right after an edit keeps it. For
//! a dataset folder, Ctrl+S compacts the journal into `manifest.jsonl`
//! (atomic rename); generated ZoomBench data has no manifest, and its
//! journal lives in the session folder and is the saved state. After every
//! edit the session's loaded trajectories of that sample are re-scored
//! ([`Run::correct_ground_truth`]), and a live trainer uses the new boxes
//! from its next iteration.

mod canvas;
pub mod document;
pub mod editing;
mod samples;
mod side_panel;
mod thumbnails;

pub use document::Doc;

use super::commands::Cmd;
use super::images::ImageCache;
use super::run::Run;
use crate::widgets::ViewXf;
use editing::{Drag, clamp_move};
use egui::{Color32, Pos2, Rect, Sense};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use thumbnails::{Thumb, Thumbs};
use virl_engine::dataset::Rationale;
use virl_engine::geometry::BBox;

/// Ground-truth box colour (as in the inspector).
pub(super) const GT: Color32 = Color32::from_rgb(80, 230, 255);
/// The selected box.
pub(super) const SELECTED: Color32 = Color32::from_rgb(255, 220, 60);
/// State of the annotation editor.
#[derive(Default)]
pub struct AnnotateState {
    /// The session the documents belong to.
    session: Option<PathBuf>,
    /// Per split, built when first shown.
    docs: [Option<Doc>; 2],
    /// The split shown.
    pub split: usize,
    /// The sample shown (id).
    pub sample: Option<String>,
    /// The selected box.
    pub selected: Option<usize>,
    /// Boxes hidden in the view (sample id, box index); not an edit.
    hidden: HashSet<(String, usize)>,
    /// N was pressed: the next primary drag draws a box.
    pub drawing: bool,
    drag: Option<Drag>,
    /// The live preview of the box being dragged.
    preview: Option<BBox>,
    xf: ViewXf,
    /// Show image pixel `(x, y)` at the canvas centre at `zoom` × the fitted
    /// size on the next frame (`--zoom-to`, benchmarks); taken by the canvas.
    pub focus: Option<(f32, [f64; 2])>,
    /// The sample list's search text.
    pub search: String,
    /// The selected box's label being typed.
    label_draft: Option<(usize, String)>,
    /// Messages for toasts (errors flagged).
    pub messages: Vec<(String, bool)>,
    thumbs: Thumbs,
    /// Iterations whose rollouts the list asked to load (for the suspicion
    /// ranking), requested by [`AnnotateState::logic`].
    load_requested: Vec<u64>,
    /// Edits proposed by this frame's drawing, committed by [`AnnotateState::logic`].
    pending: Vec<(String, Vec<Rationale>)>,
    scroll_to_selected: bool,
    /// Order the sample list by suspicion (engine `suspect`), most suspect
    /// first (on by default: a person should fix the likely-wrong boxes first).
    pub by_suspicion: bool,
    /// The user turned the suspicion order off.
    suspicion_off: bool,
    /// Suspicion of the shown split's samples, from the loaded trajectories.
    pub suspicion: HashMap<String, virl_engine::suspect::Suspect>,
    suspicion_key: Option<(usize, usize, usize)>,
    auto_loaded: bool,
    /// The user picked a sample (so a new ranking does not jump away from it).
    user_chose: bool,
    /// Trajectories the suspicion was computed from.
    pub suspicion_evidence: usize,
    /// The canvas's image-to-screen map of the last frame: screen position
    /// of image pixel (0, 0) and points per image pixel (for tests and tools
    /// that place the pointer on image coordinates).
    pub canvas_xf: Option<(Pos2, f32)>,
}

impl AnnotateState {
    /// Makes sure the documents belong to `r` (a new run resets them).
    pub(super) fn sync(&mut self, r: &Run) {
        if self.session.as_deref() != Some(r.dir.as_path()) {
            *self = Self {
                session: Some(r.dir.clone()),
                search: std::mem::take(&mut self.search),
                focus: self.focus.take(),
                ..Default::default()
            };
        }
        if let Some(ix) = &r.index
            && self.docs[0].is_none()
        {
            let [train, eval] = ix.stores();
            self.docs[0] = Some(Doc::new(0, train.clone(), &r.dir));
            // A folder that serves both splits is one document: two copies
            // of one manifest would overwrite each other's corrections.
            let same = !train.is_generated()
                && !eval.is_generated()
                && train.dataset().manifest_path() == eval.dataset().manifest_path();
            if !same {
                self.docs[1] = Some(Doc::new(1, eval.clone(), &r.dir));
            }
        }
    }

    /// Whether box `i` of the shown sample is hidden in the view.
    pub fn is_hidden(&self, i: usize) -> bool {
        self.sample
            .as_ref()
            .is_some_and(|id| self.hidden.contains(&(id.clone(), i)))
    }

    /// The shown split's document.
    pub fn doc(&self) -> Option<&Doc> {
        self.docs.get(self.split)?.as_ref()
    }

    fn doc_mut(&mut self) -> Option<&mut Doc> {
        self.docs.get_mut(self.split)?.as_mut()
    }

    /// Corrections not yet compacted into a manifest, over both splits.
    pub fn uncompacted(&self) -> usize {
        let mut n = 0;
        let mut seen = HashSet::new();
        for d in self.docs.iter().flatten() {
            if seen.insert(d.journal.path().to_path_buf()) {
                n += d.uncompacted;
            }
        }
        n
    }

    /// Opens sample `id` (of whichever split holds it) in the editor.
    pub fn open_sample(&mut self, r: &Run, id: &str) {
        self.sync(r);
        for k in 0..2 {
            if self.docs[k]
                .as_ref()
                .is_some_and(|d| d.dataset.get(id).is_some())
            {
                self.split = k;
                self.user_chose = true;
                self.select_sample(Some(id.to_string()));
                self.scroll_to_selected = true;
                return;
            }
        }
        self.messages.push((
            format!("sample {id} is not in this session's datasets"),
            true,
        ));
    }

    /// Shows sample `id` (resets the selection, the drag and the view).
    pub(super) fn select_sample(&mut self, id: Option<String>) {
        if self.sample != id {
            self.sample = id;
            self.selected = None;
            self.drag = None;
            self.preview = None;
            self.drawing = false;
            self.label_draft = None;
            self.xf = ViewXf::default();
        }
    }

    /// The current sample's rationales.
    pub fn rationales(&self) -> Vec<Rationale> {
        match (self.doc(), &self.sample) {
            (Some(d), Some(id)) => d
                .dataset
                .get(id)
                .map(|s| s.rationales.clone())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Proposes an edit of the current sample (from the drawing code).
    pub(super) fn propose(&mut self, op: &str, after: Vec<Rationale>) {
        self.pending.push((op.to_string(), after));
    }

    /// Whether edits wait for [`AnnotateState::logic`].
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || !self.load_requested.is_empty()
    }

    /// Commits the edits the last frame proposed (journal, history,
    /// re-scoring). The studio calls it from its `logic()`.
    pub fn logic(&mut self, r: &mut Run) {
        for it in std::mem::take(&mut self.load_requested) {
            r.request_rollouts(it);
        }
        for (op, after) in std::mem::take(&mut self.pending) {
            self.commit(r, &op, after);
        }
    }

    /// Commits an edit of the current sample: journal, history, re-scoring.
    fn commit(&mut self, r: &mut Run, op: &str, after: Vec<Rationale>) {
        let Some(id) = self.sample.clone() else {
            return;
        };
        let Some(doc) = self.doc_mut() else { return };
        match doc.edit(&id, op, after) {
            Ok(Some(s)) => r.correct_ground_truth(s),
            Ok(None) => {}
            Err(e) => self.messages.push((e, true)),
        }
    }

    fn undo_redo(&mut self, r: &mut Run, undo: bool) {
        let Some(doc) = self.doc_mut() else { return };
        match doc.undo_redo(undo) {
            Ok(Some(u)) => {
                r.correct_ground_truth(u.now);
                if self.sample.as_deref() != Some(&u.sample) {
                    self.select_sample(Some(u.sample));
                }
                let n = self.rationales().len();
                self.selected = self.selected.filter(|&i| i < n);
            }
            Ok(None) => {
                let what = if undo { "undo" } else { "redo" };
                self.messages.push((format!("nothing to {what}"), false));
            }
            Err(e) => self.messages.push((e, true)),
        }
    }

    /// Ctrl+S: compacts the journal into the manifest (dataset folders).
    pub fn save(&mut self) {
        let mut msgs = Vec::new();
        let mut any = false;
        for d in self.docs.iter_mut().flatten() {
            if d.generated {
                continue;
            }
            any = true;
            if d.uncompacted == 0 {
                continue;
            }
            let n = d.uncompacted;
            match d.dataset.compact(&mut d.journal) {
                Ok(()) => {
                    d.uncompacted = 0;
                    msgs.push((
                        format!(
                            "saved {n} correction{} into {}",
                            if n == 1 { "" } else { "s" },
                            d.dataset.manifest_path().display()
                        ),
                        false,
                    ));
                }
                Err(e) => msgs.push((
                    format!("not saved (the journal keeps every edit): {e}"),
                    true,
                )),
            }
        }
        // Both splits may share one folder: the second compaction finds nothing to do.
        let mut paths = HashSet::new();
        for d in self.docs.iter_mut().flatten() {
            if !paths.insert(d.journal.path().to_path_buf()) {
                d.uncompacted = 0;
            }
        }
        if !any {
            let j = self
                .doc()
                .map(|d| d.journal.path().display().to_string())
                .unwrap_or_default();
            msgs.push((
                format!("ZoomBench data is generated, so there is no manifest to write: every correction is already saved in {j} and applies whenever this session is opened or resumed"),
                false,
            ));
        } else if msgs.is_empty() {
            msgs.push(("no unsaved corrections".into(), false));
        }
        self.messages.extend(msgs);
    }

    /// Runs an annotation command.
    pub fn cmd(&mut self, r: &mut Run, c: Cmd) {
        self.sync(r);
        let n = self.rationales().len();
        let nudge = |s: &mut Self, r: &mut Run, dx: f64, dy: f64| {
            let Some(i) = s.selected else { return };
            let mut rs = s.rationales();
            let Some((w, h)) = s.image_size() else { return };
            if let Some(x) = rs.get_mut(i) {
                x.bbox = clamp_move(x.bbox.translate(dx, dy), w, h);
            }
            s.commit(r, "nudge", rs);
        };
        match c {
            Cmd::DrawBox => {
                self.drawing = self.sample.is_some();
                self.selected = None;
            }
            Cmd::NextBox | Cmd::PrevBox if n > 0 => {
                let d = if c == Cmd::NextBox { 1 } else { n - 1 };
                self.selected = Some(self.selected.map_or(0, |i| (i + d) % n));
            }
            Cmd::NudgeLeft => nudge(self, r, -1.0, 0.0),
            Cmd::NudgeRight => nudge(self, r, 1.0, 0.0),
            Cmd::NudgeUp => nudge(self, r, 0.0, -1.0),
            Cmd::NudgeDown => nudge(self, r, 0.0, 1.0),
            Cmd::NudgeLeft10 => nudge(self, r, -10.0, 0.0),
            Cmd::NudgeRight10 => nudge(self, r, 10.0, 0.0),
            Cmd::NudgeUp10 => nudge(self, r, 0.0, -10.0),
            Cmd::NudgeDown10 => nudge(self, r, 0.0, 10.0),
            Cmd::DeleteBox => {
                if let Some(i) = self.selected.filter(|&i| i < n) {
                    let mut rs = self.rationales();
                    rs.remove(i);
                    self.commit(r, "delete", rs);
                    self.selected = None;
                }
            }
            Cmd::HideBox => {
                if let (Some(i), Some(id)) = (self.selected, self.sample.clone())
                    && !self.hidden.remove(&(id.clone(), i))
                {
                    self.hidden.insert((id, i));
                }
            }
            Cmd::Undo => self.undo_redo(r, true),
            Cmd::Redo => self.undo_redo(r, false),
            Cmd::SaveAnnotations => self.save(),
            Cmd::NextSample | Cmd::PrevSample => {
                let ids = self.filtered_ids();
                if ids.is_empty() {
                    return;
                }
                let cur = self
                    .sample
                    .as_ref()
                    .and_then(|s| ids.iter().position(|x| x == s));
                let next = match (cur, c == Cmd::NextSample) {
                    (None, _) => 0,
                    (Some(i), true) => (i + 1).min(ids.len() - 1),
                    (Some(i), false) => i.saturating_sub(1),
                };
                self.user_chose = true;
                self.select_sample(Some(ids[next].clone()));
                self.scroll_to_selected = true;
            }
            Cmd::CancelEdit => {
                if self.drawing || self.drag.is_some() {
                    self.drawing = false;
                    self.drag = None;
                    self.preview = None;
                } else {
                    self.selected = None;
                }
            }
            _ => {}
        }
    }

    /// The shown sample's image size.
    pub(super) fn image_size(&self) -> Option<(f64, f64)> {
        let d = self.doc()?;
        let s = d.dataset.get(self.sample.as_deref()?)?;
        Some((s.width as f64, s.height as f64))
    }

    /// Recomputes the suspicion ranking when the loaded trajectories or the
    /// boxes changed.
    pub(super) fn update_suspicion(&mut self, r: &Run) {
        if !self.by_suspicion {
            return;
        }
        let Some(d) = self.doc() else { return };
        let key = (
            r.rollouts.values().map(|v| v.len()).sum::<usize>(),
            d.history().0 + d.history().1,
            self.split,
        );
        if self.suspicion_key == Some(key) {
            return;
        }
        let ds = &d.dataset;
        let ranking = virl_engine::suspect::rank(
            r.rollouts.values().flat_map(|v| v.iter()),
            |id| ds.get(id),
            &virl_engine::suspect::SuspectConfig::default(),
        );
        self.suspicion_evidence = key.0;
        if !self.user_chose && key.0 > 0 {
            self.sample = None; // the list's first (most suspect) is shown next
        }
        self.suspicion = ranking.into_iter().map(|s| (s.sample.clone(), s)).collect();
        self.suspicion_key = Some(key);
    }

    /// Ids of the shown split's samples matching the search (id, question,
    /// answer or a box label), in dataset order.
    pub(super) fn filtered_ids(&self) -> Vec<String> {
        let Some(d) = self.doc() else {
            return Vec::new();
        };
        let q = self.search.trim().to_lowercase();
        d.dataset
            .samples()
            .iter()
            .filter(|s| {
                q.is_empty()
                    || s.id.to_lowercase().contains(&q)
                    || s.question.to_lowercase().contains(&q)
                    || s.answer.to_lowercase() == q
                    || s.rationales
                        .iter()
                        .any(|r| r.label.to_lowercase().contains(&q))
            })
            .map(|s| s.id.clone())
            .collect::<Vec<_>>()
            .tap_sort(self.by_suspicion.then_some(&self.suspicion))
    }
}

trait TapSort {
    fn tap_sort(self, by: Option<&HashMap<String, virl_engine::suspect::Suspect>>) -> Self;
}

impl TapSort for Vec<String> {
    /// Most suspect first (stable: dataset order among equals).
    fn tap_sort(mut self, by: Option<&HashMap<String, virl_engine::suspect::Suspect>>) -> Self {
        if let Some(m) = by {
            let score = |id: &String| m.get(id).map_or(0.0, |s| s.score);
            self.sort_by(|a, b| score(b).total_cmp(&score(a)));
        }
        self
    }
}

/// Draws the annotation editor; returns a command from its buttons.
pub fn ui(
    ui: &mut egui::Ui,
    r: &mut Run,
    st: &mut AnnotateState,
    images: &mut ImageCache,
) -> Option<Cmd> {
    st.sync(r);
    if st.doc().is_none() {
        ui.centered_and_justified(|ui| {
            ui.add(egui::Spinner::new());
            ui.weak("indexing the samples…");
        });
        return None;
    }
    let mut fire = None;
    if st.sample.is_none() {
        let first = st.filtered_ids().into_iter().next();
        st.select_sample(first);
    }
    let full = ui.available_rect_before_wrap();
    ui.allocate_rect(full, Sense::hover());
    let list_w = 240.0_f32.min(full.width() * 0.3);
    let side_w = 310.0_f32.min(full.width() * 0.3);
    let list_rect = Rect::from_min_max(
        full.left_top(),
        Pos2::new(full.left() + list_w, full.bottom()),
    );
    let side_rect = Rect::from_min_max(
        Pos2::new(full.right() - side_w, full.top()),
        full.right_bottom(),
    );
    let canvas_rect = Rect::from_min_max(
        Pos2::new(list_rect.right() + 8.0, full.top()),
        Pos2::new(side_rect.left() - 8.0, full.bottom()),
    );
    let mut child = |rect: Rect, salt: &str| crate::widgets::child_ui(ui, rect, salt);
    samples::sample_list(&mut child(list_rect, "annot-list"), r, st);
    fire = side_panel::side_panel(&mut child(side_rect, "annot-side"), r, st).or(fire);
    canvas::canvas(&mut child(canvas_rect, "annot-canvas"), r, st, images);
    fire
}
