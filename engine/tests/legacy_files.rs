//! Files written before the one trajectory record (`tests/fixtures/legacy`,
//! written by commit 36008f9) still load into it, keep what they recorded,
//! and re-score to the scores they stored.

use std::path::{Path, PathBuf};
use virl_engine::config::SessionConfig;
use virl_engine::session::{Session, rescore};
use virl_engine::suspect::{SuspectConfig, score as suspicion};
use virl_engine::trajectory::Trajectory;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/legacy")
        .join(name)
}

fn samples(cfg: &SessionConfig) -> virl_engine::dataset::Dataset {
    let (train, _, _, _) = virl_engine::trainer::load_splits(cfg).expect("splits");
    train
}

#[test]
fn an_old_zoomnet_session_loads_and_rescores_to_what_it_stored() {
    let (s, cfg) = Session::open(&fixture("zoomnet-session")).expect("open");
    assert_eq!(s.rollout_iterations(), vec![0, 1]);
    assert_eq!(s.read_metrics().expect("metrics").len(), 2);
    let ds = samples(&cfg);
    let mut zooms = 0;
    for it in s.rollout_iterations() {
        let recs = s.read_rollouts(it).expect("rollouts");
        assert_eq!(recs.len(), 8);
        for r in &recs {
            assert_eq!(r.iteration, it);
            assert!(!r.truth.is_empty());
            // ZoomNet's logp list was one per zoom, then the answer's.
            assert!(
                r.actions
                    .iter()
                    .all(|a| a.logp.is_some() && a.turn.is_none())
            );
            assert_eq!(r.answer.is_some(), r.answer_logp.is_some());
            assert_eq!(r.truncated, r.answer.is_none());
            zooms += r.actions.len();
        }
        // The engine re-scores each old record to exactly what it stored.
        let ids: std::collections::BTreeSet<&str> =
            recs.iter().map(|r| r.sample.as_str()).collect();
        for id in ids {
            let sample = ds.get(id).expect("sample");
            for (i, new) in rescore(&recs, sample, |_| cfg.reward.clone()) {
                let old = &recs[i];
                assert_eq!(new.rewards, old.rewards, "{id}");
                assert_eq!(new.advantage, old.advantage, "{id}");
                for (a, b) in new.actions.iter().zip(&old.actions) {
                    assert_eq!((&a.score, &a.credit), (&b.score, &b.credit));
                }
            }
        }
    }
    assert!(zooms > 0, "the fixture has zooms to check");
}

#[test]
fn an_old_vlm_session_keeps_its_format_errors_and_turn_logps() {
    let (s, cfg) = Session::open(&fixture("vlm-session")).expect("open");
    let recs = s.read_rollouts(0).expect("rollouts");
    assert_eq!(recs.len(), 4);
    let ds = virl_engine::vlm::open_dataset("zoombench")
        .expect("zoombench")
        .0;
    for r in &recs {
        assert!(r.transcript.len() >= 3);
        // Every assistant turn got its logp from the old per-turn list.
        assert!(
            r.transcript
                .iter()
                .filter(|t| t.role == "assistant")
                .all(|t| t.logp.is_some_and(f32::is_finite))
        );
        // The old session did not store format errors; its R_fmt = −1 survives.
        assert_eq!(r.rewards.fmt, -1.0);
        assert!(!r.format_errors.is_empty());
        let sample = ds.dataset().get(&r.sample).expect("sample");
        let again = rescore(std::slice::from_ref(r), sample, |_| cfg.reward.clone());
        assert_eq!(again[0].1.rewards.fmt, -1.0);
    }
}

#[test]
fn an_old_virl_rollout_file_reads_line_by_line() {
    let text = std::fs::read_to_string(fixture("vlm-rollout.jsonl")).expect("read");
    let recs: Vec<Trajectory> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a trajectory"))
        .collect();
    assert_eq!(recs.len(), 4);
    for r in &recs {
        assert_eq!(r.format_errors.len(), 3);
        assert!(r.truncated && r.answer.is_none() && r.actions.is_empty());
        let lps: Vec<f32> = r.transcript.iter().filter_map(|t| t.logp).collect();
        assert_eq!(lps.len(), 3, "turn_logp went to the three assistant turns");
        // Written in today's layout, it reads back the same.
        let again: Trajectory =
            serde_json::from_str(&serde_json::to_string(r).expect("json")).expect("read");
        assert_eq!(&again, r);
    }
}

/// The suspect ranking weighs each zoom of a correct trajectory by the
/// log-probability of the turn that made it. An old VLM record kept one
/// log-probability per assistant turn, malformed turns included; read by
/// zoom number, a malformed turn before a zoom gave that zoom the wrong
/// weight (and the consensus went to the wrong place).
#[test]
fn a_malformed_turn_before_a_zoom_does_not_shift_the_suspect_consensus() {
    let a = "[10, 10, 30, 30]";
    let b = "[60, 60, 80, 80]";
    // Trajectory 1: a malformed turn (logp −50), then a confident zoom on A (−1).
    let t1 = format!(
        r#"{{"iteration": 0, "truth": "7", "answer": "7", "proposed": [{a}], "executed": [{a}],
            "hit_max_rounds": false, "logp": [-50.0, -1.0, -0.5],
            "turns": [{{"role": "system", "text": "s"}}, {{"role": "user", "text": "q"}},
                      {{"role": "assistant", "text": "??", "error": "neither"}},
                      {{"role": "tool", "text": "Error"}},
                      {{"role": "assistant", "text": "zoom", "zoom": {a}}},
                      {{"role": "tool", "text": "crop"}},
                      {{"role": "assistant", "text": "<answer>7</answer>"}}],
            "sample": "s", "group": "s",
            "rewards": {{"ans": 1.0, "rat": 0.0, "fmt": -1.0, "total": 0.8}},
            "coverage": 0.0, "advantage": 0.0, "actions": []}}"#
    );
    // Trajectory 2: an unsure zoom on B (−30), then the answer.
    let t2 = format!(
        r#"{{"iteration": 0, "truth": "7", "answer": "7", "proposed": [{b}], "executed": [{b}],
            "hit_max_rounds": false, "logp": [-30.0, -0.2],
            "turns": [{{"role": "system", "text": "s"}}, {{"role": "user", "text": "q"}},
                      {{"role": "assistant", "text": "zoom", "zoom": {b}}},
                      {{"role": "tool", "text": "crop"}},
                      {{"role": "assistant", "text": "<answer>7</answer>"}}],
            "sample": "s", "group": "s",
            "rewards": {{"ans": 1.0, "rat": 0.0, "fmt": 0.0, "total": 1.0}},
            "coverage": 0.0, "advantage": 0.0, "actions": []}}"#
    );
    let recs: Vec<Trajectory> = [t1, t2]
        .iter()
        .map(|l| serde_json::from_str(l).expect("read"))
        .collect();
    assert_eq!(recs[0].actions[0].logp, Some(-1.0));
    assert_eq!(recs[0].actions[0].turn, Some(4));
    let sample = virl_engine::dataset::Sample {
        id: "s".into(),
        image: "s.png".into(),
        width: 100,
        height: 100,
        question: "q".into(),
        answer: "7".into(),
        options: vec![],
        rationales: vec![virl_engine::dataset::Rationale {
            bbox: virl_engine::geometry::BBox::new(40.0, 0.0, 55.0, 15.0),
            label: String::new(),
        }],
        meta: None,
        extra: Default::default(),
    };
    let rs: Vec<&Trajectory> = recs.iter().collect();
    let s = suspicion(&sample, &rs, &SuspectConfig::default());
    // The confident zoom (A) is where the policy looks, not the unsure one (B).
    assert_eq!(s.consensus, Some(recs[0].actions[0].proposed));
}
