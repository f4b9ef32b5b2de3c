//! Rewards: rationale fidelity per zoom action, outcome and format (DESIGN §4).
//!
//! A trajectory has zoom actions `k = 1..K` with boxes `b_k`, then an answer.
//! The sample has ground-truth rationale boxes `g_1..g_M`.
//!
//! | symbol | formula |
//! |---|---|
//! | `IoU_k` | `max_j IoU(clip(b_k), g_j)`, `j_k` its argmax (ties: lowest `j`); 0 if the clipped box has no area |
//! | `σ_k` | `+1 if IoU_k ≥ h0 else −1` |
//! | `β_k` | `max(0, IoU_k − best_{<k}(j_k))`, `best_{<k}(j) = max_{i<k} IoU(b_i, g_j)` (0 if `k = 1`) |
//! | redundant | `(β_k < ε_ref ∧ σ_k = +1) ∨ ∃ i<k: IoU(b_k, b_i) ≥ τ_dup` |
//! | `f_k` | `w_s·σ_k + w_b·β_k − ρ·[redundant_k]` |
//! | `C` | `|{j : max_k IoU(b_k, g_j) ≥ h0}| / M` |
//! | `R_rat` | `(1/K)·Σ_k f_k − w_c·(1 − C)` if `K ≥ 1`; `r_none` if `K = 0`; `0` if `M = 0` |
//! | `R` | `R_ans + λ_rat·R_rat + λ_fmt·R_fmt` |
//!
//! Every constant lives in [`RewardConfig`], together with the credit
//! assignment constants of DESIGN §5 (see [`crate::credit`]), so one struct
//! describes a run's whole reward.

use crate::geometry::BBox;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Which parts of ViRL are on (the ablations of DESIGN §4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RewardMode {
    /// Outcome only: `λ_rat` is treated as 0 and there is no modulation
    /// (`m_k = 1`). `R_rat` is still computed and reported.
    Outcome,
    /// Rationale rewards on, no per-action modulation.
    Fidelity,
    /// Everything: rationale rewards and per-action modulation.
    #[default]
    Virl,
}

impl RewardMode {
    /// All modes, in ablation order.
    pub const ALL: [Self; 3] = [Self::Outcome, Self::Fidelity, Self::Virl];

    /// The lowercase name used in configs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outcome => "outcome",
            Self::Fidelity => "fidelity",
            Self::Virl => "virl",
        }
    }

    /// Whether `R_rat` enters the total reward.
    pub fn uses_rationale_reward(self) -> bool {
        !matches!(self, Self::Outcome)
    }

    /// Whether the advantage is modulated per action.
    pub fn modulates(self) -> bool {
        matches!(self, Self::Virl)
    }
}

impl fmt::Display for RewardMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RewardMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "outcome" => Ok(Self::Outcome),
            "fidelity" => Ok(Self::Fidelity),
            "virl" => Ok(Self::Virl),
            other => Err(format!(
                "unknown reward mode `{other}` (expected outcome, fidelity or virl)"
            )),
        }
    }
}

/// Every constant of the reward (DESIGN §4) and of the credit assignment
/// (DESIGN §5), with the defaults given there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardConfig {
    /// Ablation mode.
    pub mode: RewardMode,
    /// `h0`: IoU at which a zoom counts as correct (`σ = +1`) and a rationale as covered. Default 0.3.
    pub h0: f64,
    /// `ε_ref`: a correct zoom whose refinement bonus is below this is redundant. Default 0.05.
    pub eps_ref: f64,
    /// `τ_dup`: a zoom with IoU ≥ this against an earlier zoom is redundant. Default 0.7.
    pub tau_dup: f64,
    /// `w_s`: weight of the signed correctness `σ_k`. Default 0.5.
    pub w_s: f64,
    /// `w_b`: weight of the refinement bonus `β_k`. Default 0.5.
    pub w_b: f64,
    /// `ρ`: penalty of a redundant zoom. Default 0.2.
    pub rho: f64,
    /// `w_c`: weight of the missed coverage `1 − C`. Default 0.5.
    pub w_c: f64,
    /// `r_none`: `R_rat` of a trajectory with no zoom (K = 0, M ≥ 1). Default −1.0.
    pub r_none: f64,
    /// `λ_rat`: weight of `R_rat` in the total. Default 0.5.
    pub lambda_rat: f64,
    /// `λ_fmt`: weight of `R_fmt` in the total. Default 0.2.
    pub lambda_fmt: f64,
    /// `h_good`: IoU at which the action quality `q_k` reaches +1. Default 0.5.
    pub h_good: f64,
    /// `h_bad`: IoU at or below which `q_k` is −1. Default 0.1.
    pub h_bad: f64,
    /// `α`: modulation strength, `m_k ∈ [1−α, 1+α]`. Default 0.5.
    pub alpha: f64,
    /// `ε` in the group normalisation `A_i = (R_i − mean) / (std + ε)`. Default 1e-6.
    pub adv_eps: f64,
    /// Whether `A_i` is divided by the group's standard deviation: `true`
    /// (GRPO) `A_i = (R_i − mean) / (std + ε)`; `false` (Dr. GRPO, verl's
    /// `norm_adv_by_std_in_grpo=False`) `A_i = R_i − mean`. Default `true`.
    pub adv_by_std: bool,
}

impl Default for RewardConfig {
    fn default() -> Self {
        Self {
            mode: RewardMode::Virl,
            h0: 0.3,
            eps_ref: 0.05,
            tau_dup: 0.7,
            w_s: 0.5,
            w_b: 0.5,
            rho: 0.2,
            w_c: 0.5,
            r_none: -1.0,
            lambda_rat: 0.5,
            lambda_fmt: 0.2,
            h_good: 0.5,
            h_bad: 0.1,
            alpha: 0.5,
            adv_eps: 1e-6,
            adv_by_std: true,
        }
    }
}

impl RewardConfig {
    /// The defaults with another mode.
    pub fn with_mode(mode: RewardMode) -> Self {
        Self {
            mode,
            ..Self::default()
        }
    }

    /// The `λ_rat` in effect: 0 in `outcome` mode.
    pub fn effective_lambda_rat(&self) -> f64 {
        if self.mode.uses_rationale_reward() {
            self.lambda_rat
        } else {
            0.0
        }
    }

    /// Checks that every constant is finite and the thresholds are ordered
    /// (`h_good > h_bad`, IoU thresholds within [0, 1], `α ∈ [0, 1]`).
    pub fn validate(&self) -> Result<(), String> {
        let named = [
            ("h0", self.h0),
            ("eps_ref", self.eps_ref),
            ("tau_dup", self.tau_dup),
            ("w_s", self.w_s),
            ("w_b", self.w_b),
            ("rho", self.rho),
            ("w_c", self.w_c),
            ("r_none", self.r_none),
            ("lambda_rat", self.lambda_rat),
            ("lambda_fmt", self.lambda_fmt),
            ("h_good", self.h_good),
            ("h_bad", self.h_bad),
            ("alpha", self.alpha),
            ("adv_eps", self.adv_eps),
        ];
        for (name, v) in named {
            if !v.is_finite() {
                return Err(format!("{name} must be a finite number, got {v}"));
            }
        }
        for (name, v) in [
            ("h0", self.h0),
            ("tau_dup", self.tau_dup),
            ("h_good", self.h_good),
            ("h_bad", self.h_bad),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!(
                    "{name} is an IoU threshold and must lie in [0, 1], got {v}"
                ));
            }
        }
        if self.h_good <= self.h_bad {
            return Err(format!(
                "h_good ({}) must be greater than h_bad ({})",
                self.h_good, self.h_bad
            ));
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(format!(
                "alpha must lie in [0, 1] so that m_k stays non-negative, got {}",
                self.alpha
            ));
        }
        if self.adv_eps < 0.0 {
            return Err(format!(
                "adv_eps must not be negative, got {}",
                self.adv_eps
            ));
        }
        Ok(())
    }
}

/// The score of one zoom action against the ground truth (all absent and
/// zero by default: an action not scored yet).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionScore {
    /// The zoom box as clipped to the image; `None` if nothing with area was left.
    pub bbox: Option<BBox>,
    /// `IoU_k`; `None` when the sample has no rationale (M = 0).
    pub iou: Option<f64>,
    /// `j_k`, index of the best-matching rationale; `None` when M = 0.
    pub gt: Option<usize>,
    /// `σ_k ∈ {−1, +1}`; `None` when M = 0.
    pub sigma: Option<i8>,
    /// `β_k ≥ 0`; `None` when M = 0.
    pub beta: Option<f64>,
    /// Whether the action is redundant (always `false` when M = 0: nothing is scored).
    pub redundant: bool,
    /// `f_k` (0 when M = 0).
    pub fidelity: f64,
}

/// The rationale part of a trajectory's score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RationaleScore {
    /// One entry per zoom action, in order.
    pub actions: Vec<ActionScore>,
    /// `C`; `None` when M = 0.
    pub coverage: Option<f64>,
    /// `R_rat`.
    pub r_rat: f64,
}

/// `σ_k = +1 if IoU_k ≥ h0 else −1`.
pub fn sigma(iou: f64, h0: f64) -> i8 {
    if iou >= h0 { 1 } else { -1 }
}

/// `f_k = w_s·σ_k + w_b·β_k − ρ·[redundant_k]`.
pub fn fidelity(sigma: i8, beta: f64, redundant: bool, cfg: &RewardConfig) -> f64 {
    cfg.w_s * f64::from(sigma) + cfg.w_b * beta - if redundant { cfg.rho } else { 0.0 }
}

/// Scores the zoom boxes of one trajectory against the ground-truth rationale
/// boxes `gts` of an image of `width × height` pixels (DESIGN §4):
///
/// - boxes are clipped to the image; a box with no area left has IoU 0 with everything;
/// - `IoU_k = max_j IoU(b_k, g_j)`, `j_k` the lowest argmax;
/// - `σ_k = +1 if IoU_k ≥ h0 else −1`;
/// - `β_k = max(0, IoU_k − best_{<k}(j_k))`, where `best_{<k}(j)` is the highest IoU
///   with `g_j` of any earlier action (0 if none);
/// - redundant if `β_k < ε_ref ∧ σ_k = +1`, or `IoU(b_k, b_i) ≥ τ_dup` for an earlier `i`;
/// - `f_k = w_s·σ_k + w_b·β_k − ρ·[redundant_k]`;
/// - `C = |{j : max_k IoU(b_k, g_j) ≥ h0}| / M`;
/// - `R_rat = (1/K)·Σ_k f_k − w_c·(1 − C)` for `K ≥ 1`, `r_none` for `K = 0`.
///
/// With no ground truth (`M = 0`): `R_rat = 0`, every `f_k = 0`, IoU, `j_k`, σ,
/// β and `C` are `None`, and no action is redundant.
pub fn score_rationale(
    zooms: &[BBox],
    gts: &[BBox],
    width: f64,
    height: f64,
    cfg: &RewardConfig,
) -> RationaleScore {
    let clipped: Vec<Option<BBox>> = zooms.iter().map(|b| b.clip(width, height)).collect();
    if gts.is_empty() {
        return RationaleScore {
            actions: clipped
                .into_iter()
                .map(|bbox| ActionScore {
                    bbox,
                    iou: None,
                    gt: None,
                    sigma: None,
                    beta: None,
                    redundant: false,
                    fidelity: 0.0,
                })
                .collect(),
            coverage: None,
            r_rat: 0.0,
        };
    }
    let m = gts.len();
    // best[j]: the highest IoU with g_j reached so far.
    let mut best = vec![0.0f64; m];
    let mut actions = Vec::with_capacity(zooms.len());
    // Boxes seen so far, bit for bit: a policy that repeats one call for
    // megabytes is found redundant without comparing it to every earlier box.
    let mut seen = std::collections::HashSet::new();
    for (k, b) in clipped.iter().enumerate() {
        let ious: Vec<f64> = gts.iter().map(|g| b.map_or(0.0, |b| b.iou(g))).collect();
        let (mut jk, mut iou_k) = (0usize, ious[0]);
        for (j, &v) in ious.iter().enumerate().skip(1) {
            if v > iou_k {
                (jk, iou_k) = (j, v);
            }
        }
        let s = sigma(iou_k, cfg.h0);
        let beta = (iou_k - best[jk]).max(0.0);
        let duplicate = b.is_some_and(|b| {
            let bits = b.to_array().map(f64::to_bits);
            (!seen.insert(bits) && 1.0 >= cfg.tau_dup)
                // the most recent boxes first: a drifting repeat is found at once
                || clipped[..k]
                    .iter()
                    .rev()
                    .flatten()
                    .any(|prev| b.iou(prev) >= cfg.tau_dup)
        });
        let redundant = (beta < cfg.eps_ref && s == 1) || duplicate;
        for (bj, v) in best.iter_mut().zip(&ious) {
            *bj = bj.max(*v);
        }
        actions.push(ActionScore {
            bbox: *b,
            iou: Some(iou_k),
            gt: Some(jk),
            sigma: Some(s),
            beta: Some(beta),
            redundant,
            fidelity: fidelity(s, beta, redundant, cfg),
        });
    }
    // After the loop best[j] = max_k IoU(b_k, g_j).
    let covered = best.iter().filter(|&&v| v >= cfg.h0).count();
    let coverage = covered as f64 / m as f64;
    let r_rat = if actions.is_empty() {
        cfg.r_none
    } else {
        actions.iter().map(|a| a.fidelity).sum::<f64>() / actions.len() as f64
            - cfg.w_c * (1.0 - coverage)
    };
    RationaleScore {
        actions,
        coverage: Some(coverage),
        r_rat,
    }
}

/// The reward parts of one trajectory (all zero by default: not scored yet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rewards {
    /// `R_ans ∈ {0, 1}`.
    pub ans: f64,
    /// `R_rat`.
    pub rat: f64,
    /// `R_fmt ∈ {0, −1}`.
    pub fmt: f64,
    /// `R = R_ans + λ_rat·R_rat + λ_fmt·R_fmt` (`λ_rat = 0` in outcome mode).
    pub total: f64,
}

/// `R = R_ans + λ_rat·R_rat + λ_fmt·R_fmt`, with `λ_rat = 0` in `outcome` mode.
pub fn total_reward(ans: f64, rat: f64, fmt: f64, cfg: &RewardConfig) -> Rewards {
    Rewards {
        ans,
        rat,
        fmt,
        total: ans + cfg.effective_lambda_rat() * rat + cfg.lambda_fmt * fmt,
    }
}

/// Normalises an answer for exact matching: trims, lowercases, drops
/// surrounding quotes, brackets and trailing punctuation, and collapses runs
/// of whitespace.
///
/// ```
/// use virl_engine::reward::normalize_answer;
/// assert_eq!(normalize_answer("  The  Red Car. "), "the red car");
/// assert_eq!(normalize_answer("\"Yes!\""), "yes");
/// ```
pub fn normalize_answer(s: &str) -> String {
    let lowered = s.trim().to_lowercase();
    let collapsed = lowered.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .trim_matches(|c: char| {
            matches!(
                c,
                '"' | '\''
                    | '`'
                    | '.'
                    | ','
                    | '!'
                    | '?'
                    | ';'
                    | ':'
                    | '('
                    | ')'
                    | '['
                    | ']'
                    | '{'
                    | '}'
            )
        })
        .trim()
        .to_string()
}

/// If `s` is an option letter (`B`, `(B)`, `B.`, `B)`, `[B]`, or `B. text`),
/// its zero-based index.
fn option_letter(s: &str) -> Option<usize> {
    let t = s.trim();
    let t = t.strip_prefix(['(', '[']).unwrap_or(t);
    let mut chars = t.chars();
    let c = chars.next()?;
    if !c.is_ascii_alphabetic() {
        return None;
    }
    let rest = chars.as_str();
    let ok = rest.is_empty() || rest.starts_with(['.', ')', ']', ':']);
    ok.then(|| (c.to_ascii_uppercase() as u8 - b'A') as usize)
}

/// `R_ans`: whether `answer` matches the ground truth `truth` after
/// [`normalize_answer`]. For multiple choice (`options` not empty) an option
/// letter (`A`, `(B)`, `C.`) is read as that option's text, on either side;
/// numbers match numerically (`"7"` = `"7.0"`).
pub fn answer_correct(answer: &str, truth: &str, options: &[String]) -> bool {
    let resolve = |s: &str| -> String {
        if !options.is_empty()
            && let Some(i) = option_letter(s)
            && let Some(opt) = options.get(i)
        {
            return normalize_answer(opt);
        }
        normalize_answer(s)
    };
    let (a, t) = (resolve(answer), resolve(truth));
    if a.is_empty() {
        return false;
    }
    if a == t {
        return true;
    }
    match (a.parse::<f64>(), t.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.is_finite() && x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
