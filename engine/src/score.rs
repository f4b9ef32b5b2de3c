//! Scoring trajectories: the one place where rewards (§4) and credit (§5)
//! are put together. The trainer scores its own rollouts with
//! [`score_trajectory`] and [`assign_credit`]; `virl score` runs the same
//! functions over rollouts produced elsewhere (our JSONL, DeepEyes text,
//! verl rollout dumps), so the formulas can be checked from outside.

use crate::credit::{ActionCredit, action_credit, group_advantages};
use crate::dataset::{Dataset, Sample};
use crate::geometry::BBox;
use crate::reward::{
    ActionScore, RewardConfig, Rewards, answer_correct, score_rationale, total_reward,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// One scored zoom action: its rationale score (`bbox`, `iou`, `gt`,
/// `sigma`, `beta`, `redundant`, `fidelity`) and its credit (`quality`,
/// `modulator`, `advantage`), written as one flat JSON object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoredAction {
    /// The rationale score (DESIGN §4).
    #[serde(flatten)]
    pub score: ActionScore,
    /// The credit (DESIGN §5).
    #[serde(flatten)]
    pub credit: ActionCredit,
}

/// One scored trajectory: the line `virl score` writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoredTrajectory {
    /// The sample id.
    pub sample: String,
    /// The GRPO group key (default: the sample id).
    pub group: String,
    /// `R_ans`, `R_rat`, `R_fmt` and the total.
    pub rewards: Rewards,
    /// Rationale coverage `C` at `h0` (`null` when M = 0).
    pub coverage: Option<f64>,
    /// The trajectory advantage `A_i` (the answer action's advantage).
    pub advantage: f64,
    /// The zoom actions, in order.
    pub actions: Vec<ScoredAction>,
    /// Facts the metrics need that are not part of the output line.
    #[serde(skip)]
    pub facts: TrajectoryFacts,
}

/// What the metrics of DESIGN §6 need beyond the output fields.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrajectoryFacts {
    /// Whether an answer was given (not cut off at `max_rounds`).
    pub answered: bool,
    /// Whether the episode hit `max_rounds` zooms without answering.
    pub hit_max_rounds: bool,
    /// For each ground-truth box, the best IoU any zoom reached (length M).
    pub gt_best_iou: Vec<f64>,
}

/// A trajectory to score.
#[derive(Clone, Copy, Debug)]
pub struct TrajectoryInput<'a> {
    /// The sample it answers.
    pub sample: &'a Sample,
    /// Group key for the advantage (usually the sample id).
    pub group: &'a str,
    /// The zoom boxes, in pixels of the original image, in order.
    pub zooms: &'a [BBox],
    /// The answer, or `None` if none was given.
    pub answer: Option<&'a str>,
    /// Whether the output was well-formed (`R_fmt = 0`) or not (`R_fmt = −1`).
    pub format_ok: bool,
    /// Whether the episode was cut off at `max_rounds`.
    pub hit_max_rounds: bool,
}

/// Scores one trajectory's rewards (DESIGN §4). Its advantage and the
/// per-action credit are set by [`assign_credit`] once its group is known;
/// until then `A_i = 0`, `m_k = 1`.
pub fn score_trajectory(t: &TrajectoryInput, cfg: &RewardConfig) -> ScoredTrajectory {
    let s = t.sample;
    let gts = s.gt_boxes();
    let rat = score_rationale(t.zooms, &gts, s.width as f64, s.height as f64, cfg);
    let ans = match t.answer {
        Some(a) if !t.hit_max_rounds && answer_correct(a, &s.answer, &s.options) => 1.0,
        _ => 0.0,
    };
    let fmt = if t.format_ok { 0.0 } else { -1.0 };
    let gt_best_iou = gts
        .iter()
        .map(|g| {
            rat.actions
                .iter()
                .filter_map(|a| a.bbox.map(|b| b.iou(g)))
                .fold(0.0, f64::max)
        })
        .collect();
    ScoredTrajectory {
        sample: s.id.clone(),
        group: t.group.to_string(),
        rewards: total_reward(ans, rat.r_rat, fmt, cfg),
        coverage: rat.coverage,
        advantage: 0.0,
        actions: rat
            .actions
            .into_iter()
            .map(|score| ScoredAction {
                score,
                credit: ActionCredit {
                    quality: 0.0,
                    modulator: 1.0,
                    advantage: 0.0,
                },
            })
            .collect(),
        facts: TrajectoryFacts {
            answered: t.answer.is_some() && !t.hit_max_rounds,
            hit_max_rounds: t.hit_max_rounds,
            gt_best_iou,
        },
    }
}

/// Groups trajectories by their `group` key (across the whole slice, in any
/// order), computes each group's advantages `A_i` (DESIGN §5) and every zoom
/// action's `q_k`, `m_k`, `Â_k`. Returns the number of groups.
pub fn assign_credit(trajs: &mut [ScoredTrajectory], cfg: &RewardConfig) -> usize {
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, t) in trajs.iter().enumerate() {
        groups.entry(t.group.as_str()).or_default().push(i);
    }
    let groups: Vec<Vec<usize>> = groups.into_values().collect();
    for members in &groups {
        let rewards: Vec<f64> = members.iter().map(|&i| trajs[i].rewards.total).collect();
        let adv = group_advantages(&rewards, cfg.adv_eps);
        for (&i, a) in members.iter().zip(adv) {
            let t = &mut trajs[i];
            t.advantage = a;
            let credit = action_credit(
                t.actions.iter().map(|x| (x.score.iou, x.score.redundant)),
                a,
                cfg,
            );
            for (x, c) in t.actions.iter_mut().zip(credit) {
                x.credit = c;
            }
        }
    }
    groups.len()
}

/// The input formats of `virl score`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RolloutFormat {
    /// `{"sample", "group"?, "zooms": [[x1,y1,x2,y2], …], "answer",
    /// "truncated"?, "format_errors"?}`.
    #[default]
    Virl,
    /// `{"sample", "group"?, "output": "<model text>"}` with DeepEyes tool calls.
    Deepeyes,
    /// verl rollout dumps: `{"input", "output", "gts", "score", "step", …}`.
    Verl,
}

impl FromStr for RolloutFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "virl" => Ok(Self::Virl),
            "deepeyes" => Ok(Self::Deepeyes),
            "verl" => Ok(Self::Verl),
            o => Err(format!(
                "unknown rollout format `{o}` (expected virl, deepeyes or verl)"
            )),
        }
    }
}

impl fmt::Display for RolloutFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Virl => "virl",
            Self::Deepeyes => "deepeyes",
            Self::Verl => "verl",
        })
    }
}

/// The zooms, answer and format problems read from a model's text output.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedOutput {
    /// Boxes of the well-formed `image_zoom_in_tool` calls, in order.
    pub zooms: Vec<BBox>,
    /// The text inside the last `<answer>…</answer>`, trimmed.
    pub answer: Option<String>,
    /// Every format problem found (empty: `R_fmt = 0`).
    pub errors: Vec<String>,
}

/// The name of the zoom tool in DeepEyes-style tool calls.
pub const ZOOM_TOOL: &str = "image_zoom_in_tool";

/// Reads a DeepEyes / ViRL style model output:
/// `<think>…</think>` then tool calls
/// `<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [x1, y1, x2, y2]}}</tool_call>`
/// (boxes in original-image pixels) and finally `<answer>…</answer>`.
///
/// Never fails: each problem (unclosed or stray tags, invalid JSON, another
/// tool's name, a `bbox_2d` that is not four finite numbers with
/// `x2 > x1, y2 > y1`, no or several answers, unbalanced `<think>`) is
/// recorded in `errors` and the offending call is left out of `zooms`.
///
/// ```
/// use virl_engine::score::parse_model_output;
/// let p = parse_model_output(r#"<think>the red one</think><tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [10, 20, 50, 60]}}</tool_call><answer>7</answer>"#);
/// assert_eq!(p.zooms.len(), 1);
/// assert_eq!(p.answer.as_deref(), Some("7"));
/// assert!(p.errors.is_empty());
/// ```
pub fn parse_model_output(text: &str) -> ParsedOutput {
    let mut out = ParsedOutput::default();
    let (open, close) = ("<tool_call>", "</tool_call>");
    let mut rest = text;
    let mut n = 0;
    loop {
        let next_open = rest.find(open);
        let next_close = rest.find(close);
        match (next_open, next_close) {
            (None, None) => break,
            (None, Some(_)) => {
                out.errors
                    .push("a </tool_call> without its <tool_call>".into());
                break;
            }
            (Some(o), Some(c)) if c < o => {
                out.errors
                    .push("a </tool_call> without its <tool_call>".into());
                rest = &rest[c + close.len()..];
            }
            (Some(o), c) => {
                n += 1;
                let body_start = o + open.len();
                let Some(c) = c else {
                    out.errors
                        .push(format!("tool call {n}: <tool_call> is never closed"));
                    break;
                };
                let body = rest[body_start..c].trim();
                if body.contains(open) {
                    out.errors.push(format!(
                        "tool call {n}: <tool_call> is opened twice before </tool_call>"
                    ));
                } else {
                    match parse_zoom_call(body) {
                        Ok(b) => out.zooms.push(b),
                        Err(e) => out.errors.push(format!("tool call {n}: {e}")),
                    }
                }
                rest = &rest[c + close.len()..];
            }
        }
    }
    let answers: Vec<&str> = text
        .match_indices("<answer>")
        .filter_map(|(i, _)| {
            let after = &text[i + "<answer>".len()..];
            after.find("</answer>").map(|j| after[..j].trim())
        })
        .collect();
    let opens = text.matches("<answer>").count();
    let closes = text.matches("</answer>").count();
    if opens != closes {
        out.errors
            .push(format!("{opens} <answer> tags but {closes} </answer> tags"));
    }
    match answers.len() {
        0 => out.errors.push("no <answer>…</answer>".into()),
        1 => {}
        k => out
            .errors
            .push(format!("{k} answers given; the last one is scored")),
    }
    out.answer = answers.last().map(|a| a.to_string());
    let (to, tc) = (
        text.matches("<think>").count(),
        text.matches("</think>").count(),
    );
    if to != tc {
        out.errors
            .push(format!("{to} <think> tags but {tc} </think> tags"));
    }
    out
}

/// Reads the JSON body of one `<tool_call>`: the zoom box, or why not.
pub fn parse_zoom_call(body: &str) -> Result<BBox, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("invalid JSON ({e})"))?;
    let name = v.get("name").and_then(Value::as_str).ok_or("no \"name\"")?;
    if name != ZOOM_TOOL {
        return Err(format!("unknown tool {name:?} (expected {ZOOM_TOOL:?})"));
    }
    let args = v.get("arguments").ok_or("no \"arguments\"")?;
    // Some models emit the arguments as a JSON string.
    let args = match args {
        Value::String(s) => serde_json::from_str::<Value>(s)
            .map_err(|e| format!("arguments are a string that is not JSON ({e})"))?,
        other => other.clone(),
    };
    let b = args
        .get("bbox_2d")
        .ok_or("no \"bbox_2d\" in the arguments")?;
    parse_box(b).map_err(|e| format!("bbox_2d: {e}"))
}

/// A box from a JSON array of four finite numbers with `x2 > x1`, `y2 > y1`.
fn parse_box(v: &Value) -> Result<BBox, String> {
    let a = v
        .as_array()
        .ok_or_else(|| format!("expected [x1, y1, x2, y2], found {v}"))?;
    if a.len() != 4 {
        return Err(format!("expected 4 numbers, found {}", a.len()));
    }
    let mut c = [0.0; 4];
    for (i, x) in a.iter().enumerate() {
        c[i] = x
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(|| format!("coordinate {i} is {x}, not a finite number"))?;
    }
    let b = BBox::from(c);
    if b.x2 <= b.x1 || b.y2 <= b.y1 {
        return Err(format!(
            "degenerate box {c:?} (x2 must be > x1 and y2 > y1)"
        ));
    }
    Ok(b)
}

/// One rollout line as read, before scoring.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutLine {
    /// 1-based line number in the input file.
    pub line: usize,
    /// The sample id.
    pub sample: String,
    /// The group key.
    pub group: String,
    /// The zoom boxes.
    pub zooms: Vec<BBox>,
    /// The answer, if any.
    pub answer: Option<String>,
    /// Format problems (empty: `R_fmt = 0`).
    pub format_errors: Vec<String>,
    /// Whether the rollout was cut off at `max_rounds` (our format's optional
    /// `"truncated": true`).
    pub truncated: bool,
}

/// Looks up a dotted key path (`extra_info.index`) in a JSON object.
fn lookup<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    if let Some(x) = v.get(path) {
        return Some(x);
    }
    path.split('.').try_fold(v, |cur, k| cur.get(k))
}

fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses one input line. `Err` is the reason to skip the line.
pub fn parse_rollout_line(
    format: RolloutFormat,
    text: &str,
    line: usize,
    id_key: Option<&str>,
) -> Result<RolloutLine, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e})"))?;
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
            let zooms = match v.get("zooms") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a
                    .iter()
                    .enumerate()
                    .map(|(i, b)| parse_box(b).map_err(|e| format!("zooms[{i}]: {e}")))
                    .collect::<Result<_, _>>()?,
                Some(o) => return Err(format!("`zooms` must be an array of boxes, found {o}")),
            };
            let answer = match v.get("answer") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(o) => return Err(format!("`answer` must be a string, found {o}")),
            };
            let truncated = v.get("truncated").and_then(Value::as_bool).unwrap_or(false);
            // Written by `virl rollout` for a VLM's malformed turns.
            let format_errors = match v.get("format_errors") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|e| {
                        e.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| e.to_string())
                    })
                    .collect(),
                Some(o) => {
                    return Err(format!(
                        "`format_errors` must be an array of strings, found {o}"
                    ));
                }
            };
            Ok(RolloutLine {
                line,
                sample,
                group,
                zooms,
                answer,
                format_errors,
                truncated,
            })
        }
        RolloutFormat::Deepeyes | RolloutFormat::Verl => {
            let text = v
                .get("output")
                .and_then(Value::as_str)
                .ok_or("no string `output` (the model's text)")?;
            let p = parse_model_output(text);
            Ok(RolloutLine {
                line,
                sample,
                group,
                zooms: p.zooms,
                answer: p.answer,
                format_errors: p.errors,
                truncated: false,
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
    pub trajectories: Vec<ScoredTrajectory>,
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
    let mut parsed = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
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
        match parse_rollout_line(format, text, line, id_key) {
            Ok(r) if dataset.get(&r.sample).is_none() => report.skipped.push(Skipped {
                line,
                reason: format!("sample {:?} is not in the dataset", r.sample),
            }),
            Ok(r) => parsed.push(r),
            Err(reason) => report.skipped.push(Skipped { line, reason }),
        }
    }
    for r in &parsed {
        let Some(sample) = dataset.get(&r.sample) else {
            continue;
        };
        report.trajectories.push(score_trajectory(
            &TrajectoryInput {
                sample,
                group: &r.group,
                zooms: &r.zooms,
                answer: r.answer.as_deref(),
                format_ok: r.format_errors.is_empty(),
                hit_max_rounds: r.truncated,
            },
            cfg,
        ));
        report.lines.push(r.line);
        if !r.format_errors.is_empty() {
            report.format_errors.push((r.line, r.format_errors.clone()));
        }
    }
    report.groups = assign_credit(&mut report.trajectories, cfg);
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Rationale;

    fn sample(id: &str, gts: &[BBox]) -> Sample {
        Sample {
            id: id.into(),
            image: format!("{id}.png"),
            width: 100,
            height: 100,
            question: "What digit is on the red placard?".into(),
            answer: "7".into(),
            options: vec![],
            rationales: gts
                .iter()
                .map(|&bbox| Rationale {
                    bbox,
                    label: String::new(),
                })
                .collect(),
            meta: None,
            extra: Default::default(),
        }
    }

    fn call(b: [f64; 4]) -> String {
        format!(
            r#"<tool_call>{{"name": "image_zoom_in_tool", "arguments": {{"bbox_2d": [{}, {}, {}, {}]}}}}</tool_call>"#,
            b[0], b[1], b[2], b[3]
        )
    }

    #[test]
    fn malformed_outputs_are_flagged_not_fatal() {
        let cases = [
            (
                "<tool_call>{not json}</tool_call><answer>7</answer>",
                "invalid JSON",
            ),
            (
                r#"<tool_call>{"name": "crop", "arguments": {"bbox_2d": [1,2,3,4]}}</tool_call><answer>7</answer>"#,
                "unknown tool",
            ),
            (
                r#"<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1,2,3]}}</tool_call><answer>7</answer>"#,
                "expected 4",
            ),
            (
                r#"<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [5,2,3,4]}}</tool_call><answer>7</answer>"#,
                "degenerate",
            ),
            (
                r#"<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1,"a",3,4]}}</tool_call><answer>7</answer>"#,
                "not a finite",
            ),
            (
                r#"<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1,2,3,4]}}<answer>7</answer>"#,
                "never closed",
            ),
            ("</tool_call><answer>7</answer>", "without its"),
            ("the answer is 7", "no <answer>"),
            ("<answer>7", "no <answer>"),
            ("<answer>6</answer><answer>7</answer>", "2 answers"),
            ("<think>hmm<answer>7</answer>", "<think>"),
        ];
        for (text, want) in cases {
            let p = parse_model_output(text);
            assert!(
                p.errors.iter().any(|e| e.contains(want)),
                "{text:?}: {:?} lacks {want:?}",
                p.errors
            );
            assert!(p.zooms.is_empty());
        }
        // the last answer is the one scored
        assert_eq!(
            parse_model_output("<answer>6</answer><answer>7</answer>")
                .answer
                .as_deref(),
            Some("7")
        );
        // arguments given as a JSON string are accepted
        let p = parse_model_output(
            r#"<tool_call>{"name": "image_zoom_in_tool", "arguments": "{\"bbox_2d\": [1,2,3,4]}"}</tool_call><answer>7</answer>"#,
        );
        assert_eq!((p.zooms.len(), p.errors.len()), (1, 0));
    }

    #[test]
    fn good_calls_survive_a_bad_one() {
        let text = format!(
            "<think>x</think>{}<tool_call>oops</tool_call>{}<answer>7</answer>",
            call([0.0, 0.0, 10.0, 10.0]),
            call([5.0, 5.0, 9.0, 9.0])
        );
        let p = parse_model_output(&text);
        assert_eq!(
            p.zooms,
            vec![
                BBox::new(0.0, 0.0, 10.0, 10.0),
                BBox::new(5.0, 5.0, 9.0, 9.0)
            ]
        );
        assert_eq!(p.errors.len(), 1);
        assert!(p.errors[0].starts_with("tool call 2"));
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
        let json = serde_json::to_value(t2).expect("json");
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
    fn truncated_trajectory_gets_no_answer_reward() {
        let s = sample("a", &[BBox::new(0.0, 0.0, 10.0, 10.0)]);
        let t = score_trajectory(
            &TrajectoryInput {
                sample: &s,
                group: "a",
                zooms: &[],
                answer: Some("7"),
                format_ok: true,
                hit_max_rounds: true,
            },
            &RewardConfig::default(),
        );
        assert_eq!(t.rewards.ans, 0.0);
        assert!(t.facts.hit_max_rounds && !t.facts.answered);
    }
}
