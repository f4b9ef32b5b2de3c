//! Scoring trajectories: the one place where rewards (§4) and credit (§5)
//! are put together. The trainer scores its own rollouts with
//! [`score_trajectory`] and [`assign_credit`]; the VLM driver, the studio's
//! re-scoring and `virl score` run the same functions, so the formulas can
//! be checked from outside.
//!
//! - [`text`]: reading model text (the one tool-call parser);
//! - [`rollouts`]: reading the rollout files `virl score` takes (our JSONL,
//!   DeepEyes text, verl dumps) and scoring them by group.

pub mod rollouts;
pub mod text;

pub use rollouts::{RolloutFormat, ScoreReport, Skipped, parse_rollout_line, score_rollouts};
pub use text::{ParsedOutput, ZOOM_TOOL, parse_model_output, parse_zoom_call};

use crate::credit::{ActionCredit, action_credit, group_advantages_by};
use crate::dataset::Sample;
use crate::geometry::BBox;
use crate::reward::{RewardConfig, answer_correct, score_rationale, total_reward};
use crate::trajectory::Trajectory;
use std::collections::HashMap;

/// Scores one trajectory's rewards (DESIGN §4) against `sample`: `R_ans`
/// from its answer (0 when cut off at `max_rounds`), `R_rat` and every
/// action's `f_k` from its proposed boxes, `R_fmt = −1` when it has format
/// errors, the coverage and each ground-truth box's best IoU. Its advantage
/// and the per-action credit are set by [`assign_credit`] once its group is
/// known; until then `A_i = 0`, `m_k = 1`.
pub fn score_trajectory(t: &mut Trajectory, sample: &Sample, cfg: &RewardConfig) {
    let gts = sample.gt_boxes();
    let zooms: Vec<BBox> = t.proposed().collect();
    let rat = score_rationale(&zooms, &gts, sample.width as f64, sample.height as f64, cfg);
    let ans = match &t.answer {
        Some(a) if !t.truncated && answer_correct(a, &sample.answer, &sample.options) => 1.0,
        _ => 0.0,
    };
    let fmt = if t.format_errors.is_empty() {
        0.0
    } else {
        -1.0
    };
    t.gt_best_iou = gts
        .iter()
        .map(|g| {
            rat.actions
                .iter()
                .filter_map(|a| a.bbox.map(|b| b.iou(g)))
                .fold(0.0, f64::max)
        })
        .collect();
    t.rewards = total_reward(ans, rat.r_rat, fmt, cfg);
    t.coverage = rat.coverage;
    t.advantage = 0.0;
    for (a, score) in t.actions.iter_mut().zip(rat.actions) {
        a.score = score;
        a.credit = ActionCredit::neutral();
    }
}

/// Groups trajectories by their `group` key (across the whole slice, in any
/// order), computes each group's advantages `A_i` (DESIGN §5) and every zoom
/// action's `q_k`, `m_k`, `Â_k`. Returns the number of groups.
pub fn assign_credit(trajs: &mut [Trajectory], cfg: &RewardConfig) -> usize {
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, t) in trajs.iter().enumerate() {
        groups.entry(t.group.as_str()).or_default().push(i);
    }
    let groups: Vec<Vec<usize>> = groups.into_values().collect();
    for members in &groups {
        let rewards: Vec<f64> = members.iter().map(|&i| trajs[i].rewards.total).collect();
        let adv = group_advantages_by(&rewards, cfg.adv_eps, cfg.adv_by_std);
        for (&i, a) in members.iter().zip(adv) {
            let t = &mut trajs[i];
            t.advantage = a;
            let credit = action_credit(
                t.actions.iter().map(|x| (x.score.iou, x.score.redundant)),
                a,
                cfg,
            );
            for (x, c) in t.actions.iter_mut().zip(credit) {
                x.credit = c;
            }
        }
    }
    groups.len()
}

/// A 100×100 sample asking for the digit 7, with these ground-truth boxes
/// (the scoring tests' fixture).
#[cfg(test)]
pub(crate) fn test_sample(id: &str, gts: &[BBox]) -> Sample {
    Sample {
        id: id.into(),
        image: format!("{id}.png"),
        width: 100,
        height: 100,
        question: "What digit is on the red placard?".into(),
        answer: "7".into(),
        options: vec![],
        rationales: gts
            .iter()
            .map(|&bbox| crate::dataset::Rationale {
                bbox,
                label: String::new(),
            })
            .collect(),
        meta: None,
        extra: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trajectory::ZoomAction;

    fn sample(gts: &[BBox]) -> Sample {
        test_sample("a", gts)
    }

    #[test]
    fn truncated_trajectory_gets_no_answer_reward() {
        let s = sample(&[BBox::new(0.0, 0.0, 10.0, 10.0)]);
        let mut t = Trajectory::new("a", "a", 0, "7");
        t.answer = Some("7".into());
        t.truncated = true;
        score_trajectory(&mut t, &s, &RewardConfig::default());
        assert_eq!(t.rewards.ans, 0.0);
        assert!(!t.answered());
    }

    #[test]
    fn format_errors_cost_r_fmt_and_numbers_match_numerically() {
        let g = BBox::new(0.0, 0.0, 10.0, 10.0);
        let s = sample(&[g]);
        let mut t = Trajectory::new("a", "a", 0, "7");
        t.answer = Some("7.0".into());
        t.actions.push(ZoomAction::new(g, g, Some(-1.0), None));
        score_trajectory(&mut t, &s, &RewardConfig::default());
        assert!(t.correct());
        assert_eq!((t.rewards.fmt, t.actions[0].score.iou), (0.0, Some(1.0)));
        assert_eq!(t.gt_best_iou, vec![1.0]);
        t.format_errors.push("turn 1: bad".into());
        score_trajectory(&mut t, &s, &RewardConfig::default());
        assert_eq!(t.rewards.fmt, -1.0);
    }
}
