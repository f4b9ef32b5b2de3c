//! Images for the inspector, prepared off the UI thread: the sample's image
//! downsampled to fit the GPU's texture limit, and each action's crop from
//! the original pixels at the policy's view size (what the policy saw).

use crossbeam_channel::{Receiver, Sender, bounded};
use egui::{ColorImage, TextureHandle, TextureOptions};
use image::RgbImage;
use std::collections::VecDeque;
use std::sync::Arc;
use virl_engine::env::ImageStore;
use virl_engine::geometry::{BBox, crop_resize};

/// What to prepare.
pub struct ImageJob {
    /// Cache key (sample id).
    pub key: String,
    /// Where the image comes from.
    pub store: Arc<ImageStore>,
    /// Sample index in the store.
    pub index: usize,
    /// Largest side of the overview texture.
    pub max_side: usize,
    /// Crops to cut (executed zoom boxes), at `view` pixels.
    pub crops: Vec<BBox>,
    /// The policy's view side.
    pub view: u32,
}

/// A prepared image.
pub struct Prepared {
    key: String,
    overview: Result<ColorImage, String>,
    size: [u32; 2],
    crops: Vec<(BBox, ColorImage)>,
}

/// Textures of one sample.
pub struct SampleTextures {
    /// Sample id.
    pub key: String,
    /// The whole image (possibly downsampled).
    pub overview: Option<TextureHandle>,
    /// Why there is no image.
    pub error: Option<String>,
    /// Original image size in pixels.
    pub size: [u32; 2],
    /// Crops by executed box.
    pub crops: Vec<(BBox, TextureHandle)>,
}

/// A bounded texture cache fed by one worker thread.
pub struct ImageCache {
    tx: Sender<ImageJob>,
    rx: Receiver<Prepared>,
    cache: VecDeque<SampleTextures>,
    pending: Option<String>,
    capacity: usize,
    /// Full-resolution tiles of the images shown zoomed in.
    pub tiles: super::tiles::TileCache,
}

fn to_color(img: &RgbImage) -> ColorImage {
    ColorImage::from_rgb([img.width() as usize, img.height() as usize], img.as_raw())
}

impl ImageCache {
    /// A cache of at most `capacity` samples' textures; `wake` is called when
    /// a job finishes.
    pub fn new(capacity: usize, wake: super::run::Waker) -> Self {
        let tiles =
            super::tiles::TileCache::new(super::tiles::DEFAULT_BUDGET_MIB << 20, wake.clone());
        let (tx, job_rx) = bounded::<ImageJob>(4);
        let (done_tx, rx) = bounded::<Prepared>(4);
        std::thread::Builder::new()
            .name("virl-images".into())
            .spawn(move || {
                while let Ok(mut job) = job_rx.recv() {
                    // Only the newest request matters when the user scrolls fast.
                    while let Ok(newer) = job_rx.try_recv() {
                        job = newer;
                    }
                    // A panic while decoding must not leave the inspector
                    // waiting for ever: it becomes the sample's error.
                    let p =
                        std::panic::catch_unwind(|| prepare(&job)).unwrap_or_else(|_| Prepared {
                            key: job.key.clone(),
                            overview: Err("reading the image failed unexpectedly".into()),
                            size: [0, 0],
                            crops: Vec::new(),
                        });
                    if done_tx.send(p).is_err() {
                        return;
                    }
                    wake();
                }
            })
            .ok();
        Self {
            tx,
            rx,
            cache: VecDeque::new(),
            pending: None,
            capacity: capacity.max(1),
            tiles,
        }
    }

    /// Whether sample `key`'s overview (or the error that replaces it) has
    /// arrived.
    pub fn has_image(&self, key: &str) -> bool {
        self.cache
            .iter()
            .any(|t| t.key == key && (t.overview.is_some() || t.error.is_some()))
    }

    /// The textures of `key` if ready; otherwise asks for them (once) and
    /// returns `None`. Crops missing from a cached entry trigger a new job.
    pub fn get(&mut self, ctx: &egui::Context, job: ImageJob) -> Option<&SampleTextures> {
        while let Ok(p) = self.rx.try_recv() {
            if self.pending.as_deref() == Some(&p.key) {
                self.pending = None;
            }
            let tex = SampleTextures {
                overview: p.overview.as_ref().ok().map(|c| {
                    ctx.load_texture(format!("img:{}", p.key), c.clone(), TextureOptions::LINEAR)
                }),
                error: p.overview.err(),
                size: p.size,
                crops: p
                    .crops
                    .into_iter()
                    .enumerate()
                    .map(|(i, (b, c))| {
                        (
                            b,
                            ctx.load_texture(
                                format!("crop:{}:{i}", p.key),
                                c,
                                TextureOptions::NEAREST,
                            ),
                        )
                    })
                    .collect(),
                key: p.key,
            };
            self.cache.retain(|t| t.key != tex.key);
            self.cache.push_front(tex);
            self.cache.truncate(self.capacity);
        }
        let have = self.cache.iter().position(|t| {
            t.key == job.key
                && job
                    .crops
                    .iter()
                    .all(|b| t.crops.iter().any(|(c, _)| c == b))
        });
        if let Some(i) = have {
            return self.cache.get(i);
        }
        let key = job.key.clone();
        if self.pending.as_deref() != Some(&key) && self.tx.try_send(job).is_ok() {
            self.pending = Some(key.clone());
        }
        // Show what is cached for the sample while new crops are cut.
        self.cache.iter().find(|t| t.key == key)
    }
}

fn prepare(job: &ImageJob) -> Prepared {
    match job.store.image(job.index) {
        Ok(img) => {
            let (w, h) = (img.width(), img.height());
            let side = w.max(h) as usize;
            let overview = if side > job.max_side {
                let k = job.max_side as f64 / side as f64;
                let (ow, oh) = (
                    ((w as f64) * k).round().max(1.0) as u32,
                    ((h as f64) * k).round().max(1.0) as u32,
                );
                to_color(&image::imageops::resize(
                    &*img,
                    ow,
                    oh,
                    image::imageops::FilterType::Triangle,
                ))
            } else {
                to_color(&img)
            };
            let crops = job
                .crops
                .iter()
                .map(|b| (*b, to_color(&crop_resize(&img, b, job.view))))
                .collect();
            Prepared {
                key: job.key.clone(),
                overview: Ok(overview),
                size: [w, h],
                crops,
            }
        }
        Err(e) => Prepared {
            key: job.key.clone(),
            overview: Err(e.to_string()),
            size: [0, 0],
            crops: Vec::new(),
        },
    }
}

/// A store over one sample whose image is `file` in `dir`, declared `w × h`
/// (the file is not read here), for tests of the image views.
#[cfg(test)]
pub(crate) fn one_image_store(
    dir: &std::path::Path,
    file: &str,
    w: u32,
    h: u32,
) -> Arc<ImageStore> {
    let s = virl_engine::dataset::Sample {
        id: "big".into(),
        image: file.into(),
        width: w,
        height: h,
        question: "q".into(),
        answer: "a".into(),
        options: Vec::new(),
        rationales: Vec::new(),
        meta: None,
        extra: Default::default(),
    };
    let ds = Arc::new(virl_engine::dataset::Dataset::new(dir, vec![s]));
    Arc::new(ImageStore::new(
        ds,
        virl_engine::env::ImageSource::Folder,
        32,
        4,
    ))
}
