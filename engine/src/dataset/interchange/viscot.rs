//! The Visual-CoT training layout (`viscot_363k.json`, deepcs233/Visual-CoT):
//! a JSON array (or JSON Lines) of records
//!
//! ```json
//! {"question_id": 17, "dataset": "gqa",
//!  "image": ["gqa/images/1.jpg", "gqa/images/1.jpg###[0.25, 0.3, 0.5, 0.6]"],
//!  "conversations": [
//!    {"from": "human", "value": "<image>\nWhat is on the table? Please provide the bounding box coordinate of the region that can help you answer the question better."},
//!    {"from": "gpt", "value": "[0.25, 0.3, 0.5, 0.6]"},
//!    {"from": "human", "value": "<image>"},
//!    {"from": "gpt", "value": "a cup"}]}
//! ```
//!
//! The second turn is the rationale box, the last the answer. Its boxes are
//! normalised by `max(W, H)` of the image **padded to a centred square**, not
//! by W and H separately: a coordinate is multiplied by `max(W, H)`, then the
//! padding `(max(W, H) − min(W, H)) // 2` is subtracted on the short axis
//! (`llava/eval/model_cot_loader.py`, `cropwithbbox`). Values whose sum is 5
//! or more are, as there, already pixels of the padded square.

use super::{ImportReport, Imported, image_size, invalid};
use crate::dataset::manifest::describe;
use crate::dataset::{DatasetError, Rationale, Sample};
use crate::geometry::BBox;
use serde_json::{Map, Value, json};
use std::path::{Component, Path};

/// The sentence Visual-CoT appends to every question to ask for the box.
const BOX_REQUEST: &str = "Please provide the bounding box coordinate of the region";

/// A Visual-CoT box `[x1, y1, x2, y2]` (normalised to the padded square, or
/// pixels of it) in pixels of the `w × h` image, clipped to it.
pub fn viscot_box(c: [f64; 4], w: u32, h: u32) -> Option<BBox> {
    let (long, short) = (w.max(h), w.min(h));
    let scale = if c.iter().sum::<f64>() < 5.0 {
        f64::from(long)
    } else {
        1.0
    };
    let pad = f64::from((long - short) / 2);
    let [mut x1, mut y1, mut x2, mut y2] = c.map(|v| v * scale);
    if w > h {
        y1 -= pad;
        y2 -= pad;
    } else {
        x1 -= pad;
        x2 -= pad;
    }
    BBox::new(x1, y1, x2, y2).clip(f64::from(w), f64::from(h))
}

/// `"[0.1, 0.2, 0.3, 0.4]"` (a trailing " ." or spaces allowed) as four numbers.
fn parse_box_text(s: &str) -> Option<[f64; 4]> {
    let inner = s.trim().trim_end_matches('.').trim();
    let inner = inner.strip_prefix('[')?.strip_suffix(']')?;
    let v: Vec<f64> = inner
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .ok()?;
    let c: [f64; 4] = v.try_into().ok()?;
    c.iter().all(|x| x.is_finite()).then_some(c)
}

/// The records of a Visual-CoT file: a JSON array, or one object per line.
fn records(bytes: &[u8], path: &Path) -> Result<Vec<(String, Value)>, DatasetError> {
    let bytes = crate::fsutil::strip_bom(bytes);
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| invalid(path, None, format!("not valid JSON ({e})")))?;
        let Value::Array(a) = v else {
            unreachable!("a JSON value starting with [ is an array")
        };
        return Ok(a
            .into_iter()
            .enumerate()
            .map(|(i, r)| (format!("[{i}]"), r))
            .collect());
    }
    let mut out = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: Value = serde_json::from_slice(line).map_err(|e| DatasetError::Invalid {
            path: path.to_path_buf(),
            location: crate::dataset::Location {
                line: Some(i + 1),
                field: None,
            },
            message: format!("not valid JSON ({e})"),
        })?;
        out.push((format!("line {}", i + 1), v));
    }
    Ok(out)
}

/// Parses a Visual-CoT file (its bytes; `path` names it in errors) whose
/// image paths are relative to `images_dir`. A record with a problem is
/// reported and left out; the file itself must be JSON.
pub fn parse_viscot(
    bytes: &[u8],
    path: &Path,
    images_dir: &Path,
) -> Result<ImportReport, DatasetError> {
    let mut rep = ImportReport::default();
    for (at, rec) in records(bytes, path)? {
        match record(&at, &rec, path, images_dir) {
            Ok(s) => rep.samples.push(s),
            Err(e) => rep.problems.push(e),
        }
    }
    Ok(rep)
}

/// One record at `at` (`[i]` or `line n`) as a sample.
fn record(at: &str, rec: &Value, path: &Path, images_dir: &Path) -> Result<Imported, DatasetError> {
    let field = |k: &str| Some(format!("{at}.{k}"));
    let Value::Object(o) = rec else {
        return Err(invalid(
            path,
            Some(at.into()),
            format!("expected an object, found {}", describe(rec)),
        ));
    };
    let image = match o.get("image") {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Array(a)) => a.first().and_then(Value::as_str).ok_or_else(|| {
            invalid(
                path,
                field("image[0]"),
                "expected the image path as a string",
            )
        })?,
        other => {
            return Err(invalid(
                path,
                field("image"),
                format!(
                    "expected a path or [path, \"path###[box]\"], found {}",
                    other.map_or("nothing".into(), describe)
                ),
            ));
        }
    };
    let image = image.split("###").next().unwrap_or(image);
    if image.is_empty()
        || !Path::new(image)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(invalid(
            path,
            field("image"),
            format!(
                "{image:?} leaves the images folder {} (absolute paths and '..' are refused)",
                images_dir.display()
            ),
        ));
    }
    let turns = o
        .get("conversations")
        .and_then(Value::as_array)
        .filter(|t| t.len() >= 2)
        .ok_or_else(|| invalid(path, field("conversations"), "expected at least two turns"))?;
    let text = |i: usize| -> Result<&str, DatasetError> {
        turns[i]
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                invalid(
                    path,
                    field(&format!("conversations[{i}].value")),
                    "expected a string",
                )
            })
    };
    let question = text(0)?.replace("<image>", "");
    let question = question
        .split(BOX_REQUEST)
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    if question.is_empty() {
        return Err(invalid(
            path,
            field("conversations[0].value"),
            "the question is empty",
        ));
    }
    // The box: the second turn, else the `###[…]` of the second image entry.
    let from_image = o
        .get("image")
        .and_then(Value::as_array)
        .and_then(|a| a.get(1))
        .and_then(Value::as_str)
        .and_then(|s| s.split_once("###"))
        .and_then(|(_, b)| parse_box_text(b));
    let coords = parse_box_text(text(1)?).or(from_image).ok_or_else(|| {
        invalid(
            path,
            field("conversations[1].value"),
            format!(
                "expected the rationale box as [x1, y1, x2, y2], found {:?}",
                text(1).unwrap_or("")
            ),
        )
    })?;
    let answer = text(turns.len() - 1)?.trim().to_string();
    if turns.len() < 3 || answer.is_empty() {
        return Err(invalid(
            path,
            field("conversations"),
            "no answer turn after the box",
        ));
    }
    let src = images_dir.join(image);
    let (w, h) = image_size(&src)?;
    let bbox = viscot_box(coords, w, h).ok_or_else(|| {
        invalid(
            path,
            field("conversations[1].value"),
            format!(
                "box {coords:?} has no area inside the {w}×{h} image {}",
                src.display()
            ),
        )
    })?;
    let id = match o.get("question_id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => format!(
            "viscot-{}",
            at.trim_matches(|c| c == '[' || c == ']')
                .replace("line ", "l")
        ),
    };
    let mut meta = Map::new();
    meta.insert("source".into(), json!("visual-cot"));
    meta.insert("box_normalised".into(), json!(coords));
    if let Some(d) = o.get("dataset") {
        meta.insert("dataset".into(), d.clone());
    }
    Ok(Imported {
        sample: Sample {
            id,
            image: image.to_string(),
            width: w,
            height: h,
            question,
            answer,
            options: Vec::new(),
            rationales: vec![Rationale {
                bbox,
                label: String::new(),
            }],
            meta: Some(Value::Object(meta)),
            extra: Map::new(),
        },
        source_image: src,
        extracted: false,
    })
}

/// Reads a Visual-CoT file from disk (see [`parse_viscot`]).
pub fn read_viscot(src: &Path, images_dir: &Path) -> Result<ImportReport, DatasetError> {
    let bytes = super::read_source(src)?;
    parse_viscot(&bytes, src, images_dir)
}
