//! The multi-turn zoom protocol (DeepEyes / ViRL style) on a [`QwenVl`].
//!
//! The conversation, in Qwen's chat template:
//!
//! ```text
//! <|im_start|>system\n{SYSTEM_PROMPT: declares image_zoom_in_tool}<|im_end|>\n
//! <|im_start|>user\n<|vision_start|>{image}<|vision_end|>{question}\n{instructions}<|im_end|>\n
//! <|im_start|>assistant\n<think>…</think><tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [x1, y1, x2, y2]}}</tool_call><|im_end|>\n
//! <|im_start|>user\n<tool_response>\n<|vision_start|>{crop}<|vision_end|>\n</tool_response>\n…<|im_end|>\n
//! <|im_start|>assistant\n… <answer>…</answer><|im_end|>
//! ```
//!
//! A box is read in pixels of the image as the model was shown it (after the
//! smart resize), or in Qwen3-VL's native 0–1000 grounding frame
//! ([`CoordFrame`]); it is mapped to original-image pixels (the proposed
//! box, what the rewards score), clipped and grown to the minimum side
//! exactly as ZoomNet's environment does (the executed box), cropped from
//! the original image, resized within `crop_max_pixels` and appended as the
//! next user turn; generation continues on the KV cache. A turn that is
//! neither a well-formed call nor an answer, or that runs past
//! `max_turn_tokens`, is answered with an error turn (as verl's tool
//! environments do) and recorded as a format error (`R_fmt = −1`). Every
//! tool turn, zoom or error, counts against `max_rounds`.
//!
//! Each trajectory keeps its whole token sequence with a mask of the
//! model's own tokens and their sampling log-probabilities, which is what a
//! GRPO/ViRL update of the VLM needs ([`QwenVl::sequence_logprobs`]
//! re-evaluates them).

use super::image::{PreparedImage, prepare};
use super::model::{LogitsOf, Piece, QwenVl};
use super::text::KvCache;
use crate::dataset::Sample;
use crate::dataset::zoombench::SplitMix64;
use crate::env::execute_box;
use crate::geometry::BBox;
use crate::score::parse_zoom_call;
use candle_core::Tensor;
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The frame `bbox_2d` is read in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CoordFrame {
    /// Pixels of the image as shown to the model (DeepEyes, Qwen2.5-VL).
    #[default]
    Shown,
    /// 0–1000 relative coordinates (Qwen3-VL's native grounding).
    Norm1000,
}

impl std::str::FromStr for CoordFrame {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "shown" | "pixels" => Ok(Self::Shown),
            "norm1000" | "relative" => Ok(Self::Norm1000),
            o => Err(format!(
                "unknown coordinate frame `{o}` (expected shown or norm1000)"
            )),
        }
    }
}

/// The protocol's knobs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutConfig {
    /// Most tool turns (zooms and error turns) before the episode is cut
    /// off. Default 6, as ZoomNet's environment.
    pub max_rounds: usize,
    /// Most tokens one assistant turn may generate. Default 512.
    pub max_turn_tokens: usize,
    /// Sampling temperature; 0 means greedy. Default 1.0.
    pub temperature: f64,
    /// Nucleus sampling mass. Default 1.0 (off).
    pub top_p: f64,
    /// Pixel budget of the full image. Default 512².
    pub max_pixels: usize,
    /// Pixel budget of a zoom crop. Default 512².
    pub crop_max_pixels: usize,
    /// Smallest side of an executed zoom, original pixels. Default 8.
    pub min_zoom_side: f64,
    /// The frame of `bbox_2d`.
    pub coords: CoordFrame,
    /// Replaces [`SYSTEM_PROMPT`].
    pub system_prompt: Option<String>,
    /// Most rollouts of a group decoded in one batched step (memory bound:
    /// each keeps its own KV cache). Default 8.
    pub max_batch: usize,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        Self {
            max_rounds: 6,
            max_turn_tokens: 512,
            temperature: 1.0,
            top_p: 1.0,
            max_pixels: 512 * 512,
            crop_max_pixels: 512 * 512,
            min_zoom_side: 8.0,
            coords: CoordFrame::Shown,
            system_prompt: None,
            max_batch: 8,
        }
    }
}

impl RolloutConfig {
    /// Checks the knobs.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_rounds == 0 {
            return Err("max_rounds must be at least 1".into());
        }
        if self.max_batch == 0 {
            return Err("max_batch must be at least 1".into());
        }
        if self.max_turn_tokens == 0 {
            return Err("max_turn_tokens must be at least 1".into());
        }
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(format!(
                "temperature must be >= 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if self.max_pixels < 1024 || self.crop_max_pixels < 1024 {
            return Err("max_pixels and crop_max_pixels must be at least 1024".into());
        }
        if !(self.min_zoom_side.is_finite() && self.min_zoom_side >= 1.0) {
            return Err("min_zoom_side must be at least 1 pixel".into());
        }
        Ok(())
    }
}

/// Probes of the data filter (`dataset::filter`, stages 2 and 3).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Forced {
    /// The ordinary protocol.
    #[default]
    Nothing,
    /// No tool: the prompt asks for the answer at once and a tool call is
    /// answered with an error turn.
    NoZoom,
    /// These zooms (original pixels) are made for the model, as if it had
    /// called the tool, before it writes its first token.
    Zooms(Vec<BBox>),
}

/// The system prompt of [`Forced::NoZoom`].
pub const NO_TOOL_PROMPT: &str = "You are a helpful assistant that looks closely at images.";

/// The system prompt declaring the zoom tool (Qwen's function-calling
/// format, the tool DeepEyes and ViRL train with).
pub const SYSTEM_PROMPT: &str = r#"You are a helpful assistant that looks closely at images. You can zoom in on a region of the image to see details before you answer.

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{"type": "function", "function": {"name": "image_zoom_in_tool", "description": "Zoom in on a region of the image by cropping it to a bounding box. The box is [x1, y1, x2, y2]: (x1, y1) is the top-left corner and (x2, y2) the bottom-right corner.", "parameters": {"type": "object", "properties": {"bbox_2d": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4, "description": "The region to zoom in on, as [x1, y1, x2, y2]."}, "label": {"type": "string", "description": "What is in the region (optional)."}}, "required": ["bbox_2d"]}}}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>"#;

/// One turn of a conversation, as shown in the inspector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text (image placeholders written as `<image WxH>`).
    pub text: String,
    /// For an assistant turn that zoomed: the proposed box, original pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoom: Option<BBox>,
    /// For an assistant turn that was malformed: what was wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A piece of a transcript's token sequence.
#[derive(Clone, Debug, PartialEq)]
pub enum SeqPiece {
    /// Token ids.
    Text(Vec<u32>),
    /// The `k`-th image of the transcript.
    Image(usize),
}

/// One rollout.
#[derive(Clone, Debug)]
pub struct VlmTrajectory {
    /// The sample id.
    pub sample: String,
    /// The turns, system prompt first.
    pub turns: Vec<Turn>,
    /// Zoom boxes as the model proposed them, in original-image pixels.
    pub proposed: Vec<BBox>,
    /// Zoom boxes as executed (clipped, grown to the minimum side).
    pub executed: Vec<BBox>,
    /// The text inside `<answer>…</answer>`, if one was given.
    pub answer: Option<String>,
    /// Format problems (`R_fmt = −1` when any).
    pub format_errors: Vec<String>,
    /// Whether `max_rounds` tool turns passed without an answer.
    pub hit_max_rounds: bool,
    /// The whole sequence: text runs and images.
    pub pieces: Vec<SeqPiece>,
    /// The images of the sequence (the full image, then each crop).
    pub images: Vec<PreparedImage>,
    /// Generated tokens in order, with their log-probability under the
    /// sampling distribution (temperature applied, before top-p).
    pub generated: Vec<(u32, f32)>,
    /// Where each generated token sits in the sequence.
    pub gen_positions: Vec<usize>,
    /// Log-probability of each assistant turn (the sum over its tokens).
    pub turn_logp: Vec<f32>,
    /// Tokens run as prefill (prompt, tool responses).
    pub prefill_tokens: usize,
    /// Seconds spent in prefill.
    pub prefill_secs: f64,
    /// Tokens generated one at a time.
    pub decode_tokens: usize,
    /// Seconds spent decoding.
    pub decode_secs: f64,
}

impl VlmTrajectory {
    /// Tokens in the sequence.
    pub fn len(&self) -> usize {
        self.pieces
            .iter()
            .map(|p| match p {
                SeqPiece::Text(t) => t.len(),
                SeqPiece::Image(k) => self.images[*k].tokens(),
            })
            .sum()
    }

    /// Whether the sequence is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole token sequence (`pad` for image tokens) and the mask of
    /// the model's own tokens: the response mask of an RL update (prompt
    /// and tool-response tokens are not trained on).
    pub fn token_mask(&self, pad: u32) -> (Vec<u32>, Vec<bool>) {
        let mut ids = Vec::with_capacity(self.len());
        for p in &self.pieces {
            match p {
                SeqPiece::Text(t) => ids.extend_from_slice(t),
                SeqPiece::Image(k) => {
                    ids.extend(std::iter::repeat_n(pad, self.images[*k].tokens()))
                }
            }
        }
        let mut mask = vec![false; ids.len()];
        for &p in &self.gen_positions {
            if p < mask.len() {
                mask[p] = true;
            }
        }
        (ids, mask)
    }
}

/// Picks the next token from logits.
pub trait TokenChooser {
    /// The token, and its log-probability under the policy's distribution.
    fn choose(&mut self, logits: &[f32]) -> (u32, f32);
}

/// `log softmax(logits / t)`.
pub fn log_softmax(logits: &[f32], t: f64) -> Vec<f64> {
    let t = if t > 0.0 { t } else { 1.0 };
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = logits
        .iter()
        .map(|&x| ((x as f64 - m) / t).exp())
        .sum::<f64>()
        .ln();
    logits.iter().map(|&x| (x as f64 - m) / t - lse).collect()
}

/// Temperature and nucleus sampling from a seeded generator; greedy when
/// the temperature is 0 (log-probabilities then at temperature 1).
pub struct Sampler {
    /// Temperature (0: greedy).
    pub temperature: f64,
    /// Nucleus mass.
    pub top_p: f64,
    /// The generator.
    pub rng: SplitMix64,
}

impl TokenChooser for Sampler {
    fn choose(&mut self, logits: &[f32]) -> (u32, f32) {
        let lp = log_softmax(logits, self.temperature);
        if self.temperature <= 0.0 {
            let (i, v) = lp
                .iter()
                .enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |a, (i, &v)| if v > a.1 { (i, v) } else { a },
                );
            return (i as u32, v as f32);
        }
        let mut order: Vec<usize> = (0..lp.len()).collect();
        order.sort_by(|&a, &b| lp[b].total_cmp(&lp[a]));
        let mut keep = Vec::new();
        let mut mass = 0.0;
        for &i in &order {
            keep.push(i);
            mass += lp[i].exp();
            if mass >= self.top_p {
                break;
            }
        }
        let mut u = self.rng.f64() * mass;
        for &i in &keep {
            u -= lp[i].exp();
            if u <= 0.0 {
                return (i as u32, lp[i] as f32);
            }
        }
        let last = *keep.last().unwrap_or(&0);
        (last as u32, lp[last] as f32)
    }
}

/// What can go wrong in a rollout (not the model's mistakes: those are
/// format errors in the trajectory).
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The image could not be prepared.
    #[error("sample {sample}: {problem}")]
    Image {
        /// The sample id.
        sample: String,
        /// What is wrong.
        problem: String,
    },
    /// The model failed.
    #[error("sample {sample}: running the model: {problem}")]
    Model {
        /// The sample id.
        sample: String,
        /// The error.
        problem: String,
    },
}

/// What a turn of generated text asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum TurnOutcome {
    /// A final answer.
    Answer(String),
    /// A zoom, in the frame the model writes boxes in.
    Zoom(BBox),
    /// Neither: why.
    Malformed(String),
}

/// Reads one assistant turn. An answer wins over a tool call in the same
/// turn (and the pair is a format error, returned as the second value).
pub fn read_turn(text: &str) -> (TurnOutcome, Option<String>) {
    let answer = text.find("<answer>").and_then(|i| {
        let rest = &text[i + "<answer>".len()..];
        rest.find("</answer>").map(|j| rest[..j].trim().to_string())
    });
    let calls: Vec<&str> = text
        .match_indices("<tool_call>")
        .filter_map(|(i, _)| {
            let rest = &text[i + "<tool_call>".len()..];
            rest.find("</tool_call>").map(|j| rest[..j].trim())
        })
        .collect();
    let think_ok = text.matches("<think>").count() == text.matches("</think>").count();
    let mut extra = (!think_ok).then(|| "unbalanced <think> tags".to_string());
    if let Some(a) = answer {
        if !calls.is_empty() {
            extra = Some("a tool call and an answer in the same turn".into());
        }
        return (TurnOutcome::Answer(a), extra);
    }
    if text.contains("<answer>") {
        return (
            TurnOutcome::Malformed("<answer> is never closed".into()),
            extra,
        );
    }
    match calls.first() {
        Some(body) => match parse_zoom_call(body) {
            Ok(b) => {
                if calls.len() > 1 {
                    extra = Some(format!(
                        "{} tool calls in one turn; the first was run",
                        calls.len()
                    ));
                }
                (TurnOutcome::Zoom(b), extra)
            }
            Err(e) => (TurnOutcome::Malformed(format!("tool call: {e}")), extra),
        },
        None if text.contains("<tool_call>") => (
            TurnOutcome::Malformed("<tool_call> is never closed".into()),
            extra,
        ),
        None => (
            TurnOutcome::Malformed("neither a tool call nor an <answer>".into()),
            extra,
        ),
    }
}

fn placeholder(img: &PreparedImage) -> String {
    format!("<image {}x{}>", img.shown.0, img.shown.1)
}

struct Convo<'m> {
    model: &'m QwenVl,
    cache: KvCache,
    t: VlmTrajectory,
    /// Tokens in `t.pieces`.
    len: usize,
}

impl Convo<'_> {
    /// Appends pieces to the transcript only (the conversation is over).
    fn record(&mut self, pieces: Vec<SeqPiece>) {
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
    fn feed(&mut self, pieces: Vec<SeqPiece>) -> candle_core::Result<Vec<f32>> {
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
fn prefix(
    model: &QwenVl,
    sample: &Sample,
    image: &RgbImage,
    cfg: &RolloutConfig,
    no_zoom: bool,
) -> Result<(Vec<SeqPiece>, PreparedImage, Vec<Turn>), String> {
    let tok = &model.tokenizer;
    let img = prepare(image, &model.image_config, Some(cfg.max_pixels))?;
    let sys = if no_zoom {
        NO_TOOL_PROMPT
    } else {
        cfg.system_prompt.as_deref().unwrap_or(SYSTEM_PROMPT)
    };
    let frame = match cfg.coords {
        CoordFrame::Shown => format!(
            "The image is {}x{} pixels; give zoom boxes in these pixels.",
            img.shown.0, img.shown.1
        ),
        CoordFrame::Norm1000 => {
            "Give zoom boxes in relative coordinates from 0 to 1000.".to_string()
        }
    };
    let mut question = sample.question.clone();
    if !sample.options.is_empty() {
        question.push_str("\nOptions: ");
        question.push_str(&sample.options.join("; "));
    }
    let user = if no_zoom {
        format!(
            "{question}\nThink in <think></think> first, then give the final answer as <answer>...</answer>."
        )
    } else {
        format!(
            "{question}\n{frame} Think in <think></think> first, then either call image_zoom_in_tool to look closer or give the final answer as <answer>...</answer>."
        )
    };
    let enc = |s: &str| tok.encode(s);
    let mut a = enc(&format!(
        "<|im_start|>system\n{sys}<|im_end|>\n<|im_start|>user\n"
    ))?;
    a.push(tok.vision_start);
    let mut b = vec![tok.vision_end];
    b.extend(enc(&format!("{user}<|im_end|>\n<|im_start|>assistant\n"))?);
    let turns = vec![
        Turn {
            role: "system".into(),
            text: sys.to_string(),
            zoom: None,
            error: None,
        },
        Turn {
            role: "user".into(),
            text: format!("{}{user}", placeholder(&img)),
            zoom: None,
            error: None,
        },
    ];
    Ok((
        vec![SeqPiece::Text(a), SeqPiece::Image(0), SeqPiece::Text(b)],
        img,
        turns,
    ))
}

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
            sample: sample.id.clone(),
            turns,
            proposed: Vec::new(),
            executed: Vec::new(),
            answer: None,
            format_errors: Vec::new(),
            hit_max_rounds: false,
            pieces: Vec::new(),
            images: vec![img],
            generated: Vec::new(),
            gen_positions: Vec::new(),
            turn_logp: Vec::new(),
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
        match end_turn(
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

/// Writes a zoom on `b` (original pixels) as if the model had called the
/// tool, and its tool response; returns the logits after it.
fn forced_zoom(
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
    c.t.proposed.push(*b);
    c.t.executed.push(exec);
    c.t.turns.push(Turn {
        role: "assistant".into(),
        text: format!("{text}  (forced by the filter probe)"),
        zoom: Some(*b),
        error: None,
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
    c.t.turns.push(Turn {
        role: "tool".into(),
        text: format!("<tool_response>\n{}{said}", placeholder(&prepared)),
        zoom: None,
        error: None,
    });
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
fn end_turn(
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
    c.t.turn_logp
        .push(c.t.generated[n_gen - ids.len()..].iter().map(|g| g.1).sum());
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
        c.t.format_errors.push(format!("turn {}: {e}", *rounds + 1));
    }
    // The stop token (sampled, not yet run) or, for a turn cut off, a
    // forced <|im_end|> opens the next piece.
    let mut next: Vec<u32> = vec![match ids.last() {
        Some(&id) if stopped => id,
        _ => tok.im_end,
    }];
    let enc = |s: &str| tok.encode(s).map_err(candle_core::Error::Msg);
    match outcome {
        TurnOutcome::Answer(a) => {
            c.t.turns.push(Turn {
                role: "assistant".into(),
                text,
                zoom: None,
                error: None,
            });
            c.t.answer = Some(a);
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
            c.t.proposed.push(proposed);
            c.t.executed.push(exec);
            c.t.turns.push(Turn {
                role: "assistant".into(),
                text,
                zoom: Some(proposed),
                error: None,
            });
            *rounds += 1;
            if *rounds >= cfg.max_rounds {
                c.t.hit_max_rounds = true;
                c.record(vec![SeqPiece::Text(next)]);
                return Ok(None);
            }
            Ok(Some(tool_response(c, image, cfg, &b, &exec, next)?))
        }
        TurnOutcome::Malformed(why) => {
            c.t.format_errors
                .push(format!("turn {}: {why}", *rounds + 1));
            c.t.turns.push(Turn {
                role: "assistant".into(),
                text,
                zoom: None,
                error: Some(why.clone()),
            });
            *rounds += 1;
            if *rounds >= cfg.max_rounds {
                c.t.hit_max_rounds = true;
                c.record(vec![SeqPiece::Text(next)]);
                return Ok(None);
            }
            let reply = format!(
                "Error: {why}. Call image_zoom_in_tool as <tool_call>{{\"name\": \"image_zoom_in_tool\", \"arguments\": {{\"bbox_2d\": [x1, y1, x2, y2]}}}}</tool_call>, or give the final answer as <answer>...</answer>."
            );
            c.t.turns.push(Turn {
                role: "tool".into(),
                text: reply.clone(),
                zoom: None,
                error: None,
            });
            next.extend(enc(&format!(
                "\n<|im_start|>user\n<tool_response>\n{reply}\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
            ))?);
            Ok(Some(c.feed(vec![SeqPiece::Text(next)])?))
        }
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
