//! What the command-line tests share: running the real program.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `virl` (this package's copy of the binary) with `args`.
pub fn virl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_virl-e2e"))
        .args(args)
        .output()
        .expect("run virl")
}

/// `virl synth`: `n` samples of stream `seed` with [`TINY`]'s ZoomBench
/// knobs into the dataset folder `out`.
pub fn synth_tiny(out: &Path, n: usize, seed: u64) -> Output {
    let (n, seed) = (n.to_string(), seed.to_string());
    virl(&[
        "synth",
        "--out",
        p(out),
        "--n",
        &n,
        "--seed",
        &seed,
        "--canvas",
        "256",
        "--placards-min",
        "1",
        "--placards-max",
        "2",
        "--distractors",
        "8",
        "--global-view",
        "32",
    ])
}

/// A finished run's standard error, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A path as a command-line argument.
pub fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A JSON number, or a failed test.
pub fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

/// Equal to 1e-9.
pub fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

/// Writes `lines` as the file `dir/name`.
pub fn write(dir: &Path, name: &str, lines: &[&str]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    path
}

/// A config small enough for an end-to-end training test to take seconds.
pub const TINY: &str = r#"
seed = 5

[data]
train_n = 48
eval_n = 16

[data.zoombench]
canvas = 256
placards_min = 1
placards_max = 2
distractors = 8
global_view = 32

[env]
view = 32
max_rounds = 3

[policy]
hidden = 32

[trainer]
samples_per_iter = 4
group = 4
eval_every = 0
eval_n = 16
"#;
