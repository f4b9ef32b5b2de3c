//! Reading model text: the one tool-call parser. `virl score --format
//! deepeyes|verl` reads whole outputs with [`parse_model_output`]; the VLM
//! driver reads one assistant turn at a time with [`read_turn`]. Both find
//! tool calls with [`scan_tool_calls`] and read each call with
//! [`parse_zoom_call`].

use crate::geometry::BBox;
use crate::trajectory::parse::parse_box;
use serde_json::Value;

/// The name of the zoom tool in DeepEyes-style tool calls.
pub const ZOOM_TOOL: &str = "image_zoom_in_tool";

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

/// What [`scan_tool_calls`] finds, in the order it occurs in the text.
#[derive(Clone, Debug, PartialEq)]
pub enum Scanned {
    /// A `<tool_call>`: its box, or the problem with it.
    Call(Result<BBox, String>),
    /// A tag that belongs to no call (a stray `</tool_call>`).
    Stray(String),
}

/// Every `<tool_call>…</tool_call>` of `text` and every stray tag, in order.
pub fn scan_tool_calls(text: &str) -> Vec<Scanned> {
    let (open, close) = ("<tool_call>", "</tool_call>");
    let mut found = Vec::new();
    let mut rest = text;
    loop {
        let next_open = rest.find(open);
        let next_close = rest.find(close);
        match (next_open, next_close) {
            (None, None) => break,
            (None, Some(_)) => {
                found.push(Scanned::Stray(
                    "a </tool_call> without its <tool_call>".into(),
                ));
                break;
            }
            (Some(o), Some(c)) if c < o => {
                found.push(Scanned::Stray(
                    "a </tool_call> without its <tool_call>".into(),
                ));
                rest = &rest[c + close.len()..];
            }
            (Some(o), c) => {
                let body_start = o + open.len();
                let Some(c) = c else {
                    found.push(Scanned::Call(Err("<tool_call> is never closed".into())));
                    break;
                };
                let body = rest[body_start..c].trim();
                found.push(Scanned::Call(if body.contains(open) {
                    Err("<tool_call> is opened twice before </tool_call>".into())
                } else {
                    parse_zoom_call(body)
                }));
                rest = &rest[c + close.len()..];
            }
        }
    }
    found
}

/// The trimmed bodies of every closed `<answer>…</answer>`, in order.
fn answers(text: &str) -> Vec<&str> {
    text.match_indices("<answer>")
        .filter_map(|(i, _)| {
            let after = &text[i + "<answer>".len()..];
            after.find("</answer>").map(|j| after[..j].trim())
        })
        .collect()
}

/// Whether `<think>` and `</think>` are balanced.
fn think_balanced(text: &str) -> bool {
    text.matches("<think>").count() == text.matches("</think>").count()
}

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
    let mut n = 0;
    for found in scan_tool_calls(text) {
        match found {
            Scanned::Call(c) => {
                n += 1;
                match c {
                    Ok(b) => out.zooms.push(b),
                    Err(e) => out.errors.push(format!("tool call {n}: {e}")),
                }
            }
            Scanned::Stray(e) => out.errors.push(e),
        }
    }
    let answers = answers(text);
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
    if !think_balanced(text) {
        let (to, tc) = (
            text.matches("<think>").count(),
            text.matches("</think>").count(),
        );
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

/// What one assistant turn of generated text asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum TurnOutcome {
    /// A final answer.
    Answer(String),
    /// A zoom, in the frame the model writes boxes in.
    Zoom(BBox),
    /// Neither: why.
    Malformed(String),
}

/// Reads one assistant turn. An answer wins over a tool call in the same
/// turn (and the pair is a format error, returned as the second value).
pub fn read_turn(text: &str) -> (TurnOutcome, Option<String>) {
    let answer = answers(text).first().map(|a| a.to_string());
    let calls: Vec<Result<BBox, String>> = scan_tool_calls(text)
        .into_iter()
        .filter_map(|f| match f {
            Scanned::Call(c) => Some(c),
            Scanned::Stray(_) => None,
        })
        .collect();
    let mut extra = (!think_balanced(text)).then(|| "unbalanced <think> tags".to_string());
    if let Some(a) = answer {
        if !calls.is_empty() {
            extra = Some("a tool call and an answer in the same turn".into());
        }
        return (TurnOutcome::Answer(a), extra);
    }
    if text.contains("<answer>") {
        return (
            TurnOutcome::Malformed("<answer> is never closed".into()),
            extra,
        );
    }
    match calls.first() {
        Some(Ok(b)) => {
            if calls.len() > 1 {
                extra = Some(format!(
                    "{} tool calls in one turn; the first was run",
                    calls.len()
                ));
            }
            (TurnOutcome::Zoom(*b), extra)
        }
        Some(Err(e)) => {
            let why = if e.starts_with("<tool_call>") {
                e.to_string()
            } else {
                format!("tool call: {e}")
            };
            (TurnOutcome::Malformed(why), extra)
        }
        None => (
            TurnOutcome::Malformed("neither a tool call nor an <answer>".into()),
            extra,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
