//! The rollout files `virl score` reads: our trajectory JSONL (any layout
//! [`crate::trajectory`] reads, down to `{"sample", "zooms", "answer"}`),
//! DeepEyes-style model text, and verl's rollout dumps; each line becomes a
//! [`Trajectory`], and the file is scored with the one funnel, grouped
//! across the whole file.

use super::{assign_credit, score_trajectory};
use crate::dataset::Dataset;
use crate::dialect::{Dialect, DialectCall, map_calls, parse_output};
use crate::geometry::BBox;
use crate::reward::RewardConfig;
use crate::trajectory::parse::id_string;
use crate::trajectory::{Trajectory, ZoomAction};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// The input formats of `virl score`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RolloutFormat {
    /// Our trajectory records: `{"sample", "group"?, "actions": […]}`, or
    /// the short form `{"sample", "group"?, "zooms": [[x1,y1,x2,y2], …],
    /// "answer", "truncated"?, "format_errors"?}`.
    #[default]
    Virl,
    /// `{"sample", "group"?, "output": "<model text>", "shown"?: [w, h]}`
    /// in a model's dialect (`deepeyes`, `chain-of-focus`, `mini-o3`,
    /// `pixel-reasoner`, `qwen3-vl`, or `virl-text` for ours).
    Text(Dialect),
    /// verl rollout dumps: `{"input", "output", "gts", "score", "step", …}`
    /// (our dialect).
    Verl,
}

impl FromStr for RolloutFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "virl" => Ok(Self::Virl),
            "verl" => Ok(Self::Verl),
            "virl-text" => Ok(Self::Text(Dialect::Virl)),
            o => o.parse::<Dialect>().map(Self::Text).map_err(|_| {
                format!(
                    "unknown rollout format `{o}` (expected virl, verl, virl-text, or a dialect: deepeyes, chain-of-focus, mini-o3, pixel-reasoner, qwen3-vl)"
                )
            }),
        }
    }
}

impl TryFrom<String> for RolloutFormat {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<RolloutFormat> for String {
    fn from(f: RolloutFormat) -> String {
        f.to_string()
    }
}

impl fmt::Display for RolloutFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Virl => f.write_str("virl"),
            Self::Verl => f.write_str("verl"),
            Self::Text(Dialect::Virl) => f.write_str("virl-text"),
            Self::Text(d) => f.write_str(d.name()),
        }
    }
}

/// Looks up a dotted key path (`extra_info.index`) in a JSON object.
fn lookup<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    if let Some(x) = v.get(path) {
        return Some(x);
    }
    path.split('.').try_fold(v, |cur, k| cur.get(k))
}

/// Parses one input line into a trajectory (unscored). `Err` is the reason
/// to skip the line. Boxes of the text formats are as written (see
/// [`score_rollouts`] for the `shown` frame).
pub fn parse_rollout_line(
    format: RolloutFormat,
    text: &str,
    id_key: Option<&str>,
) -> Result<Trajectory, String> {
    parse_line(format, text, id_key).map(|p| {
        let mut t = p.trajectory;
        if let Some((_, calls)) = p.calls {
            t.actions = calls
                .iter()
                .map(|c| {
                    let b = BBox::from(c.coords);
                    ZoomAction::new(b, b, None, None)
                })
                .collect();
        }
        t
    })
}

/// One parsed line: the trajectory, and for the text formats its calls as
/// written (mapped once the sample's size is known) and its `shown` frame.
struct ParsedLine {
    trajectory: Trajectory,
    calls: Option<(Dialect, Vec<DialectCall>)>,
    shown: Option<(f64, f64)>,
}

/// The frame a text-format line's boxes are in: its optional `"shown": [w,
/// h]`, the size the model was shown the image at (e.g. after Qwen's
/// smart_resize); `None` when absent (original pixels).
fn shown_frame(v: &Value) -> Result<Option<(f64, f64)>, String> {
    match v.get("shown") {
        None | Some(Value::Null) => Ok(None),
        Some(s) => {
            let wh: Option<Vec<f64>> = s
                .as_array()
                .filter(|a| a.len() == 2)
                .map(|a| a.iter().filter_map(Value::as_f64).collect());
            match wh.as_deref() {
                Some(&[w, h]) if w.is_finite() && h.is_finite() && w > 0.0 && h > 0.0 => {
                    Ok(Some((w, h)))
                }
                _ => Err(format!(
                    "`shown` must be [width, height] in pixels, found {s}"
                )),
            }
        }
    }
}

/// [`parse_rollout_line`], keeping the text formats' calls unmapped.
fn parse_line(
    format: RolloutFormat,
    text: &str,
    id_key: Option<&str>,
) -> Result<ParsedLine, String> {
    let mut v: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e})"))?;
    if !v.is_object() {
        return Err("not a JSON object".into());
    }
    let key = match format {
        RolloutFormat::Verl => {
            id_key.ok_or("--format verl needs --id-key to find the sample id")?
        }
        _ => id_key.unwrap_or("sample"),
    };
    let sample = lookup(&v, key)
        .and_then(id_string)
        .ok_or_else(|| format!("no sample id under key `{key}`"))?;
    let group = match format {
        // verl dumps one file per run; a GRPO group is one sample at one step.
        RolloutFormat::Verl => match v.get("step") {
            Some(s) if !s.is_null() => format!("{sample}@step{s}"),
            _ => sample.clone(),
        },
        _ => match v.get("group") {
            None | Some(Value::Null) => sample.clone(),
            Some(g) => id_string(g).ok_or("`group` must be a non-empty string or a number")?,
        },
    };
    match format {
        RolloutFormat::Virl => {
            if let Some(o) = v.as_object_mut() {
                o.insert("sample".into(), Value::String(sample));
                o.insert("group".into(), Value::String(group));
            }
            crate::trajectory::read(v).map(|trajectory| ParsedLine {
                trajectory,
                calls: None,
                shown: None,
            })
        }
        RolloutFormat::Text(_) | RolloutFormat::Verl => {
            let dialect = match format {
                RolloutFormat::Text(d) => d,
                _ => Dialect::Virl,
            };
            let text = v
                .get("output")
                .and_then(Value::as_str)
                .ok_or("no string `output` (the model's text)")?;
            let p = parse_output(dialect, text);
            let mut t = Trajectory::new(&sample, &group, 0, "");
            t.answer = p.answer;
            t.format_errors = p.errors;
            // The model's text, so that a session of these (`virl audit`)
            // shows what the model wrote next to its zooms.
            t.transcript = vec![crate::trajectory::Turn::new("assistant", text)];
            Ok(ParsedLine {
                trajectory: t,
                calls: Some((dialect, p.calls)),
                shown: shown_frame(&v)?,
            })
        }
    }
}

/// A line that was not scored, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    /// 1-based line number.
    pub line: usize,
    /// The reason.
    pub reason: String,
}

/// What `virl score` computed from one file.
#[derive(Clone, Debug, Default)]
pub struct ScoreReport {
    /// Scored trajectories, in input order.
    pub trajectories: Vec<Trajectory>,
    /// Input line of each scored trajectory.
    pub lines: Vec<usize>,
    /// Format problems per input line (lines with `R_fmt = −1`).
    pub format_errors: Vec<(usize, Vec<String>)>,
    /// Lines not scored.
    pub skipped: Vec<Skipped>,
    /// Number of GRPO groups.
    pub groups: usize,
}

/// Scores a whole rollout file's text against a dataset: parses every line
/// (skipping, with a reason, lines that are not JSON, lack the sample id, or
/// name a sample the dataset does not have), scores each trajectory and
/// assigns credit by group across the whole file.
pub fn score_rollouts(
    bytes: &[u8],
    format: RolloutFormat,
    id_key: Option<&str>,
    dataset: &Dataset,
    cfg: &RewardConfig,
) -> ScoreReport {
    let mut report = ScoreReport::default();
    for (i, raw) in crate::fsutil::strip_bom(bytes)
        .split(|&b| b == b'\n')
        .enumerate()
    {
        let line = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(text) = std::str::from_utf8(raw) else {
            report.skipped.push(Skipped {
                line,
                reason: "not valid UTF-8".into(),
            });
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        match parse_line(format, text, id_key) {
            Ok(p) => match dataset.get(&p.trajectory.sample) {
                None => report.skipped.push(Skipped {
                    line,
                    reason: format!("sample {:?} is not in the dataset", p.trajectory.sample),
                }),
                Some(sample) => {
                    let mut t = p.trajectory;
                    if let Some((dialect, calls)) = p.calls {
                        // Every box to original pixels, from the dialect's frame.
                        let size = (sample.width as f64, sample.height as f64);
                        match map_calls(dialect, &calls, size, p.shown) {
                            Ok((zooms, problems)) => {
                                t.actions = zooms
                                    .into_iter()
                                    .map(|z| ZoomAction::new(z.proposed, z.executed, None, Some(0)))
                                    .collect();
                                t.format_errors.extend(problems);
                            }
                            Err(reason) => {
                                report.skipped.push(Skipped {
                                    line,
                                    reason: format!("sample {:?}: {reason}", sample.id),
                                });
                                continue;
                            }
                        }
                    }
                    if t.truth.is_empty() {
                        t.truth = sample.answer.clone();
                    }
                    score_trajectory(&mut t, sample, cfg);
                    if !t.format_errors.is_empty() {
                        report.format_errors.push((line, t.format_errors.clone()));
                    }
                    report.trajectories.push(t);
                    report.lines.push(line);
                }
            },
            Err(reason) => report.skipped.push(Skipped { line, reason }),
        }
    }
    report.groups = assign_credit(&mut report.trajectories, cfg);
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BBox;

    fn sample(id: &str, gts: &[BBox]) -> crate::dataset::Sample {
        super::super::test_sample(id, gts)
    }

    #[test]
    fn group_scoring_end_to_end() {
        let g = BBox::new(10.0, 10.0, 20.0, 20.0);
        let ds = Dataset::new("/nowhere", vec![sample("a", &[g]), sample("b", &[])]);
        let input = [
            r#"{"sample": "a", "zooms": [[10, 10, 20, 20]], "answer": "7"}"#,
            r#"{"sample": "a", "zooms": [], "answer": "3"}"#,
            r#"{"sample": "b", "zooms": [[0, 0, 5, 5]], "answer": "7"}"#,
            r#"{"sample": "zzz", "zooms": [], "answer": "7"}"#,
            r#"not json"#,
            r#"{"sample": "a", "zooms": [[1, 2, 3]], "answer": "7"}"#,
        ]
        .join("\n");
        let cfg = RewardConfig::default();
        let r = score_rollouts(input.as_bytes(), RolloutFormat::Virl, None, &ds, &cfg);
        assert_eq!(r.trajectories.len(), 3);
        assert_eq!(r.lines, vec![1, 2, 3]);
        assert_eq!(r.groups, 2);
        assert_eq!(
            r.skipped.iter().map(|s| s.line).collect::<Vec<_>>(),
            vec![4, 5, 6]
        );
        // a: R = 1 + 0.5·1 = 1.5; R = 0 + 0.5·(−1) = −0.5; A = ±1/(√2 + ε)·√2/... : mean 0.5, std √2
        let t0 = &r.trajectories[0];
        assert!((t0.rewards.total - 1.5).abs() < 1e-12);
        assert!((r.trajectories[1].rewards.total + 0.5).abs() < 1e-12);
        let a = 1.0 / (2f64.sqrt() + 1e-6);
        assert!((t0.advantage - a).abs() < 1e-9);
        assert!((r.trajectories[1].advantage + a).abs() < 1e-9);
        // the good zoom gets m = 1.5
        assert!((t0.actions[0].credit.modulator - 1.5).abs() < 1e-12);
        assert!((t0.actions[0].credit.advantage - 1.5 * a).abs() < 1e-9);
        // b: group of one, M = 0
        let t2 = &r.trajectories[2];
        assert_eq!(
            (t2.advantage, t2.coverage, t2.actions[0].score.iou),
            (0.0, None, None)
        );
        let json = serde_json::to_value(t2.score_line()).expect("json");
        assert!(json["coverage"].is_null());
        assert!(json["actions"][0]["iou"].is_null() && json["actions"][0]["sigma"].is_null());
        assert!(json.get("facts").is_none());
    }

    #[test]
    fn verl_lines_group_by_step() {
        let ds = Dataset::new(
            "/nowhere",
            vec![sample("a", &[BBox::new(0.0, 0.0, 10.0, 10.0)])],
        );
        let input = [
            r#"{"input": "q", "output": "<answer>7</answer>", "gts": "7", "score": 1.0, "step": 1, "extra_info": {"index": "a"}}"#,
            r#"{"input": "q", "output": "<answer>3</answer>", "gts": "7", "score": 0.0, "step": 1, "extra_info": {"index": "a"}}"#,
            r#"{"input": "q", "output": "<answer>7</answer>", "gts": "7", "score": 1.0, "step": 2, "extra_info": {"index": "a"}}"#,
        ]
        .join("\n");
        let r = score_rollouts(
            input.as_bytes(),
            RolloutFormat::Verl,
            Some("extra_info.index"),
            &ds,
            &RewardConfig::default(),
        );
        assert_eq!(r.trajectories.len(), 3);
        assert_eq!(r.groups, 2);
        assert_eq!(r.trajectories[0].group, "a@step1");
        assert_eq!(r.trajectories[2].advantage, 0.0);
        let r = score_rollouts(
            input.as_bytes(),
            RolloutFormat::Verl,
            None,
            &ds,
            &RewardConfig::default(),
        );
        assert!(r.skipped[0].reason.contains("--id-key"));
    }

    #[test]
    fn text_boxes_in_the_shown_frame_are_scored_in_original_pixels() {
        // The 100 px sample shown at 50 px: [5, 5, 10, 10] there is the rationale [10, 10, 20, 20].
        let g = BBox::new(10.0, 10.0, 20.0, 20.0);
        let ds = Dataset::new("/nowhere", vec![sample("a", &[g])]);
        let call = r#"<tool_call>{\"name\": \"image_zoom_in_tool\", \"arguments\": {\"bbox_2d\": [5, 5, 10, 10]}}</tool_call><answer>7</answer>"#;
        let input = [
            format!(r#"{{"sample": "a", "output": "{call}", "shown": [50, 50]}}"#),
            format!(r#"{{"sample": "a", "output": "{call}"}}"#),
            format!(r#"{{"sample": "a", "output": "{call}", "shown": [0, 50]}}"#),
            format!(r#"{{"sample": "a", "output": "{call}", "shown": "big"}}"#),
        ]
        .join("\n");
        let r = score_rollouts(
            input.as_bytes(),
            RolloutFormat::Text(Dialect::Deepeyes),
            None,
            &ds,
            &RewardConfig::default(),
        );
        assert_eq!(r.trajectories.len(), 2);
        assert_eq!(r.trajectories[0].actions[0].proposed, g);
        assert_eq!(r.trajectories[0].actions[0].score.iou, Some(1.0));
        assert_eq!(
            r.trajectories[1].actions[0].proposed,
            BBox::new(5.0, 5.0, 10.0, 10.0)
        );
        assert_eq!(
            r.skipped.iter().map(|s| s.line).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert!(
            r.skipped[0]
                .reason
                .contains("`shown` must be [width, height]")
        );
    }

    #[test]
    fn a_text_line_keeps_the_models_text_for_the_studio() {
        let g = BBox::new(10.0, 10.0, 20.0, 20.0);
        let ds = Dataset::new("/nowhere", vec![sample("a", &[g])]);
        let text = "<tool_call>{\"name\": \"image_zoom_in_tool\", \"arguments\": {\"bbox_2d\": [5, 5, 10, 10]}}</tool_call><answer>7</answer>";
        let line =
            serde_json::json!({"sample": "a", "output": text, "shown": [50, 50]}).to_string();
        let r = score_rollouts(
            line.as_bytes(),
            RolloutFormat::Text(Dialect::Deepeyes),
            None,
            &ds,
            &RewardConfig::default(),
        );
        let t = &r.trajectories[0];
        assert_eq!(t.transcript.len(), 1);
        assert_eq!(
            (t.transcript[0].role.as_str(), t.transcript[0].text.as_str()),
            ("assistant", text)
        );
        assert_eq!(t.actions[0].turn, Some(0));
        assert_eq!(
            t.actions[0].proposed, g,
            "[5, 5, 10, 10] shown at 50 x 50 of a 100 x 100 image"
        );
    }
}
