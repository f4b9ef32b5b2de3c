//! `virl score` as a user runs it on hand-written files, in a real child
//! process (`cli_data.rs` has `virl synth`, `import` and `export`).

use image::{Rgb, RgbImage};
use serde_json::Value;
use std::fs;
use std::path::Path;
mod common;
use common::{close, f, p, stderr, virl, write};

/// A hand-written dataset: three 100×100 images.
/// - `s1`: one rationale [10, 10, 30, 30], answer "4";
/// - `s2`: no rationale (M = 0), answer "yes";
/// - `s3`: two rationales [0, 0, 10, 10] and [50, 50, 70, 70], answer "12".
fn hand_dataset() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for id in ["s1", "s2", "s3"] {
        RgbImage::from_pixel(100, 100, Rgb([200, 200, 200]))
            .save(dir.path().join(format!("{id}.png")))
            .expect("png");
    }
    let manifest = [
        r#"{"id": "s1", "image": "s1.png", "width": 100, "height": 100, "question": "What digit is on the red placard?", "answer": "4", "rationales": [{"bbox": [10, 10, 30, 30], "label": "red placard"}]}"#,
        r#"{"id": "s2", "image": "s2.png", "width": 100, "height": 100, "question": "Is it day?", "answer": "yes"}"#,
        r#"{"id": "s3", "image": "s3.png", "width": 100, "height": 100, "question": "Sum?", "answer": "12", "rationales": [{"bbox": [0, 0, 10, 10]}, {"bbox": [50, 50, 70, 70]}]}"#,
    ];
    fs::write(
        dir.path().join("manifest.jsonl"),
        manifest.join("\n") + "\n",
    )
    .expect("manifest");
    dir
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .expect("read output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// The same three trajectories of `s1` in our format …
const VIRL_LINES: [&str; 4] = [
    r#"{"sample": "s1", "zooms": [[10, 10, 30, 30]], "answer": "4"}"#,
    r#"{"sample": "s1", "zooms": [[10, 10, 30, 20], [10, 10, 30, 30]], "answer": "5"}"#,
    r#"{"sample": "s1", "zooms": [], "answer": "4"}"#,
    r#"{"sample": "s2", "zooms": [[0, 0, 50, 50]], "answer": "Yes."}"#,
];

/// … and as DeepEyes text.
fn deepeyes_lines() -> Vec<String> {
    let call = |b: &str| {
        format!(
            r#"<tool_call>{{"name": "image_zoom_in_tool", "arguments": {{"bbox_2d": {b}}}}}</tool_call>"#
        )
    };
    let line = |sample: &str, body: String| {
        serde_json::json!({"sample": sample, "output": body}).to_string()
    };
    vec![
        line(
            "s1",
            format!(
                "<think>look at red</think>{}<answer>4</answer>",
                call("[10, 10, 30, 30]")
            ),
        ),
        line(
            "s1",
            format!(
                "<think>a</think>{}<think>b</think>{}<answer>5</answer>",
                call("[10, 10, 30, 20]"),
                call("[10, 10, 30, 30]")
            ),
        ),
        line("s1", "<think>I know it</think><answer>4</answer>".into()),
        line(
            "s2",
            format!("{}<answer>Yes.</answer>", call("[0, 0, 50, 50]")),
        ),
    ]
}

#[test]
fn score_virl_format_by_hand() {
    let ds = hand_dataset();
    let rollouts = write(ds.path(), "rollouts.jsonl", &VIRL_LINES);
    let out = ds.path().join("scores.jsonl");
    let o = virl(&[
        "score",
        "--dataset",
        p(ds.path()),
        "--rollouts",
        p(&rollouts),
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = read_jsonl(&out);
    assert_eq!(rows.len(), 4);

    // Trajectory 1: IoU 1 → σ = +1, β = 1, f = 0.5 + 0.5 = 1, C = 1, R_rat = 1, R = 1 + 0.5·1 = 1.5.
    let r1 = &rows[0];
    close(f(&r1["rewards"]["rat"]), 1.0);
    close(f(&r1["rewards"]["total"]), 1.5);
    // Trajectory 2: IoU 0.5 then 1 (zoom-zoom IoU 0.5 < τ_dup): f = 0.75, 0.75; wrong answer: R = 0.5·0.75.
    let r2 = &rows[1];
    close(f(&r2["actions"][0]["iou"]), 0.5);
    close(f(&r2["actions"][1]["beta"]), 0.5);
    assert_eq!(r2["actions"][1]["redundant"], false);
    close(f(&r2["rewards"]["total"]), 0.375);
    // Trajectory 3: no zoom: R_rat = r_none = −1, R = 1 − 0.5 = 0.5, coverage 0.
    let r3 = &rows[2];
    close(f(&r3["rewards"]["rat"]), -1.0);
    close(f(&r3["rewards"]["total"]), 0.5);
    close(f(&r3["coverage"]), 0.0);

    // Group advantages, std with n − 1.
    let rs = [1.5, 0.375, 0.5];
    let mean = rs.iter().sum::<f64>() / 3.0;
    let std = (rs.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    let a: Vec<f64> = rs.iter().map(|r| (r - mean) / (std + 1e-6)).collect();
    for (row, ai) in rows.iter().zip(&a) {
        close(f(&row["advantage"]), *ai);
    }
    // A_1 > 0, IoU 1 → q = 1, m = 1.5; A_2 < 0: IoU 0.5 → q = 1 → m = 0.5 (less blame for a good box).
    close(f(&r1["actions"][0]["modulator"]), 1.5);
    close(f(&r1["actions"][0]["advantage"]), 1.5 * a[0]);
    close(f(&r2["actions"][0]["quality"]), 1.0);
    close(f(&r2["actions"][0]["modulator"]), 0.5);
    close(f(&r2["actions"][1]["advantage"]), 0.5 * a[1]);

    // s2 has no ground truth: nulls, R_rat = 0, a group of one: A = 0.
    let r4 = &rows[3];
    assert!(r4["coverage"].is_null());
    for k in ["iou", "gt", "sigma", "beta"] {
        assert!(r4["actions"][0][k].is_null(), "{k}");
    }
    close(f(&r4["rewards"]["ans"]), 1.0);
    close(f(&r4["advantage"]), 0.0);

    let e = stderr(&o);
    assert!(e.contains("scored 4 trajectories in 2 groups"), "{e}");
    assert!(e.contains("Acc_ans 0.750"), "{e}");
    // Acc_rat: IoU ≥ 0.5 for 3 of 3 actions on samples with ground truth
    assert!(e.contains("Acc_rat 1.000"), "{e}");
    assert!(e.contains("mean zooms 1.00"), "{e}");
    assert!(e.contains("skipped 0 lines"), "{e}");
}

#[test]
fn deepeyes_text_scores_like_structured_rollouts() {
    let ds = hand_dataset();
    let structured = write(ds.path(), "a.jsonl", &VIRL_LINES);
    let lines = deepeyes_lines();
    let text = write(
        ds.path(),
        "b.jsonl",
        &lines.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let (oa, ob) = (ds.path().join("a.out"), ds.path().join("b.out"));
    let a = virl(&[
        "score",
        "--dataset",
        p(ds.path()),
        "--rollouts",
        p(&structured),
        "--out",
        p(&oa),
    ]);
    let b = virl(&[
        "score",
        "--dataset",
        p(ds.path()),
        "--rollouts",
        p(&text),
        "--format",
        "deepeyes",
        "--out",
        p(&ob),
    ]);
    assert!(
        a.status.success() && b.status.success(),
        "{}{}",
        stderr(&a),
        stderr(&b)
    );
    assert_eq!(read_jsonl(&oa), read_jsonl(&ob));
}

#[test]
fn malformed_deepeyes_calls_are_reported_per_line() {
    let ds = hand_dataset();
    let mut lines = deepeyes_lines();
    lines[1] = serde_json::json!({"sample": "s1", "output": "<tool_call>{\"name\": \"image_zoom_in_tool\", \"arguments\": {\"bbox_2d\": [10, 10, 30]}}</tool_call><answer>5</answer>"}).to_string();
    lines.push(
        serde_json::json!({"sample": "s1", "output": "<tool_call>{oops</tool_call> no answer"})
            .to_string(),
    );
    let rollouts = write(
        ds.path(),
        "r.jsonl",
        &lines.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let out = ds.path().join("s.jsonl");
    let o = virl(&[
        "score",
        "--dataset",
        p(ds.path()),
        "--rollouts",
        p(&rollouts),
        "--format",
        "deepeyes",
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = read_jsonl(&out);
    assert_eq!(rows.len(), 5);
    // The bad call is dropped (no zoom left: R_rat = −1) and R_fmt = −1 costs λ_fmt = 0.2.
    close(f(&rows[1]["rewards"]["fmt"]), -1.0);
    close(f(&rows[1]["rewards"]["total"]), -0.5 - 0.2);
    assert_eq!(rows[1]["actions"].as_array().map(Vec::len), Some(0));
    close(f(&rows[4]["rewards"]["fmt"]), -1.0);
    let e = stderr(&o);
    assert!(e.contains("R_fmt = -1 on 2 lines"), "{e}");
    assert!(
        e.contains("line 2: tool call 1: bbox_2d: expected 4 numbers"),
        "{e}"
    );
    assert!(e.contains("line 5: tool call 1: invalid JSON"), "{e}");
    assert!(e.contains("no <answer>"), "{e}");
}

#[test]
fn verl_dump_with_id_key() {
    let ds = hand_dataset();
    let lines: Vec<String> = [("<answer>4</answer>", 1), ("<answer>3</answer>", 1), ("<answer>4</answer>", 2)]
        .iter()
        .map(|(out, step)| {
            serde_json::json!({"input": "<image>What digit?", "output": out, "gts": "4", "score": 1.0, "step": step, "extra_info": {"id": "s1"}, "acc": true}).to_string()
        })
        .collect();
    let rollouts = write(
        ds.path(),
        "dump.jsonl",
        &lines.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let out = ds.path().join("s.jsonl");
    let o = virl(&[
        "score",
        "--dataset",
        p(ds.path()),
        "--rollouts",
        p(&rollouts),
        "--format",
        "verl",
        "--id-key",
        "extra_info.id",
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = read_jsonl(&out);
    assert_eq!(
        rows.iter()
            .map(|r| r["group"].as_str().expect("group"))
            .collect::<Vec<_>>(),
        vec!["s1@step1", "s1@step1", "s1@step2"]
    );
    assert!(stderr(&o).contains("in 2 groups"));
    // Without --id-key every line is skipped, with the reason, and the command fails.
    let o = virl(&[
        "score",
        "--dataset",
        p(ds.path()),
        "--rollouts",
        p(&rollouts),
        "--format",
        "verl",
        "--out",
        p(&out),
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("line 1: --format verl needs --id-key"), "{e}");
    assert!(e.contains("no line of"), "{e}");
}

#[test]
fn every_constant_is_a_flag_and_mode_matters() {
    let ds = hand_dataset();
    let rollouts = write(ds.path(), "r.jsonl", &VIRL_LINES);
    let out = ds.path().join("s.jsonl");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "score",
            "--dataset",
            p(ds.path()),
            "--rollouts",
            p(&rollouts),
            "--out",
            p(&out),
        ];
        args.extend_from_slice(extra);
        let o = virl(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        read_jsonl(&out)
    };
    // outcome: λ_rat = 0 and m = 1 everywhere
    let rows = run(&["--mode", "outcome"]);
    close(f(&rows[0]["rewards"]["total"]), 1.0);
    close(f(&rows[0]["actions"][0]["modulator"]), 1.0);
    // a higher h0 turns the IoU 0.5 zoom into a miss: σ = −1
    let rows = run(&["--h0", "0.6"]);
    assert_eq!(rows[1]["actions"][0]["sigma"], -1);
    // r_none takes negative values
    let rows = run(&["--r-none", "-2.5"]);
    close(f(&rows[2]["rewards"]["rat"]), -2.5);
    let rows = run(&[
        "--eps-ref",
        "0.1",
        "--tau-dup",
        "0.4",
        "--w-s",
        "1",
        "--w-b",
        "0",
        "--rho",
        "0.3",
        "--w-c",
        "0",
        "--lambda-rat",
        "1",
        "--lambda-fmt",
        "0",
        "--h-good",
        "0.9",
        "--h-bad",
        "0.2",
        "--alpha",
        "0.25",
        "--adv-eps",
        "0",
    ]);
    // τ_dup 0.4: zoom 2 duplicates zoom 1 (IoU 0.5) → redundant, f = 1 − 0.3
    assert_eq!(rows[1]["actions"][1]["redundant"], true);
    close(f(&rows[1]["actions"][1]["fidelity"]), 0.7);
    close(f(&rows[1]["actions"][1]["quality"]), -1.0);
    // bad combinations are refused
    let o = virl(&[
        "score",
        "--dataset",
        p(ds.path()),
        "--rollouts",
        p(&rollouts),
        "--out",
        p(&out),
        "--h-good",
        "0.1",
        "--h-bad",
        "0.5",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("h_good (0.1) must be greater than h_bad (0.5)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn score_bad_inputs_are_clear_errors() {
    let ds = hand_dataset();
    let rollouts = write(ds.path(), "r.jsonl", &VIRL_LINES);
    let out = ds.path().join("s.jsonl");
    // missing dataset
    let o = virl(&[
        "score",
        "--dataset",
        "/no/such/dataset",
        "--rollouts",
        p(&rollouts),
        "--out",
        p(&out),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no dataset here (expected a folder holding manifest.jsonl, or a manifest file), in /no/such/dataset"), "{}", stderr(&o));
    // missing rollouts
    let o = virl(&[
        "score",
        "--dataset",
        p(ds.path()),
        "--rollouts",
        "/no/such/rollouts.jsonl",
        "--out",
        p(&out),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/no/such/rollouts.jsonl"),
        "{}",
        stderr(&o)
    );
    // a corrupt dataset names file, line and field, and the output is not written
    let bad = tempfile::tempdir().expect("tempdir");
    fs::write(
        bad.path().join("manifest.jsonl"),
        "{\"id\": \"x\", \"image\": \"x.png\"}\n",
    )
    .expect("write");
    let o = virl(&[
        "score",
        "--dataset",
        p(bad.path()),
        "--rollouts",
        p(&rollouts),
        "--out",
        p(&out),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("line 1, field `width`: missing"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
    // bad lines are skipped with their reasons; good ones are scored
    let mixed = write(
        ds.path(),
        "m.jsonl",
        &[
            VIRL_LINES[0],
            "{\"sample\": \"nope\", \"zooms\": []}",
            "{\"sample\": \"s1\", \"zooms\": [[1, 2, 3]]}",
            "{\"sample\": \"s1\", \"zooms\": [[5, 5, 1, 1]]}",
            "{\"zooms\": []}",
            "{\"sample\": \"s1\", \"zooms\": [[1, 2, 3, 4]], \"answer\": [4]}",
            "{\"sample\": \"s1\", \"zooms\"",
        ],
    );
    let o = virl(&[
        "score",
        "--dataset",
        p(ds.path()),
        "--rollouts",
        p(&mixed),
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    for needle in [
        "skipped 6 lines",
        "line 2: sample \"nope\" is not in the dataset",
        "line 3: zooms[0]: expected 4 numbers",
        "line 4: zooms[0]: degenerate box",
        "line 5: no sample id under key `sample`",
        "line 6: `answer` must be a string",
        "line 7: not valid JSON",
    ] {
        assert!(e.contains(needle), "{needle:?} not in {e}");
    }
    assert_eq!(read_jsonl(&out).len(), 1);
}
