//! The multi-turn zoom protocol (DeepEyes / ViRL style): its knobs, prompts
//! and probes. The conversation is run by [`super::rollout`].
//!
//! The conversation, in Qwen's chat template:
//!
//! ```text
//! <|im_start|>system\n{the dialect's instruction and tools block}<|im_end|>\n
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
//! GRPO/ViRL update of the VLM needs ([`super::QwenVl::sequence_logprobs`]
//! re-evaluates them).

use crate::geometry::BBox;
use serde::{Deserialize, Serialize};

pub use crate::score::text::{TurnOutcome, read_turn};

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
    /// Replaces the dialect's system prompt (`dialect::prompts`).
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
