//! Suspect ground truth: which samples' rationale boxes are most likely
//! wrong, judged from a policy's stored rollouts, so that a person fixes
//! those first (issue #5, DESIGN §9).
//!
//! The evidence is the policy getting the answer **right while looking
//! somewhere else, consistently**. For sample `s`, take the zooms of the
//! trajectories that answered correctly, `Z = {b_k}`, each weighted by the
//! policy's confidence in it relative to the sample's most confident zoom,
//! `w_k = max(w_min, exp(log p_k − max_j log p_j))`. Then
//!
//! - the consensus box `c = argmax_{b ∈ Z} Σ_k w_k IoU(b, b_k)` (the weighted medoid),
//! - its support `u = Σ_k w_k IoU(c, b_k) / Σ_k w_k ∈ [0, 1]` (how much the
//!   confident, correct zooms agree on one place),
//! - its agreement with the ground truth `g = max_m |c ∩ gt_m| / |gt_m|`, the
//!   largest fraction of a ground-truth box that the consensus zoom looks at
//!   (a zoom is usually larger than its rationale, so IoU would call a
//!   correct, loose zoom a disagreement),
//! - the evidence factor `n / (n + n_0)` for `n` correct trajectories,
//!
//! and `suspicion(s) = u · (1 − g) · n / (n + n_0)`. A high score means: many
//! correct answers, zooms that agree with each other, and a ground truth
//! elsewhere. Samples without rationales or without a correct trajectory
//! score 0 (nothing to go on). The ranking is by score, highest first.
//!
//! ZoomBench's `label_noise` knob is the test: its shifted samples carry
//! `meta.label_noise = true`, and [`precision_at`] measures how many of the
//! top `k` are such samples.

use crate::dataset::Sample;
use crate::geometry::BBox;
use crate::trajectory::Trajectory;
use serde::Serialize;
use std::collections::HashMap;

/// Constants of the suspicion score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SuspectConfig {
    /// `w_min`: the least weight a correct trajectory's zoom gets. Default 0.05.
    pub w_min: f64,
    /// `n_0`: correct trajectories needed for half the evidence. Default 2.
    pub n0: f64,
}

impl Default for SuspectConfig {
    fn default() -> Self {
        Self {
            w_min: 0.05,
            n0: 2.0,
        }
    }
}

/// One sample's suspicion.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suspect {
    /// The sample id.
    pub sample: String,
    /// `suspicion(s)`; higher is more suspect.
    pub score: f64,
    /// Trajectories of this sample in the rollouts.
    pub trajectories: usize,
    /// Those that answered correctly (`n`).
    pub correct: usize,
    /// The consensus box `c` of the correct trajectories' zooms, if any.
    pub consensus: Option<BBox>,
    /// Its support `u`.
    pub support: f64,
    /// `g`: the largest fraction of a ground-truth box inside the consensus box.
    pub gt_cover: f64,
    /// Fraction of correct trajectories none of whose zooms reach IoU 0.5
    /// with a ground-truth box ("right answer, looked elsewhere").
    pub right_elsewhere: f64,
    /// Pass rates with the zoom forced onto the consensus box and onto the
    /// ground truth, when probed ([`with_probe`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<(f64, f64)>,
}

/// Scores and ranks every sample that has trajectories in `records`
/// (highest suspicion first; ties by id). `sample` looks a sample up by id
/// (with its current ground truth); records of unknown samples are skipped.
pub fn rank<'a, 'r>(
    records: impl IntoIterator<Item = &'r Trajectory>,
    sample: impl Fn(&str) -> Option<&'a Sample>,
    cfg: &SuspectConfig,
) -> Vec<Suspect> {
    let mut by_sample: HashMap<&str, Vec<&Trajectory>> = HashMap::new();
    for r in records {
        by_sample.entry(r.sample.as_str()).or_default().push(r);
    }
    let mut out: Vec<Suspect> = by_sample
        .into_iter()
        .filter_map(|(id, rs)| Some(score(sample(id)?, &rs, cfg)))
        .collect();
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.sample.cmp(&b.sample))
    });
    out
}

/// The suspicion of one sample from its trajectories (see the module docs).
pub fn score(s: &Sample, rs: &[&Trajectory], cfg: &SuspectConfig) -> Suspect {
    let gts = s.gt_boxes();
    let correct: Vec<&&Trajectory> = rs.iter().filter(|r| r.correct()).collect();
    // (box, log p) of every zoom of a correct trajectory.
    let zooms: Vec<(BBox, f64)> = correct
        .iter()
        .flat_map(|r| {
            r.actions
                .iter()
                .map(|a| (a.proposed, a.logp.map_or(0.0, f64::from)))
        })
        .filter(|(b, lp)| b.is_well_formed() && lp.is_finite())
        .collect();
    let right_elsewhere = if correct.is_empty() {
        0.0
    } else {
        correct
            .iter()
            .filter(|r| !r.proposed().any(|b| gts.iter().any(|g| b.iou(g) >= 0.5)))
            .count() as f64
            / correct.len() as f64
    };
    let mut out = Suspect {
        sample: s.id.clone(),
        score: 0.0,
        trajectories: rs.len(),
        correct: correct.len(),
        consensus: None,
        support: 0.0,
        gt_cover: 0.0,
        right_elsewhere,
        probe: None,
    };
    if gts.is_empty() || zooms.is_empty() {
        return out;
    }
    let top = zooms.iter().map(|z| z.1).fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = zooms
        .iter()
        .map(|z| (z.1 - top).exp().max(cfg.w_min))
        .collect();
    let wsum: f64 = w.iter().sum();
    let agreement = |c: &BBox| -> f64 {
        zooms
            .iter()
            .zip(&w)
            .map(|(z, wk)| wk * c.iou(&z.0))
            .sum::<f64>()
    };
    let (c, best) = zooms.iter().map(|z| (z.0, agreement(&z.0))).fold(
        (zooms[0].0, f64::NEG_INFINITY),
        |acc, x| {
            if x.1 > acc.1 { x } else { acc }
        },
    );
    let u = (best / wsum).clamp(0.0, 1.0);
    let g = gts
        .iter()
        .map(|gt| c.intersection_area(gt) / gt.area().max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max)
        .clamp(0.0, 1.0);
    let n = correct.len() as f64;
    out.consensus = Some(c);
    out.support = u;
    out.gt_cover = g;
    out.score = u * (1.0 - g) * n / (n + cfg.n0);
    out
}

/// Sharpens a suspicion with a probe of the policy (`Trainer::probe`): `p_c`
/// is the pass rate with the zoom forced onto the consensus box `c`, `p_gt`
/// with the zoom forced onto the ground-truth boxes. A wrong box reads
/// worse than where the policy looks (`p_c > p_gt`); a sample the policy
/// answers without looking at its (correct) box reads as well or better at
/// the box. The score becomes `suspicion · (1 + p_c − p_gt) / 2` — unchanged
/// order among equal probes, halved when they agree, zero when only the
/// ground truth reads.
pub fn with_probe(s: &mut Suspect, p_c: f64, p_gt: f64) {
    s.probe = Some((p_c, p_gt));
    s.score *= ((1.0 + p_c - p_gt) / 2.0).clamp(0.0, 1.0);
}

/// Of the first `k` of `ranking`, the fraction for which `is_wrong` holds
/// (precision@k). `None` when the ranking is empty or `k` is 0.
pub fn precision_at(ranking: &[Suspect], k: usize, is_wrong: impl Fn(&str) -> bool) -> Option<f64> {
    let k = k.min(ranking.len());
    if k == 0 {
        return None;
    }
    Some(ranking[..k].iter().filter(|s| is_wrong(&s.sample)).count() as f64 / k as f64)
}

/// Whether a ZoomBench sample's ground truth was shifted by `label_noise`
/// (its `meta.label_noise`).
pub fn zoombench_label_noise(s: &Sample) -> Option<bool> {
    s.meta.as_ref()?.get("label_noise")?.as_bool()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Rationale;
    use crate::dataset::zoombench::{ZoomBench, ZoomBenchConfig};
    use crate::reward::RewardConfig;
    use crate::rng::SplitMix64;
    use crate::score::{assign_credit, score_trajectory};
    use crate::trajectory::ZoomAction;

    /// A simulated policy on label-noise ZoomBench: it mostly zooms near the
    /// *true* placard (`meta.true_rationales` for shifted samples) and then
    /// answers right; sometimes it zooms at random and guesses.
    fn rollouts(samples: &[Sample], rng: &mut SplitMix64) -> Vec<Trajectory> {
        let cfg = RewardConfig::default();
        let mut out = Vec::new();
        for s in samples {
            let truth: Vec<Rationale> = s
                .meta
                .as_ref()
                .and_then(|m| m.get("true_rationales"))
                .and_then(|v| serde_json::from_value::<Vec<serde_json::Value>>(v.clone()).ok())
                .map(|v| {
                    v.iter()
                        .filter_map(|r| {
                            let b: Vec<f64> = serde_json::from_value(r["bbox"].clone()).ok()?;
                            Some(Rationale {
                                bbox: BBox::new(b[0], b[1], b[2], b[3]),
                                label: String::new(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_else(|| s.rationales.clone());
            let mut scored = Vec::new();
            for _ in 0..8 {
                let look = rng.f64() < 0.6;
                let (zoom, lp) = if look {
                    let t = truth[0].bbox;
                    let (cx, cy) = t.center();
                    let side = t.width() * (1.2 + 0.6 * rng.f64());
                    let j = |r: &mut SplitMix64| (r.f64() - 0.5) * 0.2 * side;
                    let (dx, dy) = (j(rng), j(rng));
                    (
                        BBox::new(
                            cx - side / 2.0 + dx,
                            cy - side / 2.0 + dy,
                            cx + side / 2.0 + dx,
                            cy + side / 2.0 + dy,
                        )
                        .clip(s.width as f64, s.height as f64)
                        .unwrap_or(t),
                        -2.0 - rng.f64(),
                    )
                } else {
                    let x = rng.f64() * (s.width as f64 - 60.0);
                    let y = rng.f64() * (s.height as f64 - 60.0);
                    (BBox::new(x, y, x + 60.0, y + 60.0), -6.0 - 2.0 * rng.f64())
                };
                let right = if look {
                    rng.f64() < 0.9
                } else {
                    rng.f64() < 0.1
                };
                let answer = if right { s.answer.clone() } else { "x".into() };
                let mut t = Trajectory::new(&s.id, &s.id, 0, &s.answer);
                t.answer = Some(answer);
                t.actions = vec![ZoomAction::new(zoom, zoom, Some(lp as f32), None)];
                t.answer_logp = Some(-0.1);
                score_trajectory(&mut t, s, &cfg);
                scored.push(t);
            }
            assign_credit(&mut scored, &cfg);
            out.extend(scored);
        }
        out
    }

    #[test]
    fn label_noise_samples_rank_first() {
        let zb = ZoomBench::new(ZoomBenchConfig {
            label_noise: 0.15,
            ..ZoomBenchConfig::default()
        })
        .expect("zb");
        let samples: Vec<Sample> = (0..200).map(|i| zb.sample(3, i)).collect();
        let noisy: Vec<&str> = samples
            .iter()
            .filter(|s| zoombench_label_noise(s) == Some(true))
            .map(|s| s.id.as_str())
            .collect();
        assert!(noisy.len() >= 15, "{}", noisy.len());
        let recs = rollouts(&samples, &mut SplitMix64::new(7));
        let by_id: HashMap<&str, &Sample> = samples.iter().map(|s| (s.id.as_str(), s)).collect();
        let ranking = rank(
            &recs,
            |id| by_id.get(id).copied(),
            &SuspectConfig::default(),
        );
        assert_eq!(ranking.len(), samples.len());
        let k = noisy.len();
        let p = precision_at(&ranking, k, |id| noisy.contains(&id)).expect("k > 0");
        assert!(p >= 0.9, "precision@{k} = {p}");
        // The top one is confidently elsewhere.
        assert!(
            ranking[0].gt_cover < 0.3 && ranking[0].support > 0.3,
            "{:?}",
            ranking[0]
        );
        // Clean samples at the bottom have boxes that agree with the ground truth.
        let last = ranking.last().expect("some");
        assert!(!noisy.contains(&last.sample.as_str()));
    }

    #[test]
    fn no_evidence_scores_zero() {
        let zb = ZoomBench::new(ZoomBenchConfig::default()).expect("zb");
        let s = zb.sample(0, 0);
        let r = score(&s, &[], &SuspectConfig::default());
        assert_eq!((r.score, r.correct, r.consensus), (0.0, 0, None));
        assert_eq!(precision_at(&[], 5, |_| true), None);
    }
}
