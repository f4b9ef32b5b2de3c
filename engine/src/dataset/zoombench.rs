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
use crate::rng::SplitMix64;
use super::{Dataset, DatasetError, Rationale, Sample};
use crate::geometry::BBox;
use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;

/// The placard colours, with their names as used in questions.
pub const COLOURS: [(&str, [u8; 3]); 10] = [
    ("red", [220, 30, 30]),
    ("green", [30, 170, 50]),
    ("blue", [30, 70, 220]),
    ("yellow", [240, 210, 20]),
    ("orange", [245, 130, 20]),
    ("purple", [140, 50, 190]),
    ("cyan", [20, 200, 210]),
    ("magenta", [230, 40, 180]),
    ("white", [250, 250, 250]),
    ("black", [15, 15, 15]),
];

/// The digit each colour's placard shows when the `shortcut_bias` coin comes
/// up: the text prior a policy can exploit without looking.
pub const SHORTCUT_DIGITS: [u8; 10] = [3, 8, 1, 6, 9, 4, 0, 7, 2, 5];

/// Placard border width in pixels.
pub const BORDER: u32 = 2;

/// Relative weights of the question kinds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuestionMix {
    /// "What digit is on the red placard?" (one rationale).
    pub digit: f64,
    /// "Is the digit on the red placard larger than the one on the blue placard?" (two rationales, yes/no).
    pub compare: f64,
    /// "What is the sum of the digits on the red and blue placards?" (two rationales, 0–18).
    pub sum: f64,
}

impl Default for QuestionMix {
    fn default() -> Self {
        Self {
            digit: 1.0,
            compare: 0.0,
            sum: 0.0,
        }
    }
}

impl std::str::FromStr for QuestionMix {
    type Err = String;
    /// `digit=2,compare=1,sum=1` (missing kinds get 0), or one kind name alone.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut m = Self {
            digit: 0.0,
            compare: 0.0,
            sum: 0.0,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = match part.split_once('=') {
                Some((k, v)) => (
                    k.trim(),
                    v.trim()
                        .parse::<f64>()
                        .map_err(|e| format!("weight of `{k}`: {e}"))?,
                ),
                None => (part, 1.0),
            };
            match k {
                "digit" => m.digit = v,
                "compare" => m.compare = v,
                "sum" => m.sum = v,
                _ => {
                    return Err(format!(
                        "unknown question kind `{k}` (expected digit, compare or sum)"
                    ));
                }
            }
        }
        Ok(m)
    }
}

/// The kind of a question.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuestionKind {
    /// One placard's digit.
    Digit,
    /// Whether one digit is larger than another.
    Compare,
    /// The sum of two digits.
    Sum,
}

/// Every knob of the generator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZoomBenchConfig {
    /// Canvas side in pixels (the image is `canvas × canvas`). Default 768.
    pub canvas: u32,
    /// Smallest placard side in pixels. Default 14.
    pub placard_min: u32,
    /// Largest placard side in pixels. Default 28.
    pub placard_max: u32,
    /// Fewest placards per image. Default 3.
    pub placards_min: u32,
    /// Most placards per image (at most 10, one per colour). Default 7.
    pub placards_max: u32,
    /// Clutter shapes (lines, blobs, digit-less squares) in muted colours. Default 40.
    pub distractors: u32,
    /// Question kinds and their weights. Default: digit questions only.
    pub question_mix: QuestionMix,
    /// Probability that a placard's digit is its colour's fixed
    /// [`SHORTCUT_DIGITS`] entry instead of uniform: a prior that lets a
    /// policy answer without looking. Default 0.
    pub shortcut_bias: f64,
    /// Probability that a placard is large enough to read in the global view
    /// (side `9 × canvas / global_view`, at most a third of the canvas). Default 0.
    pub large_fraction: f64,
    /// Fraction of samples whose ground-truth boxes are shifted off their
    /// placard (the true boxes stay in `meta.true_rationales`). Default 0.
    pub label_noise: f64,
    /// Side of the global view the policy sees; used to size large placards. Default 64.
    pub global_view: u32,
}

impl Default for ZoomBenchConfig {
    fn default() -> Self {
        Self {
            canvas: 768,
            placard_min: 14,
            placard_max: 28,
            placards_min: 3,
            placards_max: 7,
            distractors: 40,
            question_mix: QuestionMix::default(),
            shortcut_bias: 0.0,
            large_fraction: 0.0,
            label_noise: 0.0,
            global_view: 64,
        }
    }
}

impl ZoomBenchConfig {
    /// Checks the knobs are consistent.
    pub fn validate(&self) -> Result<(), String> {
        let p = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "{name} is a probability and must lie in [0, 1], got {v}"
                ))
            }
        };
        p("shortcut_bias", self.shortcut_bias)?;
        p("large_fraction", self.large_fraction)?;
        p("label_noise", self.label_noise)?;
        if self.placard_min < 2 * BORDER + GLYPH_H || self.placard_min > self.placard_max {
            return Err(format!(
                "placard sizes must satisfy {} ≤ placard_min ≤ placard_max, got {}..{}",
                2 * BORDER + GLYPH_H,
                self.placard_min,
                self.placard_max
            ));
        }
        if self.placards_max > COLOURS.len() as u32 || self.placards_min > self.placards_max {
            return Err(format!(
                "placards per image must satisfy placards_min ≤ placards_max ≤ {}, got {}..{}",
                COLOURS.len(),
                self.placards_min,
                self.placards_max
            ));
        }
        let m = &self.question_mix;
        let ws = [m.digit, m.compare, m.sum];
        if ws.iter().any(|w| !w.is_finite() || *w < 0.0) || ws.iter().sum::<f64>() <= 0.0 {
            return Err("question_mix weights must be non-negative with a positive sum".into());
        }
        let need = if m.compare > 0.0 || m.sum > 0.0 { 2 } else { 1 };
        if self.placards_min < need {
            return Err(format!(
                "compare and sum questions need at least 2 placards; placards_min is {}",
                self.placards_min
            ));
        }
        if self.global_view == 0 || self.global_view > self.canvas {
            return Err(format!(
                "global_view must lie in 1..=canvas ({}), got {}",
                self.canvas, self.global_view
            ));
        }
        let biggest = if self.large_fraction > 0.0 {
            self.placard_max.max(self.large_side())
        } else {
            self.placard_max
        };
        if self.canvas < 4 * biggest {
            return Err(format!(
                "canvas {} is too small for placards of up to {biggest} px (it must be at least 4× their side)",
                self.canvas
            ));
        }
        Ok(())
    }

    /// Side of a large placard: `9 × canvas / global_view` (a digit of one
    /// global-view pixel per font pixel), at most a third of the canvas and at
    /// least `placard_max`.
    pub fn large_side(&self) -> u32 {
        let per_px = (self.canvas / self.global_view.max(1)).max(1);
        (9 * per_px).min(self.canvas / 3).max(self.placard_max)
    }
}

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
        let mut img = RgbImage::from_fn(n, n, |_, _| {
            let d = (noise.next_u64() % 25) as i32 - 12;
            Rgb([
                (bg[0] as i32 + d).clamp(0, 255) as u8,
                (bg[1] as i32 + d).clamp(0, 255) as u8,
                (bg[2] as i32 + d).clamp(0, 255) as u8,
            ])
        });
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
mod tests {
    use super::*;
    use crate::geometry::{crop_resize, global_view};

    fn bench(cfg: ZoomBenchConfig) -> ZoomBench {
        ZoomBench::new(cfg).expect("valid config")
    }

    #[test]
    fn same_seed_same_bytes() {
        let zb = bench(ZoomBenchConfig::default());
        let (s1, i1) = zb.generate(7, 3);
        let (s2, i2) = zb.generate(7, 3);
        assert_eq!(s1, s2);
        assert_eq!(i1.as_raw(), i2.as_raw());
        let (s3, i3) = zb.generate(7, 4);
        assert_ne!(s1.id, s3.id);
        assert_ne!(i1.as_raw(), i3.as_raw());
        let (_, i4) = zb.generate(8, 3);
        assert_ne!(i1.as_raw(), i4.as_raw());
    }

    #[test]
    fn samples_are_well_formed() {
        let cfg = ZoomBenchConfig {
            question_mix: "digit,compare,sum".parse().expect("mix"),
            ..Default::default()
        };
        let zb = bench(cfg);
        let mut kinds = std::collections::HashSet::new();
        for i in 0..60 {
            let (s, img) = zb.generate(1, i);
            assert_eq!((img.width(), img.height()), (768, 768));
            let meta = s.meta.as_ref().expect("meta");
            let kind = meta["kind"].as_str().expect("kind").to_string();
            let placards = meta["placards"].as_array().expect("placards");
            assert!((3..=7).contains(&placards.len()));
            match kind.as_str() {
                "digit" => {
                    assert_eq!(s.rationales.len(), 1);
                    assert!(s.answer.parse::<u8>().expect("digit") < 10);
                }
                "compare" => {
                    assert_eq!(s.rationales.len(), 2);
                    assert!(s.answer == "yes" || s.answer == "no");
                }
                "sum" => {
                    assert_eq!(s.rationales.len(), 2);
                    assert!(s.answer.parse::<u8>().expect("sum") <= 18);
                }
                k => panic!("unexpected kind {k}"),
            }
            for r in &s.rationales {
                assert!(r.bbox.is_well_formed() && r.bbox.is_inside(768.0, 768.0));
                let side = r.bbox.width();
                assert!((14.0..=28.0).contains(&side), "side {side}");
                // The named colour is really there: the border pixel has the colour.
                let colour = r.label.trim_end_matches(" placard");
                let rgb = COLOURS.iter().find(|c| c.0 == colour).expect("colour").1;
                assert_eq!(img.get_pixel(r.bbox.x1 as u32, r.bbox.y1 as u32).0, rgb);
                assert!(s.question.contains(colour));
            }
            kinds.insert(kind);
        }
        assert_eq!(kinds.len(), 3);
    }

    #[test]
    fn shortcut_bias_ties_digit_to_colour() {
        let zb = bench(ZoomBenchConfig {
            shortcut_bias: 1.0,
            ..Default::default()
        });
        for i in 0..20 {
            for p in zb.layout(3, i).placards {
                assert_eq!(p.digit, SHORTCUT_DIGITS[p.colour]);
            }
        }
        // With bias 0 the shortcut digit appears about 1 time in 10.
        let zb = bench(ZoomBenchConfig::default());
        let (mut hit, mut all) = (0, 0);
        for i in 0..200 {
            for p in zb.layout(3, i).placards {
                all += 1;
                hit += usize::from(p.digit == SHORTCUT_DIGITS[p.colour]);
            }
        }
        let rate = hit as f64 / all as f64;
        assert!((0.05..0.16).contains(&rate), "rate {rate}");
    }

    #[test]
    fn label_noise_moves_boxes_and_keeps_truth() {
        let zb = bench(ZoomBenchConfig {
            label_noise: 0.5,
            ..Default::default()
        });
        let mut noisy = 0;
        for i in 0..100 {
            let (s, _) = zb.generate(5, i);
            let meta = s.meta.expect("meta");
            if meta["label_noise"].as_bool().expect("flag") {
                noisy += 1;
                let t = &meta["true_rationales"][0]["bbox"];
                let truth = BBox::new(
                    t[0].as_f64().expect("x1"),
                    t[1].as_f64().expect("y1"),
                    t[2].as_f64().expect("x2"),
                    t[3].as_f64().expect("y2"),
                );
                assert!(s.rationales[0].bbox.iou(&truth) <= 0.05);
                assert!(s.rationales[0].bbox.is_inside(768.0, 768.0));
            }
        }
        assert!((35..=65).contains(&noisy), "noisy {noisy}");
    }

    /// Counts pixels whose largest channel difference exceeds `thr`.
    fn differing(a: &RgbImage, b: &RgbImage, thr: u8) -> usize {
        a.pixels()
            .zip(b.pixels())
            .filter(|(p, q)| {
                p.0.iter()
                    .zip(q.0.iter())
                    .any(|(x, y)| x.abs_diff(*y) > thr)
            })
            .count()
    }

    fn max_diff(a: &RgbImage, b: &RgbImage) -> u8 {
        a.as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0)
    }

    /// The claim ZoomBench rests on, checked numerically for every pair of
    /// digits and both extreme placard sizes: two images that differ only in
    /// one placard's digit differ in many pixels of a zoomed crop (the glyph is
    /// resolved) but in at most a 2×2 patch of the global view (the 5×7 glyph
    /// collapses into fewer pixels than it has strokes), by a small amount.
    #[test]
    fn digits_readable_in_crop_not_in_global_view() {
        for side in [14u32, 28] {
            let zb = bench(ZoomBenchConfig {
                placard_min: side,
                placard_max: side,
                ..Default::default()
            });
            let base = zb.layout(11, 0);
            let target = base.placards[0].bbox();
            let (cx, cy) = target.center();
            let crop_box = BBox::new(
                cx - 1.5 * side as f64,
                cy - 1.5 * side as f64,
                cx + 1.5 * side as f64,
                cy + 1.5 * side as f64,
            );
            let mut worst_global = 0usize;
            let mut worst_global_level = 0u8;
            let mut least_crop = usize::MAX;
            for a in 0..10u8 {
                for b in (a + 1)..10 {
                    let mut la = base.clone();
                    la.placards[0].digit = a;
                    let mut lb = base.clone();
                    lb.placards[0].digit = b;
                    let (ia, ib) = (zb.render(&la), zb.render(&lb));
                    let (ga, gb) = (global_view(&ia, 64), global_view(&ib, 64));
                    worst_global = worst_global.max(differing(&ga, &gb, 2));
                    worst_global_level = worst_global_level.max(max_diff(&ga, &gb));
                    let (ca, cb) = (
                        crop_resize(&ia, &crop_box, 64),
                        crop_resize(&ib, &crop_box, 64),
                    );
                    least_crop = least_crop.min(differing(&ca, &cb, 64));
                }
            }
            // At 12 canvas pixels per global-view pixel, a 28 px placard's glyph
            // (15×21 px) straddles at most a 3×3 patch: fewer pixels than the
            // glyph's 5×7 cells, so its shape is gone.
            assert!(
                worst_global <= 9,
                "side {side}: digits differ in {worst_global} global-view pixels"
            );
            assert!(
                worst_global_level <= 64,
                "side {side}: global-view difference up to {worst_global_level}/255"
            );
            // Every pair differs in at least 3 font pixels; a crop of three placard
            // widths shows each font pixel as at least one full-contrast pixel.
            assert!(
                least_crop >= 10,
                "side {side}: digits differ in only {least_crop} crop pixels"
            );
            assert!(
                least_crop >= 2 * worst_global,
                "side {side}: crop {least_crop} vs global {worst_global}"
            );
        }
    }

    #[test]
    fn large_placards_are_readable_in_global_view() {
        let zb = bench(ZoomBenchConfig {
            large_fraction: 1.0,
            placards_min: 1,
            placards_max: 1,
            ..Default::default()
        });
        let base = zb.layout(2, 0);
        assert!(base.placards[0].large);
        let mut least = usize::MAX;
        for a in 0..10u8 {
            for b in (a + 1)..10 {
                let mut la = base.clone();
                la.placards[0].digit = a;
                let mut lb = base.clone();
                lb.placards[0].digit = b;
                least = least.min(differing(
                    &global_view(&zb.render(&la), 64),
                    &global_view(&zb.render(&lb), 64),
                    64,
                ));
            }
        }
        assert!(
            least >= 2,
            "large digits differ in only {least} global-view pixels"
        );
    }

    #[test]
    fn bad_knobs_are_rejected() {
        assert!(
            ZoomBench::new(ZoomBenchConfig {
                shortcut_bias: 1.5,
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            ZoomBench::new(ZoomBenchConfig {
                placards_max: 11,
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            ZoomBench::new(ZoomBenchConfig {
                placard_min: 30,
                placard_max: 20,
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            ZoomBench::new(ZoomBenchConfig {
                canvas: 64,
                ..Default::default()
            })
            .is_err()
        );
        let mix: QuestionMix = "sum".parse().expect("mix");
        assert!(
            ZoomBench::new(ZoomBenchConfig {
                question_mix: mix,
                placards_min: 1,
                ..Default::default()
            })
            .is_err()
        );
        assert!("digit=x".parse::<QuestionMix>().is_err());
        assert!("colour".parse::<QuestionMix>().is_err());
    }
}
