//! The studio's flows, driven through egui_kittest (no window, no GPU):
//! train live and see metrics arrive, inspect a trajectory's actions, step
//! with the keyboard, change h0 and see it recorded, open a session that
//! `virl train`'s engine wrote.

mod common;
use common::{harness, step_until};

use egui_kittest::kittest::Queryable;
use std::path::Path;
use virl_engine::config::SessionConfig;
use virl_engine::events::NullSink;
use virl_engine::trainer::Trainer;
use virl_studio::studio::run::RunStatus;
use virl_studio::studio::{StudioOptions, Tab};

fn tiny(iterations: u64) -> SessionConfig {
    let mut c = SessionConfig {
        seed: 3,
        ..Default::default()
    };
    c.data.zoombench.canvas = 256;
    c.data.zoombench.placards_min = 1;
    c.data.zoombench.placards_max = 2;
    c.data.zoombench.distractors = 8;
    c.data.zoombench.global_view = 32;
    c.data.train_n = 32;
    c.data.eval_n = 16;
    c.env.view = 32;
    c.env.max_rounds = 3;
    c.policy.hidden = 32;
    c.trainer.iterations = iterations;
    c.trainer.samples_per_iter = 4;
    c.trainer.group = 4;
    c.trainer.eval_every = 0;
    c.trainer.eval_n = 16;
    c
}

fn new_session(root: &Path, iterations: u64) -> StudioOptions {
    StudioOptions {
        sessions_root: Some(root.to_path_buf()),
        config: Some(tiny(iterations)),
        ..Default::default()
    }
}

#[test]
fn train_live_inspect_and_step_with_keys() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut h = harness(new_session(tmp.path(), 2));
    step_until(&mut h, "the engine to start", |s| {
        s.run.as_ref().is_some_and(|r| r.status == RunStatus::Idle)
    });
    // Space trains.
    h.key_press(egui::Key::Space);
    step_until(&mut h, "two iterations of metrics", |s| {
        s.run.as_ref().is_some_and(|r| r.metrics.len() == 2)
    });
    let r = h.state().run.as_ref().expect("run");
    assert_eq!(r.metrics[0].iteration, 0);
    assert_eq!(r.rollouts.len(), 2);
    assert_eq!(r.rollouts[&1].len(), 16);
    // The session on disk has them too.
    let (s, _) = virl_engine::session::Session::open(&r.dir).expect("session");
    assert_eq!(s.read_metrics().expect("metrics").len(), 2);

    // Rollouts: the newest iteration is followed and its first row selected.
    h.state_mut().tab = Tab::Rollouts;
    h.state_mut().browser.filter.min_zooms = 1;
    step_until(&mut h, "a selected trajectory with zooms", |s| {
        s.run
            .as_ref()
            .is_some_and(|r| s.browser.record(r).is_some())
    });
    h.run_steps(3);
    let (iou_text, n_rows, first) = {
        let s = h.state();
        let r = s.run.as_ref().expect("run");
        let t = s.browser.record(r).expect("selected");
        assert!(!t.actions.is_empty());
        let a = &t.actions[0];
        (
            a.score.iou.map(|v| format!("{v:.3}")).unwrap_or("–".into()),
            s.browser.rows.len(),
            s.browser.selected,
        )
    };
    // The detail grid shows the selected action's IoU, q_k and m_k as numbers.
    assert!(h.query_all_by_label("IoU").count() >= 1);
    assert!(
        h.query_all_by_label(&iou_text).count() >= 1,
        "IoU {iou_text} not shown"
    );
    let (q, m) = {
        let s = h.state();
        let r = s.run.as_ref().expect("run");
        let a = &s.browser.record(r).expect("selected").actions[0];
        (
            format!("{:+.3}", a.credit.quality),
            format!("{:.3}", a.credit.modulator),
        )
    };
    assert!(h.query_all_by_label(&q).count() >= 1, "q_k {q} not shown");
    assert!(h.query_all_by_label(&m).count() >= 1, "m_k {m} not shown");

    // → moves to the next action (the answer after the zooms), F to the next row.
    assert_eq!(h.state().browser.action, 0);
    h.key_press(egui::Key::ArrowRight);
    h.run_steps(2);
    assert_eq!(h.state().browser.action, 1);
    h.key_press(egui::Key::ArrowLeft);
    h.run_steps(2);
    assert_eq!(h.state().browser.action, 0);
    if n_rows > 1 {
        h.key_press(egui::Key::F);
        h.run_steps(2);
        let s = h.state();
        assert_ne!(s.browser.selected, first);
        assert_eq!(s.browser.selected, Some(s.browser.rows[1]));
        assert!(!s.browser.follow, "stepping pins the selection");
        h.key_press(egui::Key::D);
        h.run_steps(2);
        assert_eq!(h.state().browser.selected, first);
    }
}

#[test]
fn changing_h0_applies_from_the_next_iteration_and_is_recorded() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut h = harness(new_session(tmp.path(), 3));
    step_until(&mut h, "the engine to start", |s| {
        s.run.as_ref().is_some_and(|r| r.status == RunStatus::Idle)
    });
    h.state_mut()
        .run_cmd(virl_studio::studio::commands::Cmd::StepIteration);
    step_until(&mut h, "one iteration", |s| {
        s.run.as_ref().is_some_and(|r| r.metrics.len() == 1)
    });
    h.state_mut().settings.reward.h0 = 0.45;
    h.run_steps(2);
    h.get_by_label("Apply from next iteration").click();
    step_until(&mut h, "the engine to accept h0", |s| {
        s.run
            .as_ref()
            .is_some_and(|r| r.reward_history.iter().any(|(_, c)| c.h0 == 0.45))
    });
    let r = h.state().run.as_ref().expect("run");
    let (from, c) = r.reward_history.last().expect("history");
    assert_eq!(*from, 1, "in force from the next iteration");
    assert_eq!(c.h0, 0.45);
    assert_eq!(r.cfg.reward.h0, 0.45);
    let events = std::fs::read_to_string(r.dir.join("events.jsonl")).expect("events");
    let line = events
        .lines()
        .find(|l| l.contains("reward config changed"))
        .expect("a config event");
    let ev: serde_json::Value = serde_json::from_str(line).expect("json");
    assert_eq!(ev["iteration"], 1);
    assert!(
        ev["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"h0\":0.45")),
        "{line}"
    );
    // Out-of-range values are refused in the panel, not sent.
    h.state_mut().settings.reward.h_good = 0.05; // below h_bad
    h.run_steps(1);
    h.get_by_label("Apply from next iteration").click();
    h.run_steps(2);
    assert!(
        h.state()
            .settings
            .error
            .as_deref()
            .is_some_and(|e| e.contains("h_good"))
    );
}

#[test]
fn opens_a_session_written_by_virl_train() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("headless");
    let cfg = tiny(2);
    let session = virl_engine::session::Session::create(&dir, &cfg).expect("create");
    let mut t = Trainer::new(cfg, Some(session)).expect("trainer");
    t.run(&mut NullSink, &std::sync::atomic::AtomicBool::new(false))
        .expect("train");

    let mut h = harness(StudioOptions {
        open: Some(dir.clone()),
        tab: Some(Tab::Rollouts),
        ..Default::default()
    });
    step_until(&mut h, "the session's metrics and newest rollouts", |s| {
        s.run.as_ref().is_some_and(|r| {
            r.metrics.len() == 2 && r.rollouts.contains_key(&1) && r.index.is_some()
        })
    });
    let s = h.state();
    let r = s.run.as_ref().expect("run");
    assert_eq!(r.status, RunStatus::Watching);
    assert_eq!(r.stored, vec![0, 1]);
    assert!(!s.prefs.recent.is_empty());
    h.get_by_label("read-only");
}

#[test]
fn opening_a_folder_without_a_session_says_so() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut h = harness(StudioOptions {
        open: Some(tmp.path().join("nothing-here")),
        ..Default::default()
    });
    h.run_steps(2);
    assert!(h.state().run.is_none());
    assert!(h.query_all_by_label_contains("nothing to open").count() >= 1);
}

#[test]
fn help_and_palette_open_from_the_keyboard() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut h = harness(new_session(tmp.path(), 1));
    h.run_steps(2);
    // F1: every command with its shortcut (drawn: a missing glyph would panic here).
    h.key_press(egui::Key::F1);
    h.run_steps(2);
    assert!(h.state().help);
    h.get_by_label("Next action");
    // Right is "next action" outside the editor and "nudge right" in it.
    assert_eq!(h.query_all_by_label("Right").count(), 2);
    h.get_by_label("Annotation editor (keys as in CVAT)");
    h.get_by_label("Delete or Backspace");
    h.get_by_label("Nudge box left 10 px");
    h.key_press(egui::Key::F1);
    h.run_steps(2);
    assert!(!h.state().help);
    // Ctrl+K, type, Enter runs the first match.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::K);
    h.run_steps(2);
    assert!(h.state().palette.is_some());
    h.state_mut().palette = Some("keyboard".into());
    h.run_steps(1);
    h.key_press(egui::Key::Enter);
    h.run_steps(2);
    assert!(h.state().palette.is_none());
    assert!(h.state().help, "Enter ran \"Keyboard help\"");
}

/// The browser's "correct" column is the engine's `R_ans`: "7.0" answering
/// "7" is right (numbers match numerically), where the old trimmed,
/// lower-cased string comparison called it wrong.
#[test]
fn the_browser_shows_a_numerically_equal_answer_as_correct() {
    use virl_engine::score::{assign_credit, score_trajectory};
    use virl_engine::trajectory::Trajectory;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("numeric");
    let cfg = tiny(1);
    let (train, _, _, _) = virl_engine::trainer::load_splits(&cfg).expect("splits");
    let s = &train.samples()[0];
    assert!(s.answer.parse::<u32>().is_ok(), "a digit question");
    let mut recs: Vec<Trajectory> = [format!("{}.0", s.answer), "x".to_string()]
        .into_iter()
        .map(|a| {
            let mut t = Trajectory::new(&s.id, &s.id, 0, &s.answer);
            t.answer = Some(a);
            score_trajectory(&mut t, s, &cfg.reward);
            t
        })
        .collect();
    assign_credit(&mut recs, &cfg.reward);
    let session = virl_engine::session::Session::create(&dir, &cfg).expect("create");
    session.write_rollouts(0, &recs).expect("write");
    session
        .append_metrics(&virl_engine::metrics::summarize(0, &recs, 0.5))
        .expect("metrics");

    let mut h = harness(StudioOptions {
        open: Some(dir.clone()),
        tab: Some(Tab::Rollouts),
        ..Default::default()
    });
    step_until(&mut h, "the stored rollouts", |s| {
        s.run.as_ref().is_some_and(|r| r.rollouts.contains_key(&0))
    });
    h.run_steps(3);
    // The "7.0" row (and its sibling in the group view) says yes; the old
    // string comparison showed "no" everywhere.
    assert!(h.query_all_by_label("yes").count() >= 1);
    // Filtering the browser to correct answers keeps exactly that row.
    h.state_mut().browser.filter.correct = virl_studio::studio::rows::Tri::Yes;
    h.run_steps(3);
    let st = h.state();
    let r = st.run.as_ref().expect("run");
    assert_eq!(st.browser.rows, vec![(0, 0)]);
    assert_eq!(
        r.rollouts[&0][0].answer.as_deref(),
        Some(format!("{}.0", s.answer).as_str())
    );
}
