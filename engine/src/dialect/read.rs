//! Reading a model's text in its dialect ([`parse_output`]) and mapping its
//! boxes to original-image pixels ([`map_calls`]): the proposed box (what
//! the rewards score) and the executed crop (what the model saw next, and
//! what a later call's `observation_i` / `target_image` refers to).

use super::{BoxFrame, Dialect};
use crate::geometry::BBox;
use crate::score::text::{ScannedOf, answer_problems, finish_errors, push_error, scan_calls};
use crate::trajectory::parse::parse_box;
use serde_json::Value;

/// One well-formed call as written: its four numbers in the dialect's
/// frame, and the image they refer to (0: the original; `i`: the `i`-th
/// crop the conversation produced).
#[derive(Clone, Debug, PartialEq)]
pub struct DialectCall {
    /// `[x1, y1, x2, y2]` as written.
    pub coords: [f64; 4],
    /// The image the box is in.
    pub source: usize,
}

/// What [`parse_output`] reads.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DialectOutput {
    /// The well-formed calls, in order.
    pub calls: Vec<DialectCall>,
    /// The last answer (`<answer>` or `\boxed{}`), trimmed.
    pub answer: Option<String>,
    /// Every format problem (empty: `R_fmt = 0`), repeats folded.
    pub errors: Vec<String>,
}

/// A call mapped to original-image pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MappedZoom {
    /// The box the model asked for (scored).
    pub proposed: BBox,
    /// The crop it was shown: the box within the image it named (with
    /// Pixel-Reasoner's padding).
    pub executed: BBox,
}

fn arguments(v: &Value) -> Result<Value, String> {
    let args = v.get("arguments").ok_or("no \"arguments\"")?;
    // Some models emit the arguments as a JSON string.
    match args {
        Value::String(s) => serde_json::from_str::<Value>(s)
            .map_err(|e| format!("arguments are a string that is not JSON ({e})")),
        other => Ok(other.clone()),
    }
}

fn coords(args: &Value, whose: &str) -> Result<[f64; 4], String> {
    let b = args
        .get("bbox_2d")
        .ok_or_else(|| format!("no \"bbox_2d\"{whose}"))?;
    parse_box(b)
        .map(|b| b.to_array())
        .map_err(|e| format!("bbox_2d: {e}"))
}

/// Reads one call's body in `dialect`.
pub fn parse_call(dialect: Dialect, body: &str) -> Result<DialectCall, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("invalid JSON ({e})"))?;
    match dialect {
        Dialect::MiniO3 => {
            let c = coords(&v, "")?;
            let source = match v.get("source") {
                None | Some(Value::Null) => 0,
                Some(Value::String(s)) if s == "original_image" => 0,
                Some(Value::String(s)) => s
                    .strip_prefix("observation_")
                    .and_then(|i| i.parse::<usize>().ok())
                    .filter(|&i| i >= 1)
                    .ok_or_else(|| {
                        format!("source {s:?} is neither \"original_image\" nor \"observation_i\"")
                    })?,
                Some(o) => return Err(format!("source must be a string, found {o}")),
            };
            if c.iter().any(|x| !(-1e-6..=1.0 + 1e-6).contains(x)) {
                return Err(format!(
                    "bbox_2d {c:?} is not within 0–1 (Mini-o3 boxes are fractions of the image)"
                ));
            }
            Ok(DialectCall { coords: c, source })
        }
        _ => {
            let want = dialect.tool_name().unwrap_or_default();
            let name = v.get("name").and_then(Value::as_str).ok_or("no \"name\"")?;
            if name != want {
                return Err(format!("unknown tool {name:?} (expected {want:?})"));
            }
            let args = arguments(&v)?;
            let c = coords(&args, " in the arguments")?;
            let source = if dialect == Dialect::PixelReasoner {
                match args.get("target_image") {
                    None | Some(Value::Null) => 0,
                    Some(t) => {
                        let k = t
                            .as_u64()
                            .or_else(|| t.as_str().and_then(|s| s.trim().parse().ok()))
                            .filter(|&k| k >= 1)
                            .ok_or_else(|| {
                                format!("target_image must be an image number from 1, found {t}")
                            })?;
                        k as usize - 1
                    }
                }
            } else {
                0
            };
            Ok(DialectCall { coords: c, source })
        }
    }
}

/// The last `\boxed{…}` of a text (braces nested inside are kept) and how
/// many there are. One pass, linear in the text.
fn boxed_answers(text: &str) -> (usize, Option<&str>) {
    const OPEN: &str = "\\boxed{";
    let bytes = text.as_bytes();
    let (mut count, mut last) = (0, None);
    // Open `\boxed{` bodies: (start of body, brace depth when opened).
    let mut stack: Vec<(usize, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && text[i..].starts_with(OPEN) {
            depth += 1;
            stack.push((i + OPEN.len(), depth));
            i += OPEN.len();
            continue;
        }
        match bytes[i] {
            b'{' => depth += 1,
            b'}' if depth > 0 => {
                if stack.last().is_some_and(|&(_, d)| d == depth)
                    && let Some((start, _)) = stack.pop()
                {
                    count += 1;
                    last = Some(text[start..i].trim());
                }
                depth -= 1;
            }
            _ => {}
        }
        i += 1;
    }
    (count, last)
}

/// Reads a model's whole output in `dialect`: its calls, its answer and
/// every format problem. Never fails; linear in the text.
pub fn parse_output(dialect: Dialect, text: &str) -> DialectOutput {
    let (open, close) = dialect.call_tags();
    let mut out = DialectOutput::default();
    let (mut errors, mut repeats, mut hidden) = (Vec::new(), Vec::new(), 0);
    let mut n = 0;
    for found in scan_calls(text, open, close, |b| parse_call(dialect, b)) {
        let e = match found {
            ScannedOf::Call(Ok(c)) => {
                n += 1;
                out.calls.push(c);
                continue;
            }
            ScannedOf::Call(Err(e)) => {
                n += 1;
                format!("tool call {n}: {e}")
            }
            ScannedOf::Stray(e) => e,
        };
        push_error(&mut errors, &mut repeats, &mut hidden, e);
    }
    let more = if dialect.boxed_answer() {
        let (k, last) = boxed_answers(text);
        out.answer = last.map(str::to_string);
        match k {
            0 => vec!["no \\boxed{} answer".to_string()],
            1 => Vec::new(),
            k => vec![format!("{k} answers given; the last one is scored")],
        }
    } else {
        let (answer, more) = answer_problems(text);
        out.answer = answer;
        more
    };
    out.errors = finish_errors(errors, repeats, hidden);
    out.errors.extend(more);
    out
}

/// Qwen2.5-VL's processor defaults (`qwen_vl_utils`): the frame
/// Chain-of-Focus boxes are in when the shown size is not given.
pub const QWEN25_FACTOR: usize = 28;
/// Fewest pixels of Qwen2.5-VL's default processor.
pub const QWEN25_MIN_PIXELS: usize = 3136;
/// Most pixels of Qwen2.5-VL's default processor.
pub const QWEN25_MAX_PIXELS: usize = 12_845_056;

/// `b` within `parent` (both original pixels); the parent when they do not
/// overlap.
fn within(b: BBox, parent: BBox) -> BBox {
    b.translate(-parent.x1, -parent.y1)
        .clip(parent.width(), parent.height())
        .map_or(parent, |c| c.translate(parent.x1, parent.y1))
}

/// Maps calls to original-image pixels. `size` is the original image's
/// `(width, height)`; `shown` the size the model was shown it at, when
/// known. Returns a mapped zoom per call that could be mapped, and the
/// problems of those that could not (a call naming a crop that does not
/// exist); `Err` when the frame itself cannot be computed.
pub fn map_calls(
    dialect: Dialect,
    calls: &[DialectCall],
    size: (f64, f64),
    shown: Option<(f64, f64)>,
) -> Result<(Vec<MappedZoom>, Vec<String>), String> {
    if !(size.0.is_finite() && size.1.is_finite() && size.0 > 0.0 && size.1 > 0.0) {
        return Err(format!("the image size {size:?} is not positive"));
    }
    let frame = match (dialect.frame(), shown) {
        (BoxFrame::Shown | BoxFrame::SmartResized, Some(s)) => s,
        (BoxFrame::Shown, None) => size,
        (BoxFrame::SmartResized, None) => {
            let (h, w) = crate::policy::qwen_vl::image::smart_resize(
                size.1 as usize,
                size.0 as usize,
                QWEN25_FACTOR,
                QWEN25_MIN_PIXELS,
                QWEN25_MAX_PIXELS,
            )?;
            (w as f64, h as f64)
        }
        (BoxFrame::Unit, _) => (1.0, 1.0),
        (BoxFrame::Norm1000, _) => (1000.0, 1000.0),
    };
    let whole = BBox::new(0.0, 0.0, size.0, size.1);
    let mut crops: Vec<BBox> = Vec::new();
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (k, c) in calls.iter().enumerate() {
        let parent = match c.source {
            0 => whole,
            i => match crops.get(i - 1) {
                Some(p) => *p,
                None => {
                    problems.push(format!(
                        "tool call {}: names image {} but the conversation has {} crops so far",
                        k + 1,
                        i,
                        crops.len()
                    ));
                    continue;
                }
            },
        };
        let raw = BBox::from(c.coords);
        // Pixel-Reasoner accepts pixels of the target image too.
        let pixels = dialect == Dialect::PixelReasoner && c.coords.iter().any(|&x| x > 1.0);
        let from = if pixels {
            (parent.width(), parent.height())
        } else if c.source == 0 {
            frame
        } else {
            (1.0, 1.0)
        };
        let Some(proposed) = raw
            .shown_to_original(from, (parent.width(), parent.height()))
            .map(|b| b.translate(parent.x1, parent.y1))
        else {
            problems.push(format!(
                "tool call {}: bbox_2d {:?} cannot be mapped",
                k + 1,
                c.coords
            ));
            continue;
        };
        let executed = if dialect == Dialect::PixelReasoner {
            // +0.1 of the target on each side, at most 600 pixels.
            let (px, py) = (
                (0.1 * parent.width()).min(600.0),
                (0.1 * parent.height()).min(600.0),
            );
            within(
                BBox::new(
                    proposed.x1 - px,
                    proposed.y1 - py,
                    proposed.x2 + px,
                    proposed.y2 + py,
                ),
                parent,
            )
        } else {
            within(proposed, parent)
        };
        crops.push(executed);
        out.push(MappedZoom { proposed, executed });
    }
    Ok((out, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed_answers_nest_and_stay_linear() {
        assert_eq!(
            boxed_answers(r"so \boxed{\frac{1}{2}}."),
            (1, Some(r"\frac{1}{2}"))
        );
        assert_eq!(boxed_answers(r"\boxed{A} then \boxed{ B }"), (2, Some("B")));
        assert_eq!(boxed_answers(r"\boxed{never"), (0, None));
        let huge = r"\boxed{".repeat(200_000);
        assert_eq!(boxed_answers(&huge).0, 0);
    }
}
