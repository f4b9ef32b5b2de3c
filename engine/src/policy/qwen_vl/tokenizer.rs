//! `tokenizer.json` (the `tokenizers` crate) and the chat template's
//! special tokens.

use super::QwenError;
use super::config::QwenVlConfig;
use std::path::Path;
use tokenizers::Tokenizer;

/// The tokenizer with the ids of the chat template's special tokens.
pub struct ChatTokenizer {
    inner: Tokenizer,
    /// `<|im_start|>`.
    pub im_start: u32,
    /// `<|im_end|>`: the end of a turn (generation stops here).
    pub im_end: u32,
    /// `<|vision_start|>`.
    pub vision_start: u32,
    /// `<|vision_end|>`.
    pub vision_end: u32,
    /// `<|image_pad|>`.
    pub image_pad: u32,
    /// `<|endoftext|>`, if the vocabulary has it (also stops generation).
    pub end_of_text: Option<u32>,
}

/// The special tokens the chat template needs.
pub const SPECIAL_TOKENS: [&str; 5] = [
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
];

impl ChatTokenizer {
    /// Reads `tokenizer.json`.
    pub fn from_file(file: &Path) -> Result<Self, QwenError> {
        let inner = Tokenizer::from_file(file).map_err(|e| QwenError::Tokenizer {
            file: file.to_path_buf(),
            problem: e.to_string(),
        })?;
        let id = |t: &str| -> Result<u32, QwenError> {
            inner.token_to_id(t).ok_or_else(|| QwenError::Tokenizer {
                file: file.to_path_buf(),
                problem: format!("the chat template's special token {t} is not in the vocabulary"),
            })
        };
        Ok(Self {
            im_start: id(SPECIAL_TOKENS[0])?,
            im_end: id(SPECIAL_TOKENS[1])?,
            vision_start: id(SPECIAL_TOKENS[2])?,
            vision_end: id(SPECIAL_TOKENS[3])?,
            image_pad: id(SPECIAL_TOKENS[4])?,
            end_of_text: inner.token_to_id("<|endoftext|>"),
            inner,
        })
    }

    /// Checks the special ids agree with `config.json`.
    pub fn check_ids(&self, cfg: &QwenVlConfig, file: &Path) -> Result<(), QwenError> {
        for (name, tok, conf) in [
            ("<|image_pad|>", self.image_pad, cfg.image_token_id),
            (
                "<|vision_start|>",
                self.vision_start,
                cfg.vision_start_token_id,
            ),
            ("<|vision_end|>", self.vision_end, cfg.vision_end_token_id),
        ] {
            if tok != conf {
                return Err(QwenError::Tokenizer {
                    file: file.to_path_buf(),
                    problem: format!(
                        "{name} is id {tok} here but {conf} in config.json: the tokenizer does not belong to this model"
                    ),
                });
            }
        }
        let top = [
            self.im_start,
            self.im_end,
            self.vision_start,
            self.vision_end,
            self.image_pad,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        if top as usize >= cfg.text.vocab_size {
            return Err(QwenError::Tokenizer {
                file: file.to_path_buf(),
                problem: format!(
                    "special token id {top} is outside the model's vocabulary of {}",
                    cfg.text.vocab_size
                ),
            });
        }
        Ok(())
    }

    /// Token ids of `text`; special tokens written in it are recognised.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        self.inner
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| format!("tokenizing failed: {e}"))
    }

    /// The text of `ids`, special tokens included.
    pub fn decode(&self, ids: &[u32]) -> Result<String, String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| format!("detokenizing failed: {e}"))
    }

    /// Whether `id` ends an assistant turn.
    pub fn is_stop(&self, id: u32) -> bool {
        id == self.im_end || Some(id) == self.end_of_text
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}
