//! The V* Bench layout: a folder (searched recursively) of `<id>.jpg` and
//! `<id>.json` with `question`, `options` (the first is correct),
//! `target_object` and `bbox` (`[x, y, w, h]`, or a list of them).

use super::{ImportReport, Imported, image_size, invalid, xywh_box};
use crate::dataset::manifest::describe;
use crate::dataset::{DatasetError, Rationale, Sample};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// Parses one V* annotation (the bytes of `<id>.json`) for an image of
/// `iw × ih`. `path` is only used in errors.
pub fn parse_vstar(
    bytes: &[u8],
    id: &str,
    image: &str,
    iw: u32,
    ih: u32,
    path: &Path,
) -> Result<Sample, DatasetError> {
    let v: Value = serde_json::from_slice(crate::fsutil::strip_bom(bytes))
        .map_err(|e| invalid(path, None, format!("not valid JSON ({e})")))?;
    let Value::Object(obj) = v else {
        return Err(invalid(
            path,
            None,
            format!("expected a JSON object, found {}", describe(&v)),
        ));
    };
    let need = |k: &str| {
        obj.get(k).ok_or_else(|| {
            invalid(
                path,
                Some(k.into()),
                "missing (a V* annotation needs question, options, target_object and bbox)",
            )
        })
    };
    let question = need("question")?
        .as_str()
        .ok_or_else(|| invalid(path, Some("question".into()), "expected a string"))?
        .to_string();
    let options: Vec<String> = match need("options")? {
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .enumerate()
            .map(|(i, o)| {
                o.as_str().map(str::to_string).ok_or_else(|| {
                    invalid(
                        path,
                        Some(format!("options[{i}]")),
                        format!("expected a string, found {}", describe(o)),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(invalid(
                path,
                Some("options".into()),
                format!(
                    "expected a non-empty array of strings (the first is the correct one), found {}",
                    describe(other)
                ),
            ));
        }
    };
    let targets: Vec<String> = match need("target_object")? {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|t| t.as_str().unwrap_or_default().to_string())
            .collect(),
        other => {
            return Err(invalid(
                path,
                Some("target_object".into()),
                format!(
                    "expected a name or a list of names, found {}",
                    describe(other)
                ),
            ));
        }
    };
    let bv = need("bbox")?;
    // One box `[x, y, w, h]` or a list of them.
    let boxes: Vec<(String, &Value)> = match bv {
        Value::Array(a) if a.first().is_some_and(Value::is_array) => a
            .iter()
            .enumerate()
            .map(|(i, b)| (format!("bbox[{i}]"), b))
            .collect(),
        other => vec![("bbox".to_string(), other)],
    };
    let mut rationales = Vec::with_capacity(boxes.len());
    for (k, (field, b)) in boxes.iter().enumerate() {
        rationales.push(Rationale {
            bbox: xywh_box(b, field, iw, ih, path)?,
            label: targets.get(k).cloned().unwrap_or_default(),
        });
    }
    Ok(Sample {
        id: id.to_string(),
        image: image.to_string(),
        width: iw,
        height: ih,
        question,
        answer: options[0].clone(),
        options,
        rationales,
        meta: Some(json!({ "source": "vstar", "annotation": path.display().to_string() })),
        extra: Map::new(),
    })
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DatasetError> {
    let rd = std::fs::read_dir(dir).map_err(|source| DatasetError::Io {
        action: "read",
        path: dir.to_path_buf(),
        source,
    })?;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
    Ok(())
}

/// Reads a V* Bench folder (see the module docs).
pub fn read_vstar(src: &Path) -> Result<ImportReport, DatasetError> {
    if !src.is_dir() {
        return Err(invalid(
            src,
            None,
            "not a folder (a V* Bench folder holds <id>.jpg and <id>.json pairs)",
        ));
    }
    let mut files = Vec::new();
    walk(src, &mut files)?;
    let mut rep = ImportReport::default();
    for json_path in files {
        let rel = json_path
            .strip_prefix(src)
            .unwrap_or(&json_path)
            .with_extension("");
        let id = rel.to_string_lossy().replace('\\', "/");
        let img = ["jpg", "jpeg", "png", "JPG", "JPEG", "PNG"]
            .iter()
            .map(|e| json_path.with_extension(e))
            .find(|p| p.is_file());
        let result = (|| {
            let Some(img) = img else {
                return Err(invalid(
                    &json_path,
                    None,
                    format!("no image beside it (looked for {id}.jpg, .jpeg and .png)"),
                ));
            };
            let (w, h) = image_size(&img)?;
            let bytes = std::fs::read(&json_path).map_err(|source| DatasetError::Io {
                action: "read",
                path: json_path.clone(),
                source,
            })?;
            let ext = img.extension().map(|e| e.to_string_lossy().to_lowercase());
            let image = format!("images/{id}.{}", ext.unwrap_or_else(|| "jpg".into()));
            let sample = parse_vstar(&bytes, &id, &image, w, h, &json_path)?;
            Ok(Imported {
                sample,
                source_image: img,
                extracted: false,
            })
        })();
        match result {
            Ok(s) => rep.samples.push(s),
            Err(e) => rep.problems.push(e),
        }
    }
    if rep.samples.is_empty() && rep.problems.is_empty() {
        return Err(invalid(
            src,
            None,
            "no <id>.json annotations found in this folder",
        ));
    }
    Ok(rep)
}
