//! COCO detection JSON: `images`, `annotations` (`bbox` as `[x, y, w, h]`)
//! and `categories`, in and out. Our exporter's files carry the question,
//! answer and options and import back unchanged; a plain COCO file becomes
//! one counting question per image and category.

use super::{ImportReport, Imported, invalid, xywh_box};
use crate::dataset::manifest::describe;
use crate::dataset::{Dataset, DatasetError, Rationale, Sample};
use crate::geometry::BBox;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Parses a COCO detection file (its bytes; `path` names it in errors).
/// `images_dir` is the folder `file_name`s are relative to.
pub fn parse_coco(
    bytes: &[u8],
    path: &Path,
    images_dir: &Path,
) -> Result<ImportReport, DatasetError> {
    let v: Value = serde_json::from_slice(crate::fsutil::strip_bom(bytes))
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
        let f = format!("images[{}]", img.index);
        // A name from the file stays inside the images folder: an absolute
        // path or a `..` would read (and copy into the dataset) any file.
        let inside = Path::new(&img.file)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !inside {
            rep.problems.push(invalid(
                path,
                Some(format!("{f}.file_name")),
                format!(
                    "{:?} leaves the images folder {} (absolute paths and '..' are refused; file_name must be relative to it)",
                    img.file,
                    images_dir.display()
                ),
            ));
            continue;
        }
        let src_img = images_dir.join(&img.file);
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
                extracted: false,
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
                extracted: false,
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
    let bytes = super::read_source(src)?;
    parse_coco(&bytes, src, images_dir)
}

/// The dataset as a COCO detection file: rationales are the annotations,
/// their labels the categories (an empty label is `rationale`); each image
/// entry also carries the sample's `virl_id`, `question`, `answer`,
/// `options` and `virl_meta`, so [`parse_coco`] reads it back unchanged.
/// `file_name`s are relative to `info.images_root`: the dataset folder, or,
/// when the manifest names images elsewhere (imported in place), the
/// deepest folder holding all of them; [`images_root`] reads it back, so a
/// re-import needs no `--images`. One image entry per sample (samples
/// sharing an image file get one entry each).
pub fn to_coco(ds: &Dataset) -> Value {
    let root = std::fs::canonicalize(ds.root()).unwrap_or_else(|_| ds.root().to_path_buf());
    let paths: Vec<PathBuf> = ds.samples().iter().map(|s| root.join(&s.image)).collect();
    let base = if paths.iter().all(|p| p.starts_with(&root)) {
        root
    } else {
        common_folder(&paths)
    };
    let names: Vec<String> = paths
        .iter()
        .map(|p| {
            p.strip_prefix(&base)
                .unwrap_or(p)
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
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
            "file_name": names[i],
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
        "info": {
            "description": "exported by ViRL Studio",
            "version": env!("CARGO_PKG_VERSION"),
            "images_root": base.to_string_lossy(),
        },
        "images": images,
        "annotations": anns,
        "categories": categories,
    })
}

/// The deepest folder holding every path of `paths`.
fn common_folder(paths: &[PathBuf]) -> PathBuf {
    let mut it = paths.iter();
    let Some(first) = it.next() else {
        return PathBuf::new();
    };
    let mut base: PathBuf = first.parent().map(Path::to_path_buf).unwrap_or_default();
    for p in it {
        while !p.starts_with(&base) {
            if !base.pop() {
                return PathBuf::new();
            }
        }
    }
    base
}

/// The folder a COCO file's `file_name`s are relative to, as a ViRL Studio
/// export records it (`info.images_root`), if it does and the folder exists.
pub fn images_root(src: &Path) -> Option<PathBuf> {
    let bytes = super::read_source(src).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let root = PathBuf::from(v.get("info")?.get("images_root")?.as_str()?);
    root.is_dir().then_some(root)
}
