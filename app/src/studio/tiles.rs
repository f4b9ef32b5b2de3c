//! Full-resolution tiles (DESIGN §9): an image larger than its overview
//! texture is shown as the overview first, then, as the user zooms in, as
//! tiles of [`TILE`]² texture pixels cut from the original pixels at the
//! level of detail the screen can show (level `l` is the image downsampled
//! by `2^l`; level 0 is full resolution).
//!
//! - Tiles are cut on a background thread; the UI thread only uploads and
//!   paints them, so panning never waits on a decode.
//! - Textures are held in a cache bounded in bytes (the studio's
//!   "tile cache" preference); the least recently painted tiles go first,
//!   never one painted in the current frame.
//! - A tile is far below any adapter's `max_texture_dimension_2d` (2 048 or
//!   more on every wgpu backend).
//! - Boxes are not drawn here: they are placed in original pixels by the
//!   same [`Placed`] transform at every zoom level.

use crate::widgets::Placed;
use crossbeam_channel::{Receiver, Sender, unbounded};
use egui::{Color32, ColorImage, Pos2, Rect, TextureHandle, TextureOptions, Vec2};
use image::RgbImage;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use virl_engine::env::ImageStore;

/// Side of a tile in texture pixels.
pub const TILE: u32 = 512;

/// Default bound of the tile textures, in MiB.
pub const DEFAULT_BUDGET_MIB: usize = 256;

/// One tile: level `level` shows the image downsampled by `2^level`; tile
/// `(tx, ty)` covers image pixels `[tx·s, (tx+1)·s) × [ty·s, (ty+1)·s)` with
/// `s = TILE · 2^level`, clipped to the image.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct TileId {
    /// Level of detail (0 = full resolution).
    pub level: u8,
    /// Column.
    pub tx: u32,
    /// Row.
    pub ty: u32,
}

impl TileId {
    /// The tile's pixels in the original image, `[x0, y0, x1, y1)`, clipped
    /// to a `w × h` image.
    pub fn source(&self, w: u32, h: u32) -> [u32; 4] {
        let s = TILE << self.level;
        [
            (self.tx * s).min(w),
            (self.ty * s).min(h),
            ((self.tx + 1) * s).min(w),
            ((self.ty + 1) * s).min(h),
        ]
    }
}

/// The coarsest level whose resolution still gives at least one texture
/// pixel per physical screen pixel, when one image pixel spans
/// `px_per_image_px` physical pixels: 0 (full resolution) at ≥ 1, 1 at
/// ≥ ½, and so on.
pub fn level_for(px_per_image_px: f32) -> u8 {
    if !(px_per_image_px.is_finite() && px_per_image_px > 0.0) {
        return 0;
    }
    (1.0 / px_per_image_px).log2().floor().clamp(0.0, 15.0) as u8
}

/// The tiles of `level` covering `visible` (image pixels `[x0, y0, x1, y1]`)
/// of a `w × h` image, nearest to the centre of `visible` first.
pub fn covering(level: u8, visible: [f64; 4], w: u32, h: u32) -> Vec<TileId> {
    let s = f64::from(TILE << level);
    let [x0, y0, x1, y1] = visible;
    let (x0, y0) = (x0.max(0.0), y0.max(0.0));
    let (x1, y1) = (x1.min(f64::from(w)), y1.min(f64::from(h)));
    if x1 <= x0 || y1 <= y0 {
        return Vec::new();
    }
    let (c0, c1) = ((x0 / s).floor() as u32, ((x1 / s).ceil() as u32).max(1));
    let (r0, r1) = ((y0 / s).floor() as u32, ((y1 / s).ceil() as u32).max(1));
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let mut v: Vec<TileId> = (r0..r1)
        .flat_map(|ty| (c0..c1).map(move |tx| TileId { level, tx, ty }))
        .collect();
    let dist = |t: &TileId| {
        let (mx, my) = ((f64::from(t.tx) + 0.5) * s, (f64::from(t.ty) + 0.5) * s);
        (mx - cx).powi(2) + (my - cy).powi(2)
    };
    v.sort_by(|a, b| dist(a).total_cmp(&dist(b)));
    v
}

/// Cuts tile `t` from `img`: each texture pixel is the mean of the
/// `2^level × 2^level` image pixels it covers (fewer at the image's edge).
pub fn cut(img: &RgbImage, t: TileId) -> ColorImage {
    let [x0, y0, x1, y1] = t.source(img.width(), img.height());
    let f = 1u32 << t.level;
    let (tw, th) = ((x1 - x0).div_ceil(f), (y1 - y0).div_ceil(f));
    let mut rgb = Vec::with_capacity((tw * th * 3) as usize);
    let raw = img.as_raw();
    let stride = img.width() as usize * 3;
    for oy in 0..th {
        let (sy0, sy1) = (y0 + oy * f, (y0 + (oy + 1) * f).min(y1));
        for ox in 0..tw {
            let (sx0, sx1) = (x0 + ox * f, (x0 + (ox + 1) * f).min(x1));
            let mut sum = [0u32; 3];
            for y in sy0..sy1 {
                let row = &raw[y as usize * stride..];
                for x in sx0..sx1 {
                    let p = &row[x as usize * 3..x as usize * 3 + 3];
                    sum[0] += u32::from(p[0]);
                    sum[1] += u32::from(p[1]);
                    sum[2] += u32::from(p[2]);
                }
            }
            let n = (sy1 - sy0) * (sx1 - sx0);
            rgb.extend(sum.map(|s| ((s + n / 2) / n) as u8));
        }
    }
    ColorImage::from_rgb([tw as usize, th as usize], &rgb)
}

type Key = (String, TileId);

/// Where a view's tiles come from: the cache, and the sample's image.
pub struct Tiled<'a> {
    /// The studio's tile cache.
    pub cache: &'a mut TileCache,
    /// The sample's image store.
    pub store: &'a Arc<ImageStore>,
    /// The sample's index in `store`.
    pub index: usize,
}

/// A tile to cut.
struct Job {
    key: Key,
    store: Arc<ImageStore>,
    index: usize,
}

/// What the UI wants cut, newest request first served; replaced every frame.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    busy: Option<Key>,
    closed: bool,
}

struct Entry {
    tex: TextureHandle,
    bytes: usize,
    last_painted: u64,
}

/// Tile textures of the images on screen, bounded in bytes, cut by one
/// worker thread.
pub struct TileCache {
    queue: Arc<(Mutex<Queue>, Condvar)>,
    done: Receiver<(Key, Result<ColorImage, String>)>,
    tiles: HashMap<Key, Entry>,
    failed: HashSet<Key>,
    bytes: usize,
    /// Most bytes of tile textures held (RGBA, 4 bytes a texture pixel).
    pub budget: usize,
    frame: u64,
    missing: usize,
}

impl Drop for TileCache {
    fn drop(&mut self) {
        if let Ok(mut q) = self.queue.0.lock() {
            q.closed = true;
            q.jobs.clear();
        }
        self.queue.1.notify_all();
    }
}

impl TileCache {
    /// A cache of at most `budget` bytes of tiles; `wake` is called when a
    /// tile is ready.
    pub fn new(budget: usize, wake: super::run::Waker) -> Self {
        let queue: Arc<(Mutex<Queue>, Condvar)> = Arc::default();
        let (tx, done) = unbounded();
        let q = queue.clone();
        std::thread::Builder::new()
            .name("virl-tiles".into())
            .spawn(move || worker(&q, &tx, &wake))
            .ok();
        Self {
            queue,
            done,
            tiles: HashMap::new(),
            failed: HashSet::new(),
            bytes: 0,
            budget,
            frame: 0,
            missing: 0,
        }
    }

    /// Bytes of tile textures held now.
    pub fn texture_bytes(&self) -> usize {
        self.bytes
    }

    /// Tiles the last [`TileCache::paint`] needed and did not have yet.
    pub fn missing(&self) -> usize {
        self.missing
    }

    /// Tiles held now.
    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    /// Whether no tile is held.
    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }

    /// Whether tiles are still being cut for the last frame.
    pub fn loading(&self) -> bool {
        self.queue
            .0
            .lock()
            .map(|q| q.busy.is_some() || !q.jobs.is_empty())
            .unwrap_or(false)
    }

    /// Paints, over an overview already painted at `placed`, the tiles of
    /// sample `key` (`index` in `store`, `w × h` pixels) that the view
    /// `clip` shows at a finer level of detail than `overview` offers, and
    /// asks the worker for the missing ones. Returns the tiles painted.
    #[allow(clippy::too_many_arguments)]
    pub fn paint(
        &mut self,
        painter: &egui::Painter,
        clip: Rect,
        placed: Placed,
        overview: &TextureHandle,
        key: &str,
        store: &Arc<ImageStore>,
        index: usize,
        [w, h]: [u32; 2],
    ) -> usize {
        self.receive(painter.ctx());
        self.frame += 1;
        let ppp = painter.ctx().pixels_per_point();
        let px = placed.scale * ppp;
        let [ow, _] = overview.size();
        // The overview's texture pixels per image pixel.
        let overview_res = ow as f32 / w.max(1) as f32;
        if w == 0 || h == 0 || px <= overview_res * 1.05 {
            self.missing = 0;
            self.request(Vec::new());
            return 0;
        }
        let level = level_for(px);
        let to_img = |p: Pos2| (p - placed.origin) / placed.scale;
        let (a, b) = (to_img(clip.min), to_img(clip.max));
        let visible = [a.x as f64, a.y as f64, b.x as f64, b.y as f64];
        let mut missing = Vec::new();
        let mut painted = 0;
        for t in covering(level, visible, w, h) {
            let k = (key.to_string(), t);
            if let Some(e) = self.tiles.get_mut(&k) {
                e.last_painted = self.frame;
                let [x0, y0, x1, y1] = t.source(w, h);
                let r = Rect::from_min_max(
                    placed.origin + Vec2::new(x0 as f32, y0 as f32) * placed.scale,
                    placed.origin + Vec2::new(x1 as f32, y1 as f32) * placed.scale,
                );
                painter.image(
                    e.tex.id(),
                    r,
                    Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
                    Color32::WHITE,
                );
                painted += 1;
            } else if !self.failed.contains(&k) {
                missing.push(Job {
                    key: k,
                    store: store.clone(),
                    index,
                });
            }
        }
        self.missing = missing.len();
        self.request(missing);
        painted
    }

    /// Replaces the worker's queue with `jobs` (less the one it is cutting).
    fn request(&self, jobs: Vec<Job>) {
        let (m, cv) = &*self.queue;
        if let Ok(mut q) = m.lock() {
            let busy = q.busy.clone();
            q.jobs = jobs
                .into_iter()
                .filter(|j| Some(&j.key) != busy.as_ref())
                .collect();
            if !q.jobs.is_empty() {
                cv.notify_one();
            }
        }
    }

    /// Uploads finished tiles, then evicts the least recently painted ones
    /// (never one of the last frame) until the cache fits its budget.
    fn receive(&mut self, ctx: &egui::Context) {
        while let Ok((k, r)) = self.done.try_recv() {
            match r {
                Ok(img) => {
                    let bytes = img.width() * img.height() * 4;
                    let name = format!("tile:{}:{}:{}:{}", k.0, k.1.level, k.1.tx, k.1.ty);
                    let tex = ctx.load_texture(name, img, tile_options());
                    if let Some(old) = self.tiles.insert(
                        k,
                        Entry {
                            tex,
                            bytes,
                            last_painted: self.frame,
                        },
                    ) {
                        self.bytes -= old.bytes;
                    }
                    self.bytes += bytes;
                }
                Err(_) => {
                    self.failed.insert(k);
                }
            }
        }
        if self.bytes > self.budget {
            let mut old: Vec<(u64, Key)> = self
                .tiles
                .iter()
                .filter(|(_, e)| e.last_painted < self.frame)
                .map(|(k, e)| (e.last_painted, k.clone()))
                .collect();
            old.sort_by_key(|(f, _)| *f);
            for (_, k) in old {
                if self.bytes <= self.budget {
                    break;
                }
                if let Some(e) = self.tiles.remove(&k) {
                    self.bytes -= e.bytes;
                }
            }
        }
    }
}

/// Magnified tiles show their pixels (a box drawn at full zoom is seen
/// against the pixels it encloses); minified ones are smoothed.
fn tile_options() -> TextureOptions {
    TextureOptions {
        magnification: egui::TextureFilter::Nearest,
        minification: egui::TextureFilter::Linear,
        ..TextureOptions::LINEAR
    }
}

fn worker(
    queue: &(Mutex<Queue>, Condvar),
    done: &Sender<(Key, Result<ColorImage, String>)>,
    wake: &super::run::Waker,
) {
    let (m, cv) = queue;
    // The image last cut from, kept so that the tiles of one image decode it once.
    let mut last: Option<(String, Arc<RgbImage>)> = None;
    loop {
        let job = {
            let Ok(mut q) = m.lock() else { return };
            q.busy = None;
            loop {
                if q.closed {
                    return;
                }
                if let Some(j) = q.jobs.pop_front() {
                    q.busy = Some(j.key.clone());
                    break j;
                }
                q = match cv.wait(q) {
                    Ok(q) => q,
                    Err(_) => return,
                };
            }
        };
        let image = match &last {
            Some((k, img)) if *k == job.key.0 => Ok(img.clone()),
            _ => match std::panic::catch_unwind(|| job.store.image(job.index)) {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("decoding the image failed unexpectedly".into()),
            },
        };
        let r = image.map(|img| {
            last = Some((job.key.0.clone(), img.clone()));
            cut(&img, job.key.1)
        });
        if done.send((job.key, r)).is_err() {
            return;
        }
        wake();
    }
}

#[cfg(test)]
mod tests;
