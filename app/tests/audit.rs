//! `virl audit` end to end: on a hand-made rollout file whose categories
//! were counted by hand (DeepEyes text, K = 2, a masked control), and on a
//! tiny random Qwen2.5-VL run in the engine.

use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

fn virl(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_virl"))
        .args(args)
        .output()
        .expect("run virl");
    assert!(
        out.status.success(),
        "virl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn dataset(dir: &Path) -> Vec<Value> {
    let d = dir.join("data");
    virl(&[
        "synth",
        "--out",
        d.to_str().expect("audit test"),
        "--n",
        "4",
        "--canvas",
        "256",
    ]);
    std::fs::read_to_string(d.join("manifest.jsonl"))
        .expect("manifest")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn call(b: &[f64]) -> String {
    format!(
        "<tool_call>{{\"name\": \"image_zoom_in_tool\", \"arguments\": {{\"bbox_2d\": {b:?}}}}}</tool_call>"
    )
}

#[test]
fn hand_counted_rollouts_fall_in_their_categories() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = dataset(tmp.path());
    let id = |i: usize| s[i]["id"].as_str().expect("audit test").to_string();
    let ans = |i: usize| s[i]["answer"].as_str().expect("audit test").to_string();
    let gt = |i: usize| -> Vec<f64> {
        serde_json::from_value(s[i]["rationales"][0]["bbox"].clone()).expect("audit test")
    };
    let far = [200.0, 0.0, 256.0, 30.0];
    // (sample, zoom, right?) -> category, counted by hand:
    let lines = [
        (0, Some(gt(0)), true),         // right_on
        (0, None, false),               // wrong_none
        (1, Some(far.to_vec()), true),  // right_off
        (1, Some(far.to_vec()), false), // wrong_off
        (2, None, true),                // right_none
        (3, Some(gt(3)), false),        // wrong_on
    ];
    let text = |zoom: &Option<Vec<f64>>, right: bool, i: usize| {
        let a = if right { ans(i) } else { "nonsense".into() };
        format!(
            "<think>look</think>{}<answer>{a}</answer>",
            zoom.as_deref().map(call).unwrap_or_default()
        )
    };
    let roll: String = lines
        .iter()
        .map(|(i, z, r)| json!({"sample": id(*i), "output": text(z, *r, *i)}).to_string() + "\n")
        .collect();
    // Masked control: sample 0 stays right, 1 turns wrong, 2 stays right.
    let masked: String = [(0, true), (1, false), (2, true), (3, false)]
        .iter()
        .map(|(i, r)| json!({"sample": id(*i), "output": text(&None, *r, *i)}).to_string() + "\n")
        .collect();
    let (rf, mf) = (tmp.path().join("r.jsonl"), tmp.path().join("m.jsonl"));
    std::fs::write(&rf, roll).expect("audit test");
    std::fs::write(&mf, masked).expect("audit test");
    let out = tmp.path().join("audit");
    virl(&[
        "audit",
        "--dataset",
        tmp.path().join("data").to_str().expect("audit test"),
        "--rollouts",
        rf.to_str().expect("audit test"),
        "--dialect",
        "deepeyes",
        "--masked-rollouts",
        mf.to_str().expect("audit test"),
        "--out",
        out.to_str().expect("audit test"),
    ]);
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("audit.json")).expect("audit test"))
            .expect("audit test");
    for c in [
        "right_on",
        "right_off",
        "right_none",
        "wrong_on",
        "wrong_off",
        "wrong_none",
    ] {
        assert_eq!(r["categories"][c]["count"], 1, "{c}: {}", r["categories"]);
        assert_eq!(r["categories"][c]["of"], 6);
    }
    assert_eq!(r["members"]["right_off"], json!([format!("{}#0", id(1))]));
    assert_eq!(r["members"]["wrong_none"], json!([format!("{}#1", id(0))]));
    assert_eq!(
        (r["acc_ans"]["count"].clone(), r["k"].clone()),
        (json!(3), json!(2))
    );
    // pass@2: samples 0, 1, 2 have a right answer among their two.
    assert_eq!(r["pass_at_k"]["count"], 3);
    // First rollouts right: 0, 1, 2; under the mask 0 and 2 stay right.
    let c = &r["controls"][0];
    assert_eq!(c["name"], "masked");
    assert_eq!(
        (c["survive"]["count"].clone(), c["survive"]["of"].clone()),
        (json!(2), json!(3))
    );
    let ci = c["survive"]["ci95"].as_array().expect("audit test");
    assert!(
        ci[0].as_f64().expect("audit test") < 2.0 / 3.0
            && ci[1].as_f64().expect("audit test") > 2.0 / 3.0
    );
    assert!(
        std::fs::read_to_string(out.join("audit.md"))
            .expect("audit test")
            .contains("`right_off` (illusion) | 1 |")
    );
    assert!(
        std::fs::read_to_string(out.join("categories.svg"))
            .expect("audit test")
            .starts_with("<svg")
    );
    assert!(out.join("session").join("session.toml").exists());
}

#[test]
fn a_tiny_qwen25_vl_is_audited_in_the_engine_with_both_controls() {
    let tmp = tempfile::tempdir().expect("tmp");
    dataset(tmp.path());
    let m = tmp.path().join("q25");
    virl(&[
        "vlm",
        "init",
        "--preset",
        "qwen2.5-tiny",
        "--out",
        m.to_str().expect("audit test"),
    ]);
    let out = tmp.path().join("audit");
    virl(&[
        "audit",
        "--dataset",
        tmp.path().join("data").to_str().expect("audit test"),
        "--model",
        m.to_str().expect("audit test"),
        "--n",
        "2",
        "--max-rounds",
        "2",
        "--max-turn-tokens",
        "16",
        "--max-pixels",
        "65536",
        "--blank",
        "--out",
        out.to_str().expect("audit test"),
    ]);
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("audit.json")).expect("audit test"))
            .expect("audit test");
    assert_eq!(r["trajectories"], 2);
    let total: u64 = r["categories"]
        .as_object()
        .expect("audit test")
        .values()
        .map(|s| s["count"].as_u64().expect("audit test"))
        .sum();
    assert_eq!(total, 2, "every trajectory falls in exactly one category");
    let names: Vec<&str> = r["controls"]
        .as_array()
        .expect("audit test")
        .iter()
        .map(|c| c["name"].as_str().expect("audit test"))
        .collect();
    assert_eq!(names, ["masked", "blank"]);
    // A dialect the engine cannot run says what to do instead.
    let e = Command::new(env!("CARGO_BIN_EXE_virl"))
        .args([
            "audit",
            "--dataset",
            tmp.path().join("data").to_str().expect("audit test"),
            "--model",
            m.to_str().expect("audit test"),
            "--dialect",
            "mini-o3",
            "--out",
            tmp.path().join("x").to_str().expect("audit test"),
        ])
        .output()
        .expect("audit test");
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("--rollouts FILE --dialect mini-o3"));
}
