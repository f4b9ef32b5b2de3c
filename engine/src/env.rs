//! The zoom environment (DESIGN §3, §7): batched episodes over dataset
//! samples.
//!
//! An episode shows the policy
//! - the **global view**: the whole image area-averaged to
//!   `global_view × global_view` (the grid the policy points its zooms on);
//! - the **current crop**: the last executed zoom's region of the original
//!   image, resized to `view × view` (all zeros before the first zoom);
//! - the question (as text; the policy encodes it), the step index and the
//!   boxes so far.
//!
//! Actions are [`Action::Zoom`] (a box in original-image pixels) or
//! [`Action::Answer`]. The episode ends at the answer, or after `max_rounds`
//! zooms (cut off, `R_ans = 0`). A proposed box is recorded as proposed (that
//! is what the rewards score, clipped as DESIGN §4 says); the box actually
//! cropped is the proposal clipped to the image and grown to at least
//! `min_zoom_side` pixels around its centre.
//!
//! Observations live in flat `u8` buffers owned by [`EpisodeBatch`] and are
//! overwritten in place: no per-step or per-pixel allocation.

use crate::dataset::zoombench::ZoomBench;
use crate::dataset::{Dataset, DatasetError, Sample};
use crate::geometry::{BBox, crop_resize_into, downsample_area_into};
use crate::trajectory::{Trajectory, ZoomAction};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// The box actually cropped for a proposal on a `w × h` image: clipped,
/// grown to `min_side` around its centre; a proposal entirely outside the
/// image (or not finite) becomes a minimum box at the nearest point inside.
/// ZoomNet's environment and the VLM protocol both execute zooms with it.
pub fn execute_box(proposed: &BBox, min_side: f64, w: f64, h: f64) -> BBox {
    let min = min_side.min(w).min(h);
    match proposed.clip(w, h) {
        Some(b) => b.ensure_min_side(min, w, h),
        None => {
            let (cx, cy) = proposed.center();
            let cx = if cx.is_finite() {
                cx.clamp(0.0, w)
            } else {
                w / 2.0
            };
            let cy = if cy.is_finite() {
                cy.clamp(0.0, h)
            } else {
                h / 2.0
            };
            BBox::new(cx, cy, cx, cy).ensure_min_side(min, w, h)
        }
    }
}

/// Episode rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvConfig {
    /// Most zooms before the episode is cut off. Default 6.
    pub max_rounds: usize,
    /// Side of the crops, in pixels. Default 64.
    pub view: u32,
    /// Side of the global view, in pixels: the grid on which ZoomNet places
    /// its zooms, so it sets how finely a zoom can be aimed (one cell is
    /// `image side / global_view` pixels). Default 64; may differ from
    /// `view`.
    pub global_view: u32,
    /// Smallest side of an executed zoom box, in original-image pixels. Default 8.
    pub min_zoom_side: f64,
    /// The crop an episode starts with, before any zoom (see [`StartCrop`]).
    /// Default `"blank"`.
    pub start_crop: StartCrop,
}

/// What the policy sees as its crop before its first zoom.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartCrop {
    /// Nothing (zeros): an answer without a zoom can use only the question.
    #[default]
    Blank,
    /// The global view, as a VLM sees the whole (downsampled) image before it
    /// calls a tool: an answer without a zoom can read what is large enough
    /// there, so a zoom has to earn its place, as in the real setting where
    /// outcome-only RL drifts to "visual thinking collapse".
    Global,
}

impl Default for EnvConfig {
    fn default() -> Self {
        Self {
            max_rounds: 6,
            view: 64,
            global_view: 64,
            min_zoom_side: 8.0,
            start_crop: StartCrop::Blank,
        }
    }
}

impl EnvConfig {
    /// Checks the rules are usable.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_rounds == 0 {
            return Err(
                "max_rounds must be at least 1 (an episode needs room for one zoom)".into(),
            );
        }
        if !(8..=512).contains(&self.view) {
            return Err(format!(
                "view must lie in 8..=512 pixels, got {}",
                self.view
            ));
        }
        if !(8..=512).contains(&self.global_view) {
            return Err(format!(
                "global_view must lie in 8..=512 pixels, got {}",
                self.global_view
            ));
        }
        if !(self.min_zoom_side.is_finite() && self.min_zoom_side >= 1.0) {
            return Err(format!(
                "min_zoom_side must be at least 1 pixel, got {}",
                self.min_zoom_side
            ));
        }
        Ok(())
    }
}

/// An action of the policy.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Look at this box (original-image pixels).
    Zoom(BBox),
    /// Give this answer and end the episode.
    Answer(String),
}

/// Where the images come from: decoded from a dataset folder, or rendered
/// again by the ZoomBench generator (deterministic, so no disk is needed).
#[derive(Clone, Debug)]
pub enum ImageSource {
    /// Decode `dataset.image_path(sample)`.
    Folder,
    /// Render sample `index` of stream `seed`; the sample's `meta.index` and
    /// `meta.seed` say which.
    ZoomBench(ZoomBench),
}

/// Decoded images by sample index, and their insertion order (oldest first).
type ImageCache = (HashMap<usize, Arc<RgbImage>>, VecDeque<usize>);

/// Most bytes of decoded pixels an [`ImageStore`] keeps (besides the newest
/// image, which is kept whatever its size).
pub const CACHE_BYTES: usize = 2 << 30;

/// Decoded images with a bounded cache, and every sample's global view
/// (small, kept for good). Shared between threads.
pub struct ImageStore {
    dataset: Arc<Dataset>,
    source: ImageSource,
    view: u32,
    capacity: usize,
    byte_limit: usize,
    cache: Mutex<ImageCache>,
    globals: Mutex<HashMap<usize, Arc<Vec<u8>>>>,
}

impl ImageStore {
    /// A store over `dataset` keeping at most `capacity` decoded images.
    pub fn new(dataset: Arc<Dataset>, source: ImageSource, view: u32, capacity: usize) -> Self {
        Self {
            dataset,
            source,
            view,
            capacity: capacity.max(1),
            byte_limit: CACHE_BYTES,
            cache: Mutex::new((HashMap::new(), VecDeque::new())),
            globals: Mutex::new(HashMap::new()),
        }
    }

    /// The same store keeping at most `bytes` of decoded pixels (default
    /// [`CACHE_BYTES`]).
    pub fn with_byte_limit(mut self, bytes: usize) -> Self {
        self.byte_limit = bytes;
        self
    }

    /// Decoded images held now.
    pub fn cached(&self) -> usize {
        self.cache.lock().map(|c| c.1.len()).unwrap_or(0)
    }

    /// The side of the global view, in pixels.
    pub fn view(&self) -> u32 {
        self.view
    }

    /// Whether the images are generated (ZoomBench in memory) rather than
    /// read from a dataset folder.
    pub fn is_generated(&self) -> bool {
        matches!(self.source, ImageSource::ZoomBench(_))
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.dataset
    }

    /// The full-resolution image of sample `idx`.
    pub fn image(&self, idx: usize) -> Result<Arc<RgbImage>, DatasetError> {
        if let Ok(c) = self.cache.lock()
            && let Some(img) = c.0.get(&idx)
        {
            return Ok(img.clone());
        }
        let sample = &self.dataset.samples()[idx];
        let img = Arc::new(match &self.source {
            ImageSource::Folder => self.dataset.load_image(sample)?,
            ImageSource::ZoomBench(zb) => {
                let meta = sample.meta.as_ref();
                let get = |k: &str| meta.and_then(|m| m[k].as_u64());
                match (get("seed"), get("index")) {
                    (Some(seed), Some(index)) => zb.generate(seed, index).1,
                    _ => self.dataset.load_image(sample)?,
                }
            }
        });
        if (img.width(), img.height()) != (sample.width, sample.height) {
            return Err(DatasetError::Image {
                path: self.dataset.image_path(sample),
                message: format!(
                    "decoded {}×{} but the manifest says {}×{}",
                    img.width(),
                    img.height(),
                    sample.width,
                    sample.height
                ),
            });
        }
        if let Ok(mut c) = self.cache.lock() {
            let (map, order) = &mut *c;
            if map.insert(idx, img.clone()).is_none() {
                order.push_back(idx);
            }
            let bytes = |m: &HashMap<usize, Arc<RgbImage>>| -> usize {
                m.values().map(|i| i.as_raw().len()).sum()
            };
            // At most `capacity` images and, past the newest, CACHE_BYTES of
            // pixels: 600 decoded 8K images would be 115 GB.
            while order.len() > self.capacity || (order.len() > 1 && bytes(map) > self.byte_limit) {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
        Ok(img)
    }

    /// The `view × view × 3` global view of sample `idx` (computed once;
    /// `view` is the store's, the env's `global_view`).
    pub fn global_view(&self, idx: usize) -> Result<Arc<Vec<u8>>, DatasetError> {
        if let Ok(g) = self.globals.lock()
            && let Some(v) = g.get(&idx)
        {
            return Ok(v.clone());
        }
        let img = self.image(idx)?;
        let n = self.view as usize;
        let mut buf = vec![0u8; n * n * 3];
        let whole = BBox::new(0.0, 0.0, img.width() as f64, img.height() as f64);
        downsample_area_into(&img, &whole, self.view, &mut buf);
        let v = Arc::new(buf);
        if let Ok(mut g) = self.globals.lock() {
            g.insert(idx, v.clone());
        }
        Ok(v)
    }
}

/// A batch of episodes and their current observations.
pub struct EpisodeBatch {
    /// The episodes' records: proposed and executed boxes, the answer,
    /// truncation (log-probabilities and scores are the trainer's to fill).
    pub episodes: Vec<Trajectory>,
    /// Each episode's sample, as an index into the dataset.
    pub samples: Vec<usize>,
    /// Global views, `len × view × view × 3`, row-major RGB.
    pub global: Vec<u8>,
    /// Current crops, same layout; zeros before an episode's first zoom.
    pub crop: Vec<u8>,
    /// The crop before the current one (zeros before the second zoom): the
    /// policy's memory for questions about two regions.
    pub prev_crop: Vec<u8>,
    /// Crop side.
    pub view: u32,
    /// Global view side.
    pub global_view: u32,
}

impl EpisodeBatch {
    /// Number of episodes.
    pub fn len(&self) -> usize {
        self.episodes.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.episodes.is_empty()
    }

    /// Indices of the episodes still running.
    pub fn active(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| !self.episodes[i].finished())
            .collect()
    }

    /// Episode `i`'s crop buffer.
    pub fn crop_of(&self, i: usize) -> &[u8] {
        let n = (self.view * self.view * 3) as usize;
        &self.crop[i * n..(i + 1) * n]
    }

    /// Episode `i`'s previous crop buffer.
    pub fn prev_crop_of(&self, i: usize) -> &[u8] {
        let n = (self.view * self.view * 3) as usize;
        &self.prev_crop[i * n..(i + 1) * n]
    }

    /// Episode `i`'s global view buffer.
    pub fn global_of(&self, i: usize) -> &[u8] {
        let n = (self.global_view * self.global_view * 3) as usize;
        &self.global[i * n..(i + 1) * n]
    }
}

/// The environment: rules plus images.
pub struct ZoomEnv {
    cfg: EnvConfig,
    store: Arc<ImageStore>,
}

impl ZoomEnv {
    /// An environment over an image store (whose view size must be the
    /// env's `global_view`).
    pub fn new(cfg: EnvConfig, store: Arc<ImageStore>) -> Result<Self, String> {
        cfg.validate()?;
        if store.view != cfg.global_view {
            return Err(format!(
                "image store view {} ≠ env global_view {}",
                store.view, cfg.global_view
            ));
        }
        Ok(Self { cfg, store })
    }

    /// The rules.
    pub fn config(&self) -> &EnvConfig {
        &self.cfg
    }

    /// The images.
    pub fn store(&self) -> &Arc<ImageStore> {
        &self.store
    }

    /// The sample of episode `i` of `batch`.
    pub fn sample(&self, batch: &EpisodeBatch, i: usize) -> &Sample {
        &self.store.dataset.samples()[batch.samples[i]]
    }

    /// Starts one episode per entry of `samples` (dataset indices).
    pub fn reset(&self, samples: &[usize]) -> Result<EpisodeBatch, DatasetError> {
        let n = (self.cfg.view * self.cfg.view * 3) as usize;
        let g = self.cfg.global_view;
        let gn = (g * g * 3) as usize;
        let mut global = vec![0u8; samples.len() * gn];
        for (i, &s) in samples.iter().enumerate() {
            global[i * gn..(i + 1) * gn].copy_from_slice(&self.store.global_view(s)?);
        }
        let ds = self.store.dataset.samples();
        let crop = match self.cfg.start_crop {
            StartCrop::Blank => vec![0u8; samples.len() * n],
            StartCrop::Global if g == self.cfg.view => global.clone(),
            // The whole image area-averaged to the crop's side.
            StartCrop::Global => {
                // Once per distinct sample: a rollout's group shares one.
                let mut crop = vec![0u8; samples.len() * n];
                let mut first: HashMap<usize, usize> = HashMap::new();
                for (i, &s) in samples.iter().enumerate() {
                    if let Some(&j) = first.get(&s) {
                        crop.copy_within(j * n..(j + 1) * n, i * n);
                        continue;
                    }
                    first.insert(s, i);
                    let img = self.store.image(s)?;
                    let whole = BBox::new(0.0, 0.0, img.width() as f64, img.height() as f64);
                    downsample_area_into(
                        &img,
                        &whole,
                        self.cfg.view,
                        &mut crop[i * n..(i + 1) * n],
                    );
                }
                crop
            }
        };
        Ok(EpisodeBatch {
            episodes: samples
                .iter()
                .map(|&s| Trajectory::new(&ds[s].id, &ds[s].id, 0, &ds[s].answer))
                .collect(),
            samples: samples.to_vec(),
            global,
            crop,
            prev_crop: vec![0u8; samples.len() * n],
            view: self.cfg.view,
            global_view: g,
        })
    }

    /// The box actually cropped for a proposal on a `w × h` image: clipped,
    /// grown to `min_zoom_side` around its centre; a proposal entirely
    /// outside the image (or not finite) becomes a minimum box at the
    /// nearest point inside.
    pub fn executed_box(&self, proposed: &BBox, w: f64, h: f64) -> BBox {
        execute_box(proposed, self.cfg.min_zoom_side, w, h)
    }

    /// Applies one action to each listed episode (`(episode index, action)`),
    /// updating its record and its crop in place. Actions for finished
    /// episodes are ignored.
    pub fn step(
        &self,
        batch: &mut EpisodeBatch,
        actions: &[(usize, Action)],
    ) -> Result<(), DatasetError> {
        let n = (self.cfg.view * self.cfg.view * 3) as usize;
        for (i, action) in actions {
            let i = *i;
            if batch.episodes[i].finished() {
                continue;
            }
            match action {
                Action::Answer(a) => batch.episodes[i].answer = Some(a.clone()),
                Action::Zoom(b) => {
                    let idx = batch.samples[i];
                    let img = self.store.image(idx)?;
                    let exec = self.executed_box(b, img.width() as f64, img.height() as f64);
                    let (cur, prev) = (
                        &batch.crop[i * n..(i + 1) * n],
                        &mut batch.prev_crop[i * n..(i + 1) * n],
                    );
                    prev.copy_from_slice(cur);
                    crop_resize_into(
                        &img,
                        &exec,
                        self.cfg.view,
                        &mut batch.crop[i * n..(i + 1) * n],
                    );
                    let e = &mut batch.episodes[i];
                    e.actions.push(ZoomAction::new(*b, exec, None, None));
                    if e.actions.len() >= self.cfg.max_rounds {
                        e.truncated = true;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
