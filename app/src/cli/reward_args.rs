//! Command-line flags for every reward and credit constant (DESIGN §4–5).

use clap::Args;
use virl_engine::reward::{RewardConfig, RewardMode};

/// Overrides of [`RewardConfig`]; a flag left out keeps the default.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Reward and credit constants (DESIGN §4-5)")]
pub struct RewardArgs {
    /// Reward mode: outcome (R_ans only, no modulation), fidelity (+ R_rat), virl (+ per-action modulation).
    #[arg(long, default_value = "virl")]
    pub mode: RewardMode,
    /// IoU at which a zoom is correct (σ = +1) and a rationale covered [0.3].
    #[arg(long)]
    pub h0: Option<f64>,
    /// A correct zoom whose refinement bonus β is below this is redundant [0.05].
    #[arg(long)]
    pub eps_ref: Option<f64>,
    /// A zoom with IoU ≥ this against an earlier zoom is redundant [0.7].
    #[arg(long)]
    pub tau_dup: Option<f64>,
    /// Weight of σ in f_k [0.5].
    #[arg(long)]
    pub w_s: Option<f64>,
    /// Weight of β in f_k [0.5].
    #[arg(long)]
    pub w_b: Option<f64>,
    /// Penalty of a redundant zoom in f_k [0.2].
    #[arg(long)]
    pub rho: Option<f64>,
    /// Weight of the missed coverage 1 − C in R_rat [0.5].
    #[arg(long)]
    pub w_c: Option<f64>,
    /// R_rat of a trajectory with no zoom [-1.0].
    #[arg(long, allow_negative_numbers = true)]
    pub r_none: Option<f64>,
    /// Weight of R_rat in the total reward [0.5].
    #[arg(long)]
    pub lambda_rat: Option<f64>,
    /// Weight of R_fmt in the total reward [0.2].
    #[arg(long)]
    pub lambda_fmt: Option<f64>,
    /// IoU at which the action quality q_k reaches +1 [0.5].
    #[arg(long)]
    pub h_good: Option<f64>,
    /// IoU at or below which q_k is −1 [0.1].
    #[arg(long)]
    pub h_bad: Option<f64>,
    /// Modulation strength α: m_k ∈ [1−α, 1+α] [0.5].
    #[arg(long)]
    pub alpha: Option<f64>,
    /// ε in A_i = (R_i − mean) / (std + ε) [1e-6].
    #[arg(long)]
    pub adv_eps: Option<f64>,
    /// A_i = R_i − mean, not divided by the group's std (Dr. GRPO; verl's
    /// norm_adv_by_std_in_grpo=False) [off: divided].
    #[arg(long)]
    pub adv_mean_only: bool,
}

impl RewardArgs {
    /// The defaults with these flags applied, checked.
    pub fn to_config(&self) -> anyhow::Result<RewardConfig> {
        let mut c = RewardConfig::with_mode(self.mode);
        let set = |dst: &mut f64, v: Option<f64>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut c.h0, self.h0);
        set(&mut c.eps_ref, self.eps_ref);
        set(&mut c.tau_dup, self.tau_dup);
        set(&mut c.w_s, self.w_s);
        set(&mut c.w_b, self.w_b);
        set(&mut c.rho, self.rho);
        set(&mut c.w_c, self.w_c);
        set(&mut c.r_none, self.r_none);
        set(&mut c.lambda_rat, self.lambda_rat);
        set(&mut c.lambda_fmt, self.lambda_fmt);
        set(&mut c.h_good, self.h_good);
        set(&mut c.h_bad, self.h_bad);
        set(&mut c.alpha, self.alpha);
        set(&mut c.adv_eps, self.adv_eps);
        if self.adv_mean_only {
            c.adv_by_std = false;
        }
        c.validate()
            .map_err(|e| anyhow::anyhow!("invalid reward constants: {e}"))?;
        Ok(c)
    }
}
