//! A real vision-language policy: Qwen3-VL run with candle, as a
//! multi-turn zoom agent (DeepEyes / ViRL protocol).
//!
//! - [`config`], [`image`], [`tokenizer`]: a local checkpoint folder as
//!   Hugging Face writes it (`config.json`, `*.safetensors` sharded or not,
//!   `tokenizer.json`, `preprocessor_config.json`); nothing is downloaded.
//! - [`vision`], [`text`], [`model`]: the network, written after
//!   transformers' `modeling_qwen3_vl.py`. candle-transformers 0.11 has a
//!   `qwen3_vl` module, but it cannot serve here: it applies plain 1-D RoPE
//!   where Qwen3-VL uses interleaved multimodal RoPE (so image tokens get
//!   the wrong positions), it builds the causal mask only for one-token
//!   steps (a multi-token prefill attends to the future), its patch merger
//!   uses tanh-GELU where the reference uses erf-GELU, it reads
//!   `in_chans` where checkpoints write `in_channels`, it returns the last
//!   position's logits only (RL needs every response token's), and its KV
//!   cache can be neither reset nor forked. `bench/qwen3vl_reference.py`
//!   checks this implementation against transformers (RESULTS.md §6).
//! - The zoom protocol (system prompt with the `image_zoom_in_tool`,
//!   `<think>`, `<tool_call>`, `<answer>`, crops appended as new user turns
//!   on the KV cache, error turns for malformed calls): [`protocol`] (knobs,
//!   prompts, probes), [`conversation`] (one conversation's turns, read into
//!   the [`Trajectory`](crate::trajectory::Trajectory) record),
//!   [`transcript`] (the record plus the token sequence), [`sampling`]
//!   (temperature / top-p / seed, greedy), [`rollout`] (a group in lockstep,
//!   and the [`rollout::VlmPolicy`] trait).
//! - [`tiny`]: writes a small random Qwen3-VL with the real tensor names,
//!   config and a byte-level tokenizer, for tests, demos and benchmarks.

pub mod config;
pub mod conversation;
pub mod image;
pub mod linear;
pub mod model;
pub mod protocol;
pub mod reference;
pub mod rollout;
pub mod sampling;
pub mod text;
pub mod tiny;
pub mod tiny25;
pub mod tokenizer;
pub mod transcript;
pub mod vision;
pub mod vision25;

pub use config::{Arch, QwenVlConfig};
pub use image::{ImageProcessorConfig, PreparedImage};
pub use model::{LogitsOf, Piece, Precision, QwenVl};
pub use text::KvCache;

use std::path::PathBuf;

/// What can go wrong loading or running a Qwen3-VL checkpoint. Every
/// variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum QwenError {
    /// A file or folder the checkpoint needs is not there.
    #[error("{file}: missing ({what})")]
    Missing {
        /// The path looked for.
        file: PathBuf,
        /// What it should hold.
        what: String,
    },
    /// A file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A configuration file is malformed or describes an unsupported model.
    #[error("{file}: {problem}")]
    Config {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The tokenizer is unreadable or does not match the model.
    #[error("{file}: {problem}")]
    Tokenizer {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A weight is missing or has the wrong shape.
    #[error("{file}: {problem}")]
    Weights {
        /// The weights file (the first shard's name for sharded ones).
        file: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Running the model failed.
    #[error("running the model: {0}")]
    Run(String),
}

impl From<candle_core::Error> for QwenError {
    fn from(e: candle_core::Error) -> Self {
        Self::Run(e.to_string())
    }
}
