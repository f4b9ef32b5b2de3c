//! A run traced from outside (verl) watched live: another process appends
//! scored trajectories to a trace folder while the studio follows it, then
//! is killed with SIGKILL; no complete line is lost or torn.
//!
//! The writer is this test binary itself, re-run with `VIRL_TRACE_WRITER`
//! set (the `trace_writer` test below is a no-op otherwise).

mod common;
use common::{harness, step_until};

use std::path::Path;
use std::process::{Command, Stdio};
use virl_engine::config::ExternalRun;
use virl_engine::dataset::Dataset;
use virl_engine::dataset::zoombench::{ZoomBench, ZoomBenchConfig};
use virl_engine::reward::RewardConfig;
use virl_engine::score::score_trajectory;
use virl_engine::trace::Trace;
use virl_engine::trajectory::{Trajectory, ZoomAction};
use virl_studio::studio::{StudioOptions, Tab};

const WRITER_ENV: &str = "VIRL_TRACE_WRITER";

/// In the child: appends trajectories to the trace as fast as it can, 40
/// in step 0 and then step 1, until killed.
#[test]
fn trace_writer() {
    let Ok(spec) = std::env::var(WRITER_ENV) else {
        return;
    };
    let (trace_dir, dataset) = spec.split_once('|').expect("trace|dataset");
    let ds = Dataset::load(dataset).expect("dataset");
    let run = ExternalRun {
        trainer: "verl".into(),
        metrics: None,
    };
    let cfg = RewardConfig::default();
    let tr = Trace::open(Path::new(trace_dir), Path::new(dataset), run, &cfg).expect("trace");
    for n in 0u64.. {
        let s = &ds.samples()[(n as usize) % ds.len()];
        let g = s.rationales[0].bbox;
        let mut t = Trajectory::new(
            &s.id,
            &format!("uid-{}", n / 4),
            u64::from(n >= 40),
            &s.answer,
        );
        t.answer = Some(s.answer.clone());
        t.actions = vec![ZoomAction::new(g, g, None, Some(1))];
        // Long lines make a torn write at the kill more likely.
        t.format_errors = if n % 3 == 0 {
            vec!["x".repeat(3000)]
        } else {
            vec![]
        };
        score_trajectory(&mut t, s, &cfg);
        t.gt_version = Some(virl_engine::dataset::live::gt_version(s));
        tr.append(&t).expect("append");
    }
}

#[test]
fn the_studio_follows_a_trace_and_a_killed_writer_tears_no_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    ZoomBench::new(ZoomBenchConfig::default())
        .expect("zb")
        .write_dataset(&data, 4, 0, |_| {})
        .expect("dataset");
    let trace = tmp.path().join("trace");
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "trace_writer", "--nocapture", "--test-threads=1"])
        .env(
            WRITER_ENV,
            format!("{}|{}", trace.display(), data.display()),
        )
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the writer");
    for _ in 0..3000 {
        if trace.join("rollouts/iter-000001.jsonl").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }

    let mut h = harness(StudioOptions {
        open: Some(trace.clone()),
        tab: Some(Tab::Rollouts),
        ..Default::default()
    });
    step_until(&mut h, "step 0's curves and step 1's rows", |s| {
        s.run.as_ref().is_some_and(|r| {
            r.metrics
                .first()
                .is_some_and(|m| m.iteration == 0 && m.trajectories == 40)
                && r.rollouts.get(&1).is_some_and(|v| !v.is_empty())
        })
    });
    let n1 = h.state().run.as_ref().expect("run").rollouts[&1].len();
    step_until(&mut h, "rows appended while the studio watches", |s| {
        s.run
            .as_ref()
            .is_some_and(|r| r.rollouts.get(&1).is_some_and(|v| v.len() > n1))
    });
    {
        let s = h.state();
        let r = s.run.as_ref().expect("run");
        assert_eq!(
            r.cfg.external.as_ref().map(|e| e.trainer.as_str()),
            Some("verl")
        );
        assert!(r.metrics[0].acc_ans > 0.99, "every traced answer was right");
        let t = &r.rollouts[&1][0];
        assert_eq!(t.actions[0].score.iou, Some(1.0));
        // The studio indexes the dataset the trace names: images and boxes.
        assert!(r.gt_boxes(&t.sample).is_some_and(|b| !b.is_empty()));
    }

    child.kill().expect("SIGKILL the writer");
    child.wait().expect("wait");
    let text = std::fs::read(trace.join("rollouts/iter-000001.jsonl")).expect("read");
    let complete = text.iter().filter(|&&b| b == b'\n').count();
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    for (i, l) in lines[..complete].iter().enumerate() {
        let v: serde_json::Value = serde_json::from_slice(l)
            .unwrap_or_else(|e| panic!("line {} is torn or interleaved: {e}", i + 1));
        virl_engine::trajectory::read(v).expect("a trajectory");
    }
    let (session, _) = virl_engine::session::Session::open(&trace).expect("session");
    assert_eq!(session.read_rollouts(1).expect("read").len(), complete);
    assert_eq!(session.read_rollouts(0).expect("read").len(), 40);

    // Correct the selected trajectory's ground truth in the studio: the edit
    // lands in the dataset folder's journal, where the run's compute_score
    // (a LiveDataset) picks it up at its next call.
    let mut live = virl_engine::dataset::live::LiveDataset::open(&data).expect("live");
    h.state_mut().browser.filter.min_zooms = 1;
    step_until(&mut h, "a selected trajectory", |s| {
        s.run
            .as_ref()
            .is_some_and(|r| s.browser.record(r).is_some())
    });
    let id = {
        let s = h.state();
        let r = s.run.as_ref().expect("run");
        s.browser.record(r).expect("selected").sample.clone()
    };
    h.key_press(egui::Key::E);
    step_until(&mut h, "the sample in the editor", |s| {
        s.tab == Tab::Annotate
            && s.annotate.sample.as_deref() == Some(id.as_str())
            && s.annotate.canvas_xf.is_some()
    });
    let gt = h.state().annotate.rationales()[0].bbox;
    h.key_press(egui::Key::Tab);
    h.run_steps(2);
    let (cx, cy) = gt.center();
    common::annotate::drag(&mut h, (cx, cy), (cx + 40.0, cy + 30.0));
    let journal = std::fs::read_to_string(data.join("annotations.jsonl")).expect("journal");
    assert!(
        journal.contains(&id),
        "the correction is in the dataset's journal"
    );
    assert!(
        live.refresh().expect("reload"),
        "the run's scorer sees the change"
    );
    let now = live.dataset().get(&id).expect("sample").rationales[0].bbox;
    assert_ne!(
        now, gt,
        "the edited box is what the run scores against next"
    );
}

#[test]
fn a_trace_whose_dataset_moved_says_so_and_opens_with_the_dataset_given() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("mounted-here");
    let ds = ZoomBench::new(ZoomBenchConfig::default())
        .expect("zb")
        .write_dataset(&data, 2, 0, |_| {})
        .expect("dataset");
    let s = &ds.samples()[0];
    let trace = tmp.path().join("trace");
    let run = ExternalRun {
        trainer: "verl".into(),
        metrics: None,
    };
    // The run wrote the trace where the data had another path.
    let gone = tmp.path().join("moved-away");
    let tr = Trace::open(&trace, &gone, run, &RewardConfig::default()).expect("trace");
    let mut t = Trajectory::new(&s.id, "uid-1", 2, &s.answer);
    t.answer = Some(s.answer.clone());
    tr.append(&t).expect("append");
    let mut h = harness(StudioOptions {
        open: Some(trace.clone()),
        tab: Some(Tab::Rollouts),
        ..Default::default()
    });
    step_until(&mut h, "the rows and the indexing error", |st| {
        st.run.as_ref().is_some_and(|r| {
            r.index_error.is_some() && r.rollouts.get(&2).is_some_and(|v| v.len() == 1)
        })
    });
    let e = h
        .state()
        .run
        .as_ref()
        .and_then(|r| r.index_error.clone())
        .expect("error");
    assert!(e.contains("moved-away"), "the error names the folder: {e}");
    // `virl --open TRACE --dataset DIR`: the same trace with the data where it is here.
    let mut h = harness(StudioOptions {
        open: Some(trace),
        tab: Some(Tab::Rollouts),
        dataset: Some(data),
        ..Default::default()
    });
    step_until(&mut h, "the samples indexed from the given folder", |st| {
        st.run.as_ref().is_some_and(|r| r.index.is_some())
    });
    let r = h.state().run.as_ref().expect("run");
    assert!(r.index_error.is_none());
    assert_eq!(r.gt_boxes(&s.id), Some(s.gt_boxes()));
}
