//! The RL update: GRPO-style PPO with per-action advantages (DESIGN §5, §7),
//! its loss, and the optimizer's hyper-parameters.

use super::rollout::{Rollout, globals_of, unique_samples};
use super::{TrainError, Trainer, ce};
use crate::config::TrainerConfig;
use crate::events::{Event, EventSink, Phase};
use crate::optim::AdamWParams;
use crate::policy::UpdateStats;
use crate::policy::zoomnet::StepObs;
use crate::trajectory::Trajectory;
use candle_core::{DType, Tensor};

impl Trainer {
    /// `epochs` passes of clipped-ratio policy gradient over shuffled
    /// minibatches of the rollout's actions, each weighted by its own
    /// advantage: `Â_k` for the k-th zoom, `A_i` for the answer.
    pub(crate) fn update(
        &mut self,
        r: &Rollout,
        scored: &[Trajectory],
        sink: &mut dyn EventSink,
    ) -> Result<UpdateStats, TrainError> {
        let t = self.cfg.trainer.clone();
        // Each action's advantage: Â_k for the k-th zoom, A_i for the answer.
        let adv: Vec<f32> = r
            .steps
            .iter()
            .map(|s| {
                let tr = &scored[s.episode];
                let a = if s.choice.kind == 0 {
                    tr.actions
                        .get(s.step)
                        .map_or(tr.advantage, |x| x.credit.advantage)
                } else {
                    tr.advantage
                };
                a as f32
            })
            .collect();
        let n = r.steps.len();
        let mut order: Vec<usize> = (0..n).collect();
        let (mut stats, mut batches) = (UpdateStats::default(), 0usize);
        let total = t.epochs * n.div_ceil(t.minibatch);
        let dev = self.net.device().clone();
        let questions: Vec<Vec<f32>> = r
            .batch
            .samples
            .iter()
            .map(|&s| self.train.questions[s].clone())
            .collect();
        let (uniq, of_episode) = unique_samples(&r.batch.samples);
        let globals = globals_of(&r.batch, &of_episode, uniq.len());
        for _ in 0..t.epochs {
            // Fisher–Yates with the trainer's RNG.
            for i in (1..n).rev() {
                let j = (self.rng.next_u64() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            for chunk in order.chunks(t.minibatch) {
                let obs: Vec<StepObs> = chunk
                    .iter()
                    .map(|&k| {
                        let s = &r.steps[k];
                        s.obs(of_episode[s.episode], &questions[s.episode])
                    })
                    .collect();
                let (lp, ent) = self.net.evaluate(&globals, uniq.len(), &obs).map_err(ce)?;
                let old = Tensor::from_vec(
                    chunk.iter().map(|&k| r.steps[k].logp).collect::<Vec<_>>(),
                    chunk.len(),
                    &dev,
                )
                .map_err(ce)?;
                let a = Tensor::from_vec(
                    chunk.iter().map(|&k| adv[k]).collect::<Vec<_>>(),
                    chunk.len(),
                    &dev,
                )
                .map_err(ce)?;
                let PpoLoss {
                    loss,
                    clip_frac,
                    approx_kl: kl,
                    entropy: ent_mean,
                } = ppo_loss(&lp, &ent, &old, &a, t.clip, t.entropy_coef).map_err(ce)?;
                stats.grad_norm = self.opt.backward_step(&loss).map_err(ce)?;
                let sc = |x: &Tensor| {
                    x.to_dtype(DType::F64)
                        .and_then(|x| x.to_scalar::<f64>())
                        .unwrap_or(f64::NAN)
                };
                stats.loss += sc(&loss);
                stats.clip_frac += sc(&clip_frac);
                stats.approx_kl += sc(&kl);
                stats.entropy += sc(&ent_mean);
                batches += 1;
                sink.emit(Event::Progress {
                    iteration: self.iteration,
                    phase: Phase::Update,
                    done: batches,
                    total,
                });
            }
        }
        let b = batches.max(1) as f64;
        stats.loss /= b;
        stats.clip_frac /= b;
        stats.approx_kl /= b;
        stats.entropy /= b;
        Ok(stats)
    }
}

/// The PPO objective of one minibatch and its diagnostics (scalars).
pub struct PpoLoss {
    /// `−mean(min(r·A, clip(r)·A)) − entropy_coef · mean(H)`.
    pub loss: Tensor,
    /// Fraction of ratios outside `1 ± clip`.
    pub clip_frac: Tensor,
    /// `mean((r − 1) − log r)`.
    pub approx_kl: Tensor,
    /// Mean entropy.
    pub entropy: Tensor,
}

/// The clipped-ratio policy-gradient loss (DESIGN §7) from the new
/// log-probabilities `lp` and entropies `ent` of a minibatch, the rollout's
/// log-probabilities `old` and the per-action advantages `adv`.
pub fn ppo_loss(
    lp: &Tensor,
    ent: &Tensor,
    old: &Tensor,
    adv: &Tensor,
    clip: f64,
    entropy_coef: f64,
) -> candle_core::Result<PpoLoss> {
    let log_ratio = (lp - old)?;
    let ratio = log_ratio.exp()?;
    let s1 = (&ratio * adv)?;
    let s2 = (ratio.clamp(1.0 - clip, 1.0 + clip)? * adv)?;
    let pg = s1.minimum(&s2)?.mean_all()?.neg()?;
    let entropy = ent.mean_all()?;
    let loss = (&pg - entropy.affine(entropy_coef, 0.0)?)?;
    let clip_frac = (ratio.affine(1.0, -1.0)?.abs()?.gt(clip)?)
        .to_dtype(DType::F32)?
        .mean_all()?;
    let approx_kl = ((ratio.affine(1.0, -1.0)? - log_ratio)?).mean_all()?;
    Ok(PpoLoss {
        loss,
        clip_frac,
        approx_kl,
        entropy,
    })
}

/// The AdamW hyper-parameters of a trainer config.
pub fn adam_params(t: &TrainerConfig) -> AdamWParams {
    AdamWParams {
        lr: t.lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: t.weight_decay,
        max_grad_norm: t.max_grad_norm,
    }
}
