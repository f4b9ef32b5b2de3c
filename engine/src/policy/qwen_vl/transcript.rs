//! A VLM rollout as the model saw it: the [`Trajectory`] record plus its
//! token sequence (text runs and images), the generated tokens with their
//! log-probabilities and positions, and its prefill / decode speed.

use super::image::PreparedImage;
use crate::trajectory::Trajectory;

/// A piece of a transcript's token sequence.
#[derive(Clone, Debug, PartialEq)]
pub enum SeqPiece {
    /// Token ids.
    Text(Vec<u32>),
    /// The `k`-th image of the transcript.
    Image(usize),
}

/// One rollout: the policy-agnostic [`Trajectory`] record (actions with
/// their turn and log-probability, answer, format errors, truncation, the
/// transcript of turns) and what only a token model has: its token
/// sequence, images, generated tokens and speed.
#[derive(Clone, Debug)]
pub struct VlmTrajectory {
    /// The record every other part of the engine and the studio reads.
    pub record: Trajectory,
    /// The whole sequence: text runs and images.
    pub pieces: Vec<SeqPiece>,
    /// The images of the sequence (the full image, then each crop).
    pub images: Vec<PreparedImage>,
    /// Generated tokens in order, with their log-probability under the
    /// sampling distribution (temperature applied, before top-p).
    pub generated: Vec<(u32, f32)>,
    /// Where each generated token sits in the sequence.
    pub gen_positions: Vec<usize>,
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
