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
    // Each run says which failure signatures its RL iterations showed (two
    // iterations are too few for any detector's window).
    assert!(summary.contains("| failure signatures (RL iterations) |"));
    let run = summary
        .lines()
        .find(|l| l.starts_with("| virl-s4 |"))
        .expect("run row");
    assert!(run.ends_with("| none |"), "{run}");
    // The seeds differ: the two runs of an arm do not sample the same rollouts.
    let m =
        |s: u64| fs::read_to_string(out.join(format!("virl-s{s}/metrics.jsonl"))).expect("metrics");
    assert_ne!(m(3), m(4));
    let csv = fs::read_to_string(out.join("curves.csv")).expect("csv");
    assert!(csv.lines().any(|l| l.starts_with("outcome-s3,1,")));
}

/// Runs `virl experiment ablation` on `cfg` into `out`; its stdout and stderr.
fn ablation(cfg: &std::path::Path, out: &std::path::Path, iters: &str) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_virl-e2e"))
        .args(["experiment", "ablation", "--config"])
        .arg(cfg)
        .args(["--iters", iters, "--eval-n", "8", "--seeds", "5", "--out"])
        .arg(out)
        .output()
        .expect("run virl");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn an_interrupted_experiment_resumes_where_it_stopped_and_refuses_another_config() {
    let root = tempfile::tempdir().expect("tempdir");
    let cfg = root.path().join("tiny.toml");
    fs::write(&cfg, TINY).expect("config");
    let whole = root.path().join("whole");
    let (ok, whole_table, e) = ablation(&cfg, &whole, "3");
    assert!(ok, "{e}");

    // The same experiment stopped part-way: the virl run never started, and
    // the fidelity run was cut after its first iteration's checkpoint.
    let cut = root.path().join("cut");
    let (ok, _, e) = ablation(&cfg, &cut, "3");
    assert!(ok, "{e}");
    fs::remove_dir_all(cut.join("virl-s5")).expect("remove a run");
    let ckpts = cut.join("fidelity-s5/checkpoints");
    for it in [2, 3] {
        for ext in ["safetensors", "json"] {
            fs::remove_file(ckpts.join(format!("ckpt-{it:06}.{ext}"))).expect("remove checkpoint");
        }
    }
    fs::write(
        ckpts.join("latest.json"),
        r#"{"checkpoint":"ckpt-000001","iteration":1}"#,
    )
    .expect("latest.json");
    let (ok, resumed_table, e) = ablation(&cfg, &cut, "3");
    assert!(ok, "{e}");
    assert!(e.contains("resuming"), "{e}");
    assert_eq!(
        resumed_table, whole_table,
        "a resumed experiment reports what an uninterrupted one does"
    );
    assert_eq!(
        fs::read_to_string(whole.join("virl-s5/metrics.jsonl")).expect("m"),
        fs::read_to_string(cut.join("virl-s5/metrics.jsonl")).expect("m")
    );

    // Another config in the same folder is refused, naming the run.
    let other = root.path().join("other.toml");
    fs::write(
        &other,
        TINY.replace("[trainer]", "[trainer]\nentropy_coef = 0.5"),
    )
    .expect("cfg");
    let (ok, _, e) = ablation(&other, &cut, "3");
    assert!(!ok);
    assert!(
        e.contains("outcome-s5") && e.contains("another config"),
        "{e}"
    );
}

#[test]
fn a_finished_filtering_experiment_run_again_resumes_and_reports_the_same() {
    let root = tempfile::tempdir().expect("tempdir");
    let cfg = root.path().join("tiny.toml");
    fs::write(&cfg, TINY).expect("config");
    let out = root.path().join("exp");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_virl-e2e"))
            .args(["experiment", "filtering", "--config"])
            .arg(&cfg)
            .args(["--iters", "2", "--eval-n", "8", "--seeds", "5", "--out"])
            .arg(&out)
            .output()
            .expect("run virl")
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let again = run();
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{err}");
    assert!(err.contains("resuming"), "{err}");
    assert_eq!(first.stdout, again.stdout);
}
