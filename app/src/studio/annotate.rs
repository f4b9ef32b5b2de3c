//! The annotation editor (DESIGN §9, issue #5): browse a split's samples,
//! draw, select, move, resize, nudge, relabel, hide and delete ground-truth
//! boxes, with undo / redo as a value history. Keys follow CVAT (N draws,
//! Tab cycles, arrows nudge, Del deletes, H hides, F / D step samples,
//! Ctrl+Z / Ctrl+Shift+Z / Ctrl+Y, Ctrl+S saves).
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

use super::commands::Cmd;
use super::images::{ImageCache, ImageJob};
use crate::widgets::{ViewXf, placeholder};
use super::run::Run;
use egui::{Color32, Pos2, Rect, RichText, Sense, Stroke, StrokeKind, Vec2};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use virl_engine::dataset::annotations::{Edit, Journal};
use virl_engine::dataset::{Dataset, Rationale, Sample};
use virl_engine::env::ImageStore;
use virl_engine::geometry::BBox;

/// Ground-truth box colour (as in the inspector).
const GT: Color32 = Color32::from_rgb(80, 230, 255);
/// The selected box.
const SELECTED: Color32 = Color32::from_rgb(255, 220, 60);
/// Smallest box side a drag creates or a resize leaves, in image pixels.
const MIN_SIDE: f64 = 2.0;
/// Handle half-size on screen, in points.
const HANDLE: f32 = 5.0;

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

impl Doc {
    fn new(split: usize, store: Arc<ImageStore>, session: &std::path::Path) -> Self {
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
}

/// A drag on the canvas.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Drag {
    Draw {
        start: (f64, f64),
    },
    Move {
        idx: usize,
        orig: BBox,
        grab: (f64, f64),
    },
    Resize {
        idx: usize,
        orig: BBox,
        handle: Handle,
    },
}

/// Which handle of a box: its corners and edge midpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handle {
    N,
    S,
    E,
    W,
    NE,
    NW,
    SE,
    SW,
}

impl Handle {
    const ALL: [Self; 8] = [
        Self::NW,
        Self::N,
        Self::NE,
        Self::E,
        Self::SE,
        Self::S,
        Self::SW,
        Self::W,
    ];

    fn pos(self, r: Rect) -> Pos2 {
        let (cx, cy) = (r.center().x, r.center().y);
        match self {
            Self::NW => r.left_top(),
            Self::N => Pos2::new(cx, r.top()),
            Self::NE => r.right_top(),
            Self::E => Pos2::new(r.right(), cy),
            Self::SE => r.right_bottom(),
            Self::S => Pos2::new(cx, r.bottom()),
            Self::SW => r.left_bottom(),
            Self::W => Pos2::new(r.left(), cy),
        }
    }

    /// The box with this handle dragged to image point `p`.
    fn drag(self, b: BBox, p: (f64, f64)) -> BBox {
        let (mut x1, mut y1, mut x2, mut y2) = (b.x1, b.y1, b.x2, b.y2);
        let (px, py) = p;
        match self {
            Self::N => y1 = py,
            Self::S => y2 = py,
            Self::E => x2 = px,
            Self::W => x1 = px,
            Self::NE => (x2, y1) = (px, py),
            Self::NW => (x1, y1) = (px, py),
            Self::SE => (x2, y2) = (px, py),
            Self::SW => (x1, y2) = (px, py),
        }
        BBox::new(x1.min(x2), y1.min(y2), x1.max(x2), y1.max(y2))
    }
}

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
    /// The sample list's search text.
    pub search: String,
    /// The selected box's label being typed.
    label_draft: Option<(usize, String)>,
    /// Messages for toasts (errors flagged).
    pub messages: Vec<(String, bool)>,
    thumbs: Thumbs,
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
    fn sync(&mut self, r: &Run) {
        if self.session.as_deref() != Some(r.dir.as_path()) {
            *self = Self {
                session: Some(r.dir.clone()),
                search: std::mem::take(&mut self.search),
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

    fn select_sample(&mut self, id: Option<String>) {
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

    /// Commits an edit of the current sample: journal, history, re-scoring.
    fn commit(&mut self, r: &mut Run, op: &str, after: Vec<Rationale>) {
        let Some(id) = self.sample.clone() else {
            return;
        };
        let before = self.rationales();
        if before == after {
            return;
        }
        let Some(doc) = self.doc_mut() else { return };
        match doc.apply(&id, op, after.clone()) {
            Ok(s) => {
                doc.undo.push(Step {
                    sample: id,
                    before,
                    after,
                });
                doc.redo.clear();
                r.correct_ground_truth(s);
            }
            Err(e) => self.messages.push((e, true)),
        }
    }

    fn undo_redo(&mut self, r: &mut Run, undo: bool) {
        let Some(doc) = self.doc_mut() else { return };
        let step = if undo { doc.undo.pop() } else { doc.redo.pop() };
        let Some(step) = step else {
            let what = if undo { "undo" } else { "redo" };
            self.messages.push((format!("nothing to {what}"), false));
            return;
        };
        let target = if undo {
            step.before.clone()
        } else {
            step.after.clone()
        };
        match doc.apply(&step.sample, if undo { "undo" } else { "redo" }, target) {
            Ok(s) => {
                if undo {
                    doc.redo.push(step.clone());
                } else {
                    doc.undo.push(step.clone());
                }
                r.correct_ground_truth(s);
                if self.sample.as_deref() != Some(&step.sample) {
                    self.select_sample(Some(step.sample));
                }
                let n = self.rationales().len();
                self.selected = self.selected.filter(|&i| i < n);
            }
            Err(e) => {
                // Put the step back: nothing changed.
                if undo {
                    doc.undo.push(step);
                } else {
                    doc.redo.push(step);
                }
                self.messages.push((e, true));
            }
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

    fn image_size(&self) -> Option<(f64, f64)> {
        let d = self.doc()?;
        let s = d.dataset.get(self.sample.as_deref()?)?;
        Some((s.width as f64, s.height as f64))
    }

    /// Recomputes the suspicion ranking when the loaded trajectories or the
    /// boxes changed.
    fn update_suspicion(&mut self, r: &Run) {
        if !self.by_suspicion {
            return;
        }
        let Some(d) = self.doc() else { return };
        let key = (
            r.rollouts.values().map(|v| v.len()).sum::<usize>(),
            d.undo.len() + d.redo.len(),
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
    fn filtered_ids(&self) -> Vec<String> {
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

/// A box moved inside a `w × h` image (its size kept where it fits).
fn clamp_move(b: BBox, w: f64, h: f64) -> BBox {
    let dx = (-b.x1).max(0.0) - (b.x2 - w).max(0.0);
    let dy = (-b.y1).max(0.0) - (b.y2 - h).max(0.0);
    let m = b.translate(dx, dy);
    m.clip(w, h).unwrap_or(m)
}

/// A box clipped to the image and grown to [`MIN_SIDE`], or `None` if it
/// has no area inside.
fn tidy(b: BBox, w: f64, h: f64) -> Option<BBox> {
    let c = b.clip(w, h)?;
    (c.width() >= MIN_SIDE && c.height() >= MIN_SIDE).then_some(c)
}

type ThumbJobs = crossbeam_channel::Sender<(usize, usize, Arc<ImageStore>)>;
type ThumbDone = crossbeam_channel::Receiver<(usize, usize, Result<egui::ColorImage, String>)>;

/// Thumbnails of the sample list: the policy's global view of each sample,
/// computed on a worker thread and kept as small textures.
#[derive(Default)]
struct Thumbs {
    tex: HashMap<(usize, usize), egui::TextureHandle>,
    pending: HashSet<(usize, usize)>,
    worker: Option<(ThumbJobs, ThumbDone)>,
    failed: HashSet<(usize, usize)>,
}

impl Thumbs {
    const CAPACITY: usize = 400;

    fn get(
        &mut self,
        ctx: &egui::Context,
        split: usize,
        idx: usize,
        store: &Arc<ImageStore>,
    ) -> Option<egui::TextureId> {
        if self.worker.is_none() {
            let (jtx, jrx) = crossbeam_channel::bounded::<(usize, usize, Arc<ImageStore>)>(64);
            let (dtx, drx) = crossbeam_channel::bounded(64);
            let c2 = ctx.clone();
            std::thread::Builder::new()
                .name("virl-thumbs".into())
                .spawn(move || {
                    while let Ok((k, i, st)) = jrx.recv() {
                        let v = st.view() as usize;
                        let r = st
                            .global_view(i)
                            .map(|g| egui::ColorImage::from_rgb([v, v], &g))
                            .map_err(|e| e.to_string());
                        if dtx.send((k, i, r)).is_err() {
                            return;
                        }
                        c2.request_repaint();
                    }
                })
                .ok();
            self.worker = Some((jtx, drx));
        }
        if let Some((_, rx)) = &self.worker {
            while let Ok((k, i, r)) = rx.try_recv() {
                self.pending.remove(&(k, i));
                match r {
                    Ok(img) => {
                        if self.tex.len() >= Self::CAPACITY {
                            self.tex.clear();
                        }
                        let t = ctx.load_texture(
                            format!("thumb:{k}:{i}"),
                            img,
                            egui::TextureOptions::LINEAR,
                        );
                        self.tex.insert((k, i), t);
                    }
                    Err(_) => {
                        self.failed.insert((k, i));
                    }
                }
            }
        }
        if let Some(t) = self.tex.get(&(split, idx)) {
            return Some(t.id());
        }
        if !self.pending.contains(&(split, idx))
            && !self.failed.contains(&(split, idx))
            && let Some((tx, _)) = &self.worker
            && tx.try_send((split, idx, store.clone())).is_ok()
        {
            self.pending.insert((split, idx));
        }
        None
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
    let mut child = |rect: Rect, salt: &str| {
        ui.new_child(
            egui::UiBuilder::new()
                .max_rect(rect)
                .id_salt(salt)
                .layout(egui::Layout::top_down(egui::Align::Min)),
        )
    };
    sample_list(&mut child(list_rect, "annot-list"), r, st);
    fire = side_panel(&mut child(side_rect, "annot-side"), r, st).or(fire);
    canvas(&mut child(canvas_rect, "annot-canvas"), r, st, images);
    fire
}

fn sample_list(ui: &mut egui::Ui, r: &mut Run, st: &mut AnnotateState) {
    ui.horizontal(|ui| {
        let names = if st.docs[1].is_some() {
            vec!["training split", "evaluation split"]
        } else {
            vec!["training and evaluation (one folder)"]
        };
        st.split = st.split.min(names.len() - 1);
        let before = st.split;
        egui::ComboBox::new("annot-split", "samples")
            .selected_text(names[st.split])
            .show_ui(ui, |ui| {
                for (k, n) in names.iter().enumerate() {
                    ui.selectable_value(&mut st.split, k, *n);
                }
            });
        if st.split != before {
            st.sample = None;
            st.selected = None;
        }
    });
    ui.add(
        egui::TextEdit::singleline(&mut st.search)
            .hint_text("search id, question, answer, label")
            .desired_width(f32::INFINITY),
    );
    ui.horizontal_wrapped(|ui| {
        st.by_suspicion = !st.suspicion_off;
        let mut on = st.by_suspicion;
        let resp = ui.checkbox(&mut on, "most suspect first");
        st.suspicion_off = !on;
        st.by_suspicion = on;
        resp
            .on_hover_text("Samples where the policy answers right while its confident zooms agree on a place away from the ground truth come first: likely wrong boxes.");
        let auto = st.by_suspicion && !st.auto_loaded && r.rollouts.is_empty() && !r.stored.is_empty();
        if auto
            || (st.by_suspicion
                && r.stored.len() > r.rollouts.len()
                && ui.small_button("load the last 50 iterations").clicked())
        {
            st.auto_loaded = true;
            let its: Vec<u64> = r.stored.iter().rev().take(50).copied().collect();
            for it in its {
                r.request_rollouts(it);
            }
        }
    });
    st.update_suspicion(r);
    if st.by_suspicion {
        ui.weak(format!(
            "from {} trajectories in {} loaded iterations",
            st.suspicion_evidence,
            r.rollouts.len()
        ));
    }
    let ids = st.filtered_ids();
    let Some(doc) = st.docs[st.split].as_ref() else {
        return;
    };
    let store = doc.store.clone();
    let split = st.split;
    ui.weak(format!("{} of {} samples", ids.len(), doc.dataset.len()));
    let row_h = 44.0;
    let scroll_to = if st.scroll_to_selected {
        st.scroll_to_selected = false;
        st.sample
            .as_ref()
            .and_then(|s| ids.iter().position(|x| x == s))
    } else {
        None
    };
    let mut area = egui::ScrollArea::vertical()
        .id_salt("annot-list-scroll")
        .auto_shrink([false, false]);
    if let Some(i) = scroll_to {
        area = area.vertical_scroll_offset(
            (i as f32 * (row_h + ui.spacing().item_spacing.y) - 80.0).max(0.0),
        );
    }
    let mut clicked = None;
    area.show_rows(ui, row_h, ids.len(), |ui, range| {
        for i in range {
            let id = &ids[i];
            let Some(s) = doc.dataset.get(id) else {
                continue;
            };
            let idx = store.dataset().samples().iter().position(|x| x.id == *id);
            let sel = st.sample.as_deref() == Some(id.as_str());
            ui.horizontal(|ui| {
                ui.set_height(row_h);
                let thumb = idx.and_then(|k| st.thumbs.get(ui.ctx(), split, k, &store));
                match thumb {
                    Some(t) => {
                        ui.add(egui::Image::new((t, Vec2::splat(row_h - 4.0))));
                    }
                    None => {
                        ui.add_sized([row_h - 4.0, row_h - 4.0], egui::Spinner::new());
                    }
                }
                let mut text = format!(
                    "{}\n{} · {} box{}",
                    s.id,
                    s.answer,
                    s.rationales.len(),
                    if s.rationales.len() == 1 { "" } else { "es" }
                );
                if st.by_suspicion
                    && let Some(x) = st.suspicion.get(id)
                {
                    text.push_str(&format!(" · suspicion {:.2}", x.score));
                }
                if ui
                    .selectable_label(sel, text)
                    .on_hover_text(&s.question)
                    .clicked()
                {
                    clicked = Some(id.clone());
                }
            });
        }
    });
    if let Some(c) = clicked {
        st.user_chose = true;
        st.select_sample(Some(c));
    }
}

fn side_panel(ui: &mut egui::Ui, r: &mut Run, st: &mut AnnotateState) -> Option<Cmd> {
    let mut fire = None;
    let doc = st.doc()?;
    let Some(s) = st
        .sample
        .as_ref()
        .and_then(|id| doc.dataset.get(id))
        .cloned()
    else {
        ui.weak("No sample selected.");
        return None;
    };
    let dirty = st.uncompacted();
    let journal = doc.journal.path().display().to_string();
    let generated = doc.generated;
    let (n_undo, n_redo) = (doc.undo.len(), doc.redo.len());
    let width = ui.available_width();
    egui::ScrollArea::vertical().id_salt("annot-side-scroll").show(ui, |ui| {
        ui.set_max_width(width - 8.0);
        ui.strong(&s.id);
        ui.label(RichText::new(&s.question).italics());
        ui.label(format!("answer {}   ·   {}×{} px", s.answer, s.width, s.height));
        ui.separator();
        if dirty > 0 {
            ui.colored_label(
                Color32::from_rgb(240, 170, 80),
                format!("Unsaved: {dirty} correction{} not in manifest.jsonl yet (kept in the journal; Ctrl+S writes them)", if dirty == 1 { "" } else { "s" }),
            );
        } else if generated {
            ui.weak("Generated data: corrections are saved in the session's journal.");
        } else {
            ui.weak("All corrections are in manifest.jsonl.");
        }
        ui.add(egui::Label::new(RichText::new(format!("journal: {journal}")).weak()).truncate())
            .on_hover_text(&journal);
        ui.horizontal_wrapped(|ui| {
            let b = |ui: &mut egui::Ui, c: Cmd, enabled: bool, fire: &mut Option<Cmd>| {
                if ui
                    .add_enabled(enabled, egui::Button::new(c.title()))
                    .on_hover_text(c.shortcut_text(ui.ctx()))
                    .clicked()
                {
                    *fire = Some(c);
                }
            };
            b(ui, Cmd::DrawBox, true, &mut fire);
            b(ui, Cmd::Undo, n_undo > 0, &mut fire);
            b(ui, Cmd::Redo, n_redo > 0, &mut fire);
            b(ui, Cmd::SaveAnnotations, !generated, &mut fire);
        });
        if st.drawing {
            ui.colored_label(SELECTED, "Drawing: drag on the image (Esc cancels).");
        }
        ui.separator();
        ui.strong(format!("Ground-truth boxes ({})", s.rationales.len()));
        let mut select = None;
        let mut relabel = None;
        let mut delete = None;
        let mut toggle_hide = None;
        for (i, rat) in s.rationales.iter().enumerate() {
            let sel = st.selected == Some(i);
            let hidden = st.hidden.contains(&(s.id.clone(), i));
            ui.horizontal(|ui| {
                let text = format!(
                    "{}  {}",
                    i + 1,
                    if rat.label.is_empty() {
                        "(no label)"
                    } else {
                        &rat.label
                    }
                );
                let t = if hidden {
                    RichText::new(text).weak()
                } else {
                    RichText::new(text)
                };
                if ui.selectable_label(sel, t).clicked() {
                    select = Some(i);
                }
                if ui.small_button(if hidden { "show" } else { "hide" }).clicked() {
                    toggle_hide = Some(i);
                }
                if ui.small_button("delete").clicked() {
                    delete = Some(i);
                }
            });
            let b = rat.bbox;
            ui.weak(format!("    [{:.0}, {:.0}, {:.0}, {:.0}]", b.x1, b.y1, b.x2, b.y2));
            if sel {
                let draft = match &mut st.label_draft {
                    Some((k, d)) if *k == i => d,
                    _ => {
                        st.label_draft = Some((i, rat.label.clone()));
                        &mut st.label_draft.as_mut().expect("just set").1
                    }
                };
                ui.horizontal(|ui| {
                    ui.label("label");
                    let resp = ui.add(egui::TextEdit::singleline(draft).desired_width(150.0));
                    if resp.lost_focus() && *draft != rat.label {
                        relabel = Some((i, draft.clone()));
                    }
                });
            }
        }
        if s.rationales.is_empty() {
            ui.weak("No boxes: press N and drag on the image to draw one.");
        }
        if let Some(i) = select {
            st.selected = Some(i);
        }
        if let Some(i) = toggle_hide {
            st.selected = Some(i);
            fire = Some(Cmd::HideBox);
        }
        if let Some(i) = delete {
            st.selected = Some(i);
            fire = Some(Cmd::DeleteBox);
        }
        if let Some((i, l)) = relabel {
            let mut rs = s.rationales.clone();
            if let Some(x) = rs.get_mut(i) {
                x.label = l;
            }
            st.commit(r, "label", rs);
        }
        ui.separator();
        rescore_summary(ui, r, &s.id);
        if let Some(rep) = st.doc().and_then(|d| d.filter_report.clone()) {
            ui.separator();
            filter_report(ui, &rep, &s.id);
        }
    });
    fire
}

/// The `virl filter` report of this dataset: samples per stage, and why
/// samples were dropped.
fn filter_report(
    ui: &mut egui::Ui,
    rep: &Result<virl_engine::filter::FilterReport, String>,
    _id: &str,
) {
    egui::CollapsingHeader::new("Filter report")
        .default_open(true)
        .show(ui, |ui| {
            let rep = match rep {
                Ok(r) => r,
                Err(e) => {
                    ui.colored_label(Color32::from_rgb(230, 90, 90), format!("cannot read it: {e}"));
                    return;
                }
            };
            let c = rep.config.unwrap_or_default();
            let dropped = |st: u8| rep.dropped.iter().filter(|d| d.stage == st).count();
            egui::Grid::new("filter-report").striped(true).show(ui, |ui| {
                ui.weak("stage");
                ui.weak("dropped");
                ui.weak("left");
                ui.end_row();
                ui.label("input");
                ui.label("");
                ui.label(rep.input.to_string());
                ui.end_row();
                let rows = [
                    format!("1 area ratio > {}", c.max_area_ratio),
                    format!("2 no-zoom pass >= {:.0} %", 100.0 * c.no_zoom_pass),
                    format!("3 never solved with GT zoom (k = {})", c.k),
                ];
                for (k, name) in rows.iter().enumerate() {
                    ui.label(name);
                    ui.label(dropped(k as u8 + 1).to_string());
                    ui.label(rep.after_stage[k].to_string());
                    ui.end_row();
                }
            });
            ui.weak(format!("this folder holds the {} kept samples; dropped.jsonl lists the others with their reasons", rep.kept.len()));
        });
}

/// The effect of the sample's correction on its stored trajectories.
fn rescore_summary(ui: &mut egui::Ui, r: &Run, id: &str) {
    let mut rows: Vec<(u64, usize)> = r
        .rescored
        .keys()
        .filter(|(it, row)| {
            r.rollouts
                .get(it)
                .and_then(|v| v.get(*row))
                .is_some_and(|t| t.sample == id)
        })
        .copied()
        .collect();
    rows.sort_unstable();
    if rows.is_empty() {
        ui.weak(if r.rollouts.is_empty() {
            "No trajectories loaded: the re-scores of this sample's rollouts appear here once they are."
        } else {
            "No loaded trajectory of this sample was re-scored (it has not been corrected, or none is loaded)."
        });
        return;
    }
    ui.strong(format!("Re-scored trajectories ({})", rows.len()));
    ui.weak("stored -> against the corrected boxes");
    egui::Grid::new("rescored").striped(true).show(ui, |ui| {
        ui.weak("iter");
        ui.weak("R_rat");
        ui.weak("A_i");
        ui.end_row();
        for (it, row) in rows.iter().take(40) {
            let (Some(old), Some(new)) = (
                r.rollouts.get(it).and_then(|v| v.get(*row)),
                r.rescored.get(&(*it, *row)),
            ) else {
                continue;
            };
            ui.label(it.to_string());
            ui.label(format!(
                "{:+.2} -> {:+.2}",
                old.rewards.rat, new.rewards.rat
            ));
            ui.label(format!(
                "{:+.2} -> {:+.2}",
                old.advantage, new.advantage
            ));
            ui.end_row();
        }
    });
}

fn canvas(ui: &mut egui::Ui, r: &mut Run, st: &mut AnnotateState, images: &mut ImageCache) {
    let Some(doc) = st.doc() else { return };
    let Some(id) = st.sample.clone() else { return };
    let Some(s) = doc.dataset.get(&id).cloned() else {
        return;
    };
    let store = doc.store.clone();
    let Some(idx) = store.dataset().samples().iter().position(|x| x.id == id) else {
        return;
    };
    let size = Vec2::new(
        ui.available_width().max(120.0),
        (ui.available_height() - 24.0).max(120.0),
    );
    let (rect, resp) = ui.allocate_exact_size(size, Sense::click_and_drag());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, Color32::from_gray(20));
    let tex = images.get(
        ui.ctx(),
        ImageJob {
            key: id.clone(),
            store,
            index: idx,
            max_side: ui.ctx().input(|i| i.max_texture_side).min(4096),
            crops: Vec::new(),
            view: r.cfg.env.view,
        },
    );
    let err = tex.and_then(|t| t.error.clone());
    let Some(tex) = tex.and_then(|t| t.overview.as_ref().map(|o| (o.clone(), t.size))) else {
        let msg = match err {
            Some(e) => format!("cannot show the image: {e}"),
            None => "loading the image…".into(),
        };
        placeholder(&painter, rect, msg);
        return;
    };
    let (w, h) = (s.width as f64, s.height as f64);
    // Pan (secondary or middle drag) and zoom (wheel, about the pointer).
    let xf = &mut st.xf;
    if resp.double_clicked_by(egui::PointerButton::Secondary) {
        *xf = ViewXf::default();
    }
    if resp.dragged_by(egui::PointerButton::Secondary)
        || resp.dragged_by(egui::PointerButton::Middle)
    {
        xf.pan += resp.drag_delta();
    }
    xf.wheel(ui, &resp, rect);
    let (origin, scale) = xf.place(rect, w, h);
    let img_size = Vec2::new(w as f32, h as f32) * scale;
    st.canvas_xf = Some((origin, scale));
    painter.image(
        tex.0.id(),
        Rect::from_min_size(origin, img_size),
        Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
        Color32::WHITE,
    );
    let to_screen = |b: &BBox| {
        Rect::from_min_max(
            origin + Vec2::new(b.x1 as f32, b.y1 as f32) * scale,
            origin + Vec2::new(b.x2 as f32, b.y2 as f32) * scale,
        )
    };
    let to_image = |p: Pos2| {
        let v = (p - origin) / scale;
        ((v.x as f64).clamp(0.0, w), (v.y as f64).clamp(0.0, h))
    };
    let rats = s.rationales.clone();
    // Pointer: start, continue and end drags.
    let primary = egui::PointerButton::Primary;
    // Where the button went down (a drag is recognised only after the
    // pointer has moved a few points, so the current position is already off).
    if resp.drag_started_by(primary)
        && let Some(p) = ui
            .input(|i| i.pointer.press_origin())
            .or(resp.interact_pointer_pos())
    {
        let ip = to_image(p);
        if st.drawing {
            st.drag = Some(Drag::Draw { start: ip });
        } else {
            let on_handle = st.selected.and_then(|i| {
                let rr = to_screen(&rats.get(i)?.bbox);
                Handle::ALL
                    .into_iter()
                    .find(|hd| hd.pos(rr).distance(p) <= HANDLE + 3.0)
                    .map(|hd| (i, hd))
            });
            if let Some((i, hd)) = on_handle {
                st.drag = Some(Drag::Resize {
                    idx: i,
                    orig: rats[i].bbox,
                    handle: hd,
                });
            } else if let Some(i) = hit(&rats, &st.hidden, &id, ip) {
                st.selected = Some(i);
                st.drag = Some(Drag::Move {
                    idx: i,
                    orig: rats[i].bbox,
                    grab: ip,
                });
            } else {
                st.selected = None;
            }
        }
    }
    if let (Some(d), Some(p)) = (st.drag, resp.interact_pointer_pos().or(resp.hover_pos())) {
        let ip = to_image(p);
        st.preview = match d {
            Drag::Draw { start } => Some(BBox::new(
                start.0.min(ip.0),
                start.1.min(ip.1),
                start.0.max(ip.0),
                start.1.max(ip.1),
            )),
            Drag::Move { orig, grab, .. } => Some(clamp_move(
                orig.translate(ip.0 - grab.0, ip.1 - grab.1),
                w,
                h,
            )),
            Drag::Resize { orig, handle, .. } => Some(handle.drag(orig, ip)),
        };
    }
    if resp.drag_stopped_by(primary)
        && let Some(d) = st.drag.take()
    {
        let pv = st.preview.take().and_then(|b| tidy(b, w, h));
        match (d, pv) {
            (Drag::Draw { .. }, Some(b)) => {
                let mut rs = rats.clone();
                rs.push(Rationale {
                    bbox: b,
                    label: rats.first().map(|x| x.label.clone()).unwrap_or_default(),
                });
                let n = rs.len();
                st.commit(r, "add", rs);
                st.selected = Some(n - 1);
                st.drawing = false;
            }
            (Drag::Draw { .. }, None) => {
                st.messages.push((
                    format!("box too small: draw at least {MIN_SIDE} px on each side"),
                    false,
                ));
            }
            (Drag::Move { idx, orig, .. }, Some(b)) | (Drag::Resize { idx, orig, .. }, Some(b))
                if b != orig =>
            {
                let op = if matches!(d, Drag::Move { .. }) {
                    "move"
                } else {
                    "resize"
                };
                let mut rs = rats.clone();
                if let Some(x) = rs.get_mut(idx) {
                    x.bbox = b;
                }
                st.commit(r, op, rs);
            }
            _ => {}
        }
    }
    if !resp.dragged() && st.drag.is_some() && !ui.input(|i| i.pointer.any_down()) {
        st.drag = None;
        st.preview = None;
    }
    // Draw the boxes (the dragged one at its preview).
    let dragged = match st.drag {
        Some(Drag::Move { idx, .. } | Drag::Resize { idx, .. }) => Some(idx),
        _ => None,
    };
    for (i, rat) in rats.iter().enumerate() {
        if st.hidden.contains(&(id.clone(), i)) {
            continue;
        }
        let b = if dragged == Some(i) {
            st.preview.unwrap_or(rat.bbox)
        } else {
            rat.bbox
        };
        let rr = to_screen(&b);
        let sel = st.selected == Some(i);
        let col = if sel { SELECTED } else { GT };
        painter.rect_stroke(
            rr,
            0.0,
            Stroke::new(if sel { 2.5 } else { 2.0 }, col),
            StrokeKind::Outside,
        );
        let label = format!("{} {}", i + 1, rat.label);
        let galley =
            painter.layout_no_wrap(label, egui::FontId::proportional(12.0), Color32::BLACK);
        let pos = rr.left_top() - Vec2::new(0.0, galley.size().y + 2.0);
        painter.rect_filled(
            Rect::from_min_size(pos, galley.size() + Vec2::new(4.0, 0.0)),
            2.0,
            col,
        );
        painter.galley(pos + Vec2::new(2.0, 0.0), galley, Color32::BLACK);
        if sel {
            for hd in Handle::ALL {
                painter.rect_filled(
                    Rect::from_center_size(hd.pos(rr), Vec2::splat(2.0 * HANDLE)),
                    1.0,
                    SELECTED,
                );
            }
        }
    }
    // Where the policy's confident, correct zooms agree (the suspect ranking's
    // consensus box), when it differs from the ground truth.
    if st.by_suspicion
        && let Some(x) = st.suspicion.get(&id)
        && let Some(c) = x.consensus
        && x.score > 0.0
    {
        let rr = to_screen(&c);
        let col = Color32::from_rgb(255, 150, 60);
        crate::widgets::dashed_rect(&painter, rr, Stroke::new(1.5, col), 6.0);
        painter.text(
            rr.right_top() + Vec2::new(4.0, 0.0),
            egui::Align2::LEFT_TOP,
            format!(
                "policy looks here ({} of {} right)",
                x.correct, x.trajectories
            ),
            egui::FontId::proportional(12.0),
            col,
        );
    }
    if let (Some(Drag::Draw { .. }), Some(b)) = (st.drag, st.preview) {
        painter.rect_stroke(
            to_screen(&b),
            0.0,
            Stroke::new(2.0, SELECTED),
            StrokeKind::Outside,
        );
    }
    if st.drawing
        && let Some(p) = resp.hover_pos()
    {
        painter.line_segment(
            [Pos2::new(rect.left(), p.y), Pos2::new(rect.right(), p.y)],
            Stroke::new(0.5, Color32::from_white_alpha(90)),
        );
        painter.line_segment(
            [Pos2::new(p.x, rect.top()), Pos2::new(p.x, rect.bottom())],
            Stroke::new(0.5, Color32::from_white_alpha(90)),
        );
    }
    if let Some(p) = resp.hover_pos() {
        let (x, y) = to_image(p);
        ui.weak(format!(
            "x {x:.0}, y {y:.0}   ·   N: draw · drag a box: move · handles: resize · arrows: nudge · right-drag: pan · wheel: zoom"
        ));
    } else {
        ui.weak("N: draw · drag a box: move · handles: resize · arrows: nudge · right-drag: pan · wheel: zoom");
    }
}

/// The topmost visible box containing image point `p` (smallest first, so a
/// box inside another can be picked).
fn hit(
    rats: &[Rationale],
    hidden: &HashSet<(String, usize)>,
    id: &str,
    p: (f64, f64),
) -> Option<usize> {
    rats.iter()
        .enumerate()
        .filter(|(i, _)| !hidden.contains(&(id.to_string(), *i)))
        .filter(|(_, r)| {
            p.0 >= r.bbox.x1 && p.0 <= r.bbox.x2 && p.1 >= r.bbox.y1 && p.1 <= r.bbox.y2
        })
        .min_by(|a, b| a.1.bbox.area().total_cmp(&b.1.bbox.area()))
        .map(|(i, _)| i)
}
