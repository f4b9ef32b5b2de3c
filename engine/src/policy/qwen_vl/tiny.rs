//! Writes a small Qwen3-VL or Qwen2.5-VL checkpoint with random weights:
//! the real tensor names and shapes (as transformers saves
//! `Qwen3VLForConditionalGeneration`; Qwen2.5-VL's in [`super::tiny25`]),
//! a real `config.json`, `preprocessor_config.json` and a byte-level BPE
//! `tokenizer.json` with the chat template's special tokens. Tests and
//! benchmarks use it where no real checkpoint can be downloaded; transformers
//! loads the same folder (`bench/qwen3vl_reference.py`).

use super::config::Arch;
use crate::rng::SplitMix64;
use candle_core::{Device, Tensor};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

/// The shapes of a generated checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct TinySpec {
    /// The network.
    pub arch: Arch,
    /// Vocabulary rows (at least the byte tokens and the special tokens).
    pub vocab_size: usize,
    /// Text width.
    pub hidden_size: usize,
    /// Text MLP width.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Head width.
    pub head_dim: usize,
    /// M-RoPE section (sums to `head_dim / 2`).
    pub mrope_section: [usize; 3],
    /// Vision blocks.
    pub vision_depth: usize,
    /// Vision width.
    pub vision_hidden: usize,
    /// Vision MLP width.
    pub vision_intermediate: usize,
    /// Vision heads.
    pub vision_heads: usize,
    /// Learned vision position grid (a square).
    pub num_position_embeddings: usize,
    /// Vision blocks feeding DeepStack.
    pub deepstack: Vec<usize>,
    /// Tie `lm_head` to the embeddings.
    pub tie_word_embeddings: bool,
    /// Attention window side in pixels (Qwen2.5-VL).
    pub window_size: usize,
    /// Vision blocks attending to the whole image (Qwen2.5-VL).
    pub fullatt: Vec<usize>,
}

impl TinySpec {
    /// A model small enough for unit tests (well under 1 MB of weights).
    pub fn tiny() -> Self {
        Self {
            vocab_size: 320,
            hidden_size: 64,
            intermediate_size: 128,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            head_dim: 16,
            mrope_section: [2, 3, 3],
            vision_depth: 2,
            vision_hidden: 32,
            vision_intermediate: 64,
            vision_heads: 2,
            num_position_embeddings: 64,
            deepstack: vec![0],
            tie_word_embeddings: true,
            arch: Arch::Qwen3Vl,
            window_size: 0,
            fullatt: Vec::new(),
        }
    }

    /// The shapes of Qwen3-VL-2B-Instruct (random weights; about 2.1 B
    /// parameters, 8.5 GB in f32): for speed measurements only.
    pub fn qwen3_vl_2b() -> Self {
        Self {
            vocab_size: 151_936,
            hidden_size: 2048,
            intermediate_size: 6144,
            layers: 28,
            heads: 16,
            kv_heads: 8,
            head_dim: 128,
            mrope_section: [24, 20, 20],
            vision_depth: 24,
            vision_hidden: 1024,
            vision_intermediate: 4096,
            vision_heads: 16,
            num_position_embeddings: 2304,
            deepstack: vec![5, 11, 17],
            tie_word_embeddings: true,
            arch: Arch::Qwen3Vl,
            window_size: 0,
            fullatt: Vec::new(),
        }
    }

    /// A preset by name: `tiny` or `2b` (Qwen3-VL), `qwen2.5-tiny`,
    /// `qwen2.5-3b` or `qwen2.5-7b`.
    pub fn preset(name: &str) -> Result<Self, String> {
        match name {
            "tiny" | "qwen3-tiny" => Ok(Self::tiny()),
            "2b" | "qwen3-vl-2b" | "qwen3-2b" => Ok(Self::qwen3_vl_2b()),
            "qwen2.5-tiny" => Ok(super::tiny25::tiny()),
            "qwen2.5-3b" => Ok(super::tiny25::qwen25_vl_3b()),
            "qwen2.5-7b" => Ok(super::tiny25::qwen25_vl_7b()),
            o => Err(format!(
                "unknown preset `{o}` (expected tiny, 2b, qwen2.5-tiny, qwen2.5-3b or qwen2.5-7b)"
            )),
        }
    }

    /// Whether the preset is small enough to store in f32 by default.
    pub fn is_small(&self) -> bool {
        self.hidden_size <= 256
    }
}

/// The special tokens of the generated tokenizer, from id 256 on (the byte
/// tokens take 0–255).
pub const TINY_SPECIALS: [(&str, bool); 13] = [
    ("<|endoftext|>", true),
    ("<|im_start|>", true),
    ("<|im_end|>", true),
    ("<|vision_start|>", true),
    ("<|vision_end|>", true),
    ("<|image_pad|>", true),
    ("<|video_pad|>", true),
    ("<tool_call>", false),
    ("</tool_call>", false),
    ("<think>", false),
    ("</think>", false),
    ("<tool_response>", false),
    ("</tool_response>", false),
];

/// GPT-2's byte-to-character map used by byte-level BPE.
fn byte_chars() -> Vec<char> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut out = vec![' '; 256];
    for (b, c) in bs.iter().zip(cs) {
        out[*b as usize] = char::from_u32(c).unwrap_or(' ');
    }
    out
}

/// A byte-level BPE tokenizer (one token per byte, no merges) with the chat
/// template's special tokens, as `tokenizer.json` text.
pub fn tiny_tokenizer_json() -> String {
    let chars = byte_chars();
    let vocab: serde_json::Map<String, serde_json::Value> = chars
        .iter()
        .enumerate()
        .map(|(i, c)| (c.to_string(), json!(i)))
        .collect();
    let added: Vec<serde_json::Value> = TINY_SPECIALS
        .iter()
        .enumerate()
        .map(|(i, (t, special))| {
            json!({"id": 256 + i, "content": t, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": special})
        })
        .collect();
    let v = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": []}
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

pub(super) fn special_id(t: &str) -> u32 {
    256 + TINY_SPECIALS.iter().position(|(s, _)| *s == t).unwrap_or(0) as u32
}

/// `config.json` of a spec: Qwen3-VL's in the layout transformers 4.57
/// writes, Qwen2.5-VL's as [`super::tiny25::config_json`].
pub fn config_json(s: &TinySpec) -> serde_json::Value {
    if s.arch == Arch::Qwen25Vl {
        return super::tiny25::config_json(s);
    }
    json!({
        "architectures": ["Qwen3VLForConditionalGeneration"],
        "model_type": "qwen3_vl",
        "image_token_id": special_id("<|image_pad|>"),
        "video_token_id": special_id("<|video_pad|>"),
        "vision_start_token_id": special_id("<|vision_start|>"),
        "vision_end_token_id": special_id("<|vision_end|>"),
        "tie_word_embeddings": s.tie_word_embeddings,
        "text_config": {
            "model_type": "qwen3_vl_text",
            "attention_bias": false,
            "attention_dropout": 0.0,
            "bos_token_id": special_id("<|endoftext|>"),
            "eos_token_id": special_id("<|im_end|>"),
            "head_dim": s.head_dim,
            "hidden_act": "silu",
            "hidden_size": s.hidden_size,
            "initializer_range": 0.02,
            "intermediate_size": s.intermediate_size,
            "max_position_embeddings": 262144,
            "num_attention_heads": s.heads,
            "num_hidden_layers": s.layers,
            "num_key_value_heads": s.kv_heads,
            "rms_norm_eps": 1e-6,
            "rope_scaling": {"mrope_interleaved": true, "mrope_section": s.mrope_section, "rope_type": "default"},
            "rope_theta": 5000000.0,
            "tie_word_embeddings": s.tie_word_embeddings,
            "use_cache": true,
            "vocab_size": s.vocab_size
        },
        "vision_config": {
            "model_type": "qwen3_vl",
            "deepstack_visual_indexes": s.deepstack,
            "depth": s.vision_depth,
            "hidden_act": "gelu_pytorch_tanh",
            "hidden_size": s.vision_hidden,
            "in_channels": 3,
            "initializer_range": 0.02,
            "intermediate_size": s.vision_intermediate,
            "num_heads": s.vision_heads,
            "num_position_embeddings": s.num_position_embeddings,
            "out_hidden_size": s.hidden_size,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2
        }
    })
}

/// Every tensor name and shape of a spec's checkpoint.
pub fn tensor_shapes(s: &TinySpec) -> Vec<(String, Vec<usize>)> {
    if s.arch == Arch::Qwen25Vl {
        return super::tiny25::tensor_shapes(s);
    }
    let mut v: Vec<(String, Vec<usize>)> = Vec::new();
    let mut add = |n: String, sh: &[usize]| v.push((n, sh.to_vec()));
    let (vh, vi) = (s.vision_hidden, s.vision_intermediate);
    let merged = vh * 4;
    add(
        "model.visual.patch_embed.proj.weight".into(),
        &[vh, 3, 2, 16, 16],
    );
    add("model.visual.patch_embed.proj.bias".into(), &[vh]);
    add(
        "model.visual.pos_embed.weight".into(),
        &[s.num_position_embeddings, vh],
    );
    for i in 0..s.vision_depth {
        let b = format!("model.visual.blocks.{i}");
        for n in ["norm1", "norm2"] {
            add(format!("{b}.{n}.weight"), &[vh]);
            add(format!("{b}.{n}.bias"), &[vh]);
        }
        add(format!("{b}.attn.qkv.weight"), &[3 * vh, vh]);
        add(format!("{b}.attn.qkv.bias"), &[3 * vh]);
        add(format!("{b}.attn.proj.weight"), &[vh, vh]);
        add(format!("{b}.attn.proj.bias"), &[vh]);
        add(format!("{b}.mlp.linear_fc1.weight"), &[vi, vh]);
        add(format!("{b}.mlp.linear_fc1.bias"), &[vi]);
        add(format!("{b}.mlp.linear_fc2.weight"), &[vh, vi]);
        add(format!("{b}.mlp.linear_fc2.bias"), &[vh]);
    }
    let mut merger = |p: String, norm: usize| {
        add(format!("{p}.norm.weight"), &[norm]);
        add(format!("{p}.norm.bias"), &[norm]);
        add(format!("{p}.linear_fc1.weight"), &[merged, merged]);
        add(format!("{p}.linear_fc1.bias"), &[merged]);
        add(format!("{p}.linear_fc2.weight"), &[s.hidden_size, merged]);
        add(format!("{p}.linear_fc2.bias"), &[s.hidden_size]);
    };
    merger("model.visual.merger".into(), vh);
    for i in 0..s.deepstack.len() {
        merger(format!("model.visual.deepstack_merger_list.{i}"), merged);
    }
    let (h, hd) = (s.hidden_size, s.head_dim);
    add(
        "model.language_model.embed_tokens.weight".into(),
        &[s.vocab_size, h],
    );
    for i in 0..s.layers {
        let l = format!("model.language_model.layers.{i}");
        add(format!("{l}.self_attn.q_proj.weight"), &[s.heads * hd, h]);
        add(
            format!("{l}.self_attn.k_proj.weight"),
            &[s.kv_heads * hd, h],
        );
        add(
            format!("{l}.self_attn.v_proj.weight"),
            &[s.kv_heads * hd, h],
        );
        add(format!("{l}.self_attn.o_proj.weight"), &[h, s.heads * hd]);
        add(format!("{l}.self_attn.q_norm.weight"), &[hd]);
        add(format!("{l}.self_attn.k_norm.weight"), &[hd]);
        add(
            format!("{l}.mlp.gate_proj.weight"),
            &[s.intermediate_size, h],
        );
        add(format!("{l}.mlp.up_proj.weight"), &[s.intermediate_size, h]);
        add(
            format!("{l}.mlp.down_proj.weight"),
            &[h, s.intermediate_size],
        );
        add(format!("{l}.input_layernorm.weight"), &[h]);
        add(format!("{l}.post_attention_layernorm.weight"), &[h]);
    }
    add("model.language_model.norm.weight".into(), &[h]);
    if !s.tie_word_embeddings {
        add("lm_head.weight".into(), &[s.vocab_size, h]);
    }
    v
}

/// Writes a checkpoint folder for `spec` with weights drawn from `seed`:
/// matrices ~ N(0, 1/fan_in), token embeddings ~ N(0, 0.25²), norms
/// 1 ± 0.1, biases ± 0.02: outputs far from uniform but not one-hot, so
/// sampling explores.
pub fn write_tiny_model(dir: &Path, spec: &TinySpec, seed: u64) -> Result<(), String> {
    write_model(dir, spec, seed, candle_core::DType::F32)
}

/// [`write_tiny_model`] with the weights stored in `dtype` (Qwen3-VL ships
/// bf16; the 2B shapes take 4.3 GB so).
pub fn write_model(
    dir: &Path,
    spec: &TinySpec,
    seed: u64,
    dtype: candle_core::DType,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut rng = SplitMix64::new(seed);
    let mut normal = move || {
        // Box–Muller.
        let u1 = rng.f64().max(1e-12);
        let u2 = rng.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, shape) in tensor_shapes(spec) {
        let n: usize = shape.iter().product();
        let is_norm = name.contains("norm") && name.ends_with(".weight");
        let fan_in = if shape.len() >= 2 {
            shape[1..].iter().product::<usize>()
        } else {
            1
        };
        let data: Vec<f32> = (0..n)
            .map(|_| {
                let z = normal();
                (if is_norm {
                    1.0 + 0.1 * z
                } else if name.ends_with(".bias") {
                    0.02 * z
                } else if name.contains("pos_embed") {
                    z
                } else if name.contains("embed") {
                    // Tied to lm_head: logits ~ N(0, (0.25·√hidden)²)
                    // after the final RMSNorm, spread but not one-hot.
                    0.25 * z
                } else {
                    z / (fan_in as f64).sqrt()
                }) as f32
            })
            .collect();
        let t = Tensor::from_vec(data, shape, &Device::Cpu)
            .and_then(|t| t.to_dtype(dtype))
            .map_err(|e| e.to_string())?;
        tensors.insert(name, t);
    }
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text)
            .map_err(|e| format!("{}: {e}", dir.join(name).display()))
    };
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))
        .map_err(|e| format!("{}: {e}", dir.join("model.safetensors").display()))?;
    write(
        "config.json",
        serde_json::to_string_pretty(&config_json(spec)).unwrap_or_default(),
    )?;
    let pre = match spec.arch {
        Arch::Qwen3Vl => json!({
            "image_processor_type": "Qwen2VLImageProcessorFast",
            "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2,
            "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
            "size": {"shortest_edge": 1024, "longest_edge": 16_777_216}
        }),
        Arch::Qwen25Vl => super::tiny25::preprocessor_json(),
    };
    write(
        "preprocessor_config.json",
        serde_json::to_string_pretty(&pre).unwrap_or_default(),
    )?;
    write("tokenizer.json", tiny_tokenizer_json())?;
    write(
        "tokenizer_config.json",
        serde_json::to_string_pretty(&json!({
            "tokenizer_class": "Qwen2TokenizerFast",
            "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
            "model_max_length": 262144
        }))
        .unwrap_or_default(),
    )?;
    Ok(())
}
