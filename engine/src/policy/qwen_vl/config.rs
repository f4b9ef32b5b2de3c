//! `config.json` of a Qwen3-VL or Qwen2.5-VL checkpoint, in every layout
//! Hugging Face transformers has written: Qwen2.5-VL's flat layout of the
//! Hub (transformers 4.49: text keys at the top, `rope_scaling: {"type":
//! "mrope", …}`), `text_config` nested (4.53 and later), and the rope
//! settings in `rope_parameters` (5.x). `model_type` picks the network
//! ([`Arch`]).

use super::QwenError;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

/// The text decoder's settings (`text_config`).
#[derive(Clone, Debug, PartialEq)]
pub struct TextConfig {
    /// Vocabulary size (rows of `embed_tokens`).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention).
    pub num_key_value_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// M-RoPE split of the `head_dim / 2` frequencies over (t, h, w).
    pub mrope_section: [usize; 3],
    /// Whether the frequencies are interleaved (Qwen3-VL) or chunked.
    pub mrope_interleaved: bool,
    /// Longest sequence the model was trained for.
    pub max_position_embeddings: usize,
    /// Whether `lm_head` is `embed_tokens` transposed.
    pub tie_word_embeddings: bool,
    /// Bias on the q/k/v projections (Qwen2.5-VL: always).
    pub qkv_bias: bool,
    /// Bias on the output projection.
    pub o_bias: bool,
    /// RMSNorm on q and k per head (Qwen3).
    pub qk_norm: bool,
}

/// Which network a checkpoint is, from `config.json`'s `model_type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Arch {
    /// `qwen3_vl`: patch 16, learned position grid, DeepStack, interleaved
    /// M-RoPE, q/k norm.
    #[default]
    Qwen3Vl,
    /// `qwen2_5_vl`: patch 14, windowed vision attention with RMSNorm and a
    /// SwiGLU MLP, Qwen2 decoder (q/k/v bias), contiguous M-RoPE.
    Qwen25Vl,
}

impl Arch {
    /// The `model_type` string.
    pub fn model_type(self) -> &'static str {
        match self {
            Self::Qwen3Vl => "qwen3_vl",
            Self::Qwen25Vl => "qwen2_5_vl",
        }
    }

    /// The family's name as people write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Qwen3Vl => "Qwen3-VL",
            Self::Qwen25Vl => "Qwen2.5-VL",
        }
    }
}

/// The vision tower's settings (`vision_config`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct VisionConfig {
    /// Vision transformer blocks.
    pub depth: usize,
    /// Width of the vision transformer.
    pub hidden_size: usize,
    /// Width of the vision MLP.
    pub intermediate_size: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Input channels.
    #[serde(default = "three")]
    pub in_channels: usize,
    /// Side of one patch in pixels.
    pub patch_size: usize,
    /// Patches merged per side into one language-model token.
    pub spatial_merge_size: usize,
    /// Frames per temporal patch (an image is repeated this many times).
    pub temporal_patch_size: usize,
    /// Width of the merged tokens (= the text `hidden_size`).
    pub out_hidden_size: usize,
    /// Learned position embeddings (a square grid, interpolated; Qwen3-VL).
    #[serde(default)]
    pub num_position_embeddings: usize,
    /// Side of one attention window in pixels (Qwen2.5-VL; 0: none).
    #[serde(default)]
    pub window_size: usize,
    /// Blocks that attend to the whole image instead of windows (Qwen2.5-VL).
    #[serde(default)]
    pub fullatt_block_indexes: Vec<usize>,
    /// Vision blocks whose outputs are added to the first decoder layers.
    #[serde(default)]
    pub deepstack_visual_indexes: Vec<usize>,
    /// Activation of the vision MLP (`gelu_pytorch_tanh` for Qwen3-VL).
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn three() -> usize {
    3
}
fn default_act() -> String {
    "gelu_pytorch_tanh".into()
}

/// The whole `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct QwenVlConfig {
    /// The network.
    pub arch: Arch,
    /// Decoder settings.
    pub text: TextConfig,
    /// Vision tower settings.
    pub vision: VisionConfig,
    /// `<|image_pad|>`.
    pub image_token_id: u32,
    /// `<|vision_start|>`.
    pub vision_start_token_id: u32,
    /// `<|vision_end|>`.
    pub vision_end_token_id: u32,
}

fn get<'v>(v: &'v Value, key: &str, file: &Path) -> Result<&'v Value, QwenError> {
    v.get(key).ok_or_else(|| QwenError::Config {
        file: file.to_path_buf(),
        problem: format!("missing key `{key}`"),
    })
}

fn uint(v: &Value, key: &str, file: &Path) -> Result<usize, QwenError> {
    get(v, key, file)?
        .as_u64()
        .map(|x| x as usize)
        .ok_or_else(|| QwenError::Config {
            file: file.to_path_buf(),
            problem: format!("`{key}` must be a non-negative integer"),
        })
}

fn float(v: &Value, key: &str, file: &Path) -> Result<f64, QwenError> {
    get(v, key, file)?
        .as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| QwenError::Config {
            file: file.to_path_buf(),
            problem: format!("`{key}` must be a finite number"),
        })
}

impl QwenVlConfig {
    /// Reads and checks `config.json`.
    pub fn from_file(file: &Path) -> Result<Self, QwenError> {
        let text = std::fs::read_to_string(file).map_err(|e| QwenError::Io {
            file: file.to_path_buf(),
            source: e,
        })?;
        Self::parse(&text, file)
    }

    /// Parses `config.json` text; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Self, QwenError> {
        let bad = |problem: String| QwenError::Config {
            file: file.to_path_buf(),
            problem,
        };
        let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let arch = match v.get("model_type").and_then(Value::as_str) {
            Some("qwen3_vl") | None => Arch::Qwen3Vl,
            Some("qwen2_5_vl") => Arch::Qwen25Vl,
            Some(mt) => {
                return Err(bad(format!(
                    "model_type is `{mt}`; this loader reads Qwen3-VL (`qwen3_vl`) and Qwen2.5-VL (`qwen2_5_vl`) checkpoints"
                )));
            }
        };
        let q25 = arch == Arch::Qwen25Vl;
        // Qwen2.5-VL on the Hub keeps the text keys at the top level.
        let t = match v.get("text_config").filter(|t| t.is_object()) {
            Some(t) => t,
            None if q25 => &v,
            None => get(&v, "text_config", file)?,
        };
        let vis = get(&v, "vision_config", file)?;
        // transformers 4.x writes `rope_scaling` + `rope_theta`; 5.x writes
        // `rope_parameters` holding both.
        let rope = t
            .get("rope_parameters")
            .filter(|r| r.is_object())
            .or_else(|| t.get("rope_scaling").filter(|r| r.is_object()))
            .or_else(|| v.get("rope_scaling").filter(|r| r.is_object()));
        let rope_theta = match t.get("rope_theta").filter(|x| !x.is_null()) {
            Some(x) => x.as_f64(),
            None => rope
                .and_then(|r| r.get("rope_theta"))
                .and_then(Value::as_f64),
        }
        .filter(|x| x.is_finite() && *x > 0.0)
        .ok_or_else(|| {
            bad("no positive `rope_theta` in the text config or its rope_parameters".into())
        })?;
        // `mrope` is how transformers 4.49 spelled Qwen2.5-VL's default rope.
        for key in ["rope_type", "type"] {
            if let Some(rt) = rope.and_then(|r| r.get(key)).and_then(Value::as_str)
                && rt != "default"
                && rt != "mrope"
            {
                return Err(bad(format!(
                    "rope type `{rt}` is not supported (only `default`)"
                )));
            }
        }
        let section: Vec<usize> = match rope.and_then(|r| r.get("mrope_section")) {
            Some(s) => serde_json::from_value(s.clone())
                .map_err(|_| bad("mrope_section must be three integers".into()))?,
            None if q25 => vec![16, 24, 24],
            None => vec![24, 20, 20],
        };
        let mrope_section: [usize; 3] = section
            .try_into()
            .map_err(|_| bad("mrope_section must be three integers".into()))?;
        let mrope_interleaved = rope
            .and_then(|r| r.get("mrope_interleaved"))
            .and_then(Value::as_bool)
            .unwrap_or(!q25);
        let hidden_size = uint(t, "hidden_size", file)?;
        let num_attention_heads = uint(t, "num_attention_heads", file)?;
        let head_dim = match t.get("head_dim") {
            Some(_) => uint(t, "head_dim", file)?,
            None => hidden_size / num_attention_heads.max(1),
        };
        let attention_bias = t
            .get("attention_bias")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let tie = t
            .get("tie_word_embeddings")
            .or_else(|| v.get("tie_word_embeddings"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let text = TextConfig {
            vocab_size: uint(t, "vocab_size", file)?,
            hidden_size,
            intermediate_size: uint(t, "intermediate_size", file)?,
            num_hidden_layers: uint(t, "num_hidden_layers", file)?,
            num_attention_heads,
            num_key_value_heads: uint(t, "num_key_value_heads", file)?,
            head_dim,
            rms_norm_eps: float(t, "rms_norm_eps", file)?,
            rope_theta,
            mrope_section,
            mrope_interleaved,
            max_position_embeddings: uint(t, "max_position_embeddings", file)?,
            tie_word_embeddings: tie,
            qkv_bias: q25 || attention_bias,
            o_bias: attention_bias,
            qk_norm: !q25,
        };
        if let Some(act) = t.get("hidden_act").and_then(Value::as_str)
            && act != "silu"
        {
            return Err(bad(format!(
                "text hidden_act `{act}` is not supported (Qwen-VL uses silu)"
            )));
        }
        // The Hub's Qwen2.5-VL writes both `in_chans` and `in_channels`.
        let mut vis = vis.clone();
        if let Some(o) = vis.as_object_mut()
            && let Some(c) = o.remove("in_chans")
        {
            o.entry("in_channels").or_insert(c);
        }
        let vision: VisionConfig =
            serde_json::from_value(vis).map_err(|e| bad(format!("vision_config: {e}")))?;
        let id = |k: &str| -> Result<u32, QwenError> { Ok(uint(&v, k, file)? as u32) };
        let cfg = Self {
            arch,
            text,
            vision,
            image_token_id: id("image_token_id")?,
            vision_start_token_id: id("vision_start_token_id")?,
            vision_end_token_id: id("vision_end_token_id")?,
        };
        cfg.validate().map_err(bad)?;
        Ok(cfg)
    }

    /// Shape checks the model relies on.
    pub fn validate(&self) -> Result<(), String> {
        let t = &self.text;
        let v = &self.vision;
        if t.num_attention_heads == 0 || t.num_key_value_heads == 0 || t.head_dim == 0 {
            return Err("attention heads and head_dim must be positive".into());
        }
        if !t.num_attention_heads.is_multiple_of(t.num_key_value_heads) {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                t.num_attention_heads, t.num_key_value_heads
            ));
        }
        if !t.head_dim.is_multiple_of(2) {
            return Err(format!("head_dim {} must be even", t.head_dim));
        }
        let s: usize = t.mrope_section.iter().sum();
        if s != t.head_dim / 2 {
            return Err(format!(
                "mrope_section {:?} sums to {s}, but head_dim / 2 is {}",
                t.mrope_section,
                t.head_dim / 2
            ));
        }
        if t.mrope_interleaved
            && (t.mrope_section[1] * 3 > t.head_dim / 2 + 1
                || t.mrope_section[2] * 3 > t.head_dim / 2 + 2)
        {
            return Err(format!(
                "interleaved mrope_section {:?} does not fit head_dim {}",
                t.mrope_section, t.head_dim
            ));
        }
        if v.num_heads == 0 || !v.hidden_size.is_multiple_of(v.num_heads) {
            return Err(format!(
                "vision hidden_size {} is not a multiple of num_heads {}",
                v.hidden_size, v.num_heads
            ));
        }
        if !(v.hidden_size / v.num_heads).is_multiple_of(4) {
            return Err("vision head width must be a multiple of 4 (2-D rotary)".into());
        }
        if v.out_hidden_size != t.hidden_size {
            return Err(format!(
                "vision out_hidden_size {} differs from text hidden_size {}",
                v.out_hidden_size, t.hidden_size
            ));
        }
        let unit = v.patch_size * v.spatial_merge_size;
        if self.arch == Arch::Qwen25Vl {
            if v.window_size == 0 || unit == 0 || !v.window_size.is_multiple_of(unit) {
                return Err(format!(
                    "vision window_size {} must be a positive multiple of patch_size x spatial_merge_size = {unit}",
                    v.window_size
                ));
            }
            if let Some(i) = v.fullatt_block_indexes.iter().find(|&&i| i >= v.depth) {
                return Err(format!(
                    "fullatt_block_indexes holds {i}, past the {} vision blocks",
                    v.depth
                ));
            }
            if !v.deepstack_visual_indexes.is_empty() {
                return Err("Qwen2.5-VL has no deepstack_visual_indexes".into());
            }
        }
        let side = (v.num_position_embeddings as f64).sqrt().round() as usize;
        if self.arch == Arch::Qwen3Vl && (side * side != v.num_position_embeddings || side < 2) {
            return Err(format!(
                "vision num_position_embeddings {} is not a square grid",
                v.num_position_embeddings
            ));
        }
        if v.patch_size == 0 || v.spatial_merge_size == 0 || v.temporal_patch_size == 0 {
            return Err(
                "patch_size, spatial_merge_size and temporal_patch_size must be positive".into(),
            );
        }
        if !["gelu_pytorch_tanh", "gelu", "silu", "quick_gelu"].contains(&v.hidden_act.as_str()) {
            return Err(format!(
                "vision hidden_act `{}` is not supported",
                v.hidden_act
            ));
        }
        if v.deepstack_visual_indexes.iter().any(|&i| i >= v.depth) {
            return Err(format!(
                "deepstack_visual_indexes {:?} point past the {} vision blocks",
                v.deepstack_visual_indexes, v.depth
            ));
        }
        if v.deepstack_visual_indexes.len() > t.num_hidden_layers {
            return Err("more deepstack layers than decoder layers".into());
        }
        Ok(())
    }
}
