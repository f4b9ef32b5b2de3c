//! The audit of a model's zooms (`virl audit`): does it look where it
//! should, and does its answer rest on what it looked at?
//!
//! Each scored trajectory falls in one of six categories: its answer is
//! `right` or `wrong` (the engine's `R_ans`), and its looking is `on`
//! (every rationale box hit by some zoom at IoU ≥ [`HIT_IOU`]), `off` (it
//! zoomed but missed a rationale box) or `none` (no zoom). `right_off` is
//! the paper's "illusion", `right_none` the collapse of tool use. Each count
//! carries a 95 % Wilson interval.
//!
//! Controls tell looking from knowing: the same questions asked with the
//! rationale region masked out of the image ([`mask_rationale`]), or with a
//! blank image. An answer that stays right is not grounded in the pixels.

use crate::dataset::Dataset;
use crate::geometry::BBox;
use crate::trajectory::Trajectory;
use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// A rationale box counts as looked at when a zoom covers it at this IoU.
pub const HIT_IOU: f64 = 0.5;

/// The six categories, in report order.
pub const CATEGORIES: [&str; 6] = [
    "right_on",
    "right_off",
    "right_none",
    "wrong_on",
    "wrong_off",
    "wrong_none",
];

/// The 95 % Wilson score interval of `k` successes in `n` trials.
pub fn wilson(k: usize, n: usize) -> [f64; 2] {
    if n == 0 {
        return [0.0, 1.0];
    }
    let z = 1.959_963_984_540_054_f64;
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let d = 1.0 + z * z / n;
    let c = (p + z * z / (2.0 * n)) / d;
    let h = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / d;
    [(c - h).max(0.0), (c + h).min(1.0)]
}

/// A count out of a total, with its 95 % interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Share {
    /// How many.
    pub count: usize,
    /// Out of.
    pub of: usize,
    /// `count / of`.
    pub fraction: f64,
    /// 95 % Wilson interval of the fraction.
    pub ci95: [f64; 2],
}

impl Share {
    /// `k` of `n`.
    pub fn new(k: usize, n: usize) -> Self {
        Self {
            count: k,
            of: n,
            fraction: if n == 0 { 0.0 } else { k as f64 / n as f64 },
            ci95: wilson(k, n),
        }
    }
}

/// The category of a scored trajectory; `None` when its sample has no
/// rationale boxes (answers and zoom statistics only).
pub fn category(t: &Trajectory, has_boxes: bool) -> Option<&'static str> {
    if !has_boxes {
        return None;
    }
    let right = t.rewards.ans > 0.0;
    let looking = if t.actions.is_empty() {
        2
    } else if !t.gt_best_iou.is_empty() && t.gt_best_iou.iter().all(|&i| i >= HIT_IOU) {
        0
    } else {
        1
    };
    Some(CATEGORIES[if right { 0 } else { 3 } + looking])
}

/// How many right answers survive a control.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlResult {
    /// `masked` or `blank`.
    pub name: String,
    /// Of the samples answered right on the real image (first rollout),
    /// how many are still answered right under the control.
    pub survive: Share,
    /// Accuracy under the control, over every control trajectory.
    pub acc_ans: Share,
    /// The samples whose answer survived (one click to their trajectories).
    pub surviving_samples: Vec<String>,
}

/// Zoom statistics.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ZoomStats {
    /// Zooms over all trajectories.
    pub zooms: usize,
    /// Mean zooms per trajectory.
    pub per_trajectory: f64,
    /// Trajectories with no zoom.
    pub no_zoom: Share,
    /// Mean IoU of a zoom with its best rationale box (zooms on samples
    /// with boxes).
    pub mean_iou: Option<f64>,
    /// Mean per-trajectory Acc_rat (`Trajectory::rat_accuracy`).
    pub acc_rat: Option<f64>,
    /// Mean rationale coverage.
    pub coverage: Option<f64>,
}

/// What `virl audit` reports (`audit.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Where the trajectories came from (a checkpoint or a rollout file).
    pub source: String,
    /// The dialect.
    pub dialect: String,
    /// Samples audited.
    pub samples: usize,
    /// Samples with rationale boxes (categorised).
    pub samples_with_boxes: usize,
    /// Trajectories audited.
    pub trajectories: usize,
    /// Rollouts per sample (K).
    pub k: usize,
    /// Answer accuracy over trajectories.
    pub acc_ans: Share,
    /// Samples with at least one right answer among their K (K > 1).
    pub pass_at_k: Option<Share>,
    /// The six categories over trajectories of samples with boxes.
    pub categories: BTreeMap<String, Share>,
    /// Per category, the trajectories in it as `sample#rollout`.
    pub members: BTreeMap<String, Vec<String>>,
    /// Zoom statistics.
    pub zooms: ZoomStats,
    /// The controls that were run.
    pub controls: Vec<ControlResult>,
    /// Lines of a rollout file that were not scored, with why.
    pub skipped: Vec<String>,
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// Audits scored trajectories (each scored against `ds`) and the scored
/// trajectories of each control.
pub fn audit(
    source: &str,
    dialect: &str,
    trajs: &[Trajectory],
    ds: &Dataset,
    controls: &[(&str, &[Trajectory])],
) -> AuditReport {
    let has_boxes = |id: &str| ds.get(id).is_some_and(|s| !s.rationales.is_empty());
    let mut per_sample: HashMap<&str, Vec<&Trajectory>> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for t in trajs {
        let e = per_sample.entry(t.sample.as_str()).or_default();
        if e.is_empty() {
            order.push(t.sample.as_str());
        }
        e.push(t);
    }
    let k = per_sample.values().map(Vec::len).max().unwrap_or(0);
    let mut counts: BTreeMap<String, usize> =
        CATEGORIES.iter().map(|c| (c.to_string(), 0)).collect();
    let mut members: BTreeMap<String, Vec<String>> = CATEGORIES
        .iter()
        .map(|c| (c.to_string(), Vec::new()))
        .collect();
    let mut categorised = 0;
    for id in &order {
        for (i, t) in per_sample[id].iter().enumerate() {
            if let Some(c) = category(t, has_boxes(id)) {
                categorised += 1;
                *counts.entry(c.into()).or_default() += 1;
                members
                    .entry(c.into())
                    .or_default()
                    .push(format!("{id}#{i}"));
            }
        }
    }
    let categories = counts
        .into_iter()
        .map(|(c, n)| (c, Share::new(n, categorised)))
        .collect();
    let right = |t: &&Trajectory| t.rewards.ans > 0.0;
    let n_right = trajs.iter().filter(|t| t.rewards.ans > 0.0).count();
    let pass = order
        .iter()
        .filter(|id| per_sample[*id].iter().any(right))
        .count();
    let on_boxes: Vec<&Trajectory> = trajs.iter().filter(|t| has_boxes(&t.sample)).collect();
    let zooms = ZoomStats {
        zooms: trajs.iter().map(|t| t.actions.len()).sum(),
        per_trajectory: mean(trajs.iter().map(|t| t.actions.len() as f64)).unwrap_or(0.0),
        no_zoom: Share::new(
            trajs.iter().filter(|t| t.actions.is_empty()).count(),
            trajs.len(),
        ),
        mean_iou: mean(
            on_boxes
                .iter()
                .flat_map(|t| t.actions.iter().filter_map(|a| a.score.iou)),
        ),
        acc_rat: mean(on_boxes.iter().filter_map(|t| t.rat_accuracy())),
        coverage: mean(on_boxes.iter().filter_map(|t| t.coverage)),
    };
    let first_right: Vec<&str> = order
        .iter()
        .copied()
        .filter(|id| per_sample[id].first().is_some_and(right))
        .collect();
    let controls = controls
        .iter()
        .map(|(name, ctl)| {
            let mut first: HashMap<&str, &Trajectory> = HashMap::new();
            for t in ctl.iter() {
                first.entry(t.sample.as_str()).or_insert(t);
            }
            let surviving: Vec<String> = first_right
                .iter()
                .filter(|id| first.get(*id).is_some_and(right))
                .map(|id| id.to_string())
                .collect();
            ControlResult {
                name: name.to_string(),
                survive: Share::new(surviving.len(), first_right.len()),
                acc_ans: Share::new(
                    ctl.iter().filter(|t| t.rewards.ans > 0.0).count(),
                    ctl.len(),
                ),
                surviving_samples: surviving,
            }
        })
        .collect();
    AuditReport {
        source: source.to_string(),
        dialect: dialect.to_string(),
        samples: order.len(),
        samples_with_boxes: order.iter().filter(|id| has_boxes(id)).count(),
        trajectories: trajs.len(),
        k,
        acc_ans: Share::new(n_right, trajs.len()),
        pass_at_k: (k > 1).then(|| Share::new(pass, order.len())),
        categories,
        members,
        zooms,
        controls,
        skipped: Vec::new(),
    }
}

/// The image with every rationale box filled with the image's mean colour
/// (the "masked" control).
pub fn mask_rationale(img: &RgbImage, boxes: &[BBox]) -> RgbImage {
    let (w, h) = img.dimensions();
    let n = (w as u64 * h as u64).max(1);
    let mut sum = [0u64; 3];
    for p in img.pixels() {
        for c in 0..3 {
            sum[c] += p[c] as u64;
        }
    }
    let fill = Rgb([(sum[0] / n) as u8, (sum[1] / n) as u8, (sum[2] / n) as u8]);
    let mut out = img.clone();
    for b in boxes {
        let Some(b) = b.clip(w as f64, h as f64) else {
            continue;
        };
        let (x1, y1) = (b.x1.floor() as u32, b.y1.floor() as u32);
        let (x2, y2) = ((b.x2.ceil() as u32).min(w), (b.y2.ceil() as u32).min(h));
        for y in y1..y2 {
            for x in x1..x2 {
                out.put_pixel(x, y, fill);
            }
        }
    }
    out
}

/// A mid-grey image of the same size (the "blank" control).
pub fn blank(img: &RgbImage) -> RgbImage {
    RgbImage::from_pixel(img.width(), img.height(), Rgb([128, 128, 128]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_the_textbook_values() {
        // 8 of 10: [0.490, 0.943] (Wilson 1927, z = 1.96).
        let [lo, hi] = wilson(8, 10);
        assert!(
            (lo - 0.4902).abs() < 1e-3 && (hi - 0.9433).abs() < 1e-3,
            "{lo} {hi}"
        );
        assert_eq!(wilson(0, 0), [0.0, 1.0]);
        let [lo, hi] = wilson(0, 20);
        assert!(lo == 0.0 && hi > 0.1 && hi < 0.2);
    }

    #[test]
    fn masking_fills_only_the_boxes() {
        let img = RgbImage::from_pixel(10, 10, Rgb([200, 0, 0]));
        let mut img2 = img.clone();
        img2.put_pixel(9, 9, Rgb([0, 0, 0]));
        let m = mask_rationale(&img2, &[BBox::new(2.0, 2.0, 4.0, 4.0)]);
        assert_eq!(m.get_pixel(0, 0), &Rgb([200, 0, 0]));
        assert_eq!(m.get_pixel(3, 3), &Rgb([198, 0, 0]));
        assert_eq!(m.get_pixel(4, 4), &Rgb([200, 0, 0]));
    }
}
