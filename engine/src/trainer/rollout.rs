//! Rolling out ZoomNet: one round loop, shared by the trainer's rollouts
//! (sampled or greedy), its imitation targets' inputs and the data filter's
//! probes (forced actions), and the step of turning a finished batch into
//! scored [`Trajectory`] records.

use super::data::Split;
use super::{TrainError, Trainer, ce};
use crate::dataset::Dataset;
use crate::env::{Action, EpisodeBatch, ImageSource};
use crate::events::{EventSink, Phase};
use crate::policy::Policy;
use crate::policy::zoomnet::{Choice, StepObs};
use crate::rng::SplitMix64;
use crate::score::{assign_credit, score_trajectory};
use crate::trajectory::Trajectory;
use candle_core::Tensor;
use std::collections::HashMap;

/// One action of a rollout, as the update needs it.
pub(crate) struct StepRec {
    pub(crate) episode: usize,
    pub(crate) step: usize,
    pub(crate) crop: Vec<u8>,
    pub(crate) prev: Vec<u8>,
    pub(crate) choice: Choice,
    pub(crate) logp: f32,
}

impl StepRec {
    /// The step of episode `i` of `batch` about to take `choice`.
    pub(crate) fn at(batch: &EpisodeBatch, i: usize, choice: Choice, logp: f32) -> Self {
        Self {
            episode: i,
            step: batch.episodes[i].actions.len(),
            crop: batch.crop_of(i).to_vec(),
            prev: batch.prev_crop_of(i).to_vec(),
            choice,
            logp,
        }
    }

    /// The step as the policy's evaluation takes it; `global` indexes the
    /// global views passed alongside.
    pub(crate) fn obs<'a>(&'a self, global: usize, question: &'a [f32]) -> StepObs<'a> {
        StepObs {
            episode: global,
            step: self.step,
            question,
            crop: &self.crop,
            prev_crop: &self.prev,
            choice: self.choice,
        }
    }
}

/// The result of rolling out a batch.
pub(crate) struct Rollout {
    pub(crate) batch: EpisodeBatch,
    pub(crate) steps: Vec<StepRec>,
}

/// A batch ready to roll out: the episodes, the encoded global views of the
/// distinct samples, each episode's index among them, and each episode's
/// question encoding.
pub(crate) struct Started {
    pub(crate) batch: EpisodeBatch,
    keys: Tensor,
    of_episode: Vec<usize>,
    questions: Vec<Vec<f32>>,
}

/// Resets a batch of episodes of `samples` and encodes each distinct
/// sample's global view once (a GRPO group shares one, as do its episodes'
/// steps).
pub(crate) fn start_batch(
    net: &dyn Policy,
    split: &Split,
    samples: &[usize],
) -> Result<Started, TrainError> {
    let batch = split.env.reset(samples).map_err(|e| e.to_string())?;
    let (uniq, of_episode) = unique_samples(samples);
    let keys = net
        .encode_globals(&globals_of(&batch, &of_episode, uniq.len()), uniq.len())
        .map_err(ce)?;
    let questions = samples
        .iter()
        .map(|&s| split.questions[s].clone())
        .collect();
    Ok(Started {
        batch,
        keys,
        of_episode,
        questions,
    })
}

/// The round loop: at most `max_rounds + 1` rounds; in each the policy acts
/// on every episode still running (sampling with `rng`, greedy without),
/// `pick(batch, episode, round, (action, choice, logp))` says what is
/// actually done, the environment steps, and `after(round)` is told.
pub(crate) fn run_rounds(
    net: &dyn Policy,
    split: &Split,
    st: &mut Started,
    mut rng: Option<&mut SplitMix64>,
    max_rounds: usize,
    mut pick: impl FnMut(&EpisodeBatch, usize, usize, (Action, Choice, f32)) -> Action,
    mut after: impl FnMut(usize),
) -> Result<(), TrainError> {
    for round in 0..=max_rounds {
        let active = st.batch.active();
        if active.is_empty() {
            break;
        }
        let acts = net
            .act(
                &st.batch,
                &st.keys,
                &st.of_episode,
                &st.questions,
                &split.sizes,
                &active,
                rng.as_deref_mut(),
            )
            .map_err(ce)?;
        let actions: Vec<(usize, Action)> = active
            .iter()
            .zip(acts)
            .map(|(&i, a)| (i, pick(&st.batch, i, round, a)))
            .collect();
        split
            .env
            .step(&mut st.batch, &actions)
            .map_err(|e| e.to_string())?;
        after(round);
    }
    Ok(())
}

/// The distinct samples of a batch (in first-seen order) and, for each
/// episode, the index of its sample among them.
pub(crate) fn unique_samples(samples: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut uniq = Vec::new();
    let mut pos = HashMap::new();
    let of = samples
        .iter()
        .map(|&s| {
            *pos.entry(s).or_insert_with(|| {
                uniq.push(s);
                uniq.len() - 1
            })
        })
        .collect();
    (uniq, of)
}

/// The global views of the distinct samples, in order.
pub(crate) fn globals_of(batch: &EpisodeBatch, of_episode: &[usize], n: usize) -> Vec<u8> {
    let len = batch.global_of(0).len();
    let mut out = vec![0u8; n * len];
    for (e, &u) in of_episode.iter().enumerate() {
        out[u * len..(u + 1) * len].copy_from_slice(batch.global_of(e));
    }
    out
}

impl Trainer {
    /// Rolls out one episode per entry of `samples` on a split; sampling
    /// when `explore`, greedy otherwise.
    pub(crate) fn rollout(
        &mut self,
        eval: bool,
        samples: &[usize],
        explore: bool,
        sink: &mut dyn EventSink,
        phase: Phase,
    ) -> Result<Rollout, TrainError> {
        let split = if eval { &self.eval } else { &self.train };
        let mut st = start_batch(self.net.as_ref(), split, samples)?;
        let mut steps = Vec::new();
        let max = self.cfg.env.max_rounds;
        let iteration = self.iteration;
        run_rounds(
            self.net.as_ref(),
            split,
            &mut st,
            explore.then_some(&mut self.rng),
            max,
            |batch, i, _, (a, c, lp)| {
                steps.push(StepRec::at(batch, i, c, lp));
                a
            },
            |round| {
                sink.emit(crate::events::Event::Progress {
                    iteration,
                    phase,
                    done: round + 1,
                    total: max + 1,
                })
            },
        )?;
        Ok(Rollout {
            batch: st.batch,
            steps,
        })
    }

    /// The scored records of a finished rollout: each action's and the
    /// answer's log-probability, the iteration, the rewards against the
    /// (corrected) ground truth and the group credit, with the same
    /// [`score_trajectory`] / [`assign_credit`] as `virl score`.
    pub(crate) fn finish(&self, eval: bool, r: &Rollout) -> Vec<Trajectory> {
        let split = if eval { &self.eval } else { &self.train };
        let mut trajs = r.batch.episodes.clone();
        for s in &r.steps {
            let t = &mut trajs[s.episode];
            match t.actions.get_mut(s.step) {
                Some(a) if s.choice.kind == 0 => a.logp = Some(s.logp),
                _ => t.answer_logp = Some(s.logp),
            }
        }
        for (t, &s) in trajs.iter_mut().zip(&r.batch.samples) {
            t.iteration = self.iteration;
            let sample = self.corrected(&split.samples()[s]);
            score_trajectory(t, &sample, &self.cfg.reward);
        }
        assign_credit(&mut trajs, &self.cfg.reward);
        trajs
    }

    /// Runs `k` sampled episodes of every sample of `ds` with the zooms
    /// forced to `forced(sample)` (in order, at most `max_rounds − 1` of
    /// them; none: answer at once), then the policy's own sampled answer,
    /// and returns each sample's pass rate (the fraction answered
    /// correctly). The three-stage filter's probes ([`crate::filter`]).
    pub fn probe(
        &mut self,
        ds: Dataset,
        source: ImageSource,
        k: usize,
        forced: &dyn Fn(&crate::dataset::Sample) -> Vec<crate::geometry::BBox>,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<f64>, TrainError> {
        let qdim = self.cfg.policy.question_dim;
        let n = ds.len();
        let split = Split::new(ds, source, &self.cfg, qdim)?;
        let k = k.max(1);
        let mut right = vec![0usize; n];
        // Episodes in batches of about 256.
        let per = (256 / k).max(1);
        let mut done = 0;
        let max_zooms = self.cfg.env.max_rounds.saturating_sub(1);
        // Each sample's forced zooms, worked out once.
        let plans: Vec<Vec<crate::geometry::BBox>> = split
            .samples()
            .iter()
            .map(|s| {
                let mut z = forced(s);
                z.truncate(max_zooms);
                z
            })
            .collect();
        for chunk in (0..n).collect::<Vec<_>>().chunks(per) {
            let samples: Vec<usize> = chunk
                .iter()
                .flat_map(|&s| std::iter::repeat_n(s, k))
                .collect();
            let mut st = start_batch(self.net.as_ref(), &split, &samples)?;
            let answers = self.net.answers();
            run_rounds(
                self.net.as_ref(),
                &split,
                &mut st,
                Some(&mut self.rng),
                self.cfg.env.max_rounds,
                |batch, i, round, (_, c, _)| match plans[batch.samples[i]].get(round) {
                    Some(&b) => Action::Zoom(b),
                    None => {
                        Action::Answer(answers.get(c.answer as usize).cloned().unwrap_or_default())
                    }
                },
                |_| {},
            )?;
            for (e, &si) in st.batch.episodes.iter().zip(&st.batch.samples) {
                let s = &split.samples()[si];
                if e.answer
                    .as_deref()
                    .is_some_and(|a| crate::reward::answer_correct(a, &s.answer, &s.options))
                {
                    right[si] += 1;
                }
            }
            done += chunk.len();
            progress(done, n);
        }
        Ok(right.into_iter().map(|r| r as f64 / k as f64).collect())
    }
}
