//! Imitation warm-up: teacher-forced ground-truth episodes (zoom on each
//! rationale box, then the correct answer), trained by maximum likelihood
//! before RL.

use super::data::Split;
use super::rollout::StepRec;
use super::{TrainError, Trainer, ce};
use crate::config::WarmupData;
use crate::env::Action;
use crate::events::{Event, EventSink, Phase};
use crate::geometry::BBox;
use crate::policy::UpdateStats;
use crate::policy::zoomnet::{Choice, StepObs};

impl Trainer {
    /// One warm-up iteration on `n` episodes, from the data
    /// `trainer.warmup_data` names: `n` samples of the training split drawn
    /// with the trainer's RNG, or `n` newly generated ones.
    pub(crate) fn warmup(
        &mut self,
        n: usize,
        sink: &mut dyn EventSink,
    ) -> Result<UpdateStats, TrainError> {
        match self.cfg.trainer.warmup_data {
            WarmupData::Train => {
                let count = self.train.samples().len() as u64;
                let warm: Vec<usize> = (0..n)
                    .map(|_| (self.rng.next_u64() % count) as usize)
                    .collect();
                self.warmup_update(None, &warm, sink)
            }
            WarmupData::Fresh => {
                let split = Split::fresh(&self.cfg, self.iteration, n)?;
                let all: Vec<usize> = (0..n).collect();
                self.warmup_update(Some(&split), &all, sink)
            }
        }
    }

    /// One supervised step: teacher-forced ground-truth episodes of `samples`
    /// of `split` (the training split when `None`): zoom on each rationale
    /// box as the policy would express it, then the correct answer; loss
    /// `−mean log p(action)`.
    fn warmup_update(
        &mut self,
        split: Option<&Split>,
        samples: &[usize],
        sink: &mut dyn EventSink,
    ) -> Result<UpdateStats, TrainError> {
        let split = split.unwrap_or(&self.train);
        let mut batch = split.env.reset(samples).map_err(|e| e.to_string())?;
        let mut steps: Vec<StepRec> = Vec::new();
        let max_zooms = self.cfg.env.max_rounds.saturating_sub(1);
        let jitter = self.cfg.trainer.imitation_jitter;
        for round in 0..=max_zooms {
            let mut actions = Vec::new();
            for i in batch.active() {
                let s = self.corrected(&split.samples()[batch.samples[i]]);
                let gts = s.gt_boxes();
                let choice = if round < gts.len().min(max_zooms) {
                    self.net
                        .encode_box(&gts[round], s.width as f64, s.height as f64)
                } else {
                    match self.net.answer_class(&s.answer) {
                        Some(a) => Choice {
                            kind: 1,
                            answer: a as u32,
                            ..Default::default()
                        },
                        None => continue,
                    }
                };
                let (w, h) = (s.width as f64, s.height as f64);
                let action = match (choice.kind, round < gts.len()) {
                    (0, true) if jitter > 0.0 => {
                        let b = &gts[round];
                        let (cx, cy) = b.center();
                        let mut u = || self.rng.f64() * 2.0 - 1.0;
                        let (dx, dy) = (u() * jitter * b.width(), u() * jitter * b.height());
                        let k = 1.0 + u() * jitter;
                        let (hw, hh) = (b.width() * k / 2.0, b.height() * k / 2.0);
                        let (cx, cy) = (cx + dx, cy + dy);
                        Action::Zoom(BBox::new(cx - hw, cy - hh, cx + hw, cy + hh))
                    }
                    _ => self.net.decode(&choice, w, h),
                };
                steps.push(StepRec::at(&batch, i, choice, 0.0));
                actions.push((i, action));
            }
            if actions.is_empty() {
                break;
            }
            split
                .env
                .step(&mut batch, &actions)
                .map_err(|e| e.to_string())?;
        }
        let questions: Vec<Vec<f32>> = batch
            .samples
            .iter()
            .map(|&s| split.questions[s].clone())
            .collect();
        // Whole episodes per minibatch, each encoding only its own global views.
        steps.sort_by_key(|s| (s.episode, s.step));
        let mut stats = UpdateStats::default();
        let mut n = 0usize;
        let (mut nll, mut rows) = ([0f64; 2], [0usize; 2]);
        let t = &self.cfg.trainer;
        let epochs = t.warmup_epochs.unwrap_or(t.epochs);
        let total = epochs * steps.len().div_ceil(self.cfg.trainer.minibatch);
        for chunk in (0..epochs).flat_map(|_| steps.chunks(self.cfg.trainer.minibatch)) {
            let mut episodes: Vec<usize> = chunk.iter().map(|s| s.episode).collect();
            episodes.dedup();
            let local = |e: usize| episodes.binary_search(&e).unwrap_or_default();
            let globals: Vec<u8> = episodes
                .iter()
                .flat_map(|&e| batch.global_of(e).iter().copied())
                .collect();
            let obs: Vec<StepObs> = chunk
                .iter()
                .map(|s| s.obs(local(s.episode), &questions[s.episode]))
                .collect();
            let (lp, ent) = self
                .net
                .evaluate(&globals, episodes.len(), &obs)
                .map_err(ce)?;
            let loss = lp.mean_all().and_then(|x| x.neg()).map_err(ce)?;
            stats.grad_norm = self.opt.backward_step(&loss).map_err(ce)?;
            for (s, l) in chunk.iter().zip(lp.to_vec1::<f32>().map_err(ce)?) {
                let k = usize::from(s.choice.kind == 1);
                nll[k] -= l as f64;
                rows[k] += 1;
            }
            stats.loss += loss.to_scalar::<f32>().map_err(ce)? as f64;
            stats.entropy += ent
                .mean_all()
                .and_then(|x| x.to_scalar::<f32>())
                .map_err(ce)? as f64;
            n += 1;
            sink.emit(Event::Progress {
                iteration: self.iteration,
                phase: Phase::Update,
                done: n,
                total,
            });
        }
        stats.loss /= n.max(1) as f64;
        stats.entropy /= n.max(1) as f64;
        let mean = |k: usize| (rows[k] > 0).then(|| nll[k] / rows[k] as f64);
        stats.zoom_nll = mean(0);
        stats.answer_nll = mean(1);
        Ok(stats)
    }
}
