//! One conversation on the KV cache: its prompt, the tool's replies (a crop,
//! or an error turn), and reading each assistant turn into the
//! [`Trajectory`] record (zoom actions with their turn and log-probability,
//! the answer, format errors, truncation).

use super::image::{PreparedImage, prepare};
use super::model::{LogitsOf, Piece, QwenVl};
use super::protocol::{CoordFrame, NO_TOOL_PROMPT, RolloutConfig, TurnOutcome, read_turn};
use super::text::KvCache;
use super::transcript::{SeqPiece, VlmTrajectory};
use crate::dataset::Sample;
use crate::dialect::{Dialect, prompts};
use crate::env::execute_box;
use crate::geometry::BBox;
use crate::trajectory::{Turn, ZoomAction};
use image::RgbImage;
use std::time::Instant;

fn placeholder(img: &PreparedImage) -> String {
    format!("<image {}x{}>", img.shown.0, img.shown.1)
}

/// A conversation in progress: the model, its KV cache and the rollout so far.
pub(crate) struct Convo<'m> {
    pub(crate) model: &'m QwenVl,
    pub(crate) cache: KvCache,
    pub(crate) t: VlmTrajectory,
    /// Tokens in `t.pieces`.
    pub(crate) len: usize,
}

impl Convo<'_> {
    /// Appends pieces to the transcript only (the conversation is over).
    pub(crate) fn record(&mut self, pieces: Vec<SeqPiece>) {
        for p in pieces {
            self.len += match &p {
                SeqPiece::Text(t) => t.len(),
                SeqPiece::Image(k) => self.t.images[*k].tokens(),
            };
            match (p, self.t.pieces.last_mut()) {
                (SeqPiece::Text(t), Some(SeqPiece::Text(last))) => last.extend(t),
                (p, _) => self.t.pieces.push(p),
            }
        }
    }

    /// Runs pieces through the model; returns the last logits.
    pub(crate) fn feed(&mut self, pieces: Vec<SeqPiece>) -> candle_core::Result<Vec<f32>> {
        let n: usize = pieces
            .iter()
            .map(|p| match p {
                SeqPiece::Text(t) => t.len(),
                SeqPiece::Image(k) => self.t.images[*k].tokens(),
            })
            .sum();
        let start = Instant::now();
        let logits = {
            let ps: Vec<Piece> = pieces
                .iter()
                .map(|p| match p {
                    SeqPiece::Text(t) => Piece::Text(t),
                    SeqPiece::Image(k) => Piece::Image(&self.t.images[*k]),
                })
                .collect();
            self.model.extend(&mut self.cache, &ps, LogitsOf::Last)?
        };
        let v: Vec<f32> = logits.squeeze(0)?.to_vec1()?;
        let dt = start.elapsed().as_secs_f64();
        if n > 1 {
            self.t.prefill_tokens += n;
            self.t.prefill_secs += dt;
        } else {
            self.t.decode_tokens += n;
            self.t.decode_secs += dt;
        }
        self.record(pieces);
        Ok(v)
    }
}

/// Builds the conversation prefix (system + user turn with the image) of a
/// sample. Returns the pieces, the prepared image and the turns.
pub(crate) fn prefix(
    model: &QwenVl,
    sample: &Sample,
    image: &RgbImage,
    cfg: &RolloutConfig,
    no_zoom: bool,
) -> Result<(Vec<SeqPiece>, PreparedImage, Vec<Turn>), String> {
    let tok = &model.tokenizer;
    let img = prepare(image, &model.image_config, Some(cfg.max_pixels))?;
    // One prompt per dialect, the one `virl export --format verl` writes
    // (verl's chat template adds the same tools block from the schema).
    let dialect = match cfg.coords {
        CoordFrame::Shown => Dialect::Virl,
        CoordFrame::Norm1000 => Dialect::Qwen3Vl,
    };
    let p = prompts::prompt(dialect, &sample.question, &sample.options);
    let sys = if no_zoom {
        NO_TOOL_PROMPT.to_string()
    } else {
        cfg.system_prompt.clone().unwrap_or_else(|| p.system())
    };
    let user = if no_zoom {
        format!(
            "{}\nThink in <think></think> first, then give the final answer as <answer>...</answer>.",
            prompts::question_text(&sample.question, &sample.options)
        )
    } else {
        p.user
    };
    let enc = |s: &str| tok.encode(s);
    let mut a = enc(&format!(
        "<|im_start|>system\n{sys}<|im_end|>\n<|im_start|>user\n"
    ))?;
    a.push(tok.vision_start);
    let mut b = vec![tok.vision_end];
    b.extend(enc(&format!("{user}<|im_end|>\n<|im_start|>assistant\n"))?);
    let turns = vec![
        Turn::new("system", sys.as_str()),
        Turn::new("user", format!("{}{user}", placeholder(&img))),
    ];
    Ok((
        vec![SeqPiece::Text(a), SeqPiece::Image(0), SeqPiece::Text(b)],
        img,
        turns,
    ))
}

/// Writes a zoom on `b` (original pixels) as if the model had called the
/// tool, and its tool response; returns the logits after it.
pub(crate) fn forced_zoom(
    c: &mut Convo,
    image: &RgbImage,
    cfg: &RolloutConfig,
    b: &BBox,
) -> candle_core::Result<Vec<f32>> {
    let tok = &c.model.tokenizer;
    let (ow, oh) = (image.width() as f64, image.height() as f64);
    let shown = c.t.images[0].shown;
    let (sx, sy) = match cfg.coords {
        CoordFrame::Shown => (shown.0 as f64 / ow, shown.1 as f64 / oh),
        CoordFrame::Norm1000 => (1000.0 / ow, 1000.0 / oh),
    };
    let m = BBox::new(b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy);
    let text = format!(
        "<tool_call>{{\"name\": \"image_zoom_in_tool\", \"arguments\": {{\"bbox_2d\": [{:.0}, {:.0}, {:.0}, {:.0}]}}}}</tool_call>",
        m.x1, m.y1, m.x2, m.y2
    );
    let exec = execute_box(b, cfg.min_zoom_side, ow, oh);
    let r = &mut c.t.record;
    r.actions
        .push(ZoomAction::new(*b, exec, None, Some(r.transcript.len())));
    r.transcript.push(Turn {
        zoom: Some(*b),
        ..Turn::new("assistant", format!("{text}  (forced by the filter probe)"))
    });
    let mut lead = tok.encode(&text).map_err(candle_core::Error::Msg)?;
    lead.push(tok.im_end);
    tool_response(c, image, cfg, &m, &exec, lead)
}

/// Appends the crop of `exec` as the tool's answer to a call for
/// `shown_box` (in the model's frame). `lead` holds the tokens not yet run
/// before it (the end of the assistant turn). Returns the logits after it.
fn tool_response(
    c: &mut Convo,
    image: &RgbImage,
    cfg: &RolloutConfig,
    shown_box: &BBox,
    exec: &BBox,
    lead: Vec<u32>,
) -> candle_core::Result<Vec<f32>> {
    let tok = &c.model.tokenizer;
    let enc = |s: &str| tok.encode(s).map_err(candle_core::Error::Msg);
    let b = shown_box;
    let (x0, y0) = (
        exec.x1.floor().max(0.0) as u32,
        exec.y1.floor().max(0.0) as u32,
    );
    let x1 = (exec.x2.ceil() as u32).clamp(x0 + 1, image.width());
    let y1 = (exec.y2.ceil() as u32).clamp(y0 + 1, image.height());
    let crop = image::imageops::crop_imm(image, x0, y0, x1 - x0, y1 - y0).to_image();
    let prepared = prepare(&crop, &c.model.image_config, Some(cfg.crop_max_pixels))
        .map_err(candle_core::Error::Msg)?;
    let said = format!(
        "\n</tool_response>\nThis is the region [{:.0}, {:.0}, {:.0}, {:.0}] zoomed in. Answer in <answer></answer> if you can, or zoom again.",
        b.x1, b.y1, b.x2, b.y2
    );
    let tail = format!("{said}<|im_end|>\n<|im_start|>assistant\n");
    c.t.record.transcript.push(Turn::new(
        "tool",
        format!("<tool_response>\n{}{said}", placeholder(&prepared)),
    ));
    let mut next = lead;
    next.extend(enc("\n<|im_start|>user\n<tool_response>\n")?);
    next.push(tok.vision_start);
    let mut after = vec![tok.vision_end];
    after.extend(enc(&tail)?);
    c.t.images.push(prepared);
    let k = c.t.images.len() - 1;
    c.feed(vec![
        SeqPiece::Text(next),
        SeqPiece::Image(k),
        SeqPiece::Text(after),
    ])
}

/// Handles the end of an assistant turn of `ids` (ending in its stop token
/// when `stopped`): reads it, records it, and either finishes the episode
/// (`None`) or appends the tool's reply and returns the next logits.
pub(crate) fn end_turn(
    c: &mut Convo,
    image: &RgbImage,
    cfg: &RolloutConfig,
    no_zoom: bool,
    ids: &[u32],
    stopped: bool,
    rounds: &mut usize,
) -> candle_core::Result<Option<Vec<f32>>> {
    let tok = &c.model.tokenizer;
    let (ow, oh) = (image.width() as f64, image.height() as f64);
    let shown = c.t.images[0].shown;
    let n_gen = c.t.generated.len();
    // The turn's log-probability: the sum over its generated tokens.
    let logp: f32 = c.t.generated[n_gen - ids.len()..].iter().map(|g| g.1).sum();
    let body: &[u32] = if stopped { &ids[..ids.len() - 1] } else { ids };
    let text = tok.decode(body).map_err(candle_core::Error::Msg)?;
    let (outcome, extra) = if stopped {
        match read_turn(&text) {
            (TurnOutcome::Zoom(_), e) if no_zoom => (
                TurnOutcome::Malformed("zooming is not available for this question".into()),
                e,
            ),
            r => r,
        }
    } else {
        (
            TurnOutcome::Malformed(format!(
                "the turn ran past max_turn_tokens ({}) without ending",
                cfg.max_turn_tokens
            )),
            None,
        )
    };
    if let Some(e) = &extra {
        c.t.record
            .format_errors
            .push(format!("turn {}: {e}", *rounds + 1));
    }
    let assistant = |text: String| Turn {
        logp: Some(logp),
        ..Turn::new("assistant", text)
    };
    // The stop token (sampled, not yet run) or, for a turn cut off, a
    // forced <|im_end|> opens the next piece.
    let mut next: Vec<u32> = vec![match ids.last() {
        Some(&id) if stopped => id,
        _ => tok.im_end,
    }];
    let enc = |s: &str| tok.encode(s).map_err(candle_core::Error::Msg);
    match outcome {
        TurnOutcome::Answer(a) => {
            let r = &mut c.t.record;
            r.transcript.push(assistant(text));
            r.answer = Some(a);
            r.answer_logp = Some(logp);
            if stopped {
                c.record(vec![SeqPiece::Text(next)]);
            }
            Ok(None)
        }
        TurnOutcome::Zoom(b) => {
            let (sx, sy) = match cfg.coords {
                CoordFrame::Shown => (ow / shown.0 as f64, oh / shown.1 as f64),
                CoordFrame::Norm1000 => (ow / 1000.0, oh / 1000.0),
            };
            let proposed = BBox::new(b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy);
            let exec = execute_box(&proposed, cfg.min_zoom_side, ow, oh);
            let r = &mut c.t.record;
            let turn = r.transcript.len();
            r.actions
                .push(ZoomAction::new(proposed, exec, Some(logp), Some(turn)));
            r.transcript.push(Turn {
                zoom: Some(proposed),
                ..assistant(text)
            });
            *rounds += 1;
            if *rounds >= cfg.max_rounds {
                c.t.record.truncated = true;
                c.record(vec![SeqPiece::Text(next)]);
                return Ok(None);
            }
            Ok(Some(tool_response(c, image, cfg, &b, &exec, next)?))
        }
        TurnOutcome::Malformed(why) => {
            let r = &mut c.t.record;
            r.format_errors.push(format!("turn {}: {why}", *rounds + 1));
            r.transcript.push(Turn {
                error: Some(why.clone()),
                ..assistant(text)
            });
            *rounds += 1;
            if *rounds >= cfg.max_rounds {
                c.t.record.truncated = true;
                c.record(vec![SeqPiece::Text(next)]);
                return Ok(None);
            }
            let reply = format!(
                "Error: {why}. Call image_zoom_in_tool as <tool_call>{{\"name\": \"image_zoom_in_tool\", \"arguments\": {{\"bbox_2d\": [x1, y1, x2, y2]}}}}</tool_call>, or give the final answer as <answer>...</answer>."
            );
            c.t.record.transcript.push(Turn::new("tool", reply.clone()));
            next.extend(enc(&format!(
                "\n<|im_start|>user\n<tool_response>\n{reply}\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
            ))?);
            Ok(Some(c.feed(vec![SeqPiece::Text(next)])?))
        }
    }
}
