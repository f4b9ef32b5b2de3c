//! Bi-level credit assignment (DESIGN §5).
//!
//! | level | formula |
//! |---|---|
//! | trajectory (GRPO) | `A_i = (R_i − mean_g R) / (std_g R + ε)`, std with the `n − 1` divisor; 0 for a group of one or with zero spread |
//! | action quality | `q_k = −1` if redundant, else `clamp(2·(IoU_k − h_bad)/(h_good − h_bad) − 1, −1, 1)` |
//! | modulator | `m_k = 1 + α·sign(A_i)·q_k` (`m_k = 1` when modulation is off) |
//! | zoom advantage | `Â_k = m_k·A_i`; the answer action keeps `A_i` |
//!
//! The constants (`h_good`, `h_bad`, `α`, `ε`) are in [`RewardConfig`].

use crate::reward::RewardConfig;

pub mod tokens;
pub use tokens::{CreditRow, MaskValue, TokenCredit, TurnZoom, mask_runs, token_advantages};

/// Group-relative advantages `A_i = (R_i − mean R) / (std R + ε)` of one group
/// of rollouts of the same sample, with the sample standard deviation
/// (`n − 1` divisor, as `torch.std` and verl). A group of one, or a group whose
/// rewards are all equal (zero spread), gets `A_i = 0` for every member.
///
/// ```
/// use virl_engine::credit::group_advantages;
/// let a = group_advantages(&[1.0, 0.0], 1e-6);
/// // mean 0.5, std = sqrt(0.5) ≈ 0.7071
/// assert!((a[0] - 0.5 / 0.5f64.sqrt()).abs() < 1e-5);
/// assert_eq!(group_advantages(&[0.3, 0.3, 0.3], 1e-6), vec![0.0; 3]);
/// ```
pub fn group_advantages(rewards: &[f64], eps: f64) -> Vec<f64> {
    group_advantages_by(rewards, eps, true)
}

/// [`group_advantages`], or with `by_std = false` the mean-centred
/// `A_i = R_i − mean R` (Dr. GRPO; verl's `norm_adv_by_std_in_grpo=False`);
/// a group of one, or with zero spread, still gets 0.
///
/// ```
/// use virl_engine::credit::group_advantages_by;
/// assert_eq!(group_advantages_by(&[1.0, 0.0], 1e-6, false), vec![0.5, -0.5]);
/// ```
pub fn group_advantages_by(rewards: &[f64], eps: f64, by_std: bool) -> Vec<f64> {
    let n = rewards.len();
    if n < 2 || rewards.iter().all(|&r| r == rewards[0]) {
        return vec![0.0; n];
    }
    let mean = rewards.iter().sum::<f64>() / n as f64;
    let var = rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    if !by_std {
        return rewards.iter().map(|r| r - mean).collect();
    }
    rewards.iter().map(|r| (r - mean) / (std + eps)).collect()
}

/// Action quality `q_k`: −1 for a redundant action, else
/// `clamp(2·(IoU_k − h_bad)/(h_good − h_bad) − 1, −1, 1)`. With no ground truth
/// (`iou = None`, M = 0) the quality is 0, so `m_k = 1`.
///
/// ```
/// use virl_engine::{credit::quality, reward::RewardConfig};
/// let c = RewardConfig::default(); // h_bad 0.1, h_good 0.5
/// assert!(quality(Some(0.3), false, &c).abs() < 1e-12); // the midpoint
/// assert_eq!(quality(Some(0.9), false, &c), 1.0);
/// assert_eq!(quality(Some(0.9), true, &c), -1.0);
/// ```
pub fn quality(iou: Option<f64>, redundant: bool, cfg: &RewardConfig) -> f64 {
    let Some(iou) = iou else { return 0.0 };
    if redundant {
        return -1.0;
    }
    (2.0 * (iou - cfg.h_bad) / (cfg.h_good - cfg.h_bad) - 1.0).clamp(-1.0, 1.0)
}

/// Modulator `m_k = 1 + α·sign(A_i)·q_k`, with `sign(0) = 0`; always within
/// `[1 − α, 1 + α]`.
pub fn modulator(advantage: f64, quality: f64, alpha: f64) -> f64 {
    let sign = if advantage > 0.0 {
        1.0
    } else if advantage < 0.0 {
        -1.0
    } else {
        0.0
    };
    1.0 + alpha * sign * quality
}

/// The credit of one zoom action.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ActionCredit {
    /// `q_k`.
    pub quality: f64,
    /// `m_k` (1 when modulation is off).
    pub modulator: f64,
    /// `Â_k = m_k·A_i`.
    pub advantage: f64,
}

impl ActionCredit {
    /// The credit before the group is known: `q_k = 0`, `m_k = 1`, `Â_k = 0`.
    pub const fn neutral() -> Self {
        Self {
            quality: 0.0,
            modulator: 1.0,
            advantage: 0.0,
        }
    }
}

/// Per-action credit of one trajectory with advantage `a_i`: `q_k`, `m_k` and
/// `Â_k = m_k·A_i` for every zoom action, given each action's `(IoU_k,
/// redundant_k)` (IoU `None` when M = 0). When the reward mode does not
/// modulate (`outcome`, `fidelity`), `m_k = 1` and `Â_k = A_i`; `q_k` is still
/// reported.
pub fn action_credit(
    actions: impl IntoIterator<Item = (Option<f64>, bool)>,
    a_i: f64,
    cfg: &RewardConfig,
) -> Vec<ActionCredit> {
    actions
        .into_iter()
        .map(|(iou, redundant)| {
            let q = quality(iou, redundant, cfg);
            let m = if cfg.mode.modulates() {
                modulator(a_i, q, cfg.alpha)
            } else {
                1.0
            };
            ActionCredit {
                quality: q,
                modulator: m,
                advantage: m * a_i,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::{ActionScore, RewardMode};
    use proptest::prelude::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn advantages_hand_values() {
        // R = [1, 2, 3]: mean 2, sample std 1 → A = [-1, 0, 1] / (1 + 1e-6)
        let a = group_advantages(&[1.0, 2.0, 3.0], 1e-6);
        close(a[0], -1.0 / (1.0 + 1e-6));
        close(a[1], 0.0);
        close(a[2], 1.0 / (1.0 + 1e-6));
        // n − 1 divisor: [0, 0, 0, 1] → mean 0.25, var = (3·0.0625 + 0.5625)/3 = 0.25, std 0.5
        let a = group_advantages(&[0.0, 0.0, 0.0, 1.0], 0.0);
        close(a[3], 0.75 / 0.5);
        close(a[0], -0.25 / 0.5);
    }

    #[test]
    fn group_of_one_and_zero_spread() {
        assert_eq!(group_advantages(&[5.0], 1e-6), vec![0.0]);
        assert!(group_advantages(&[], 1e-6).is_empty());
        // 0.1 summed three times is not exactly 0.3: the zero-spread rule must not
        // amplify rounding noise by 1/ε.
        assert_eq!(group_advantages(&[0.1, 0.1, 0.1], 1e-6), vec![0.0; 3]);
    }

    #[test]
    fn quality_hand_values() {
        let c = RewardConfig::default();
        close(quality(Some(0.1), false, &c), -1.0);
        close(quality(Some(0.0), false, &c), -1.0); // clamped
        close(quality(Some(0.2), false, &c), -0.5);
        close(quality(Some(0.4), false, &c), 0.5);
        close(quality(Some(0.5), false, &c), 1.0);
        close(quality(Some(1.0), false, &c), 1.0); // clamped
        close(quality(Some(1.0), true, &c), -1.0);
        close(quality(None, true, &c), 0.0);
    }

    fn action(iou: f64, redundant: bool) -> ActionScore {
        ActionScore {
            bbox: None,
            iou: Some(iou),
            gt: Some(0),
            sigma: Some(if iou >= 0.3 { 1 } else { -1 }),
            beta: Some(0.0),
            redundant,
            fidelity: 0.0,
        }
    }

    #[test]
    fn modulator_sign_cases() {
        let c = RewardConfig::default();
        let acts = [action(0.9, false), action(0.0, false), action(0.9, true)];
        // A > 0: good box up (1.5), bad box down (0.5), redundant down (0.5)
        let up = action_credit(acts.iter().map(|a| (a.iou, a.redundant)), 2.0, &c);
        let m: Vec<f64> = up.iter().map(|x| x.modulator).collect();
        assert_eq!(m, vec![1.5, 0.5, 0.5]);
        close(up[0].advantage, 3.0);
        close(up[1].advantage, 1.0);
        // A < 0: good box takes less blame (0.5), bad and redundant more (1.5)
        let down = action_credit(acts.iter().map(|a| (a.iou, a.redundant)), -2.0, &c);
        let m: Vec<f64> = down.iter().map(|x| x.modulator).collect();
        assert_eq!(m, vec![0.5, 1.5, 1.5]);
        close(down[1].advantage, -3.0);
        // A = 0: sign 0 → m = 1, Â = 0
        let zero = action_credit(acts.iter().map(|a| (a.iou, a.redundant)), 0.0, &c);
        assert!(
            zero.iter()
                .all(|x| x.modulator == 1.0 && x.advantage == 0.0)
        );
    }

    #[test]
    fn modulation_off_in_outcome_and_fidelity() {
        for mode in [RewardMode::Outcome, RewardMode::Fidelity] {
            let c = RewardConfig::with_mode(mode);
            let cr = action_credit([(Some(0.9), false), (Some(0.0), true)], 1.5, &c);
            assert!(cr.iter().all(|x| x.modulator == 1.0 && x.advantage == 1.5));
            assert_eq!(cr[0].quality, 1.0); // still reported
        }
    }

    proptest! {
        #[test]
        fn modulator_in_range_and_sign_kept(
            a in -5.0..5.0f64, iou in 0.0..1.0f64, redundant: bool, alpha in 0.0..1.0f64
        ) {
            let c = RewardConfig { alpha, ..RewardConfig::default() };
            let cr = action_credit([(Some(iou), redundant)], a, &c)[0];
            prop_assert!(cr.modulator >= 1.0 - alpha - 1e-12 && cr.modulator <= 1.0 + alpha + 1e-12);
            // Â_k has the sign of A_i (or is 0 with it; m ≥ 0 since α ≤ 1)
            prop_assert!(cr.advantage * a >= 0.0);
            if a != 0.0 && alpha < 1.0 {
                prop_assert_eq!(cr.advantage.signum(), a.signum());
            }
        }

        #[test]
        fn advantages_are_centred(rs in proptest::collection::vec(-3.0..3.0f64, 2..16)) {
            let a = group_advantages(&rs, 1e-6);
            prop_assert!(a.iter().sum::<f64>().abs() < 1e-6);
            prop_assert!(a.iter().all(|x| x.is_finite()));
        }
    }
}
