//! ZoomBench: the built-in, seeded, V*-like benchmark (DESIGN §3).
//!
//! A large cluttered canvas holds a few small coloured placards, each with one
//! digit. Questions ask about the digit on a placard named by its colour. In
//! the downsampled global view the policy sees, placard colours survive as
//! dots but digits do not; a zoom of a few placard widths makes the digit
//! readable. The same `(seed, index)` gives the same image bytes and sample on
//! every machine: the generator uses its own PRNG (SplitMix64) and its own
//! digit font, and no floating-point maths whose result could vary.

use super::font::{self, GLYPH_H, GLYPH_W};
use super::{Dataset, DatasetError, Rationale, Sample};
use crate::geometry::BBox;
use crate::rng::SplitMix64;
use image::{Rgb, RgbImage};
use serde::Serialize;
use serde_json::json;
use std::path::Path;

mod config;
pub use config::{BORDER, COLOURS, QuestionKind, QuestionMix, SHORTCUT_DIGITS, ZoomBenchConfig};

/// One placard on the canvas.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Placard {
    /// Index into [`COLOURS`].
    pub colour: usize,
    /// The digit shown.
    pub digit: u8,
    /// Left edge in pixels.
    pub x: u32,
    /// Top edge in pixels.
    pub y: u32,
    /// Side in pixels (border included).
    pub side: u32,
    /// Whether this is a large placard (readable in the global view).
    pub large: bool,
}

impl Placard {
    /// The placard's box (outer edge of the border).
    pub fn bbox(&self) -> BBox {
        BBox::new(
            self.x as f64,
            self.y as f64,
            (self.x + self.side) as f64,
            (self.y + self.side) as f64,
        )
    }

    /// The colour's name.
    pub fn colour_name(&self) -> &'static str {
        COLOURS[self.colour].0
    }
}

/// A clutter shape.
#[derive(Clone, Debug, PartialEq)]
enum Clutter {
    Line {
        x0: i32,
        y0: i32,
        x1: i32,
        y1: i32,
        thick: i32,
        rgb: [u8; 3],
    },
    Blob {
        cx: i32,
        cy: i32,
        r: i32,
        rgb: [u8; 3],
    },
    Square {
        x: i32,
        y: i32,
        side: i32,
        rgb: [u8; 3],
    },
}

/// Everything that determines one image, before rendering. Tests change a
/// field (a placard's digit) and render again.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// Canvas side.
    pub canvas: u32,
    /// The placards.
    pub placards: Vec<Placard>,
    background: [u8; 3],
    noise_seed: u64,
    clutter: Vec<Clutter>,
}

/// A muted colour: low saturation, mid value.
fn muted(rng: &mut SplitMix64) -> [u8; 3] {
    let v = rng.range(70, 180) as i32;
    let tint = [
        rng.range(0, 30) as i32,
        rng.range(0, 30) as i32,
        rng.range(0, 30) as i32,
    ];
    [
        (v - 15 + tint[0]).clamp(0, 255) as u8,
        (v - 15 + tint[1]).clamp(0, 255) as u8,
        (v - 15 + tint[2]).clamp(0, 255) as u8,
    ]
}

/// The generator.
#[derive(Clone, Debug)]
pub struct ZoomBench {
    cfg: ZoomBenchConfig,
}

impl ZoomBench {
    /// A generator with these knobs (checked).
    pub fn new(cfg: ZoomBenchConfig) -> Result<Self, String> {
        cfg.validate()?;
        Ok(Self { cfg })
    }

    /// The knobs.
    pub fn config(&self) -> &ZoomBenchConfig {
        &self.cfg
    }

    /// The id of sample `index` of stream `seed`.
    pub fn sample_id(seed: u64, index: u64) -> String {
        format!("zb-s{seed}-{index:06}")
    }

    /// Lays out image `index` of stream `seed`: placards, clutter, background.
    pub fn layout(&self, seed: u64, index: u64) -> Layout {
        let c = &self.cfg;
        let mut rng = SplitMix64::for_item(seed, index);
        let n = rng.range(c.placards_min, c.placards_max) as usize;
        // Distinct colours: a partial Fisher–Yates shuffle.
        let mut colours: Vec<usize> = (0..COLOURS.len()).collect();
        for i in 0..n {
            let j = i + (rng.next_u64() % (COLOURS.len() - i) as u64) as usize;
            colours.swap(i, j);
        }
        let mut placards: Vec<Placard> = Vec::with_capacity(n);
        let gap = 4u32;
        for &colour in colours.iter().take(n) {
            let large = rng.chance(c.large_fraction);
            let side = if large {
                c.large_side()
            } else {
                rng.range(c.placard_min, c.placard_max)
            };
            let digit = if rng.chance(c.shortcut_bias) {
                SHORTCUT_DIGITS[colour]
            } else {
                rng.range(0, 9) as u8
            };
            // Rejection-sample a position away from the border and the other placards.
            for _ in 0..2000 {
                let x = rng.range(gap, c.canvas - side - gap);
                let y = rng.range(gap, c.canvas - side - gap);
                let free = placards.iter().all(|p| {
                    x + side + gap <= p.x
                        || p.x + p.side + gap <= x
                        || y + side + gap <= p.y
                        || p.y + p.side + gap <= y
                });
                if free {
                    placards.push(Placard {
                        colour,
                        digit,
                        x,
                        y,
                        side,
                        large,
                    });
                    break;
                }
            }
        }
        let cv = c.canvas as i32;
        let background = muted(&mut rng);
        let clutter = (0..c.distractors)
            .map(|_| {
                let rgb = muted(&mut rng);
                match rng.range(0, 2) {
                    0 => Clutter::Line {
                        x0: rng.range(0, c.canvas - 1) as i32,
                        y0: rng.range(0, c.canvas - 1) as i32,
                        x1: rng.range(0, c.canvas - 1) as i32,
                        y1: rng.range(0, c.canvas - 1) as i32,
                        thick: rng.range(1, 3) as i32,
                        rgb,
                    },
                    1 => Clutter::Blob {
                        cx: rng.range(0, c.canvas - 1) as i32,
                        cy: rng.range(0, c.canvas - 1) as i32,
                        r: rng.range(4, (cv / 24).max(5) as u32) as i32,
                        rgb,
                    },
                    _ => Clutter::Square {
                        x: rng.range(0, c.canvas - 1) as i32,
                        y: rng.range(0, c.canvas - 1) as i32,
                        side: rng.range(c.placard_min, c.placard_max) as i32,
                        rgb,
                    },
                }
            })
            .collect();
        Layout {
            canvas: c.canvas,
            placards,
            background,
            noise_seed: rng.next_u64(),
            clutter,
        }
    }

    /// Renders a layout to pixels (integer arithmetic only).
    pub fn render(&self, l: &Layout) -> RgbImage {
        let n = l.canvas;
        let mut noise = SplitMix64::new(l.noise_seed);
        let bg = l.background;
        // The background: each pixel the colour shifted by a uniform
        // d ∈ [−12, 12], one draw per pixel in row order; the 25 shifted
        // colours are computed once (this loop is most of a fresh warm-up
        // sample's cost).
        let shifted: [[u8; 3]; 25] = std::array::from_fn(|k| {
            let d = k as i32 - 12;
            bg.map(|c| (c as i32 + d).clamp(0, 255) as u8)
        });
        let mut img = RgbImage::new(n, n);
        for px in img.chunks_exact_mut(3) {
            px.copy_from_slice(&shifted[(noise.next_u64() % 25) as usize]);
        }
        let ni = n as i32;
        let put = |img: &mut RgbImage, x: i32, y: i32, rgb: [u8; 3]| {
            if x >= 0 && y >= 0 && x < ni && y < ni {
                img.put_pixel(x as u32, y as u32, Rgb(rgb));
            }
        };
        for c in &l.clutter {
            match *c {
                Clutter::Line {
                    x0,
                    y0,
                    x1,
                    y1,
                    thick,
                    rgb,
                } => {
                    let steps = (x1 - x0).abs().max((y1 - y0).abs()).max(1);
                    for s in 0..=steps {
                        let x = x0 + (x1 - x0) * s / steps;
                        let y = y0 + (y1 - y0) * s / steps;
                        for t in 0..thick {
                            put(&mut img, x + t, y, rgb);
                            put(&mut img, x, y + t, rgb);
                        }
                    }
                }
                Clutter::Blob { cx, cy, r, rgb } => {
                    for y in (cy - r)..=(cy + r) {
                        for x in (cx - r)..=(cx + r) {
                            if (x - cx).pow(2) + (y - cy).pow(2) <= r * r {
                                put(&mut img, x, y, rgb);
                            }
                        }
                    }
                }
                Clutter::Square { x, y, side, rgb } => {
                    for yy in y..y + side {
                        for xx in x..x + side {
                            let edge = xx < x + 2
                                || yy < y + 2
                                || xx >= x + side - 2
                                || yy >= y + side - 2;
                            if edge {
                                put(&mut img, xx, yy, rgb);
                            }
                        }
                    }
                }
            }
        }
        for p in &l.placards {
            draw_placard(&mut img, p);
        }
        img
    }

    /// Sample `index` of stream `seed` without rendering its image (cheap:
    /// the layout alone decides the sample).
    pub fn sample(&self, seed: u64, index: u64) -> Sample {
        self.question(seed, index, &self.layout(seed, index))
    }

    /// Sample `index` of stream `seed`, with its image. The sample's `image`
    /// path is `images/<id>.png`.
    pub fn generate(&self, seed: u64, index: u64) -> (Sample, RgbImage) {
        let layout = self.layout(seed, index);
        let img = self.render(&layout);
        (self.question(seed, index, &layout), img)
    }

    /// Chooses the question for a layout, and applies label noise.
    fn question(&self, seed: u64, index: u64, l: &Layout) -> Sample {
        let c = &self.cfg;
        // A separate stream, so that question choice never shifts the layout.
        let mut rng = SplitMix64::for_item(seed ^ 0xA5A5_A5A5_A5A5_A5A5, index);
        let m = &c.question_mix;
        let total = m.digit + m.compare + m.sum;
        let u = rng.f64() * total;
        let n = l.placards.len();
        let kind = if u < m.digit || n < 2 {
            QuestionKind::Digit
        } else if u < m.digit + m.compare {
            QuestionKind::Compare
        } else {
            QuestionKind::Sum
        };
        let a = rng.range(0, n as u32 - 1) as usize;
        let b = (a + 1 + rng.range(0, (n as u32).saturating_sub(2)) as usize) % n;
        let (pa, pb) = (&l.placards[a], &l.placards[b]);
        let (question, answer, used): (String, String, Vec<&Placard>) = match kind {
            QuestionKind::Digit => (
                format!("What digit is on the {} placard?", pa.colour_name()),
                pa.digit.to_string(),
                vec![pa],
            ),
            QuestionKind::Compare => (
                format!(
                    "Is the digit on the {} placard larger than the one on the {} placard?",
                    pa.colour_name(),
                    pb.colour_name()
                ),
                if pa.digit > pb.digit { "yes" } else { "no" }.to_string(),
                vec![pa, pb],
            ),
            QuestionKind::Sum => (
                format!(
                    "What is the sum of the digits on the {} and {} placards?",
                    pa.colour_name(),
                    pb.colour_name()
                ),
                (pa.digit + pb.digit).to_string(),
                vec![pa, pb],
            ),
        };
        let truth: Vec<Rationale> = used
            .iter()
            .map(|p| Rationale {
                bbox: p.bbox(),
                label: format!("{} placard", p.colour_name()),
            })
            .collect();
        let noisy = rng.chance(c.label_noise);
        let rationales = if noisy {
            truth
                .iter()
                .map(|r| Rationale {
                    bbox: shift_off(&r.bbox, c.canvas, &mut rng),
                    label: r.label.clone(),
                })
                .collect()
        } else {
            truth.clone()
        };
        let id = Self::sample_id(seed, index);
        let mut meta = json!({
            "generator": "zoombench",
            "seed": seed,
            "index": index,
            "kind": kind,
            "placards": l.placards,
            "label_noise": noisy,
        });
        if noisy {
            meta["true_rationales"] = serde_json::to_value(&truth).unwrap_or_default();
        }
        Sample {
            image: format!("images/{id}.png"),
            id,
            width: c.canvas,
            height: c.canvas,
            question,
            answer,
            options: Vec::new(),
            rationales,
            meta: Some(meta),
            extra: Default::default(),
        }
    }

    /// Writes samples `0..n` of stream `seed` as a dataset folder: PNG images
    /// under `images/`, then `manifest.jsonl` (written last and atomically, so
    /// an interrupted run never leaves a manifest naming missing images).
    /// Refuses a folder that already holds a manifest. `progress` is called
    /// after each image.
    pub fn write_dataset(
        &self,
        dir: &Path,
        n: u64,
        seed: u64,
        mut progress: impl FnMut(u64),
    ) -> Result<Dataset, DatasetError> {
        let manifest = dir.join(super::MANIFEST);
        if manifest.exists() {
            return Err(DatasetError::Invalid {
                path: manifest,
                location: Default::default(),
                message:
                    "a dataset already exists here; choose another --out folder or delete it first"
                        .into(),
            });
        }
        let images = dir.join("images");
        std::fs::create_dir_all(&images).map_err(|source| DatasetError::Io {
            action: "create",
            path: images.clone(),
            source,
        })?;
        let mut samples = Vec::with_capacity(n as usize);
        for i in 0..n {
            let (s, img) = self.generate(seed, i);
            let p = dir.join(&s.image);
            img.save_with_format(&p, image::ImageFormat::Png)
                .map_err(|e| DatasetError::Image {
                    path: p.clone(),
                    message: format!("cannot write PNG: {e}"),
                })?;
            samples.push(s);
            progress(i + 1);
        }
        let ds = Dataset::new(dir, samples);
        ds.save()?;
        Ok(ds)
    }
}

/// Moves a box by 1–2 of its sides in a random direction, staying inside the
/// canvas and clear of where it was (IoU with the original ≤ 0.05 when the
/// canvas allows).
fn shift_off(b: &BBox, canvas: u32, rng: &mut SplitMix64) -> BBox {
    let side = b.width().max(b.height());
    let cv = canvas as f64;
    let mut fallback = *b;
    for _ in 0..64 {
        let dist = side * (1.0 + rng.f64());
        let angle = rng.f64() * std::f64::consts::TAU;
        let dx = (dist * angle.cos()).round();
        let dy = (dist * angle.sin()).round();
        let moved = b.translate(dx, dy);
        let clamped = moved.translate(
            (-moved.x1).max(0.0) - (moved.x2 - cv).max(0.0),
            (-moved.y1).max(0.0) - (moved.y2 - cv).max(0.0),
        );
        fallback = clamped;
        if clamped.iou(b) <= 0.05 {
            return clamped;
        }
    }
    fallback
}

/// Draws a placard: a 2 px border in its colour, the inside filled with the
/// colour lightened by a fifth (so the colour survives as a dot in the
/// global view), and its digit in near-black or near-white, whichever
/// contrasts with the fill, scaled by the largest whole factor that fits with
/// a 1 px margin.
fn draw_placard(img: &mut RgbImage, p: &Placard) {
    let rgb = COLOURS[p.colour].1;
    let tint = [
        ((rgb[0] as u32 * 80 + 255 * 20) / 100) as u8,
        ((rgb[1] as u32 * 80 + 255 * 20) / 100) as u8,
        ((rgb[2] as u32 * 80 + 255 * 20) / 100) as u8,
    ];
    // Rec. 601 luma, integer arithmetic.
    let luma = (299 * tint[0] as u32 + 587 * tint[1] as u32 + 114 * tint[2] as u32) / 1000;
    let ink = if luma > 128 {
        [20, 20, 20]
    } else {
        [235, 235, 235]
    };
    for y in p.y..p.y + p.side {
        for x in p.x..p.x + p.side {
            let edge = x < p.x + BORDER
                || y < p.y + BORDER
                || x >= p.x + p.side - BORDER
                || y >= p.y + p.side - BORDER;
            img.put_pixel(x, y, Rgb(if edge { rgb } else { tint }));
        }
    }
    let inner = p.side - 2 * BORDER;
    let scale = ((inner.saturating_sub(2)) / GLYPH_H).max(1);
    let (gw, gh) = (GLYPH_W * scale, GLYPH_H * scale);
    let ox = p.x + BORDER + (inner.saturating_sub(gw)) / 2;
    let oy = p.y + BORDER + (inner.saturating_sub(gh)) / 2;
    for fy in 0..GLYPH_H {
        for fx in 0..GLYPH_W {
            if font::ink(p.digit, fx, fy) {
                for sy in 0..scale {
                    for sx in 0..scale {
                        img.put_pixel(ox + fx * scale + sx, oy + fy * scale + sy, Rgb(ink));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
