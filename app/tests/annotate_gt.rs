//! Ground truth beyond the editor: an edit survives a SIGKILL of the studio
//! right after it; correcting a trajectory's ground truth re-scores its
//! rollouts; the File menu's import then export round trip.

mod common;
use common::annotate::*;
use common::{harness, step_until};

use egui::{Key, Modifiers};
use std::path::PathBuf;
use std::time::Duration;
use virl_engine::dataset::Dataset;
use virl_studio::studio::run::RunStatus;
use virl_studio::studio::{StudioOptions, Tab};

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
