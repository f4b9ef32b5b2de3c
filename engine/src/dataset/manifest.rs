//! `manifest.jsonl`: reading with field-level errors, and atomic writing.
//!
//! One JSON object per line:
//!
//! ```json
//! {"id": "zb-0", "image": "images/zb-0.png", "width": 768, "height": 768,
//!  "question": "What digit is on the red placard?", "answer": "7",
//!  "options": [], "rationales": [{"bbox": [100, 120, 124, 144], "label": "red placard"}],
//!  "meta": {}}
//! ```
//!
//! Blank lines are ignored. `options`, `rationales` and `meta` may be left
//! out; other unknown keys are kept as they are.

use super::{Dataset, Rationale, Sample};
use crate::fsutil::atomic_write;
use crate::geometry::BBox;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The manifest's file name inside a dataset folder.
pub const MANIFEST: &str = "manifest.jsonl";

pub use super::error::{DatasetError, Location, MAX_REPORTED};

/// Context for the errors of one manifest line.
pub(crate) struct Line<'a> {
    pub(crate) path: &'a Path,
    pub(crate) line: usize,
}

impl Line<'_> {
    pub(crate) fn err(&self, field: Option<&str>, message: impl Into<String>) -> DatasetError {
        DatasetError::Invalid {
            path: self.path.to_path_buf(),
            location: Location {
                line: Some(self.line),
                field: field.map(str::to_string),
            },
            message: message.into(),
        }
    }
}

/// A short description of a JSON value's type, for error messages.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() > 40 => "a string".into(),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(a) => format!("an array of {}", a.len()),
        Value::Object(_) => "an object".into(),
    }
}

fn req<'v>(obj: &'v Map<String, Value>, key: &str, cx: &Line) -> Result<&'v Value, DatasetError> {
    obj.get(key).ok_or_else(|| {
        cx.err(
            Some(key),
            "missing (every sample needs id, image, width, height, question, answer)",
        )
    })
}

fn string(v: &Value, field: &str, cx: &Line) -> Result<String, DatasetError> {
    v.as_str().map(str::to_string).ok_or_else(|| {
        cx.err(
            Some(field),
            format!("expected a string, found {}", describe(v)),
        )
    })
}

fn dimension(v: &Value, field: &str, cx: &Line) -> Result<u32, DatasetError> {
    match v.as_u64() {
        Some(n) if n > 0 && n <= u32::MAX as u64 => Ok(n as u32),
        _ => Err(cx.err(
            Some(field),
            format!(
                "expected a positive whole number of pixels, found {}",
                describe(v)
            ),
        )),
    }
}

/// Parses and checks a box `[x1, y1, x2, y2]` that must lie inside a `w × h` image.
fn bbox(v: &Value, field: &str, w: u32, h: u32, cx: &Line) -> Result<BBox, DatasetError> {
    let arr = v.as_array().ok_or_else(|| {
        cx.err(
            Some(field),
            format!("expected [x1, y1, x2, y2], found {}", describe(v)),
        )
    })?;
    if arr.len() != 4 {
        return Err(cx.err(
            Some(field),
            format!(
                "expected 4 numbers [x1, y1, x2, y2], found {} values",
                arr.len()
            ),
        ));
    }
    let mut c = [0.0f64; 4];
    for (i, x) in arr.iter().enumerate() {
        // serde_json cannot represent NaN or infinity, so they arrive as null
        // (or as strings from some writers): name them.
        c[i] = match x {
            Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
            Value::String(s)
                if matches!(
                    s.to_ascii_lowercase().as_str(),
                    "nan" | "inf" | "-inf" | "infinity" | "-infinity"
                ) =>
            {
                return Err(cx.err(
                    Some(&format!("{field}[{i}]")),
                    format!("coordinate is {s:?}, not a finite number"),
                ));
            }
            Value::Null => {
                return Err(cx.err(
                    Some(&format!("{field}[{i}]")),
                    "coordinate is null (NaN or infinity written as null?), not a finite number",
                ));
            }
            other => {
                return Err(cx.err(
                    Some(&format!("{field}[{i}]")),
                    format!("expected a number, found {}", describe(other)),
                ));
            }
        };
        if !c[i].is_finite() {
            return Err(cx.err(
                Some(&format!("{field}[{i}]")),
                "coordinate is not a finite number",
            ));
        }
    }
    let b = BBox::from(c);
    if b.x2 <= b.x1 || b.y2 <= b.y1 {
        return Err(cx.err(
            Some(field),
            format!(
                "degenerate box {:?}: x2 must be > x1 and y2 > y1 (boxes are [x1, y1, x2, y2], not [x, y, w, h])",
                b.to_array()
            ),
        ));
    }
    const TOL: f64 = 1e-6;
    if b.x1 < -TOL || b.y1 < -TOL || b.x2 > w as f64 + TOL || b.y2 > h as f64 + TOL {
        return Err(cx.err(
            Some(field),
            format!("box {:?} lies outside the {w}×{h} image", b.to_array()),
        ));
    }
    Ok(b)
}

/// Parses a list of rationales `[{"bbox": [x1, y1, x2, y2], "label": …}, …]`
/// whose boxes must lie inside a `w × h` image; errors name `field[i].bbox`.
pub(crate) fn parse_rationales(
    v: &Value,
    field: &str,
    width: u32,
    height: u32,
    cx: &Line,
) -> Result<Vec<Rationale>, DatasetError> {
    let Value::Array(a) = v else {
        return Err(cx.err(
            Some(field),
            format!("expected an array, found {}", describe(v)),
        ));
    };
    let mut out = Vec::with_capacity(a.len());
    for (i, r) in a.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let Value::Object(r) = r else {
            return Err(cx.err(
                Some(&f),
                format!(
                    "expected {{\"bbox\": [x1, y1, x2, y2], \"label\": ...}}, found {}",
                    describe(r)
                ),
            ));
        };
        let bv = r
            .get("bbox")
            .ok_or_else(|| cx.err(Some(&format!("{f}.bbox")), "missing"))?;
        let bb = bbox(bv, &format!("{f}.bbox"), width, height, cx)?;
        let label = match r.get("label") {
            None | Some(Value::Null) => String::new(),
            Some(l) => string(l, &format!("{f}.label"), cx)?,
        };
        out.push(Rationale { bbox: bb, label });
    }
    Ok(out)
}

/// Parses one sample from a JSON object (a manifest line's layout),
/// checking every field; `origin` names where it came from in errors.
pub fn sample_from_json(v: Value, origin: &Path) -> Result<Sample, DatasetError> {
    parse_sample(
        v,
        &Line {
            path: origin,
            line: 1,
        },
    )
}

/// Parses one manifest line's JSON object into a sample, checking every
/// field. Does not touch the file system (see [`check_image`]).
pub(crate) fn parse_sample(v: Value, cx: &Line) -> Result<Sample, DatasetError> {
    let Value::Object(mut obj) = v else {
        return Err(cx.err(
            None,
            format!("expected a JSON object, found {}", describe(&v)),
        ));
    };
    let id = string(req(&obj, "id", cx)?, "id", cx)?;
    if id.trim().is_empty() {
        return Err(cx.err(Some("id"), "is empty"));
    }
    let image = string(req(&obj, "image", cx)?, "image", cx)?;
    if image.trim().is_empty() {
        return Err(cx.err(Some("image"), "is empty"));
    }
    let width = dimension(req(&obj, "width", cx)?, "width", cx)?;
    let height = dimension(req(&obj, "height", cx)?, "height", cx)?;
    let question = string(req(&obj, "question", cx)?, "question", cx)?;
    let answer = string(req(&obj, "answer", cx)?, "answer", cx)?;
    let options = match obj.get("options") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, o)| string(o, &format!("options[{i}]"), cx))
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(cx.err(
                Some("options"),
                format!("expected an array of strings, found {}", describe(other)),
            ));
        }
    };
    let rationales = match obj.get("rationales") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => parse_rationales(v, "rationales", width, height, cx)?,
    };
    let meta = obj.remove("meta").filter(|m| !m.is_null());
    for k in [
        "id",
        "image",
        "width",
        "height",
        "question",
        "answer",
        "options",
        "rationales",
    ] {
        obj.remove(k);
    }
    Ok(Sample {
        id,
        image,
        width,
        height,
        question,
        answer,
        options,
        rationales,
        meta,
        extra: obj,
    })
}

/// Checks that a sample's image exists and has the declared size (reads the
/// header only).
fn check_image(root: &Path, s: &Sample, cx: &Line) -> Result<(), DatasetError> {
    let p = root.join(&s.image);
    if !p.is_file() {
        return Err(cx.err(
            Some("image"),
            format!("image file not found: {}", p.display()),
        ));
    }
    let (w, h) = image::image_dimensions(&p).map_err(|e| DatasetError::Image {
        path: p.clone(),
        message: format!("{e} (named on line {} of the manifest)", cx.line),
    })?;
    if (w, h) != (s.width, s.height) {
        return Err(cx.err(
            Some("width"),
            format!(
                "the manifest says {}×{} but {} is {w}×{h}",
                s.width,
                s.height,
                p.display()
            ),
        ));
    }
    Ok(())
}

/// Loads a dataset: `path` is a dataset folder (holding `manifest.jsonl`) or a
/// manifest file. Every line is parsed and checked:
///
/// - the file is valid UTF-8 and not empty, every non-blank line a complete
///   JSON object (a final line cut short is reported as truncated);
/// - `id` (unique), `image`, `width`, `height`, `question`, `answer` present with
///   the right types; `options` strings; each `rationales[i].bbox` four finite
///   numbers forming a non-degenerate box inside the image;
/// - each image exists and has the declared size.
///
/// Every line is checked; the problems are returned together (up to
/// [`MAX_REPORTED`] of them), each naming its line and field, with the file. Loading only reads: nothing on disk is changed, whatever happens.
pub fn load(path: &Path) -> Result<Dataset, DatasetError> {
    if !path.exists() {
        return Err(DatasetError::Invalid {
            path: path.to_path_buf(),
            location: Location::default(),
            message: format!(
                "no dataset here (expected a folder holding {MANIFEST}, or a manifest file)"
            ),
        });
    }
    let (root, file) = if path.is_dir() {
        (path.to_path_buf(), path.join(MANIFEST))
    } else {
        (
            path.parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            path.to_path_buf(),
        )
    };
    let bytes = std::fs::read(&file).map_err(|source| DatasetError::Io {
        action: "read",
        path: file.clone(),
        source,
    })?;
    let file_err = |line: Option<usize>, message: String| DatasetError::Invalid {
        path: file.clone(),
        location: Location { line, field: None },
        message,
    };
    let mut samples: Vec<Sample> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let bytes = crate::fsutil::strip_bom(&bytes);
    let n_lines = bytes.split(|&b| b == b'\n').count();
    let mut errors: Vec<DatasetError> = Vec::new();
    let mut n_errors = 0usize;
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let lineno = i + 1;
        let is_last = lineno == n_lines;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let result = (|| {
            let text = std::str::from_utf8(raw).map_err(|e| {
                file_err(
                    Some(lineno),
                    format!(
                        "not valid UTF-8 (bad byte at column {})",
                        e.valid_up_to() + 1
                    ),
                )
            })?;
            if text.trim().is_empty() {
                return Ok(None);
            }
            let cx = Line {
                path: &file,
                line: lineno,
            };
            // Python's json module writes NaN and Infinity as bare words, which are
            // not JSON; read them as strings so the error can name the field.
            let sanitized = quote_non_finite(text);
            let v: Value = serde_json::from_str(sanitized.as_deref().unwrap_or(text)).map_err(|e| {
                if e.is_eof() && is_last {
                    file_err(
                        Some(lineno),
                        "truncated: the file ends in the middle of a JSON object (was a write interrupted?)".into(),
                    )
                } else if e.is_eof() {
                    file_err(Some(lineno), format!("incomplete JSON object ({e})"))
                } else {
                    file_err(Some(lineno), format!("not valid JSON ({e})"))
                }
            })?;
            let s = parse_sample(v, &cx)?;
            if let Some(first) = seen.get(&s.id) {
                return Err(cx.err(
                    Some("id"),
                    format!("duplicate id {:?} (first used on line {first})", s.id),
                ));
            }
            seen.insert(s.id.clone(), lineno);
            check_image(&root, &s, &cx)?;
            Ok(Some(s))
        })();
        match result {
            Ok(Some(s)) => samples.push(s),
            Ok(None) => {}
            Err(e) => {
                n_errors += 1;
                if errors.len() < MAX_REPORTED {
                    errors.push(e);
                }
            }
        }
    }
    match errors.len() {
        0 => {}
        1 => return Err(errors.remove(0)),
        _ => {
            return Err(DatasetError::Several {
                path: file,
                total: n_errors,
                errors,
            });
        }
    }
    if samples.is_empty() {
        return Err(file_err(
            None,
            "the manifest holds no samples (the file is empty)".into(),
        ));
    }
    let mut ds = Dataset::new(root, samples);
    let journal = ds.journal_path();
    ds.apply_journal(&journal)?;
    Ok(ds)
}

/// If `text` holds bare `NaN`, `Infinity` or `-Infinity` tokens outside
/// strings, a copy with them quoted (`"NaN"`); otherwise `None`.
fn quote_non_finite(text: &str) -> Option<String> {
    const WORDS: [&str; 3] = ["-Infinity", "Infinity", "NaN"];
    if !WORDS.iter().any(|w| text.contains(w)) {
        return None;
    }
    let mut out = String::with_capacity(text.len() + 8);
    let (mut in_str, mut escaped, mut changed) = (false, false, false);
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        let c = bytes[i];
        if in_str {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_str = false;
            }
        } else if c == b'"' {
            in_str = true;
        } else if let Some(w) = WORDS.iter().find(|w| text[i..].starts_with(**w)) {
            out.push('"');
            out.push_str(w);
            out.push('"');
            i += w.len();
            changed = true;
            continue;
        }
        // Copy whole UTF-8 characters.
        let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[i..i + ch_len]);
        i += ch_len;
    }
    changed.then_some(out)
}

/// Serialises samples as manifest lines (one JSON object per line).
pub fn to_jsonl(samples: &[Sample]) -> String {
    crate::fsutil::to_jsonl(samples)
}

/// Writes `root/manifest.jsonl` atomically: a crash leaves the old manifest or
/// the new one, never a mix.
pub fn save(root: &Path, samples: &[Sample]) -> Result<(), DatasetError> {
    let file = root.join(MANIFEST);
    atomic_write(&file, to_jsonl(samples).as_bytes()).map_err(|source| DatasetError::Io {
        action: "write",
        path: file,
        source,
    })
}
