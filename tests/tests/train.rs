//! `virl train` / `virl eval` as a user runs them, and crash safety for real:
//! a training process killed with SIGKILL leaves a session that loads and
//! resumes, with at most the interrupted iteration lost.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use virl_engine::session::Session;

mod common;
use common::TINY;

fn virl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_virl-e2e"))
}

fn run(args: &[&str]) -> Output {
    virl().args(args).output().expect("run virl")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn metrics_lines(dir: &Path) -> usize {
    fs::read_to_string(dir.join("metrics.jsonl"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn train_then_eval_then_resume() {
    let root = tempfile::tempdir().expect("tempdir");
    let cfg = root.path().join("tiny.toml");
    fs::write(&cfg, TINY).expect("config");
    let dir = root.path().join("s");
    let o = run(&[
        "train",
        "--config",
        p(&cfg),
        "--session",
        p(&dir),
        "--iters",
        "3",
        "--log",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("finished 3 iterations"),
        "{}",
        stderr(&o)
    );
    assert_eq!(metrics_lines(&dir), 3);
    let toml = fs::read_to_string(dir.join("session.toml")).expect("session.toml");
    assert!(
        toml.contains("canvas = 256") && toml.contains("h0 = 0.3"),
        "the session records the full config"
    );

    let o = run(&["eval", "--session", p(&dir), "--n", "8"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("after 3 iterations on 8 samples (greedy): Acc_ans"),
        "{out}"
    );

    let o = run(&["train", "--resume", p(&dir), "--iters", "5", "--log"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("resuming") && stderr(&o).contains("at iteration 3"),
        "{}",
        stderr(&o)
    );
    assert_eq!(metrics_lines(&dir), 5);

    // A session is never overwritten by a new run.
    let o = run(&[
        "train",
        "--config",
        p(&cfg),
        "--session",
        p(&dir),
        "--iters",
        "1",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("a session already exists here"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_configs_are_refused_with_the_key_and_file() {
    let root = tempfile::tempdir().expect("tempdir");
    for (text, needle) in [
        (
            "[trainer]\nlr = -1.0\n",
            "trainer.lr must be a positive number, got -1",
        ),
        (
            "[reward]\nh_good = 0.1\nh_bad = 0.3\n",
            "h_good (0.1) must be greater than h_bad (0.3)",
        ),
        ("[env]\nmax_rounds = 0\n", "max_rounds must be at least 1"),
        (
            "[trainer]\nlearnin_rate = 0.1\n",
            "unknown field `learnin_rate`",
        ),
        ("[trainer\n", "bad.toml"),
    ] {
        let cfg = root.path().join("bad.toml");
        fs::write(&cfg, text).expect("config");
        let dir = root.path().join("never");
        let o = run(&[
            "train",
            "--config",
            p(&cfg),
            "--session",
            p(&dir),
            "--iters",
            "1",
        ]);
        assert!(!o.status.success(), "{text}");
        let e = stderr(&o);
        assert!(e.contains(needle), "{needle:?} not in {e}");
        assert!(e.contains("bad.toml"), "the file is named: {e}");
        assert!(!dir.exists(), "nothing is created for a bad config");
    }
}

/// Starts `virl train --config cfg --session dir --iters 1000` (its
/// standard error to `stderr`) and returns once `after` iterations are in
/// `metrics.jsonl`.
fn train_until(cfg: &Path, dir: &Path, stderr: Stdio, after: usize) -> std::process::Child {
    let mut child = virl()
        .args([
            "train",
            "--config",
            p(cfg),
            "--session",
            p(dir),
            "--iters",
            "1000",
            "--log",
        ])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(240);
    while metrics_lines(dir) < after {
        assert!(Instant::now() < deadline, "training made no progress");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "training exited early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

/// Kills `virl train` with SIGKILL after `after` complete iterations plus a
/// delay (so some kills land mid-iteration, some mid-write), then checks every
/// file reads, and resumes to the end.
fn kill_and_resume(after: usize, extra_delay_ms: u64) {
    let root = tempfile::tempdir().expect("tempdir");
    let cfg = root.path().join("tiny.toml");
    fs::write(&cfg, TINY).expect("config");
    let dir = root.path().join("s");
    let mut child = train_until(&cfg, &dir, Stdio::null(), after);
    std::thread::sleep(Duration::from_millis(extra_delay_ms));
    child.kill().expect("SIGKILL"); // std sends SIGKILL on Unix
    child.wait().expect("reap");

    // Everything reads.
    let (session, _) = Session::open(&dir).expect("session opens");
    let metrics = session.read_metrics().expect("metrics read");
    assert!(metrics.len() >= after, "{} < {after}", metrics.len());
    // The metrics line of an iteration is written before its checkpoint, so
    // a kill between the two leaves the checkpoint one behind (or none yet):
    // at most the interrupted iteration is lost.
    let done = session
        .checkpoints()
        .latest(&candle_core::Device::Cpu)
        .expect("checkpoint reads")
        .map_or(0, |(_, s)| s.iteration);
    assert!(
        done as usize + 1 >= metrics.len(),
        "checkpoint {done} vs {} metrics lines",
        metrics.len()
    );
    for it in session.rollout_iterations() {
        session.read_rollouts(it).expect("rollouts read");
    }
    let target = done + 2;
    let o = run(&[
        "train",
        "--resume",
        p(&dir),
        "--iters",
        &target.to_string(),
        "--log",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let metrics = session.read_metrics().expect("metrics read");
    assert_eq!(
        metrics.iter().map(|m| m.iteration).collect::<Vec<_>>(),
        (0..target).collect::<Vec<_>>()
    );
}

#[test]
fn sigkill_at_several_points_then_resume() {
    for (after, delay) in [(1, 0), (2, 37), (3, 90), (4, 150)] {
        kill_and_resume(after, delay);
    }
}

#[test]
fn eval_suspects_and_filter_use_a_trained_session() {
    let root = tempfile::tempdir().expect("tempdir");
    let cfg = root.path().join("tiny.toml");
    fs::write(&cfg, TINY).expect("config");
    let dir = root.path().join("s");
    let o = run(&[
        "train",
        "--config",
        p(&cfg),
        "--session",
        p(&dir),
        "--iters",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Corrections of generated data live in the session's journal; moving
    // every evaluation sample's box into a corner that no zoom reaches
    // (minimum zoom side is larger) makes eval's coverage 0.
    let mut journal = String::new();
    for i in 0..16 {
        journal.push_str(&format!(
            "{{\"time\":1,\"sample\":\"zb-s1000001-{i:06}\",\"op\":\"move\",\"before\":[],\"after\":[{{\"bbox\":[0,0,1,1]}}]}}\n"
        ));
    }
    fs::write(dir.join("annotations.jsonl"), journal).expect("journal");
    let o = run(&["eval", "--session", p(&dir), "--n", "16"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("coverage 0.000"), "{out}");
    // suspects ranks the training samples with rollouts.
    let o = run(&["suspects", "--session", p(&dir), "--top", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("samples ranked from"));
    // filter: a dataset folder, this session's policy; every sample is kept or
    // dropped with a reason.
    let ds = root.path().join("ds");
    let o = common::synth_tiny(&ds, 12, 0);
    assert!(o.status.success(), "{}", stderr(&o));
    let out_dir = root.path().join("filtered");
    let o = run(&[
        "filter",
        "--dataset",
        p(&ds),
        "--policy",
        p(&dir),
        "--out",
        p(&out_dir),
        "--k",
        "2",
        "--max-area-ratio",
        "0.006",
    ]);
    let report: serde_json::Value = serde_json::from_slice(
        &fs::read(out_dir.join("filter-report.json")).expect("the report is written either way"),
    )
    .expect("json");
    let kept = report["kept"].as_array().expect("kept").len();
    let dropped = fs::read_to_string(out_dir.join("dropped.jsonl")).expect("dropped");
    assert_eq!(kept + dropped.lines().count(), 12);
    if kept > 0 {
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("rationale area ratio > 0.006"));
    } else {
        assert!(
            stderr(&o).contains("every sample was dropped"),
            "{}",
            stderr(&o)
        );
    }
    // A --policy that is not a session names it.
    let o = run(&[
        "filter",
        "--dataset",
        p(&ds),
        "--policy",
        p(&ds),
        "--out",
        p(&root.path().join("x")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("neither a session folder nor a checkpoint"),
        "{}",
        stderr(&o)
    );
}

/// Ctrl+C in `virl train`: the iteration in progress finishes, a checkpoint
/// of it is written, the command exits 0 and says how to resume; resuming
/// continues the same run.
#[test]
fn ctrl_c_finishes_the_iteration_checkpoints_and_exits_0() {
    let root = tempfile::tempdir().expect("tempdir");
    let cfg = root.path().join("tiny.toml");
    fs::write(
        &cfg,
        TINY.replace("[trainer]", "[trainer]\ncheckpoint_every = 1000"),
    )
    .expect("config");
    let dir = root.path().join("s");
    let child = train_until(&cfg, &dir, Stdio::piped(), 2);
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    let o = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "exit {:?}: {err}", o.status.code());
    let n = metrics_lines(&dir);
    assert!(n < 1000, "it stopped");
    assert!(
        err.contains(&format!("stopped after {n} iterations")),
        "{err}"
    );
    assert!(err.contains("virl train --resume"), "{err}");
    // The checkpoint is of the last finished iteration (checkpoint_every is
    // 1000: this one was written because of the stop).
    let (session, _) = Session::open(&dir).expect("open");
    let (_, state) = session
        .checkpoints()
        .latest(&candle_core::Device::Cpu)
        .expect("reads")
        .expect("a checkpoint was written at the stop");
    assert_eq!(state.iteration as usize, n);
    let target = n + 1;
    let o = run(&[
        "train",
        "--resume",
        p(&dir),
        "--iters",
        &target.to_string(),
        "--log",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let its: Vec<u64> = session
        .read_metrics()
        .expect("metrics")
        .iter()
        .map(|m| m.iteration)
        .collect();
    assert_eq!(its, (0..target as u64).collect::<Vec<_>>());
}

#[test]
fn train_without_a_config_uses_the_studios_schedule() {
    // A new user's `virl train` and the studio's Space train the same schedule
    // (imitation first), so neither starts RL on an untrained policy.
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("s");
    let o = run(&["train", "--session", p(&dir), "--iters", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, cfg) = Session::open(&dir).expect("session");
    let studio = virl_studio::studio::default_config();
    let mut expected = studio.trainer.clone();
    expected.iterations = 0;
    assert_eq!(cfg.trainer, expected);
    assert_eq!(cfg.env, studio.env);
    assert!(cfg.trainer.warmup_iterations > 0);
    assert_eq!(
        cfg.trainer.warmup_data,
        virl_engine::config::WarmupData::Fresh
    );
}

#[test]
fn the_default_schedule_is_spelled_out_in_its_bench_config() {
    // RESULTS.md measures `bench/configs/default-g96.toml`; it must stay the
    // schedule a new user trains.
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/configs/default-g96.toml");
    let spelled = virl_engine::config::SessionConfig::load(&file).expect("config");
    let studio = virl_studio::studio::default_config();
    assert_eq!(spelled, studio);
}
