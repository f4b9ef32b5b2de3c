//! Compare: an experiment folder with several seeds per arm opens with its
//! arms grouped (mean line and ± std band per arm).

mod common;
use common::{harness, step_until};

use egui_kittest::kittest::Queryable;
use virl_engine::config::SessionConfig;
use virl_engine::metrics::IterationMetrics;
use virl_engine::session::Session;
use virl_studio::studio::compare::arms;
use virl_studio::studio::{StudioOptions, Tab};

fn session(root: &std::path::Path, name: &str, acc: &[f64]) {
    let s = Session::create(&root.join(name), &SessionConfig::default()).expect("create");
    for (i, &a) in acc.iter().enumerate() {
        s.append_metrics(&IterationMetrics {
            iteration: i as u64,
            acc_ans: a,
            ..Default::default()
        })
        .expect("metrics");
    }
}

#[test]
fn an_experiment_folder_opens_with_its_seeds_grouped_by_arm() {
    let tmp = tempfile::tempdir().expect("tmp");
    let exp = tmp.path().join("ablation");
    session(&exp, "virl-s0", &[0.1, 0.5, 0.9]);
    session(&exp, "virl-s1", &[0.3, 0.5, 0.7]);
    session(&exp, "outcome-s0", &[0.2, 0.2, 0.2]);
    let mut h = harness(StudioOptions {
        open: Some(exp.clone()),
        tab: Some(Tab::Compare),
        ..Default::default()
    });
    step_until(&mut h, "the experiment's three sessions", |s| {
        s.compare.len() == 3 && s.compare.iter().all(|r| r.metrics.is_ok())
    });
    h.run_steps(3);
    assert!(h.state().prefs.group_seeds);
    assert!(h.query_by_label("group seeds").is_some());
    let st = h.state();
    let series: Vec<(&str, &[IterationMetrics])> = st
        .compare
        .iter()
        .map(|r| (r.name.as_str(), r.metrics.as_ref().expect("ok").as_slice()))
        .collect();
    let g = arms(&series);
    let names: Vec<(&str, usize)> = g.iter().map(|(a, r)| (a.as_str(), r.len())).collect();
    assert_eq!(names, [("outcome", 1), ("virl", 2)]);
}
