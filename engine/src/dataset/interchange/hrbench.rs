//! HR-Bench (4K and 8K): a TSV, as pandas writes it, with the columns
//! `index`, `question`, the options `A`, `B`, `C`, `D`, `answer` (the letter
//! of the correct option), `category`, `cycle_category` and `image` (the
//! image file, base64-encoded). There are no rationale boxes: it imports as
//! an evaluation set without rationales (Acc_rat is then undefined).

use super::{ImportReport, Imported, invalid};
use crate::dataset::{DatasetError, Location, Sample};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::Path;

/// Parses an HR-Bench TSV (its bytes; `path` names it in errors). Each
/// row's image is decoded from base64 and written to `staging` as
/// `<index>.<ext>`, from where the dataset writer links it into place. A
/// row with a problem is reported, naming its line and column, and left out.
pub fn parse_hrbench(
    bytes: &[u8],
    path: &Path,
    staging: &Path,
) -> Result<ImportReport, DatasetError> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .flexible(true)
        .from_reader(crate::fsutil::strip_bom(bytes));
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| invalid(path, None, format!("cannot read the header row ({e})")))?
        .iter()
        .map(str::to_string)
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    let need = |name: &str| {
        col(name).ok_or_else(|| {
            invalid(
                path,
                None,
                format!("no `{name}` column (HR-Bench has index, question, A–D, answer, image; found {header:?})"),
            )
        })
    };
    let (c_index, c_question, c_answer, c_image) = (
        need("index")?,
        need("question")?,
        need("answer")?,
        need("image")?,
    );
    // The option columns: single capital letters, in file order.
    let letters: Vec<(String, usize)> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| h.len() == 1 && h.chars().all(|c| c.is_ascii_uppercase()))
        .map(|(i, h)| (h.clone(), i))
        .collect();
    std::fs::create_dir_all(staging).map_err(|source| DatasetError::Io {
        action: "create",
        path: staging.to_path_buf(),
        source,
    })?;
    let mut rep = ImportReport::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for row in rdr.records() {
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(file_line);
                rep.problems.push(DatasetError::Invalid {
                    path: path.to_path_buf(),
                    location: Location { line, field: None },
                    message: format!("not a TSV row ({e})"),
                });
                continue;
            }
        };
        let line = row.position().map(file_line);
        let err = |field: &str, message: String| DatasetError::Invalid {
            path: path.to_path_buf(),
            location: Location {
                line,
                field: Some(field.into()),
            },
            message,
        };
        let get = |c: usize| row.get(c).unwrap_or("").trim();
        let result = (|| {
            let index = get(c_index);
            if index.is_empty() {
                return Err(err("index", "is empty".into()));
            }
            if let Some(first) = seen.insert(index.to_string(), line.unwrap_or(0)) {
                return Err(err(
                    "index",
                    format!("duplicate index {index:?} (first on line {first})"),
                ));
            }
            let question = get(c_question);
            if question.is_empty() {
                return Err(err("question", "is empty".into()));
            }
            let options: Vec<(String, String)> = letters
                .iter()
                .map(|(l, c)| (l.clone(), get(*c).to_string()))
                .filter(|(_, t)| !t.is_empty())
                .collect();
            let letter = get(c_answer);
            let answer = options
                .iter()
                .find(|(l, _)| l == letter)
                .map(|(_, t)| t.clone())
                .ok_or_else(|| {
                    err(
                        "answer",
                        format!(
                            "{letter:?} is not the letter of an option (options: {})",
                            options
                                .iter()
                                .map(|(l, _)| l.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?;
            let b64 = get(c_image);
            let b64 = b64.split_once(";base64,").map_or(b64, |(_, d)| d);
            let clean: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            let data = base64::engine::general_purpose::STANDARD
                .decode(clean.as_bytes())
                .map_err(|e| err("image", format!("not base64 ({e})")))?;
            let format = image::guess_format(&data)
                .map_err(|e| err("image", format!("not an image file ({e})")))?;
            let ext = format.extensions_str().first().copied().unwrap_or("img");
            let (w, h) = image::ImageReader::with_format(std::io::Cursor::new(&data), format)
                .into_dimensions()
                .map_err(|e| err("image", format!("unreadable image ({e})")))?;
            let stem: String = index
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let file = staging.join(format!("{stem}.{ext}"));
            std::fs::write(&file, &data)
                .map_err(|e| err("image", format!("cannot write {} ({e})", file.display())))?;
            let mut meta = Map::new();
            meta.insert("source".into(), json!("hr-bench"));
            meta.insert("answer_letter".into(), json!(letter));
            for k in ["category", "cycle_category"] {
                if let Some(c) = col(k) {
                    meta.insert(k.into(), json!(get(c)));
                }
            }
            Ok(Imported {
                sample: Sample {
                    id: format!("hrbench-{index}"),
                    image: format!("images/{stem}.{ext}"),
                    width: w,
                    height: h,
                    question: question.to_string(),
                    answer,
                    options: options.into_iter().map(|(_, t)| t).collect(),
                    rationales: Vec::new(),
                    meta: Some(Value::Object(meta)),
                    extra: Map::new(),
                },
                source_image: file,
                extracted: true,
            })
        })();
        match result {
            Ok(s) => rep.samples.push(s),
            Err(e) => rep.problems.push(e),
        }
    }
    Ok(rep)
}

/// The 1-based line of the file a record starts on (the `csv` reader's
/// record positions count from 0 after the header; tested against the file).
fn file_line(p: &csv::Position) -> usize {
    p.line() as usize + 1
}

/// Reads an HR-Bench TSV from disk (see [`parse_hrbench`]).
pub fn read_hrbench(src: &Path, staging: &Path) -> Result<ImportReport, DatasetError> {
    let bytes = super::read_source(src)?;
    parse_hrbench(&bytes, src, staging)
}
