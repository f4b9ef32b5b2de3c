//! Rolling out a group of conversations of one sample in lockstep (one
//! prefill of the shared prompt, forked KV caches, batched decode steps),
//! and the [`VlmPolicy`] trait the VLM runs, the filter's probes and the
//! coming GRPO/ViRL update of a VLM use.
//!
//! The protocol is in [`super::protocol`], one conversation's turns in
//! [`super::conversation`], the record in [`super::transcript`].

use super::conversation::{Convo, forced_zoom, prefix};
use super::model::{LogitsOf, Piece, QwenVl};
use super::protocol::{Forced, RolloutConfig, RolloutError};
use super::sampling::TokenChooser;
use super::text::KvCache;
use super::transcript::{SeqPiece, VlmTrajectory};
use crate::dataset::Sample;
use crate::trajectory::Trajectory;
use candle_core::Tensor;
use image::RgbImage;
use std::time::Instant;

/// Runs `group` rollouts of one sample. The prompt (system turn, image,
/// question) is run once and its KV cache forked for each rollout.
/// `chooser(i)` gives rollout `i`'s token chooser.
pub fn rollout_group(
    model: &QwenVl,
    sample: &Sample,
    image: &RgbImage,
    cfg: &RolloutConfig,
    group: usize,
    chooser: &mut dyn FnMut(usize) -> Box<dyn TokenChooser>,
) -> Result<Vec<VlmTrajectory>, RolloutError> {
    rollout_group_forced(model, sample, image, cfg, group, &Forced::Nothing, chooser)
}

/// [`rollout_group`] under a filter probe ([`Forced`]). Forced zooms are
/// part of the shared prompt (run once, not generated, not in the mask).
pub fn rollout_group_forced(
    model: &QwenVl,
    sample: &Sample,
    image: &RgbImage,
    cfg: &RolloutConfig,
    group: usize,
    forced: &Forced,
    chooser: &mut dyn FnMut(usize) -> Box<dyn TokenChooser>,
) -> Result<Vec<VlmTrajectory>, RolloutError> {
    let no_zoom = *forced == Forced::NoZoom;
    let model_err = |e: candle_core::Error| RolloutError::Model {
        sample: sample.id.clone(),
        problem: e.to_string(),
    };
    let (pieces, img, turns) =
        prefix(model, sample, image, cfg, no_zoom).map_err(|p| RolloutError::Image {
            sample: sample.id.clone(),
            problem: p,
        })?;
    let mut base = Convo {
        model,
        len: 0,
        cache: KvCache::default(),
        t: VlmTrajectory {
            record: Trajectory {
                transcript: turns,
                ..Trajectory::new(&sample.id, &sample.id, 0, &sample.answer)
            },
            pieces: Vec::new(),
            images: vec![img],
            generated: Vec::new(),
            gen_positions: Vec::new(),
            prefill_tokens: 0,
            prefill_secs: 0.0,
            decode_tokens: 0,
            decode_secs: 0.0,
        },
    };
    let mut logits0 = base.feed(pieces).map_err(model_err)?;
    if let Forced::Zooms(boxes) = forced {
        for b in boxes {
            logits0 = forced_zoom(&mut base, image, cfg, b).map_err(model_err)?;
        }
    }
    // The group decodes in lockstep: every rollout in the middle of a turn
    // contributes its last token to one batched decode step; a rollout
    // whose turn ends is served (tool response prefilled on its own cache)
    // and rejoins.
    let mut rs: Vec<Live> = Vec::with_capacity(group);
    for i in 0..group {
        let mut t = base.t.clone();
        if i > 0 {
            // The shared prompt was run once; count it once.
            t.prefill_tokens = 0;
            t.prefill_secs = 0.0;
        }
        rs.push(Live {
            c: Convo {
                model,
                len: base.len,
                cache: base.cache.fork().map_err(model_err)?,
                t,
            },
            chooser: chooser(i),
            ids: Vec::new(),
            rounds: 0,
            logits: Some(logits0.clone()),
            done: false,
        });
    }
    let tok = &model.tokenizer;
    loop {
        // Choose tokens until each live rollout needs a decode step.
        let mut need: Vec<(usize, u32)> = Vec::new();
        for (i, r) in rs.iter_mut().enumerate() {
            while !r.done {
                let Some(logits) = r.logits.take() else { break };
                let (id, lp) = r.chooser.choose(&logits);
                r.c.t.generated.push((id, lp));
                r.c.t.gen_positions.push(r.c.len);
                r.ids.push(id);
                if tok.is_stop(id) {
                    r.end_turn(image, cfg, no_zoom, true).map_err(model_err)?;
                } else {
                    need.push((i, id));
                    break;
                }
            }
        }
        if need.is_empty() {
            break;
        }
        for batch in need.chunks(cfg.max_batch.max(1)) {
            let ids: Vec<u32> = batch.iter().map(|(_, id)| *id).collect();
            let start = Instant::now();
            let rows = {
                let mut caches: Vec<&mut KvCache> = Vec::with_capacity(batch.len());
                let mut want = batch.iter().map(|(i, _)| *i).peekable();
                for (i, r) in rs.iter_mut().enumerate() {
                    if want.peek() == Some(&i) {
                        want.next();
                        caches.push(&mut r.c.cache);
                    }
                }
                model.decode_batch(&mut caches, &ids).map_err(model_err)?
            };
            // The step's time is shared by its rows.
            let share = start.elapsed().as_secs_f64() / batch.len() as f64;
            for (&(i, id), row) in batch.iter().zip(rows) {
                let r = &mut rs[i];
                r.c.record(vec![SeqPiece::Text(vec![id])]);
                r.c.t.decode_tokens += 1;
                r.c.t.decode_secs += share;
                r.logits = Some(row);
                if r.ids.len() >= cfg.max_turn_tokens {
                    r.logits = None;
                    r.end_turn(image, cfg, no_zoom, false).map_err(model_err)?;
                }
            }
        }
    }
    Ok(rs.into_iter().map(|r| r.c.t).collect())
}

/// One rollout of a group in progress.
struct Live<'m> {
    c: Convo<'m>,
    chooser: Box<dyn TokenChooser>,
    /// The current turn's tokens so far.
    ids: Vec<u32>,
    /// Tool turns so far.
    rounds: usize,
    /// Next-token logits, when it is this rollout's turn to choose.
    logits: Option<Vec<f32>>,
    done: bool,
}

impl Live<'_> {
    fn end_turn(
        &mut self,
        image: &RgbImage,
        cfg: &RolloutConfig,
        no_zoom: bool,
        stopped: bool,
    ) -> candle_core::Result<()> {
        let ids = std::mem::take(&mut self.ids);
        match super::conversation::end_turn(
            &mut self.c,
            image,
            cfg,
            no_zoom,
            &ids,
            stopped,
            &mut self.rounds,
        )? {
            Some(l) => self.logits = Some(l),
            None => self.done = true,
        }
        Ok(())
    }
}

/// A vision-language policy that converses: what the VLM rollouts, the
/// filter's probes and the coming GRPO/ViRL update of a VLM need of one.
/// [`QwenVl`] implements it.
///
/// The update's per-token term is [`VlmPolicy::token_logprobs`] over the
/// tokens [`VlmTrajectory::token_mask`] marks as the model's own (prompt,
/// tool-response and image tokens are masked out), weighted by the
/// action-modulated advantages that `credit.rs` gives each turn's zoom.
pub trait VlmPolicy {
    /// The tokenizer and its chat-template ids.
    fn tokenizer(&self) -> &super::tokenizer::ChatTokenizer;
    /// `group` rollouts of one sample under `forced`
    /// ([`rollout_group_forced`]).
    #[allow(clippy::too_many_arguments)]
    fn rollouts(
        &self,
        sample: &Sample,
        image: &RgbImage,
        cfg: &RolloutConfig,
        group: usize,
        forced: &Forced,
        chooser: &mut dyn FnMut(usize) -> Box<dyn TokenChooser>,
    ) -> Result<Vec<VlmTrajectory>, RolloutError>;
    /// Log-probabilities `[generated]` at `temperature` of a trajectory's
    /// generated tokens, by one teacher-forced pass over its whole sequence,
    /// as a tensor on the policy's device (differentiable once the weights
    /// are trainable).
    fn token_logprobs(&self, t: &VlmTrajectory, temperature: f64) -> candle_core::Result<Tensor>;
}

impl VlmPolicy for QwenVl {
    fn tokenizer(&self) -> &super::tokenizer::ChatTokenizer {
        &self.tokenizer
    }

    fn rollouts(
        &self,
        sample: &Sample,
        image: &RgbImage,
        cfg: &RolloutConfig,
        group: usize,
        forced: &Forced,
        chooser: &mut dyn FnMut(usize) -> Box<dyn TokenChooser>,
    ) -> Result<Vec<VlmTrajectory>, RolloutError> {
        rollout_group_forced(self, sample, image, cfg, group, forced, chooser)
    }

    fn token_logprobs(&self, t: &VlmTrajectory, temperature: f64) -> candle_core::Result<Tensor> {
        let mut cache = KvCache::default();
        let pieces: Vec<Piece> = t
            .pieces
            .iter()
            .map(|p| match p {
                SeqPiece::Text(x) => Piece::Text(x),
                SeqPiece::Image(k) => Piece::Image(&t.images[*k]),
            })
            .collect();
        let logits: Tensor = self.extend(&mut cache, &pieces, LogitsOf::All)?;
        let n = logits.dim(0)?;
        // Row p − 1 predicts the token at position p.
        let rows: Vec<u32> = t
            .gen_positions
            .iter()
            .map(|&p| {
                if p == 0 || p > n {
                    Err(candle_core::Error::Msg(format!(
                        "generated token at position {p} is outside the sequence of {n}"
                    )))
                } else {
                    Ok((p - 1) as u32)
                }
            })
            .collect::<candle_core::Result<_>>()?;
        let ids: Vec<u32> = t.generated.iter().map(|g| g.0).collect();
        let dev = logits.device();
        let picked = logits.index_select(&Tensor::new(rows.as_slice(), dev)?, 0)?;
        let t_ = if temperature > 0.0 { temperature } else { 1.0 };
        let lp = candle_nn::ops::log_softmax(&(picked / t_)?, candle_core::D::Minus1)?;
        lp.gather(&Tensor::new(ids.as_slice(), dev)?.unsqueeze(1)?, 1)?
            .squeeze(1)
    }
}

impl QwenVl {
    /// [`VlmPolicy::token_logprobs`] as numbers. Equal to the sampling
    /// log-probabilities up to float rounding (tested).
    pub fn sequence_logprobs(
        &self,
        t: &VlmTrajectory,
        temperature: f64,
    ) -> candle_core::Result<Vec<f32>> {
        self.token_logprobs(t, temperature)?
            .to_device(&candle_core::Device::Cpu)?
            .to_vec1()
    }
}
