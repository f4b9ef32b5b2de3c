//! `virl experiment … --seeds`: every arm run with each seed, summarised as
//! mean ± standard deviation.

use std::fs;
use std::process::Command;

mod common;
use common::TINY;

#[test]
fn ablation_runs_every_arm_with_every_seed_and_reports_mean_and_spread() {
    let root = tempfile::tempdir().expect("tempdir");
    let cfg = root.path().join("tiny.toml");
    fs::write(&cfg, TINY).expect("config");
    let out = root.path().join("exp");
    let o = Command::new(env!("CARGO_BIN_EXE_virl-e2e"))
        .args(["experiment", "ablation", "--config"])
        .arg(&cfg)
        .args(["--iters", "2", "--eval-n", "8", "--seeds", "3,4", "--out"])
        .arg(&out)
        .output()
        .expect("run virl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for arm in ["outcome", "fidelity", "virl"] {
        for seed in [3, 4] {
            let dir = out.join(format!("{arm}-s{seed}"));
            let toml = fs::read_to_string(dir.join("session.toml")).expect("session.toml");
            assert!(toml.starts_with(&format!("seed = {seed}\n")), "{toml}");
        }
    }
    let summary = fs::read_to_string(out.join("summary.md")).expect("summary");
    for arm in ["outcome", "fidelity", "virl"] {
        let row = summary
            .lines()
            .find(|l| l.starts_with(&format!("| {arm} | 2 |")))
            .unwrap_or_else(|| panic!("no mean row for {arm}:\n{summary}"));
        assert!(row.contains(" ± "), "{row}");
    }
    assert!(summary.contains("| virl-s4 |"));
    // The seeds differ: the two runs of an arm do not sample the same rollouts.
    let m =
        |s: u64| fs::read_to_string(out.join(format!("virl-s{s}/metrics.jsonl"))).expect("metrics");
    assert_ne!(m(3), m(4));
    let csv = fs::read_to_string(out.join("curves.csv")).expect("csv");
    assert!(csv.lines().any(|l| l.starts_with("outcome-s3,1,")));
}
