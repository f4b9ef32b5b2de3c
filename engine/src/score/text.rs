//! Reading model text: the one tool-call parser. `virl score --format
//! deepeyes|verl` reads whole outputs with [`parse_model_output`]; the VLM
//! driver reads one assistant turn at a time with [`read_turn`]. Both find
//! tool calls with [`scan_tool_calls`] and read each call with
//! [`parse_zoom_call`].

use crate::geometry::BBox;

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

/// What [`scan_calls`] finds, in the order it occurs in the text.
#[derive(Clone, Debug, PartialEq)]
pub enum ScannedOf<T> {
    /// A call (`<tool_call>…</tool_call>`, or a dialect's own tags): what
    /// its body reads as, or the problem with it.
    Call(Result<T, String>),
    /// A tag that belongs to no call (a stray closing tag).
    Stray(String),
}

/// What [`scan_tool_calls`] finds: zoom boxes.
pub type Scanned = ScannedOf<BBox>;

/// The next occurrence of `needle` at or after `from`, found by searches
/// that only move forward: each part of the text is read once, however many
/// times the tag repeats (a policy gone wrong writes megabytes of one tag).
struct Cursor<'a> {
    text: &'a str,
    needle: &'static str,
    /// Where the last search ended: the match, or `None` when there is none at or after `from`.
    next: Option<usize>,
    /// Where that search started.
    from: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str, needle: &'static str) -> Self {
        let next = text.find(needle);
        Self {
            text,
            needle,
            next,
            from: 0,
        }
    }

    /// The first match at or after `pos` (`pos` never decreases between calls).
    fn at_or_after(&mut self, pos: usize) -> Option<usize> {
        debug_assert!(pos >= self.from);
        match self.next {
            Some(n) if n >= pos => Some(n),
            None => None, // nothing after an earlier position, so nothing after this one
            Some(_) => {
                self.from = pos;
                self.next = self
                    .text
                    .get(pos..)
                    .and_then(|r| r.find(self.needle))
                    .map(|i| pos + i);
                self.next
            }
        }
    }
}

/// Every `<tool_call>…</tool_call>` of `text` and every stray tag, in order.
/// Linear in the length of `text`.
pub fn scan_tool_calls(text: &str) -> Vec<Scanned> {
    scan_calls(text, "<tool_call>", "</tool_call>", parse_zoom_call)
}

/// The one tool-call scanner, for every dialect: each `open…close` span of
/// `text` read by `parse`, and every stray `close`, in order. A call opened
/// twice before its close, or never closed, is an error, not a call.
/// Linear in the length of `text` (each tag is found by a search that only
/// moves forward, however many times it repeats).
pub fn scan_calls<T>(
    text: &str,
    open: &'static str,
    close: &'static str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Vec<ScannedOf<T>> {
    let mut opens = Cursor::new(text, open);
    let mut closes = Cursor::new(text, close);
    let mut found = Vec::new();
    let mut pos = 0;
    let stray = || ScannedOf::Stray(format!("a {close} without its {open}"));
    loop {
        let next_open = opens.at_or_after(pos);
        let next_close = closes.at_or_after(pos);
        match (next_open, next_close) {
            (None, None) => break,
            (None, Some(c)) => {
                found.push(stray());
                pos = c + close.len();
            }
            (Some(o), Some(c)) if c < o => {
                found.push(stray());
                pos = c + close.len();
            }
            (Some(o), c) => {
                let body_start = o + open.len();
                let Some(c) = c else {
                    found.push(ScannedOf::Call(Err(format!("{open} is never closed"))));
                    break;
                };
                let reopened = opens.at_or_after(body_start).is_some_and(|o2| o2 < c);
                found.push(ScannedOf::Call(if reopened {
                    Err(format!("{open} is opened twice before {close}"))
                } else {
                    parse(text[body_start..c].trim())
                }));
                pos = c + close.len();
            }
        }
    }
    found
}

/// The closed `<answer>…</answer>` bodies of a text: how many there are, and
/// the first and the last, trimmed. Each `<answer>` is closed by the first
/// `</answer>` after it. Linear in the length of the text.
#[derive(Debug, Default)]
pub(crate) struct Answers<'a> {
    pub(crate) count: usize,
    pub(crate) first: Option<&'a str>,
    pub(crate) last: Option<&'a str>,
}

pub(crate) fn answers(text: &str) -> Answers<'_> {
    const OPEN: &str = "<answer>";
    let mut closes = Cursor::new(text, "</answer>");
    let mut out = Answers::default();
    let mut last_span = None;
    for (i, _) in text.match_indices(OPEN) {
        let start = i + OPEN.len();
        let Some(end) = closes.at_or_after(start) else {
            break; // no later <answer> is closed either
        };
        out.count += 1;
        if out.first.is_none() {
            out.first = Some(text[start..end].trim());
        }
        last_span = Some((start, end));
    }
    // Trimmed once, not once per answer: the bodies of repeated <answer>s overlap.
    out.last = last_span.map(|(s, e)| text[s..e].trim());
    out
}

/// At most this many format problems are listed one by one; the rest are counted.
pub const MAX_LISTED_ERRORS: usize = 20;

/// Appends `e` to `errors`, folding repeats: a problem equal to the one
/// before becomes a count (`… (×N)`), and past [`MAX_LISTED_ERRORS`] the rest
/// are only counted, so megabytes of one bad tag make a short list.
pub(crate) fn push_error(
    errors: &mut Vec<String>,
    repeats: &mut Vec<usize>,
    hidden: &mut usize,
    e: String,
) {
    if let (Some(last), Some(n)) = (errors.last(), repeats.last_mut())
        && *last == e
    {
        *n += 1;
        return;
    }
    if errors.len() >= MAX_LISTED_ERRORS {
        *hidden += 1;
        return;
    }
    errors.push(e);
    repeats.push(1);
}

pub(crate) fn finish_errors(
    mut errors: Vec<String>,
    repeats: Vec<usize>,
    hidden: usize,
) -> Vec<String> {
    for (e, n) in errors.iter_mut().zip(repeats) {
        if n > 1 {
            e.push_str(&format!(" (×{n})"));
        }
    }
    if hidden > 0 {
        errors.push(format!("… and {hidden} more format problems"));
    }
    errors
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
    let p = crate::dialect::parse_output(crate::dialect::Dialect::Virl, text);
    ParsedOutput {
        zooms: p.calls.iter().map(|c| BBox::from(c.coords)).collect(),
        answer: p.answer,
        errors: p.errors,
    }
}

/// The last `<answer>…</answer>` of a whole output and the problems of its
/// answer and `<think>` tags (unbalanced, missing, several answers).
pub(crate) fn answer_problems(text: &str) -> (Option<String>, Vec<String>) {
    let answers = answers(text);
    let opens = text.matches("<answer>").count();
    let closes = text.matches("</answer>").count();
    let mut more = Vec::new();
    if opens != closes {
        more.push(format!("{opens} <answer> tags but {closes} </answer> tags"));
    }
    match answers.count {
        0 => more.push("no <answer>…</answer>".into()),
        1 => {}
        k => more.push(format!("{k} answers given; the last one is scored")),
    }
    let (to, tc) = (
        text.matches("<think>").count(),
        text.matches("</think>").count(),
    );
    if to != tc {
        more.push(format!("{to} <think> tags but {tc} </think> tags"));
    }
    (answers.last.map(str::to_string), more)
}

/// Reads the JSON body of one `<tool_call>`: the zoom box, or why not.
pub fn parse_zoom_call(body: &str) -> Result<BBox, String> {
    crate::dialect::read::parse_call(crate::dialect::Dialect::Virl, body)
        .map(|c| BBox::from(c.coords))
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
    let answer = answers(text).first.map(str::to_string);
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

    /// What a policy gone wrong writes: megabytes of one tag. The results
    /// are what the rules say, and the error list stays short (the time is
    /// measured in BENCHMARKS.md: linear).
    #[test]
    fn degenerate_repetitions_read_right_with_a_short_error_list() {
        let n = 20_000;
        let closes = format!("{}{}", "</tool_call>".repeat(n), call([1.0, 2.0, 3.0, 4.0]));
        let p = parse_model_output(&closes);
        assert_eq!(p.zooms, vec![BBox::new(1.0, 2.0, 3.0, 4.0)]);
        assert_eq!(
            p.errors[0],
            format!("a </tool_call> without its <tool_call> (×{n})")
        );
        assert_eq!(p.errors.len(), 2, "{:?}", p.errors); // the strays, and no answer

        let opens = format!("{}7</answer>", "<answer>".repeat(n));
        let p = parse_model_output(&opens);
        assert_eq!(p.answer.as_deref(), Some("7"));
        assert!(
            p.errors
                .contains(&format!("{n} answers given; the last one is scored"))
        );
        assert!(p.errors.len() <= 3, "{:?}", p.errors);
        let a = answers(&opens);
        assert_eq!((a.count, a.last), (n, Some("7")));
        assert_eq!(a.first.map(str::len), Some("<answer>".len() * (n - 1) + 1));

        let unclosed = "<answer>".repeat(n);
        assert_eq!(parse_model_output(&unclosed).answer, None);

        let calls = "<tool_call>".repeat(n);
        let p = parse_model_output(&calls);
        assert!(p.zooms.is_empty());
        assert_eq!(p.errors[0], "tool call 1: <tool_call> is never closed");
        let p = parse_model_output(&format!("{calls}</tool_call>"));
        assert_eq!(
            p.errors[0],
            "tool call 1: <tool_call> is opened twice before </tool_call>"
        );
        assert_eq!(p.errors.len(), 2, "{:?}", p.errors);

        let bad = "<tool_call>{oops}</tool_call>".repeat(n);
        let p = parse_model_output(&bad);
        assert_eq!(p.errors.len(), MAX_LISTED_ERRORS + 2); // 20 listed, the count, no answer
        assert_eq!(
            p.errors[MAX_LISTED_ERRORS],
            format!("… and {} more format problems", n - MAX_LISTED_ERRORS)
        );
    }
}
