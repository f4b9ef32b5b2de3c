//! ZoomBench's knobs (DESIGN §3): the named placard colours, the
//! shortcut digits, the question mix and the generator's config.

use super::super::font::GLYPH_H;
use serde::{Deserialize, Serialize};

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
    /// Side of a large placard as a fraction of the canvas side, in (0, ½];
    /// 0 (the default) sizes it by [`Self::large_side`]'s rule instead. At
    /// 0.32 or more a large placard covers over a tenth of the image, which
    /// is what the filter's stage 1 (`max_area_ratio`, 0.1) exists to remove
    /// (RESULTS.md §5). Default 0.
    pub large_side: f64,
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
            large_side: 0.0,
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
        if !(self.large_side.is_finite() && (0.0..=0.5).contains(&self.large_side)) {
            return Err(format!(
                "large_side is a fraction of the canvas side and must lie in [0, 0.5] (0: sized by the global view), got {}",
                self.large_side
            ));
        }
        // A large placard of an explicit side has room of its own (at most
        // half the canvas); the others must fit four times over.
        let biggest = if self.large_fraction > 0.0 && self.large_side == 0.0 {
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

    /// Side of a large placard: `large_side × canvas` when that knob is set,
    /// else `9 × canvas / global_view` (a digit of one global-view pixel per
    /// font pixel) at most a third of the canvas; at least `placard_max`.
    pub fn large_side(&self) -> u32 {
        if self.large_side > 0.0 {
            return ((self.large_side * self.canvas as f64) as u32).max(self.placard_max);
        }
        let per_px = (self.canvas / self.global_view.max(1)).max(1);
        (9 * per_px).min(self.canvas / 3).max(self.placard_max)
    }
}
