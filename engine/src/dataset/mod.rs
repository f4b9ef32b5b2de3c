//! Samples and dataset folders (DESIGN §2), and the ZoomBench generator (§3).
//!
//! A dataset is a folder with `manifest.jsonl` (one [`Sample`] per line) and
//! the images it names (paths relative to the folder).

pub mod annotations;
pub mod error;
mod font;
pub mod interchange;
pub mod live;
pub mod manifest;
pub mod zoombench;

pub use error::{DatasetError, Location};
pub use manifest::MANIFEST;

use crate::geometry::BBox;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A ground-truth rationale: the region a correct answer must look at.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rationale {
    /// The box, in pixels of the original image (xyxy).
    pub bbox: BBox,
    /// What is there ("red placard"); may be empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub label: String,
}

/// One question about one image, with its answer and rationale boxes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    /// Unique within the dataset.
    pub id: String,
    /// Image path relative to the manifest's folder.
    pub image: String,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// The question asked.
    pub question: String,
    /// The correct answer (for multiple choice: the option text or its letter).
    pub answer: String,
    /// Multiple-choice options, if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Ground-truth rationale boxes (may be empty: M = 0).
    pub rationales: Vec<Rationale>,
    /// Free-form metadata (generator knobs, provenance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<serde_json::Value>,
    /// Keys of the manifest line this program does not know, kept so that a
    /// load + save round trip loses nothing.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Sample {
    /// The rationale boxes alone, in order.
    pub fn gt_boxes(&self) -> Vec<BBox> {
        self.rationales.iter().map(|r| r.bbox).collect()
    }
}

/// A dataset folder loaded in memory.
#[derive(Clone, Debug)]
pub struct Dataset {
    root: PathBuf,
    samples: Vec<Sample>,
    index: HashMap<String, usize>,
    /// Edits replayed from the journal at load time (not yet in the manifest).
    pending_edits: usize,
    /// Warnings of that replay.
    journal_warnings: Vec<String>,
    /// Samples the replay changed.
    journal_samples: Vec<String>,
}

/// The most bytes of pixels an image may decode to: 512 MiB, the `image`
/// crate's default, which holds a 15 000 × 10 000 RGB image; a header
/// declaring more (60 000 × 60 000 is 10 GB) is refused, not allocated.
pub const MAX_DECODE_BYTES: u64 = 512 << 20;

/// The decoder limits every image read goes through.
pub fn decode_limits() -> image::Limits {
    let mut l = image::Limits::default();
    l.max_alloc = Some(MAX_DECODE_BYTES);
    l
}

impl Dataset {
    /// A dataset of `samples` rooted at the folder `root` (nothing is written).
    pub fn new(root: impl Into<PathBuf>, samples: Vec<Sample>) -> Self {
        let index = samples
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        Self {
            root: root.into(),
            samples,
            index,
            pending_edits: 0,
            journal_warnings: Vec::new(),
            journal_samples: Vec::new(),
        }
    }

    /// Replays the correction journal at `path` onto this dataset (see
    /// [`annotations`]) and remembers what it did ([`Dataset::pending_edits`],
    /// [`Dataset::journal_warnings`], [`Dataset::journal_samples`]).
    pub fn apply_journal(&mut self, path: &Path) -> Result<(), DatasetError> {
        let r = annotations::apply(self, path)?;
        self.pending_edits += r.applied;
        self.journal_warnings.extend(r.warnings);
        for s in r.samples {
            if !self.journal_samples.contains(&s) {
                self.journal_samples.push(s);
            }
        }
        Ok(())
    }

    /// Samples whose ground truth the journal replayed at load time changed.
    pub fn journal_samples(&self) -> &[String] {
        &self.journal_samples
    }

    /// Edits of the correction journal (`annotations.jsonl`) replayed at
    /// load time that are not yet compacted into the manifest.
    pub fn pending_edits(&self) -> usize {
        self.pending_edits
    }

    /// What replaying the journal at load time reported (a torn last line,
    /// edits of unknown samples).
    pub fn journal_warnings(&self) -> &[String] {
        &self.journal_warnings
    }

    /// Loads and validates `dir/manifest.jsonl` (or `dir` itself, if it is a
    /// manifest file), then replays the correction journal `annotations.jsonl`
    /// beside it, if any ([`annotations`]). See [`manifest::load`] for what is
    /// checked.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, DatasetError> {
        manifest::load(dir.as_ref())
    }

    /// Writes the manifest atomically (temporary file + rename).
    pub fn save(&self) -> Result<(), DatasetError> {
        manifest::save(&self.root, &self.samples)
    }

    /// The dataset folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The manifest path.
    pub fn manifest_path(&self) -> PathBuf {
        self.root.join(MANIFEST)
    }

    /// All samples, in manifest order.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The sample with this id.
    pub fn get(&self, id: &str) -> Option<&Sample> {
        self.index.get(id).map(|&i| &self.samples[i])
    }

    /// The full path of a sample's image.
    pub fn image_path(&self, sample: &Sample) -> PathBuf {
        self.root.join(&sample.image)
    }

    /// The samples whose image is larger than a decoder may allocate
    /// ([`MAX_DECODE_BYTES`] of RGB pixels), from the size the manifest
    /// declares (checked against the image's header at load time). Their
    /// images cannot be decoded; training refuses such a dataset with this
    /// list, and the studio shows the error on the sample.
    pub fn over_decode_limit(&self) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| u64::from(s.width) * u64::from(s.height) * 3 > MAX_DECODE_BYTES)
            .collect()
    }

    /// Decodes a sample's image as RGB.
    pub fn load_image(&self, sample: &Sample) -> Result<image::RgbImage, DatasetError> {
        let path = self.image_path(sample);
        let mut reader = image::ImageReader::open(&path)
            .and_then(image::ImageReader::with_guessed_format)
            .map_err(|e| DatasetError::Image {
                path: path.clone(),
                message: e.to_string(),
            })?;
        reader.limits(decode_limits());
        reader
            .decode()
            .map(|i| i.to_rgb8())
            .map_err(|e| DatasetError::Image {
                path,
                message: e.to_string(),
            })
    }
}
