//! Importers and exporters (DESIGN §2): V* Bench folders and COCO detection
//! JSON in, COCO and our JSONL out. Every box is converted to pixel `xyxy`
//! here, at the border.
//!
//! Importers never panic, whatever the bytes (`engine/tests/fuzz_importers.rs`
//! throws arbitrary input at them). Every problem is an error naming the file
//! and the field; an import writes nothing until every sample has been read
//! and checked, unless the caller asks to skip bad samples.
//!
//! - **V\* Bench**: a folder (searched recursively) of `<id>.jpg` (or
//!   `.jpeg`, `.png`) and `<id>.json` with `question`, `options` (the first is
//!   the correct one), `target_object` (a name or a list of names) and `bbox`
//!   (`[x, y, w, h]`, or a list of them, one per target object). The sample
//!   id is the path of the JSON file relative to the folder, without `.json`.
//! - **COCO**: `images` (`id`, `file_name`, `width`, `height`),
//!   `annotations` (`image_id`, `bbox` `[x, y, w, h]`, `category_id`) and
//!   `categories` (`id`, `name`). Images written by [`export_coco`] carry
//!   the sample's `virl_id`, `question`, `answer` and `options`, and import
//!   back as the same samples. A plain COCO file (no questions) becomes one
//!   counting question per image and category: "How many <name> are in the
//!   image?", answered by the number of boxes, which are the rationales.

use super::manifest::{MANIFEST, describe};
use super::{Dataset, DatasetError, Location, Rationale, Sample};
use crate::geometry::BBox;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Boxes that overrun the image by at most this many pixels (rounding in the
/// source) are clipped to it; more is an error.
pub const EDGE_TOLERANCE: f64 = 1.0;

fn invalid(path: &Path, field: Option<String>, message: impl Into<String>) -> DatasetError {
    DatasetError::Invalid {
        path: path.to_path_buf(),
        location: Location { line: None, field },
        message: message.into(),
    }
}

/// An imported sample and the image file it comes from.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The sample; its `image` is the path the image will have in the output
    /// dataset.
    pub sample: Sample,
    /// The source image.
    pub source_image: PathBuf,
}

/// What an import read.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Samples read and checked.
    pub samples: Vec<Imported>,
    /// Problems, each naming its file (the import fails on any, unless bad
    /// samples are skipped).
    pub problems: Vec<DatasetError>,
}

/// Parses an `[x, y, w, h]` box (field `field` of `path`) for a `w × h`
/// image, converts it to `xyxy`, and checks it.
fn xywh_box(v: &Value, field: &str, iw: u32, ih: u32, path: &Path) -> Result<BBox, DatasetError> {
    let Some(a) = v.as_array() else {
        return Err(invalid(
            path,
            Some(field.into()),
            format!("expected [x, y, w, h], found {}", describe(v)),
        ));
    };
    if a.len() != 4 {
        return Err(invalid(
            path,
            Some(field.into()),
            format!("expected 4 numbers [x, y, w, h], found {} values", a.len()),
        ));
    }
    let mut c = [0.0; 4];
    for (i, x) in a.iter().enumerate() {
        c[i] = match x.as_f64() {
            Some(f) if f.is_finite() => f,
            _ => {
                return Err(invalid(
                    path,
                    Some(format!("{field}[{i}]")),
                    format!("expected a finite number, found {}", describe(x)),
                ));
            }
        };
    }
    if c[2] <= 0.0 || c[3] <= 0.0 {
        return Err(invalid(
            path,
            Some(field.into()),
            format!(
                "degenerate box {c:?}: width and height must be > 0 (boxes here are [x, y, w, h])"
            ),
        ));
    }
    let b = BBox::from_xywh(c[0], c[1], c[2], c[3]);
    let (w, h) = (iw as f64, ih as f64);
    let t = EDGE_TOLERANCE;
    if b.x1 < -t || b.y1 < -t || b.x2 > w + t || b.y2 > h + t {
        return Err(invalid(
            path,
            Some(field.into()),
            format!("box [x, y, w, h] = {c:?} lies outside the {iw}×{ih} image"),
        ));
    }
    b.clip(w, h).ok_or_else(|| {
        invalid(
            path,
            Some(field.into()),
            format!("box {c:?} has no area inside the {iw}×{ih} image"),
        )
    })
}

/// The size of an image, from its header.
fn image_size(path: &Path) -> Result<(u32, u32), DatasetError> {
    if !path.is_file() {
        return Err(invalid(path, None, "image file not found"));
    }
    image::image_dimensions(path).map_err(|e| DatasetError::Image {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

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
    let v: Value = serde_json::from_slice(bytes)
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

/// Parses a COCO detection file (its bytes; `path` names it in errors).
/// `images_dir` is the folder `file_name`s are relative to.
pub fn parse_coco(
    bytes: &[u8],
    path: &Path,
    images_dir: &Path,
) -> Result<ImportReport, DatasetError> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| invalid(path, None, format!("not valid JSON ({e})")))?;
    let Value::Object(root) = v else {
        return Err(invalid(
            path,
            None,
            format!("expected a JSON object, found {}", describe(&v)),
        ));
    };
    let arr = |k: &str| -> Result<&Vec<Value>, DatasetError> {
        match root.get(k) {
            Some(Value::Array(a)) => Ok(a),
            Some(o) => Err(invalid(
                path,
                Some(k.into()),
                format!("expected an array, found {}", describe(o)),
            )),
            None => Err(invalid(
                path,
                Some(k.into()),
                "missing (a COCO file needs images, annotations and categories)",
            )),
        }
    };
    let (images, anns, cats) = (arr("images")?, arr("annotations")?, arr("categories")?);
    let id_key = |v: Option<&Value>| -> Option<String> {
        match v? {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        }
    };
    let mut cat_names: HashMap<String, String> = HashMap::new();
    for (i, c) in cats.iter().enumerate() {
        let f = format!("categories[{i}]");
        let id = id_key(c.get("id"))
            .ok_or_else(|| invalid(path, Some(format!("{f}.id")), "missing or not a number"))?;
        let name = c
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(path, Some(format!("{f}.name")), "missing or not a string"))?;
        cat_names.insert(id, name.to_string());
    }
    struct Img<'a> {
        entry: &'a Map<String, Value>,
        index: usize,
        file: String,
        w: u32,
        h: u32,
        boxes: Vec<(usize, String, BBox)>,
    }
    let mut imgs: Vec<Img> = Vec::with_capacity(images.len());
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut rep = ImportReport::default();
    for (i, im) in images.iter().enumerate() {
        let f = format!("images[{i}]");
        let result = (|| {
            let Value::Object(o) = im else {
                return Err(invalid(
                    path,
                    Some(f.clone()),
                    format!("expected an object, found {}", describe(im)),
                ));
            };
            let id = id_key(o.get("id"))
                .ok_or_else(|| invalid(path, Some(format!("{f}.id")), "missing or not a number"))?;
            let file = o
                .get("file_name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    invalid(
                        path,
                        Some(format!("{f}.file_name")),
                        "missing or not a string",
                    )
                })?
                .to_string();
            let dim = |k: &str| {
                o.get(k)
                    .and_then(Value::as_u64)
                    .filter(|&n| n > 0 && n <= u32::MAX as u64)
                    .map(|n| n as u32)
                    .ok_or_else(|| {
                        invalid(
                            path,
                            Some(format!("{f}.{k}")),
                            "missing or not a positive whole number",
                        )
                    })
            };
            let (w, h) = (dim("width")?, dim("height")?);
            if by_id.contains_key(&id) {
                return Err(invalid(
                    path,
                    Some(format!("{f}.id")),
                    format!("duplicate image id {id}"),
                ));
            }
            Ok((
                id,
                Img {
                    entry: o,
                    index: i,
                    file,
                    w,
                    h,
                    boxes: Vec::new(),
                },
            ))
        })();
        match result {
            Ok((id, img)) => {
                by_id.insert(id, imgs.len());
                imgs.push(img);
            }
            Err(e) => rep.problems.push(e),
        }
    }
    for (i, a) in anns.iter().enumerate() {
        let f = format!("annotations[{i}]");
        let result = (|| {
            let img_id = id_key(a.get("image_id")).ok_or_else(|| {
                invalid(
                    path,
                    Some(format!("{f}.image_id")),
                    "missing or not a number",
                )
            })?;
            let &k = by_id.get(&img_id).ok_or_else(|| {
                invalid(
                    path,
                    Some(format!("{f}.image_id")),
                    format!("no image has id {img_id}"),
                )
            })?;
            let cat = id_key(a.get("category_id")).ok_or_else(|| {
                invalid(
                    path,
                    Some(format!("{f}.category_id")),
                    "missing or not a number",
                )
            })?;
            let name = cat_names.get(&cat).ok_or_else(|| {
                invalid(
                    path,
                    Some(format!("{f}.category_id")),
                    format!("no category has id {cat}"),
                )
            })?;
            let bv = a
                .get("bbox")
                .ok_or_else(|| invalid(path, Some(format!("{f}.bbox")), "missing"))?;
            let b = xywh_box(bv, &format!("{f}.bbox"), imgs[k].w, imgs[k].h, path)?;
            Ok((k, name.clone(), b))
        })();
        match result {
            Ok((k, name, b)) => imgs[k].boxes.push((i, name, b)),
            Err(e) => rep.problems.push(e),
        }
    }
    for img in imgs {
        let src_img = images_dir.join(&img.file);
        let f = format!("images[{}]", img.index);
        if !src_img.is_file() {
            rep.problems.push(invalid(
                path,
                Some(format!("{f}.file_name")),
                format!(
                    "image file not found: {} (file_name is read relative to the images folder, {})",
                    src_img.display(),
                    images_dir.display()
                ),
            ));
            continue;
        }
        let image = dataset_image_path(&img.file);
        let o = img.entry;
        let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        if let (Some(question), Some(answer)) = (text("question"), text("answer")) {
            // Written by our exporter: one sample per image.
            let options = o
                .get("options")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let id = text("virl_id").unwrap_or_else(|| img.file.clone());
            rep.samples.push(Imported {
                sample: Sample {
                    id,
                    image,
                    width: img.w,
                    height: img.h,
                    question,
                    answer,
                    options,
                    rationales: img
                        .boxes
                        .iter()
                        .map(|(_, n, b)| Rationale {
                            bbox: *b,
                            label: n.clone(),
                        })
                        .collect(),
                    meta: o.get("virl_meta").cloned(),
                    extra: Map::new(),
                },
                source_image: src_img,
            });
            continue;
        }
        // Plain COCO: a counting question per category present.
        let mut per_cat: BTreeMap<&str, Vec<BBox>> = BTreeMap::new();
        for (_, n, b) in &img.boxes {
            per_cat.entry(n.as_str()).or_default().push(*b);
        }
        let stem = Path::new(&img.file).with_extension("");
        for (name, boxes) in per_cat {
            rep.samples.push(Imported {
                sample: Sample {
                    id: format!("{}#{name}", stem.to_string_lossy()),
                    image: image.clone(),
                    width: img.w,
                    height: img.h,
                    question: format!("How many {name} are in the image?"),
                    answer: boxes.len().to_string(),
                    options: Vec::new(),
                    rationales: boxes
                        .into_iter()
                        .map(|b| Rationale {
                            bbox: b,
                            label: name.to_string(),
                        })
                        .collect(),
                    meta: Some(json!({ "source": "coco", "file_name": img.file })),
                    extra: Map::new(),
                },
                source_image: src_img.clone(),
            });
        }
    }
    Ok(rep)
}

/// Where an image named `file_name` goes inside the new dataset folder: the
/// same relative path if it has folders (`images/a.png`, as our exporter
/// writes), else under `images/`; absolute paths and `..` are reduced to the
/// file name, so nothing is written outside the dataset.
fn dataset_image_path(file_name: &str) -> String {
    let p = Path::new(file_name);
    let safe = p.is_relative()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if safe && p.components().count() > 1 {
        file_name.to_string()
    } else {
        let base = p
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        format!("images/{base}")
    }
}

/// Reads a COCO detection file from disk (see [`parse_coco`]).
pub fn read_coco(src: &Path, images_dir: &Path) -> Result<ImportReport, DatasetError> {
    let bytes = std::fs::read(src).map_err(|source| DatasetError::Io {
        action: "read",
        path: src.to_path_buf(),
        source,
    })?;
    parse_coco(&bytes, src, images_dir)
}

/// Writes imported samples as a dataset folder `out` (images hard-linked,
/// or copied where a link is not possible, into `out/images/`; then the
/// manifest, atomically). Refuses a folder that already holds a manifest.
/// With `skip_bad` false, any problem of the import fails it and nothing is
/// written.
pub fn write_dataset(
    rep: ImportReport,
    out: &Path,
    skip_bad: bool,
) -> Result<Dataset, DatasetError> {
    if !rep.problems.is_empty() && !skip_bad {
        let total = rep.problems.len();
        let path = rep.problems[0].path().to_path_buf();
        let mut errors = rep.problems;
        if total == 1 {
            return Err(errors.remove(0));
        }
        errors.truncate(super::manifest::MAX_REPORTED);
        return Err(DatasetError::Several {
            path,
            total,
            errors,
        });
    }
    if rep.samples.is_empty() {
        return Err(invalid(
            out,
            None,
            "nothing to import: every sample had a problem",
        ));
    }
    if out.join(MANIFEST).exists() {
        return Err(invalid(
            &out.join(MANIFEST),
            None,
            "a dataset already exists here; choose another --out",
        ));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, s) in rep.samples.iter().enumerate() {
        if let Some(j) = seen.insert(&s.sample.id, i) {
            return Err(invalid(
                &rep.samples[i].source_image,
                Some("id".into()),
                format!(
                    "two samples would have the id {:?} (also from {})",
                    s.sample.id,
                    rep.samples[j].source_image.display()
                ),
            ));
        }
    }
    let mut copied: HashMap<PathBuf, ()> = HashMap::new();
    for s in &rep.samples {
        let dst = out.join(&s.sample.image);
        if copied.insert(dst.clone(), ()).is_some() || dst.exists() {
            continue;
        }
        if let Some(d) = dst.parent() {
            std::fs::create_dir_all(d).map_err(|source| DatasetError::Io {
                action: "create",
                path: d.to_path_buf(),
                source,
            })?;
        }
        if std::fs::hard_link(&s.source_image, &dst).is_err() {
            std::fs::copy(&s.source_image, &dst).map_err(|source| DatasetError::Io {
                action: "write",
                path: dst.clone(),
                source,
            })?;
        }
    }
    let ds = Dataset::new(out, rep.samples.into_iter().map(|s| s.sample).collect());
    ds.save()?;
    Ok(ds)
}

/// The dataset as a COCO detection file: rationales are the annotations,
/// their labels the categories (an empty label is `rationale`); each image
/// entry also carries the sample's `virl_id`, `question`, `answer`,
/// `options` and `virl_meta`, so [`parse_coco`] reads it back unchanged.
/// `file_name`s are relative to the dataset folder. One image entry per
/// sample (samples sharing an image file get one entry each).
pub fn to_coco(ds: &Dataset) -> Value {
    let mut cats: BTreeMap<String, usize> = BTreeMap::new();
    for s in ds.samples() {
        for r in &s.rationales {
            let n = if r.label.is_empty() {
                "rationale"
            } else {
                &r.label
            };
            let k = cats.len() + 1;
            cats.entry(n.to_string()).or_insert(k);
        }
    }
    let mut images = Vec::with_capacity(ds.len());
    let mut anns = Vec::new();
    for (i, s) in ds.samples().iter().enumerate() {
        let mut e = json!({
            "id": i + 1,
            "file_name": s.image,
            "width": s.width,
            "height": s.height,
            "virl_id": s.id,
            "question": s.question,
            "answer": s.answer,
            "options": s.options,
        });
        if let Some(m) = &s.meta {
            e["virl_meta"] = m.clone();
        }
        images.push(e);
        for r in &s.rationales {
            let n = if r.label.is_empty() {
                "rationale"
            } else {
                &r.label
            };
            anns.push(json!({
                "id": anns.len() + 1,
                "image_id": i + 1,
                "category_id": cats[n],
                "bbox": r.bbox.to_xywh(),
                "area": r.bbox.area(),
                "iscrowd": 0,
            }));
        }
    }
    let categories: Vec<Value> = cats
        .iter()
        .map(|(n, id)| json!({ "id": id, "name": n, "supercategory": "rationale" }))
        .collect();
    json!({
        "info": { "description": "exported by ViRL Studio", "version": env!("CARGO_PKG_VERSION") },
        "images": images,
        "annotations": anns,
        "categories": categories,
    })
}

/// Export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// COCO detection JSON ([`to_coco`]).
    Coco,
    /// Our manifest lines, corrections applied. Image paths are kept
    /// relative when the file goes into the dataset folder, and made
    /// absolute otherwise, so the exported manifest loads from anywhere.
    Jsonl,
}

/// Writes the dataset (with its corrections) to `out` atomically.
pub fn export(ds: &Dataset, format: ExportFormat, out: &Path) -> Result<(), DatasetError> {
    let bytes = match format {
        ExportFormat::Coco => serde_json::to_vec_pretty(&to_coco(ds)).unwrap_or_default(),
        ExportFormat::Jsonl => {
            let root = std::fs::canonicalize(ds.root()).unwrap_or_else(|_| ds.root().to_path_buf());
            let out_dir = out
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()))
                .unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
            if out_dir == root {
                super::manifest::to_jsonl(ds.samples()).into_bytes()
            } else {
                let moved: Vec<Sample> = ds
                    .samples()
                    .iter()
                    .map(|s| Sample {
                        image: root.join(&s.image).to_string_lossy().into_owned(),
                        ..s.clone()
                    })
                    .collect();
                super::manifest::to_jsonl(&moved).into_bytes()
            }
        }
    };
    crate::fsutil::atomic_write(out, &bytes).map_err(|source| DatasetError::Io {
        action: "write",
        path: out.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(path: &Path, w: u32, h: u32) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        image::RgbImage::from_pixel(w, h, image::Rgb([9, 80, 200]))
            .save(path)
            .expect("save");
    }

    #[test]
    fn vstar_folder_imports_with_xywh_boxes_and_first_option_correct() {
        let d = tempfile::tempdir().expect("tmp");
        let src = d.path().join("vstar/direct_attributes");
        img(&src.join("sa_1.jpg"), 200, 100);
        std::fs::write(
            src.join("sa_1.json"),
            r#"{"target_object": ["glove"], "bbox": [[10, 20, 30, 40]], "question": "What colour is the glove?", "options": ["white", "black"]}"#,
        )
        .expect("write");
        let rep = read_vstar(&d.path().join("vstar")).expect("read");
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
        let out = d.path().join("ds");
        let ds = write_dataset(rep, &out, false).expect("write");
        let s = &ds.samples()[0];
        assert_eq!(s.id, "direct_attributes/sa_1");
        assert_eq!(s.answer, "white");
        assert_eq!(s.rationales[0].bbox, BBox::new(10.0, 20.0, 40.0, 60.0));
        assert_eq!(s.rationales[0].label, "glove");
        let back = Dataset::load(&out).expect("load");
        assert_eq!(back.samples(), ds.samples());
    }

    #[test]
    fn vstar_bad_inputs_name_the_file() {
        let d = tempfile::tempdir().expect("tmp");
        let src = d.path().join("v");
        img(&src.join("a.jpg"), 50, 50);
        img(&src.join("b.jpg"), 50, 50);
        img(&src.join("c.jpg"), 50, 50);
        std::fs::write(src.join("a.json"), r#"{"target_object": "x", "bbox": [40, 40, 30, 30], "question": "q", "options": ["y"]}"#).expect("w");
        std::fs::write(
            src.join("b.json"),
            r#"{"target_object": "x", "bbox": [1, 2, 3], "question": "q", "options": ["y"]}"#,
        )
        .expect("w");
        std::fs::write(
            src.join("c.json"),
            r#"{"target_object": "x", "bbox": [1, 2, 3, 4], "options": ["y"]}"#,
        )
        .expect("w");
        std::fs::write(
            src.join("d.json"),
            r#"{"target_object": "x", "bbox": [1, 2, 3, 4], "question": "q", "options": ["y"]}"#,
        )
        .expect("w");
        let rep = read_vstar(&src).expect("read");
        let msgs: Vec<String> = rep.problems.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert!(
            msgs[0].contains("outside the 50×50 image") && msgs[0].contains("a.json"),
            "{}",
            msgs[0]
        );
        assert!(
            msgs[1].contains("4 numbers") && msgs[1].contains("b.json"),
            "{}",
            msgs[1]
        );
        assert!(
            msgs[2].contains("`question`")
                && msgs[2].contains("missing")
                && msgs[2].contains("c.json"),
            "{}",
            msgs[2]
        );
        assert!(
            msgs[3].contains("no image beside it") && msgs[3].contains("d.json"),
            "{}",
            msgs[3]
        );
        let out = d.path().join("out");
        let err = write_dataset(rep, &out, false).expect_err("bad samples fail the import");
        assert!(err.to_string().contains("4 problems"), "{err}");
        assert!(!out.exists(), "a failed import writes nothing");
    }

    #[test]
    fn coco_round_trip_keeps_every_sample() {
        let d = tempfile::tempdir().expect("tmp");
        let root = d.path().join("ds");
        img(&root.join("images/p.png"), 64, 48);
        let s = |id: &str, boxes: Vec<(&str, [f64; 4])>| Sample {
            id: id.into(),
            image: "images/p.png".into(),
            width: 64,
            height: 48,
            question: format!("question {id}"),
            answer: "3".into(),
            options: vec![],
            rationales: boxes
                .into_iter()
                .map(|(l, b)| Rationale {
                    bbox: BBox::from(b),
                    label: l.into(),
                })
                .collect(),
            meta: Some(json!({"k": 1})),
            extra: Map::new(),
        };
        let ds = Dataset::new(
            &root,
            vec![
                s(
                    "a",
                    vec![
                        ("red placard", [1.5, 2.0, 10.25, 12.0]),
                        ("", [0.0, 0.0, 64.0, 48.0]),
                    ],
                ),
                s("b", vec![]),
            ],
        );
        ds.save().expect("save");
        let coco = d.path().join("coco.json");
        export(&ds, ExportFormat::Coco, &coco).expect("export");
        let rep = read_coco(&coco, &root).expect("read");
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
        let back = write_dataset(rep, &d.path().join("again"), false).expect("write");
        assert_eq!(back.len(), 2);
        for (x, y) in ds.samples().iter().zip(back.samples()) {
            assert_eq!(
                (&x.id, &x.question, &x.answer, &x.meta),
                (&y.id, &y.question, &y.answer, &y.meta)
            );
            assert_eq!(x.rationales.len(), y.rationales.len());
            for (p, q) in x.rationales.iter().zip(&y.rationales) {
                let want = if p.label.is_empty() {
                    "rationale"
                } else {
                    &p.label
                };
                assert_eq!(q.label, want);
                for (u, v) in p.bbox.to_array().iter().zip(q.bbox.to_array()) {
                    assert!((u - v).abs() < 1e-9, "{:?} vs {:?}", p.bbox, q.bbox);
                }
            }
        }
        // JSONL export is the manifest itself.
        let j = d.path().join("out.jsonl");
        export(&ds, ExportFormat::Jsonl, &j).expect("export");
        let back = Dataset::load(&j).expect("load exported manifest");
        for (x, y) in ds.samples().iter().zip(back.samples()) {
            assert_eq!(
                Sample {
                    image: x.image.clone(),
                    ..y.clone()
                },
                *x
            );
            assert!(Path::new(&y.image).is_absolute(), "{}", y.image);
        }
    }

    #[test]
    fn plain_coco_becomes_counting_questions() {
        let d = tempfile::tempdir().expect("tmp");
        img(&d.path().join("imgs/x.jpg"), 100, 100);
        let coco = br#"{"images": [{"id": 7, "file_name": "x.jpg", "width": 100, "height": 100}],
            "annotations": [{"image_id": 7, "category_id": 1, "bbox": [0, 0, 10, 10]},
                            {"image_id": 7, "category_id": 1, "bbox": [20, 20, 10, 10]},
                            {"image_id": 7, "category_id": 2, "bbox": [50, 50, 5, 5]}],
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}"#;
        let rep = parse_coco(coco, Path::new("c.json"), &d.path().join("imgs")).expect("parse");
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
        let q: Vec<(&str, &str)> = rep
            .samples
            .iter()
            .map(|s| (s.sample.question.as_str(), s.sample.answer.as_str()))
            .collect();
        assert_eq!(
            q,
            [
                ("How many cat are in the image?", "2"),
                ("How many dog are in the image?", "1")
            ]
        );
    }

    #[test]
    fn coco_bad_inputs_name_file_and_field() {
        let d = tempfile::tempdir().expect("tmp");
        img(&d.path().join("x.png"), 10, 10);
        let p = Path::new("/data/ann.json");
        let case = |s: &str| parse_coco(s.as_bytes(), p, d.path());
        let e = case(r#"{"images": []}"#)
            .expect_err("missing keys")
            .to_string();
        assert!(e.contains("`annotations`") && e.contains("ann.json"), "{e}");
        let r = case(r#"{"images": [{"id": 1, "file_name": "x.png", "width": 10, "height": 10}, {"id": 2, "file_name": "gone.png", "width": 10, "height": 10}],
            "annotations": [{"image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 2]}, {"image_id": 1, "category_id": 1, "bbox": [1, 1]}],
            "categories": [{"id": 1, "name": "a"}]}"#)
        .expect("parse");
        let msgs: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
        assert!(
            msgs.iter()
                .any(|m| m.contains("annotations[0].bbox") && m.contains("outside")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("annotations[1].bbox") && m.contains("4 numbers")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("images[1].file_name") && m.contains("not found")),
            "{msgs:?}"
        );
    }
}
