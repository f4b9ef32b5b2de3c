//! The annotation editor's flows through egui_kittest: draw, move, resize,
//! nudge, delete, undo, redo and save, each checked against the boxes stored
//! on disk (manifest + journal, as `Dataset::load` reads them); a crash test
//! that SIGKILLs a studio process right after an edit; and the round trip
//! from a trajectory to its ground truth and back (re-scoring).

mod common;
use common::{harness, step_until};

use egui::{Key, Modifiers, Pos2};
use egui_kittest::Harness;
use std::path::{Path, PathBuf};
use std::time::Duration;
use virl_engine::config::SessionConfig;
use virl_engine::dataset::Dataset;
use virl_engine::dataset::zoombench::{ZoomBench, ZoomBenchConfig};
use virl_engine::geometry::BBox;
use virl_studio::studio::run::RunStatus;
use virl_studio::studio::{Studio, StudioOptions, Tab};

fn zb_config() -> ZoomBenchConfig {
    ZoomBenchConfig {
        canvas: 256,
        placards_min: 1,
        placards_max: 2,
        distractors: 8,
        global_view: 32,
        ..ZoomBenchConfig::default()
    }
}

fn tiny() -> SessionConfig {
    let mut c = SessionConfig {
        seed: 3,
        ..Default::default()
    };
    c.data.zoombench = zb_config();
    c.data.train_n = 16;
    c.data.eval_n = 8;
    c.env.view = 32;
    c.env.max_rounds = 3;
    c.policy.hidden = 32;
    c.trainer.iterations = 1;
    c.trainer.samples_per_iter = 4;
    c.trainer.group = 4;
    c.trainer.eval_every = 0;
    c
}

/// A ZoomBench dataset folder of `n` samples.
fn dataset(dir: &Path, n: u64) -> PathBuf {
    let d = dir.join("ds");
    ZoomBench::new(zb_config())
        .expect("zb")
        .write_dataset(&d, n, 0, |_| {})
        .expect("write");
    d
}

/// Opens the dataset folder in the studio's annotation tab, with the image
/// of the first sample on the canvas.
fn open_annotator<'a>(root: &Path, ds: &Path) -> Harness<'a, Studio> {
    let mut h = harness(StudioOptions {
        open: Some(ds.to_path_buf()),
        sessions_root: Some(root.join("sessions")),
        config: Some(tiny()),
        tab: Some(Tab::Annotate),
        ..Default::default()
    });
    step_until(&mut h, "the canvas with the first sample's image", |s| {
        s.annotate.canvas_xf.is_some() && s.annotate.sample.is_some()
    });
    h.run_steps(2);
    h
}

/// Screen position of image pixel (x, y).
fn at(h: &Harness<'_, Studio>, x: f64, y: f64) -> Pos2 {
    let (o, s) = h.state().annotate.canvas_xf.expect("canvas shown");
    o + egui::vec2(x as f32, y as f32) * s
}

/// A primary-button drag in image coordinates, in small steps.
fn drag(h: &mut Harness<'_, Studio>, from: (f64, f64), to: (f64, f64)) {
    let a = at(h, from.0, from.1);
    let b = at(h, to.0, to.1);
    h.hover_at(a);
    h.step();
    h.drag_at(a);
    h.step();
    for k in 1..=6 {
        h.hover_at(a + (b - a) * (k as f32 / 6.0));
        h.step();
    }
    h.drop_at(b);
    h.run_steps(2);
}

/// The first sample's boxes as stored (manifest with the journal replayed).
fn stored(ds: &Path, id: &str) -> Vec<BBox> {
    Dataset::load(ds)
        .expect("load")
        .get(id)
        .expect("sample")
        .gt_boxes()
}

fn near(a: &BBox, b: [f64; 4], tol: f64) -> bool {
    a.to_array()
        .iter()
        .zip(b)
        .all(|(x, y)| (x - y).abs() <= tol)
}

#[test]
fn draw_move_resize_nudge_delete_undo_redo_save() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ds = dataset(tmp.path(), 4);
    let mut h = open_annotator(tmp.path(), &ds);
    let id = h.state().annotate.sample.clone().expect("sample");
    let original = stored(&ds, &id);
    let n0 = original.len();

    // Draw: N, then drag.
    h.key_press(Key::N);
    h.run_steps(2);
    assert!(h.state().annotate.drawing);
    drag(&mut h, (40.0, 40.0), (100.0, 90.0));
    let boxes = stored(&ds, &id);
    assert_eq!(boxes.len(), n0 + 1, "the drawn box is in the journal");
    let new = boxes[n0];
    assert!(near(&new, [40.0, 40.0, 100.0, 90.0], 1.5), "{new:?}");
    assert_eq!(h.state().annotate.selected, Some(n0));

    // Move: drag the box's inside by (+20, +10).
    drag(&mut h, (70.0, 65.0), (90.0, 75.0));
    let moved = stored(&ds, &id)[n0];
    assert!(
        near(
            &moved,
            [new.x1 + 20.0, new.y1 + 10.0, new.x2 + 20.0, new.y2 + 10.0],
            1.5
        ),
        "{moved:?}"
    );

    // Resize: drag the bottom-right handle.
    drag(&mut h, (moved.x2, moved.y2), (150.0, 130.0));
    let resized = stored(&ds, &id)[n0];
    assert!(
        near(&resized, [moved.x1, moved.y1, 150.0, 130.0], 1.5),
        "{resized:?}"
    );

    // Nudge: Left 1 px, Shift+Right 10 px.
    h.key_press(Key::ArrowLeft);
    h.run_steps(2);
    h.key_press_modifiers(Modifiers::SHIFT, Key::ArrowRight);
    h.run_steps(2);
    let nudged = stored(&ds, &id)[n0];
    assert!(
        near(
            &nudged,
            [resized.x1 + 9.0, resized.y1, resized.x2 + 9.0, resized.y2],
            1e-6
        ),
        "{nudged:?} vs {resized:?}"
    );

    // Delete, undo, redo (both shortcuts).
    h.key_press(Key::Delete);
    h.run_steps(2);
    assert_eq!(stored(&ds, &id).len(), n0);
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run_steps(2);
    assert_eq!(stored(&ds, &id)[n0], nudged, "undo brings the box back");
    h.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    h.run_steps(2);
    assert_eq!(stored(&ds, &id).len(), n0, "redo deletes it again");
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run_steps(2);
    h.key_press_modifiers(Modifiers::COMMAND, Key::Y);
    h.run_steps(2);
    assert_eq!(stored(&ds, &id).len(), n0, "Ctrl+Y redoes too");
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run_steps(2);
    assert_eq!(stored(&ds, &id)[n0], nudged);

    // Every edit went to the journal; the manifest is untouched until Ctrl+S.
    let journal = ds.join("annotations.jsonl");
    let lines = std::fs::read_to_string(&journal).expect("journal");
    let ops: Vec<String> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["op"]
                .as_str()
                .expect("op")
                .to_string()
        })
        .collect();
    assert_eq!(
        ops,
        [
            "add", "move", "resize", "nudge", "nudge", "delete", "undo", "redo", "undo", "redo",
            "undo"
        ]
    );
    assert!(h.state().annotate.uncompacted() > 0, "dirty before saving");
    let manifest_before = std::fs::read_to_string(ds.join("manifest.jsonl")).expect("manifest");

    // Ctrl+S compacts: manifest rewritten, journal removed, same boxes.
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    h.run_steps(2);
    assert!(!journal.exists(), "the journal is compacted away");
    assert_eq!(h.state().annotate.uncompacted(), 0);
    let manifest_after = std::fs::read_to_string(ds.join("manifest.jsonl")).expect("manifest");
    assert_ne!(manifest_before, manifest_after);
    let after = stored(&ds, &id);
    assert_eq!(after.len(), n0 + 1);
    assert_eq!(after[n0], nudged);
    assert_eq!(&after[..n0], &original[..]);
}

#[test]
fn tab_cycles_hide_hides_and_f_steps_samples() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ds = dataset(tmp.path(), 3);
    let mut h = open_annotator(tmp.path(), &ds);
    let first = h.state().annotate.sample.clone();
    h.key_press(Key::Tab);
    h.run_steps(2);
    assert_eq!(h.state().annotate.selected, Some(0));
    h.key_press(Key::Tab);
    h.run_steps(2);
    assert_eq!(
        h.state().annotate.selected,
        Some(0),
        "one box: Tab wraps to it"
    );
    h.key_press(Key::H);
    h.run_steps(2);
    // Hiding is a view setting, not an edit.
    assert!(!ds.join("annotations.jsonl").exists());
    assert!(h.state().annotate.is_hidden(0));
    h.key_press(Key::H);
    h.run_steps(2);
    assert!(!h.state().annotate.is_hidden(0));
    // The keys went to the editor, not to egui's focus navigation.
    assert!(
        !h.ctx.egui_wants_keyboard_input(),
        "no text field took the focus"
    );
    h.key_press(Key::Escape);
    h.run_steps(2);
    assert_eq!(h.state().annotate.selected, None);
    h.key_press(Key::F);
    h.run_steps(2);
    assert_ne!(h.state().annotate.sample, first);
    h.key_press(Key::D);
    h.run_steps(2);
    assert_eq!(h.state().annotate.sample, first);
}

/// The child of [`an_edit_survives_sigkill`]: opens the studio on the
/// dataset in `VIRL_CRASH_DATASET`, nudges a box, says so, and waits to be
/// killed.
#[test]
#[ignore = "run as a child process by an_edit_survives_sigkill"]
fn crash_child() {
    let Ok(ds) = std::env::var("VIRL_CRASH_DATASET") else {
        return;
    };
    let ds = PathBuf::from(ds);
    let root = ds.parent().expect("parent").to_path_buf();
    let mut h = open_annotator(&root, &ds);
    h.key_press(Key::Tab);
    h.run_steps(2);
    h.key_press_modifiers(Modifiers::SHIFT, Key::ArrowDown);
    h.run_steps(2);
    println!(
        "EDITED {}",
        h.state().annotate.sample.clone().unwrap_or_default()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // Wait to be killed (bounded, should the parent have died first).
    for _ in 0..2400 {
        h.step();
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(unix)]
#[test]
fn an_edit_survives_sigkill() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().expect("tmp");
    let ds = dataset(tmp.path(), 2);
    let before = Dataset::load(&ds).expect("load");
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("VIRL_CRASH_DATASET", &ds)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the studio child");
    let out = child.stdout.take().expect("stdout");
    let mut edited = None;
    for line in BufReader::new(out).lines() {
        let line = line.expect("line");
        // libtest may print "test crash_child ... " before it on the same line.
        if let Some(k) = line.find("EDITED ") {
            edited = Some(line[k + "EDITED ".len()..].trim().to_string());
            break;
        }
    }
    // SIGKILL: no destructor, no flush, no save.
    child.kill().expect("kill");
    let _ = child.wait();
    let id = edited.expect("the child made an edit before it was killed");
    let after = Dataset::load(&ds).expect("the dataset loads after the crash");
    let (b0, b1) = (
        before.get(&id).expect("sample").rationales[0].bbox,
        after.get(&id).expect("sample").rationales[0].bbox,
    );
    assert_eq!(
        b1,
        b0.translate(0.0, 10.0),
        "the edit made before the kill is there"
    );
    assert_eq!(after.pending_edits(), 1);
}

#[test]
fn correcting_a_trajectorys_ground_truth_rescores_its_rollouts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut h = harness(StudioOptions {
        sessions_root: Some(tmp.path().to_path_buf()),
        config: Some(tiny()),
        ..Default::default()
    });
    step_until(&mut h, "the engine to start", |s| {
        s.run.as_ref().is_some_and(|r| r.status == RunStatus::Idle)
    });
    h.key_press(Key::Space);
    step_until(&mut h, "one iteration", |s| {
        s.run.as_ref().is_some_and(|r| r.metrics.len() == 1)
    });
    h.state_mut().tab = Tab::Rollouts;
    h.state_mut().browser.filter.min_zooms = 1;
    step_until(&mut h, "a selected trajectory with zooms", |s| {
        s.run
            .as_ref()
            .is_some_and(|r| s.browser.record(r).is_some())
    });
    h.run_steps(2);
    let (id, it) = {
        let s = h.state();
        let r = s.run.as_ref().expect("run");
        let t = s.browser.record(r).expect("selected");
        (t.sample.clone(), t.iteration)
    };
    // E: edit this sample's ground truth.
    h.key_press(Key::E);
    step_until(&mut h, "the sample in the editor", |s| {
        s.tab == Tab::Annotate
            && s.annotate.sample.as_deref() == Some(id.as_str())
            && s.annotate.canvas_xf.is_some()
    });
    // Move the box onto where the first trajectory's first zoom looked.
    let zoom = {
        let s = h.state();
        let r = s.run.as_ref().expect("run");
        s.browser.record(r).expect("selected").actions[0].proposed
    };
    let gt = h.state().annotate.rationales()[0].bbox;
    h.key_press(Key::Tab);
    h.run_steps(2);
    let (cx, cy) = gt.center();
    drag(&mut h, (cx, cy), (zoom.center().0, zoom.center().1));
    let s = h.state();
    let r = s.run.as_ref().expect("run");
    let moved = r.corrected.get(&id).expect("corrected").rationales[0].bbox;
    assert_ne!(moved, gt, "the box moved");
    // Every loaded trajectory of the sample in that iteration was re-scored.
    let rows: Vec<usize> = r.rollouts[&it]
        .iter()
        .enumerate()
        .filter(|(_, t)| t.sample == id)
        .map(|(k, _)| k)
        .collect();
    assert!(!rows.is_empty());
    for k in &rows {
        let new = r.rescored.get(&(it, *k)).expect("re-scored");
        let old = &r.rollouts[&it][*k];
        let want = virl_engine::session::rescore(
            &r.rollouts[&it],
            r.corrected.get(&id).expect("corrected"),
            |_| r.reward_at(it),
        );
        let (_, w) = want.iter().find(|(i, _)| i == k).expect("in rescore");
        assert_eq!(new, w, "the studio's re-score is the engine's");
        assert_eq!(new.actions.len(), old.actions.len());
    }
    // The session journal has the correction (generated data).
    let journal = r.dir.join("annotations.jsonl");
    assert!(
        std::fs::read_to_string(journal)
            .expect("journal")
            .contains(&id)
    );
    // Back in the inspector, the old and new scores are shown.
    h.state_mut().tab = Tab::Rollouts;
    h.run_steps(3);
    use egui_kittest::kittest::Queryable;
    assert!(
        h.query_all_by_label("ground truth corrected, re-scored:")
            .count()
            >= 1,
        "the inspector shows the re-score"
    );
}

#[test]
fn file_menu_import_then_export_round_trip() {
    use egui_kittest::kittest::Queryable;
    use virl_studio::studio::interchange::{Mode, Window};
    let tmp = tempfile::tempdir().expect("tmp");
    let ds = dataset(tmp.path(), 3);
    // A COCO file of the dataset, as another tool would hand it over.
    let coco = tmp.path().join("in.coco.json");
    virl_engine::dataset::interchange::export(
        &Dataset::load(&ds).expect("load"),
        virl_engine::dataset::interchange::ExportFormat::Coco,
        &coco,
    )
    .expect("export");
    let mut h = harness(StudioOptions {
        sessions_root: Some(tmp.path().join("sessions")),
        config: Some(tiny()),
        ..Default::default()
    });
    h.run_steps(2);
    let mut w = Window::new(Mode::ImportCoco, None);
    w.src = coco.display().to_string();
    w.images = ds.display().to_string();
    let imported = tmp.path().join("imported");
    w.out = imported.display().to_string();
    h.state_mut().interchange = Some(w);
    h.run_steps(2);
    h.get_by_label("Import").click();
    step_until(&mut h, "the imported dataset opened for annotation", |s| {
        s.tab == Tab::Annotate
            && s.run
                .as_ref()
                .is_some_and(|r| r.cfg.data.dataset.as_deref() == Some(imported.as_path()))
    });
    let back = Dataset::load(&imported).expect("imported dataset loads");
    let orig = Dataset::load(&ds).expect("load");
    assert_eq!(back.len(), orig.len());
    for (a, b) in orig.samples().iter().zip(back.samples()) {
        assert_eq!(
            (&a.id, &a.answer, a.gt_boxes()),
            (&b.id, &b.answer, b.gt_boxes())
        );
    }
    // Export it again as JSONL from the studio.
    let mut w = Window::new(Mode::ExportJsonl, Some(&imported));
    let out = tmp.path().join("out.jsonl");
    w.out = out.display().to_string();
    h.state_mut().interchange = Some(w);
    h.run_steps(2);
    h.get_by_label("Export").click();
    step_until(&mut h, "the export", |_| out.exists());
    assert_eq!(
        Dataset::load(&out).expect("exported manifest loads").len(),
        3
    );
}

#[test]
fn closing_with_uncompacted_corrections_asks_first() {
    use egui_kittest::kittest::Queryable;
    let tmp = tempfile::tempdir().expect("tmp");
    let ds = dataset(tmp.path(), 2);
    let mut h = open_annotator(tmp.path(), &ds);
    h.key_press(Key::Tab);
    h.run_steps(2);
    h.key_press(Key::ArrowRight);
    h.run_steps(2);
    assert_eq!(h.state().annotate.uncompacted(), 1);
    let close = |h: &mut Harness<'_, Studio>| {
        h.input_mut()
            .viewports
            .entry(egui::ViewportId::ROOT)
            .or_default()
            .events
            .push(egui::ViewportEvent::Close);
        h.run_steps(2);
    };
    close(&mut h);
    assert!(h.state().confirm_quit, "the close is held back");
    // "Save and quit" compacts the journal into the manifest.
    h.get_by_label("Save and quit").click();
    h.run_steps(2);
    assert!(!ds.join("annotations.jsonl").exists());
    assert_eq!(h.state().annotate.uncompacted(), 0);
    assert!(!h.state().confirm_quit);
}

#[test]
fn saving_keeps_edits_made_before_and_after_opening() {
    // A journal left by an earlier session (not compacted), then a new edit:
    // Ctrl+S must write both into the manifest.
    let tmp = tempfile::tempdir().expect("tmp");
    let ds = dataset(tmp.path(), 3);
    let d = Dataset::load(&ds).expect("load");
    let (a, b) = (d.samples()[0].clone(), d.samples()[1].clone());
    let mut moved = a.rationales.clone();
    moved[0].bbox = moved[0].bbox.translate(3.0, 0.0);
    virl_engine::dataset::annotations::Journal::new(d.journal_path())
        .append(&virl_engine::dataset::annotations::Edit::now(
            &a.id,
            "move",
            a.rationales.clone(),
            moved.clone(),
        ))
        .expect("append");
    let mut h = open_annotator(tmp.path(), &ds);
    assert_eq!(
        h.state().annotate.uncompacted(),
        1,
        "the old edit is pending"
    );
    // Edit the second sample.
    h.key_press(Key::F);
    h.run_steps(2);
    assert_eq!(h.state().annotate.sample.as_deref(), Some(b.id.as_str()));
    h.key_press(Key::Tab);
    h.run_steps(2);
    h.key_press(Key::ArrowDown);
    h.run_steps(2);
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    h.run_steps(2);
    assert!(!ds.join("annotations.jsonl").exists());
    let after = Dataset::load(&ds).expect("load");
    assert_eq!(after.get(&a.id).expect("a").rationales, moved);
    assert_eq!(
        after.get(&b.id).expect("b").rationales[0].bbox,
        b.rationales[0].bbox.translate(0.0, 1.0)
    );
}

#[test]
fn the_selected_boxs_label_is_edited_in_the_side_panel() {
    use egui_kittest::kittest::Queryable;
    let tmp = tempfile::tempdir().expect("tmp");
    let ds = dataset(tmp.path(), 1);
    let mut h = open_annotator(tmp.path(), &ds);
    let id = h.state().annotate.sample.clone().expect("sample");
    let old = Dataset::load(&ds)
        .expect("load")
        .get(&id)
        .expect("s")
        .rationales[0]
        .label
        .clone();
    h.key_press(Key::Tab);
    h.run_steps(2);
    // The label field holds the box's label; replace it and press Enter.
    let field = |h: &Harness<'_, Studio>| {
        h.get_all_by_role(egui::accesskit::Role::TextInput)
            .find(|n| n.value().as_deref() == Some(old.as_str()))
            .map(|n| n.rect().center())
            .expect("the label field")
    };
    let at = field(&h);
    h.get_all_by_role(egui::accesskit::Role::TextInput)
        .find(|n| n.rect().center() == at)
        .expect("field")
        .focus();
    h.run_steps(1);
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.run_steps(1);
    h.get_all_by_role(egui::accesskit::Role::TextInput)
        .find(|n| n.rect().center() == at)
        .expect("field")
        .type_text("red sign");
    h.run_steps(1);
    h.key_press(Key::Enter);
    h.run_steps(3);
    let stored = Dataset::load(&ds).expect("load");
    assert_eq!(stored.get(&id).expect("s").rationales[0].label, "red sign");
}
