//! verl's RL parquet in: the rows, as `virl.verl.importer` (pyarrow) turns
//! them into JSON lines, checked here as manifest samples. A row's problem
//! names the parquet file and the row (as `line`, counting rows from 1).

use super::{ImportReport, Imported, image_size, invalid};
use crate::dataset::manifest::{Line, parse_sample};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The samples of the importer's JSON lines (`bytes`) for the parquet file
/// `parquet`. A sample without a size gets its image's; its image goes to
/// `images/<file name>` in the new dataset.
pub fn from_verl_rows(bytes: &[u8], parquet: &Path) -> ImportReport {
    let mut rep = ImportReport::default();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let row = |v: &Value| {
            v.get("row")
                .and_then(Value::as_u64)
                .map_or(i, |r| r as usize)
        };
        let result = (|| {
            let v: Value = serde_json::from_slice(line).map_err(|e| {
                invalid(parquet, None, format!("the importer wrote bad JSON ({e})"))
            })?;
            let cx = Line {
                path: parquet,
                line: row(&v) + 1,
            };
            if let Some(e) = v.get("error").and_then(Value::as_str) {
                return Err(cx.err(None, e.to_string()));
            }
            let (Some(source), Some(mut s)) = (
                v.get("source_image")
                    .and_then(Value::as_str)
                    .filter(|p| !p.is_empty()),
                v.get("sample").filter(|s| s.is_object()).cloned(),
            ) else {
                return Err(cx.err(None, "the importer gave no sample and image for this row"));
            };
            let source = PathBuf::from(source);
            if s.get("width").and_then(Value::as_u64).unwrap_or(0) == 0 {
                let (w, h) = image_size(&source)?;
                s["width"] = w.into();
                s["height"] = h.into();
            }
            let name = source
                .file_name()
                .map_or_else(|| "image".into(), |n| n.to_string_lossy().into_owned());
            s["image"] = format!("images/{name}").into();
            let sample = parse_sample(s, &cx)?;
            Ok(Imported {
                sample,
                source_image: source,
                extracted: false,
            })
        })();
        match result {
            Ok(s) => rep.samples.push(s),
            Err(e) => rep.problems.push(e),
        }
    }
    rep
}
