//! Importers and exporters (DESIGN §2), one file per format ([`vstar`],
//! [`coco`]; our JSONL is [`export`]'s other format): V* Bench folders and
//! COCO detection JSON in, COCO and our JSONL out. Every box is converted to pixel `xyxy`
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

mod coco;
mod hrbench;
mod verl;
mod viscot;
mod vstar;

pub use coco::{images_root as coco_images_root, parse_coco, read_coco, to_coco};
pub use hrbench::{parse_hrbench, read_hrbench};
pub use verl::from_verl_rows;
pub use viscot::{parse_viscot, read_viscot, viscot_box};
pub use vstar::{parse_vstar, read_vstar};

use super::manifest::{MANIFEST, describe};
use super::{Dataset, DatasetError, Location, Sample};
use crate::geometry::BBox;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Boxes that overrun the image by at most this many pixels (rounding in the
/// source) are clipped to it; more is an error.
pub const EDGE_TOLERANCE: f64 = 1.0;

pub(super) fn invalid(
    path: &Path,
    field: Option<String>,
    message: impl Into<String>,
) -> DatasetError {
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
    /// The image was extracted from the annotation file (base64 or parquet
    /// bytes) into a staging folder, so the dataset must keep its own copy
    /// whatever [`Images`] says.
    pub extracted: bool,
}

/// Where an imported dataset's images live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Images {
    /// The manifest names each image where it lies (an absolute path):
    /// nothing is copied, as real datasets (Visual-CoT's images come to
    /// hundreds of GB) are too large to copy. Images extracted from the
    /// annotation file are still written into the dataset folder.
    #[default]
    Reference,
    /// Every image is linked (or, across file systems, copied) into the
    /// dataset folder, which then stands alone.
    Copy,
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
pub(super) fn xywh_box(
    v: &Value,
    field: &str,
    iw: u32,
    ih: u32,
    path: &Path,
) -> Result<BBox, DatasetError> {
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

/// The bytes of an annotation file an importer reads, or an error naming it.
pub(super) fn read_source(src: &Path) -> Result<Vec<u8>, DatasetError> {
    std::fs::read(src).map_err(|source| DatasetError::Io {
        action: "read",
        path: src.to_path_buf(),
        source,
    })
}

/// The size of an image, from its header.
pub(super) fn image_size(path: &Path) -> Result<(u32, u32), DatasetError> {
    if !path.is_file() {
        return Err(invalid(path, None, "image file not found"));
    }
    image::image_dimensions(path).map_err(|e| DatasetError::Image {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Decodes every distinct source image of `rep` in full, on every core (a
/// header says nothing of a file cut short), within the decoder's memory
/// limits (so a header declaring 60 000 × 60 000 pixels is an error, not an
/// allocation). The samples of an image that does not decode, or whose size
/// differs from what the sample declares, leave `rep.samples` and become
/// problems naming the image. Returns how many images were checked.
pub fn verify_images(rep: &mut ImportReport) -> usize {
    let mut paths: Vec<&Path> = rep
        .samples
        .iter()
        .map(|s| s.source_image.as_path())
        .collect();
    paths.sort();
    paths.dedup();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let chunk = paths.len().div_ceil(threads).max(1);
    let sizes: HashMap<PathBuf, Result<(u32, u32), String>> = std::thread::scope(|sc| {
        let jobs: Vec<_> = paths
            .chunks(chunk)
            .map(|c| {
                sc.spawn(move || {
                    c.iter()
                        .map(|p| {
                            let r = std::fs::read(p)
                                .map_err(|e| format!("cannot read ({e})"))
                                .and_then(|b| decoded_size(&b));
                            (p.to_path_buf(), r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        jobs.into_iter()
            .flat_map(|j| j.join().unwrap_or_default())
            .collect()
    });
    let checked = sizes.len();
    let mut reported = std::collections::HashSet::new();
    for s in std::mem::take(&mut rep.samples) {
        let problem = match sizes.get(&s.source_image) {
            Some(Ok((w, h))) if (*w, *h) == (s.sample.width, s.sample.height) => None,
            Some(Ok((w, h))) => Some(invalid(
                &s.source_image,
                None,
                format!(
                    "the image is {w}×{h}, but the annotation of sample {:?} says {}×{}",
                    s.sample.id, s.sample.width, s.sample.height
                ),
            )),
            Some(Err(e)) => Some(DatasetError::Image {
                path: s.source_image.clone(),
                message: e.clone(),
            }),
            None => Some(invalid(&s.source_image, None, "could not be checked")),
        };
        match problem {
            None => rep.samples.push(s),
            Some(e) => {
                if reported.insert(s.source_image.clone()) {
                    rep.problems.push(e);
                }
            }
        }
    }
    checked
}

/// The size of an encoded image, after decoding all of it. JPEG decoders
/// fill a scan cut short with grey without a word, so a JPEG must also reach
/// its end-of-image marker after its last scan.
fn decoded_size(bytes: &[u8]) -> Result<(u32, u32), String> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    reader.limits(super::decode_limits());
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_reaches_its_end(bytes) {
        return Err("the JPEG stops before its end-of-image marker: the file is truncated".into());
    }
    let img = reader.decode().map_err(|e| e.to_string())?;
    Ok((img.width(), img.height()))
}

/// Whether a JPEG has an end-of-image marker (`FF D9`) after the start of
/// its last scan (`FF DA`). Inside a scan a data byte `FF` is always
/// followed by `00` or a restart marker, so the marker cannot occur by
/// chance there.
fn jpeg_reaches_its_end(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    last_scan.is_some_and(|i| bytes[i..].windows(2).any(|w| w == [0xFF, 0xD9]))
}

/// Writes imported samples as a dataset folder `out` (images hard-linked,
/// or copied where a link is not possible, into `out/images/`; then the
/// manifest, atomically). Refuses a folder that already holds a manifest.
/// With `skip_bad` false, any problem of the import fails it and nothing is
/// written.
pub fn write_dataset(
    mut rep: ImportReport,
    out: &Path,
    skip_bad: bool,
    images: Images,
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
    if images == Images::Reference {
        for s in rep.samples.iter_mut().filter(|s| !s.extracted) {
            let abs =
                std::fs::canonicalize(&s.source_image).map_err(|source| DatasetError::Io {
                    action: "read",
                    path: s.source_image.clone(),
                    source,
                })?;
            s.sample.image = abs
                .to_str()
                .ok_or_else(|| {
                    invalid(
                        &s.source_image,
                        Some("image".into()),
                        "the path is not valid UTF-8, so a manifest cannot name it; import with --copy-images",
                    )
                })?
                .to_string();
        }
    }
    // Two different source images must never become one image path.
    let mut source_of: HashMap<&str, &Path> = HashMap::new();
    for s in &rep.samples {
        match source_of.insert(&s.sample.image, &s.source_image) {
            Some(other) if other != s.source_image => {
                return Err(invalid(
                    &s.source_image,
                    Some("image".into()),
                    format!(
                        "{} and {} would both be written as {}; rename one of them",
                        other.display(),
                        s.source_image.display(),
                        out.join(&s.sample.image).display()
                    ),
                ));
            }
            _ => {}
        }
    }
    let mut copied: HashMap<PathBuf, ()> = HashMap::new();
    for s in rep
        .samples
        .iter()
        .filter(|s| images == Images::Copy || s.extracted)
    {
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
    std::fs::create_dir_all(out).map_err(|source| DatasetError::Io {
        action: "create",
        path: out.to_path_buf(),
        source,
    })?;
    let ds = Dataset::new(out, rep.samples.into_iter().map(|s| s.sample).collect());
    ds.save()?;
    Ok(ds)
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
mod tests;
