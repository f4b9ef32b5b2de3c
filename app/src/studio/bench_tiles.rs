//! Frame-time benchmark of a large image in the annotation canvas,
//! headless (layout + tessellation, no GPU): a dataset folder holding one
//! `w × h` PNG is opened, the view zooms from the fitted overview to twice
//! full resolution while panning, then pans across the image at full
//! resolution; full-resolution tiles stream in from the tile worker.

use super::{Prefs, Studio, StudioOptions, Tab};
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ImageEncoder, RgbImage};
use std::path::Path;
use std::time::{Duration, Instant};
use virl_engine::dataset::{Dataset, Rationale, Sample};
use virl_engine::geometry::BBox;

/// What [`image_frame_times`] measured.
pub struct ImageFrames {
    /// Sorted frame times (ms).
    pub ms: Vec<f64>,
    /// Most bytes of tile textures held at once.
    pub peak_texture_bytes: usize,
    /// The tile cache's bound.
    pub budget: usize,
    /// Frames at full resolution or finer whose visible tiles were all ready.
    pub complete_frames: usize,
    /// Frames at full resolution or finer.
    pub full_res_frames: usize,
    /// Seconds to write the PNG and to show its overview.
    pub setup_s: (f64, f64),
}

impl ImageFrames {
    /// The `q`-quantile (0…1).
    pub fn quantile(&self, q: f64) -> f64 {
        let i = ((self.ms.len() as f64 - 1.0) * q).round() as usize;
        self.ms.get(i).copied().unwrap_or(f64::NAN)
    }
}

/// Writes a `w × h` test image (a colour ramp, a 64 px grid of 1 px lines
/// and 4 px checks in every eighth cell, so every level of detail differs)
/// with three boxes, as a dataset folder in `dir`.
fn write_dataset(dir: &Path, w: u32, h: u32) -> Result<(), String> {
    let img = RgbImage::from_fn(w, h, |x, y| {
        if x % 64 == 0 || y % 64 == 0 {
            return image::Rgb([20, 20, 20]);
        }
        if (x / 64 + y / 64) % 8 == 0 && ((x / 4) + (y / 4)) % 2 == 0 {
            return image::Rgb([250, 250, 250]);
        }
        image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128])
    });
    let file = std::fs::File::create(dir.join("big.png"))
        .map_err(|e| format!("cannot create {}: {e}", dir.join("big.png").display()))?;
    PngEncoder::new_with_quality(
        std::io::BufWriter::new(file),
        CompressionType::Fast,
        FilterType::Sub,
    )
    .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
    .map_err(|e| format!("cannot write the test PNG: {e}"))?;
    let (fw, fh) = (f64::from(w), f64::from(h));
    let rat = |x1: f64, y1: f64, x2: f64, y2: f64, label: &str| Rationale {
        bbox: BBox::new(x1, y1, x2, y2),
        label: label.into(),
    };
    let s = Sample {
        id: "big".into(),
        image: "big.png".into(),
        width: w,
        height: h,
        question: "What is in the boxes?".into(),
        answer: "a".into(),
        options: Vec::new(),
        rationales: vec![
            rat(fw * 0.1, fh * 0.1, fw * 0.3, fh * 0.25, "large"),
            rat(
                fw * 0.5,
                fh * 0.5,
                fw * 0.5 + 64.0,
                fh * 0.5 + 40.0,
                "small",
            ),
            rat(fw * 0.7, fh * 0.6, fw * 0.7 + 9.0, fh * 0.6 + 7.0, "tiny"),
        ],
        meta: None,
        extra: Default::default(),
    };
    Dataset::new(dir, vec![s]).save().map_err(|e| e.to_string())
}

/// Runs `frames` frames (paced at 60 Hz) of the Annotate tab on a `w × h`
/// image: the first half zooms from the fitted view to 2 × full resolution
/// while circling the centre, the second pans across the image at full
/// resolution.
pub fn image_frame_times(w: u32, h: u32, frames: usize) -> Result<ImageFrames, String> {
    let tmp = std::env::temp_dir().join(format!("virl-bench-image-{}", std::process::id()));
    let data = tmp.join("data");
    std::fs::create_dir_all(&data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    let t0 = Instant::now();
    write_dataset(&data, w, h)?;
    let written = t0.elapsed().as_secs_f64();
    let ctx = egui::Context::default();
    let mut s = Studio::with_context(
        ctx.clone(),
        StudioOptions {
            sessions_root: Some(tmp.join("sessions")),
            open: Some(data.clone()),
            tab: Some(Tab::Annotate),
            ..Default::default()
        },
        Prefs::default(),
    );
    let (vw, vh) = (1600.0, 1000.0);
    let frame = |s: &mut Studio| super::bench::headless_frame(s, &ctx, [vw, vh]);
    let t1 = Instant::now();
    while !s.images.has_image("big") {
        if t1.elapsed() > Duration::from_secs(600) {
            return Err("the overview did not appear in 10 minutes".into());
        }
        frame(&mut s);
        std::thread::sleep(Duration::from_millis(10));
    }
    let shown = t1.elapsed().as_secs_f64();
    // The zoom at which one image pixel is one point: the canvas is about
    // the window less the side panels, so take the fit of the whole window
    // and go a little further.
    let fit = (vw / w as f32).min(vh / h as f32);
    let full = (1.0 / fit) * 1.3;
    let (cx, cy) = (f64::from(w) / 2.0, f64::from(h) / 2.0);
    let mut ms = Vec::with_capacity(frames);
    let (mut peak, mut complete, mut at_full) = (0usize, 0usize, 0usize);
    let half = (frames / 2).max(1);
    for i in 0..frames {
        let (zoom, x, y) = if i < half {
            let t = i as f64 / half as f64;
            let a = t * std::f64::consts::TAU;
            let z = (f64::from(2.0 * full).ln() * t).exp();
            (z, cx + a.cos() * cx * 0.2, cy + a.sin() * cy * 0.2)
        } else {
            // A sweep from the left to the right edge through the middle row band.
            let t = (i - half) as f64 / (frames - half).max(1) as f64;
            (
                f64::from(full),
                f64::from(w) * (0.05 + 0.9 * t),
                cy * (0.8 + 0.4 * t),
            )
        };
        s.annotate.focus = Some((zoom as f32, [x, y]));
        let t = Instant::now();
        frame(&mut s);
        let dt = t.elapsed();
        ms.push(dt.as_secs_f64() * 1e3);
        peak = peak.max(s.images.tiles.texture_bytes());
        if zoom >= f64::from(full) * 0.99 {
            at_full += 1;
            if s.images.tiles.missing() == 0 {
                complete += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(16).saturating_sub(dt));
    }
    ms.sort_by(f64::total_cmp);
    let budget = s.images.tiles.budget;
    drop(s);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(ImageFrames {
        ms,
        peak_texture_bytes: peak,
        budget,
        complete_frames: complete,
        full_res_frames: at_full,
        setup_s: (written, shown),
    })
}
