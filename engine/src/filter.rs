//! The three-stage reasoning-centric data filter (DESIGN §10, issue #5):
//! keep the samples that need looking, can be solved by looking, and need
//! the zoom to be solved.
//!
//! 1. **Area ratio.** Drop a sample whose rationale area ratio — the area of
//!    the union of its rationale boxes over the image area — exceeds
//!    `max_area_ratio` (the evidence is large enough to see without zooming).
//! 2. **Solvable without zooming.** Roll the policy out `k` times with
//!    zooming disabled (it answers at once); drop the sample if its pass
//!    rate is at least `no_zoom_pass`.
//! 3. **Unsolvable even with the ground-truth zoom.** Roll the policy out
//!    `k` times with its zooms forced onto the ground-truth boxes; drop the
//!    sample if it is never answered correctly.
//!
//! Stages 2 and 3 run only on the samples that passed the earlier stages.
//! Samples without rationale boxes pass stage 1 (ratio 0) and fail stage 3
//! only if never solved.

use crate::dataset::interchange::{ImportReport, Imported, write_dataset};
use crate::dataset::{Dataset, DatasetError, Sample};
use crate::env::ImageSource;
use crate::geometry::BBox;
use crate::trainer::{TrainError, Trainer};
use serde::Serialize;
use std::path::Path;

/// The filter's knobs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct FilterConfig {
    /// Stage 1: the largest rationale area ratio kept. Default 0.1.
    pub max_area_ratio: f64,
    /// Stages 2 and 3: rollouts per sample. Default 8.
    pub k: usize,
    /// Stage 2: a no-zoom pass rate at or above this drops the sample. Default 0.5.
    pub no_zoom_pass: f64,
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self {
            max_area_ratio: 0.1,
            k: 8,
            no_zoom_pass: 0.5,
        }
    }
}

impl FilterConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.max_area_ratio > 0.0 && self.max_area_ratio <= 1.0) {
            return Err(format!(
                "--max-area-ratio must be in (0, 1], got {}",
                self.max_area_ratio
            ));
        }
        if self.k == 0 {
            return Err("--k must be at least 1".into());
        }
        if !(self.no_zoom_pass > 0.0 && self.no_zoom_pass <= 1.0) {
            return Err(format!(
                "--no-zoom-pass must be in (0, 1], got {}",
                self.no_zoom_pass
            ));
        }
        Ok(())
    }
}

/// A dropped sample and why.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Dropped {
    /// The sample id.
    pub sample: String,
    /// The stage that dropped it (1, 2 or 3).
    pub stage: u8,
    /// The measured value (area ratio, no-zoom pass rate, or forced-zoom pass rate).
    pub value: f64,
    /// In words.
    pub reason: String,
}

/// What the filter did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct FilterReport {
    /// The knobs used.
    pub config: Option<FilterConfig>,
    /// Samples in.
    pub input: usize,
    /// Samples left after stages 1, 2 and 3.
    pub after_stage: [usize; 3],
    /// Ids kept, in dataset order.
    pub kept: Vec<String>,
    /// Every dropped sample with its reason.
    pub dropped: Vec<Dropped>,
}

/// The area of the union of `boxes` (exact, by coordinate compression).
pub fn union_area(boxes: &[BBox]) -> f64 {
    let mut xs: Vec<f64> = boxes.iter().flat_map(|b| [b.x1, b.x2]).collect();
    let mut ys: Vec<f64> = boxes.iter().flat_map(|b| [b.y1, b.y2]).collect();
    xs.sort_by(f64::total_cmp);
    ys.sort_by(f64::total_cmp);
    xs.dedup();
    ys.dedup();
    let mut area = 0.0;
    for xw in xs.windows(2) {
        for yw in ys.windows(2) {
            let (cx, cy) = ((xw[0] + xw[1]) / 2.0, (yw[0] + yw[1]) / 2.0);
            if boxes
                .iter()
                .any(|b| cx > b.x1 && cx < b.x2 && cy > b.y1 && cy < b.y2)
            {
                area += (xw[1] - xw[0]) * (yw[1] - yw[0]);
            }
        }
    }
    area
}

/// A sample's rationale area ratio: union of its boxes over the image area.
pub fn area_ratio(s: &Sample) -> f64 {
    union_area(&s.gt_boxes()) / (s.width as f64 * s.height as f64).max(1.0)
}

/// How a probe forces the policy's actions (stages 2 and 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Answer at once, without any zoom.
    NoZoom,
    /// Zoom on each ground-truth box in order, then answer.
    GroundTruthZoom,
}

impl Probe {
    /// The zooms forced on a sample, in order.
    pub fn zooms(self, s: &Sample) -> Vec<BBox> {
        match self {
            Self::NoZoom => Vec::new(),
            Self::GroundTruthZoom => s.gt_boxes(),
        }
    }
}

/// A policy the filter can probe: ZoomNet (a [`Trainer`] holding its
/// checkpoint) or a VLM (`vlm::VlmProber`).
pub trait Prober {
    /// For each sample of `ds`, the fraction of `k` rollouts under `probe`
    /// that answer correctly. `progress(done, total)` as samples finish.
    fn pass_rates(
        &mut self,
        ds: Dataset,
        source: ImageSource,
        k: usize,
        probe: Probe,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<f64>, TrainError>;
}

impl Prober for Trainer {
    fn pass_rates(
        &mut self,
        ds: Dataset,
        source: ImageSource,
        k: usize,
        probe: Probe,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<f64>, TrainError> {
        self.probe(ds, source, k, &|s| probe.zooms(s), progress)
    }
}

/// Runs the three stages on `ds` with `policy`. `progress(stage, done,
/// total)` is called as stages 2 and 3 run.
pub fn run(
    ds: &Dataset,
    source: ImageSource,
    policy: &mut dyn Prober,
    cfg: &FilterConfig,
    mut progress: impl FnMut(u8, usize, usize),
) -> Result<FilterReport, TrainError> {
    cfg.validate()?;
    let mut rep = FilterReport {
        config: Some(*cfg),
        input: ds.len(),
        ..Default::default()
    };
    // Stage 1.
    let mut left: Vec<&Sample> = Vec::new();
    for s in ds.samples() {
        let r = area_ratio(s);
        if r > cfg.max_area_ratio {
            rep.dropped.push(Dropped {
                sample: s.id.clone(),
                stage: 1,
                value: r,
                reason: format!(
                    "rationale area ratio {r:.3} > {}: visible without zooming",
                    cfg.max_area_ratio
                ),
            });
        } else {
            left.push(s);
        }
    }
    rep.after_stage[0] = left.len();
    let subset = |v: &[&Sample]| Dataset::new(ds.root(), v.iter().map(|s| (*s).clone()).collect());
    // Stage 2.
    let rates = if left.is_empty() {
        Vec::new()
    } else {
        policy.pass_rates(
            subset(&left),
            source.clone(),
            cfg.k,
            Probe::NoZoom,
            &mut |d, n| progress(2, d, n),
        )?
    };
    let mut left2 = Vec::new();
    for (s, p) in left.into_iter().zip(rates) {
        if p >= cfg.no_zoom_pass {
            rep.dropped.push(Dropped {
                sample: s.id.clone(),
                stage: 2,
                value: p,
                reason: format!(
                    "solved without zooming in {:.0} % of {} rollouts (≥ {:.0} %)",
                    100.0 * p,
                    cfg.k,
                    100.0 * cfg.no_zoom_pass
                ),
            });
        } else {
            left2.push(s);
        }
    }
    rep.after_stage[1] = left2.len();
    // Stage 3.
    let rates = if left2.is_empty() {
        Vec::new()
    } else {
        policy.pass_rates(
            subset(&left2),
            source,
            cfg.k,
            Probe::GroundTruthZoom,
            &mut |d, n| progress(3, d, n),
        )?
    };
    for (s, p) in left2.into_iter().zip(rates) {
        if p == 0.0 {
            rep.dropped.push(Dropped {
                sample: s.id.clone(),
                stage: 3,
                value: p,
                reason: format!(
                    "never solved in {} rollouts even with the zoom forced onto the ground truth",
                    cfg.k
                ),
            });
        } else {
            rep.kept.push(s.id.clone());
        }
    }
    rep.after_stage[2] = rep.kept.len();
    Ok(rep)
}

/// The report file's name in the output folder.
pub const REPORT: &str = "filter-report.json";
/// The dropped samples' file name in the output folder.
pub const DROPPED: &str = "dropped.jsonl";

/// Writes the kept samples as a dataset folder `out` (images linked or
/// copied), with `filter-report.json` (counts per stage and the config) and
/// `dropped.jsonl` (every dropped sample with its stage and reason).
/// The report and the dropped list are written first, so they exist even
/// when every sample was dropped (then there is no dataset to write, and the
/// error says so).
pub fn write(rep: &FilterReport, ds: &Dataset, out: &Path) -> Result<Dataset, DatasetError> {
    std::fs::create_dir_all(out).map_err(|source| DatasetError::Io {
        action: "create",
        path: out.to_path_buf(),
        source,
    })?;
    let io = |path: &Path, source| DatasetError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    };
    let p = out.join(REPORT);
    crate::fsutil::atomic_write(&p, &serde_json::to_vec_pretty(rep).unwrap_or_default())
        .map_err(|e| io(&p, e))?;
    let p = out.join(DROPPED);
    crate::fsutil::atomic_write(&p, crate::fsutil::to_jsonl(&rep.dropped).as_bytes())
        .map_err(|e| io(&p, e))?;
    if rep.kept.is_empty() {
        return Err(DatasetError::Invalid {
            path: out.to_path_buf(),
            location: Default::default(),
            message: format!(
                "every sample was dropped, so there is no dataset to write; the reasons are in {DROPPED}"
            ),
        });
    }
    let kept: std::collections::HashSet<&str> = rep.kept.iter().map(String::as_str).collect();
    let samples = ds
        .samples()
        .iter()
        .filter(|s| kept.contains(s.id.as_str()))
        .map(|s| Imported {
            source_image: ds.image_path(s),
            extracted: false,
            sample: s.clone(),
        })
        .collect();
    let out_ds = write_dataset(
        ImportReport {
            samples,
            problems: Vec::new(),
        },
        out,
        false,
        crate::dataset::interchange::Images::Copy,
    )?;
    Ok(out_ds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_area_counts_overlap_once() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        let b = BBox::new(5.0, 5.0, 15.0, 15.0);
        assert_eq!(union_area(&[a]), 100.0);
        assert_eq!(union_area(&[a, b]), 175.0);
        assert_eq!(union_area(&[a, a]), 100.0);
        assert_eq!(union_area(&[]), 0.0);
    }

    #[test]
    fn stages_account_for_every_sample_and_the_output_loads() {
        use crate::config::SessionConfig;
        use crate::dataset::zoombench::{ZoomBench, ZoomBenchConfig};
        let zb_cfg = ZoomBenchConfig {
            canvas: 256,
            placards_min: 1,
            placards_max: 2,
            distractors: 8,
            global_view: 32,
            ..ZoomBenchConfig::default()
        };
        let tmp = tempfile::tempdir().expect("tmp");
        let ds = ZoomBench::new(zb_cfg.clone())
            .expect("zb")
            .write_dataset(&tmp.path().join("in"), 24, 9, |_| {})
            .expect("write");
        let mut c = SessionConfig::default();
        c.data.zoombench = zb_cfg;
        c.data.train_n = 8;
        c.data.eval_n = 4;
        c.env.view = 32;
        c.env.max_rounds = 3;
        c.policy.hidden = 32;
        let mut t = Trainer::new(c, None).expect("trainer");
        // A threshold between the samples' area ratios, so stage 1 drops some.
        let mut ratios: Vec<f64> = ds.samples().iter().map(area_ratio).collect();
        ratios.sort_by(f64::total_cmp);
        let cut = ratios[ratios.len() / 2];
        let cfg = FilterConfig {
            max_area_ratio: cut,
            k: 4,
            no_zoom_pass: 0.5,
        };
        let rep = run(&ds, ImageSource::Folder, &mut t, &cfg, |_, _, _| {}).expect("filter");
        let by_stage = |st: u8| rep.dropped.iter().filter(|d| d.stage == st).count();
        assert_eq!(rep.input, 24);
        let over = ds.samples().iter().filter(|s| area_ratio(s) > cut).count();
        assert_eq!(by_stage(1), over);
        assert!(over > 0 && over < 24);
        assert_eq!(rep.after_stage[0], 24 - over);
        assert_eq!(rep.after_stage[1], rep.after_stage[0] - by_stage(2));
        assert_eq!(rep.after_stage[2], rep.after_stage[1] - by_stage(3));
        assert_eq!(rep.kept.len() + rep.dropped.len(), 24);
        for d in &rep.dropped {
            match d.stage {
                1 => assert!(d.value > cut),
                2 => assert!(d.value >= 0.5),
                3 => assert_eq!(d.value, 0.0),
                _ => panic!("stage {}", d.stage),
            }
        }
        let out = tmp.path().join("out");
        let kept = write(&rep, &ds, &out).expect("write");
        let back = Dataset::load(&out).expect("the filtered dataset loads");
        assert_eq!(back.len(), rep.kept.len());
        assert_eq!(kept.len(), back.len());
        let lines = std::fs::read_to_string(out.join(DROPPED)).expect("dropped");
        assert_eq!(lines.lines().count(), rep.dropped.len());
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(REPORT)).expect("report"))
                .expect("json");
        assert_eq!(report["input"], 24);
    }

    #[test]
    fn bad_knobs_are_refused() {
        for c in [
            FilterConfig {
                max_area_ratio: 0.0,
                ..Default::default()
            },
            FilterConfig {
                k: 0,
                ..Default::default()
            },
            FilterConfig {
                no_zoom_pass: 1.5,
                ..Default::default()
            },
            FilterConfig {
                no_zoom_pass: f64::NAN,
                ..Default::default()
            },
        ] {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}
