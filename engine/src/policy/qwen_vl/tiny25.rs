//! Random Qwen2.5-VL checkpoints (`virl vlm init --preset qwen2.5-tiny |
//! qwen2.5-3b | qwen2.5-7b`): the config in the nested layout transformers
//! 5 writes, the tensor names as `save_pretrained` writes them (the Hub's
//! legacy `visual.*` and `model.layers.*`), and Qwen2.5-VL's
//! `preprocessor_config.json`. transformers 5.10.4 loads these folders with
//! no missing or unexpected keys (`bench/qwen25vl_reference.py`, tested).

use super::config::Arch;
use super::tiny::{TinySpec, special_id};
use serde_json::json;

/// A Qwen2.5-VL small enough for unit tests: three vision blocks (the
/// middle one attends to whole images, the others to 112-pixel windows)
/// and an untied `lm_head`, as the 7B.
pub fn tiny() -> TinySpec {
    TinySpec {
        arch: Arch::Qwen25Vl,
        vocab_size: 320,
        hidden_size: 64,
        intermediate_size: 128,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        head_dim: 16,
        mrope_section: [2, 3, 3],
        vision_depth: 3,
        vision_hidden: 32,
        vision_intermediate: 64,
        vision_heads: 2,
        num_position_embeddings: 0,
        deepstack: Vec::new(),
        tie_word_embeddings: false,
        window_size: 112,
        fullatt: vec![1],
    }
}

fn vision_7b(hidden: usize) -> TinySpec {
    TinySpec {
        vision_depth: 32,
        vision_hidden: 1280,
        vision_intermediate: 3420,
        vision_heads: 16,
        fullatt: vec![7, 15, 23, 31],
        hidden_size: hidden,
        head_dim: 128,
        mrope_section: [16, 24, 24],
        ..tiny()
    }
}

/// The shapes of Qwen2.5-VL-3B-Instruct (tied `lm_head`).
pub fn qwen25_vl_3b() -> TinySpec {
    TinySpec {
        vocab_size: 151_936,
        intermediate_size: 11_008,
        layers: 36,
        heads: 16,
        kv_heads: 2,
        tie_word_embeddings: true,
        ..vision_7b(2048)
    }
}

/// The shapes of Qwen2.5-VL-7B-Instruct, the base of DeepEyes, Mini-o3,
/// Chain-of-Focus and Pixel-Reasoner (untied `lm_head`).
pub fn qwen25_vl_7b() -> TinySpec {
    TinySpec {
        vocab_size: 152_064,
        intermediate_size: 18_944,
        layers: 28,
        heads: 28,
        kv_heads: 4,
        tie_word_embeddings: false,
        ..vision_7b(3584)
    }
}

/// `config.json` in the layout transformers 5 writes.
pub fn config_json(s: &TinySpec) -> serde_json::Value {
    json!({
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "model_type": "qwen2_5_vl",
        "image_token_id": special_id("<|image_pad|>"),
        "video_token_id": special_id("<|video_pad|>"),
        "vision_start_token_id": special_id("<|vision_start|>"),
        "vision_end_token_id": special_id("<|vision_end|>"),
        "tie_word_embeddings": s.tie_word_embeddings,
        "text_config": {
            "model_type": "qwen2_5_vl_text",
            "attention_dropout": 0.0,
            "bos_token_id": special_id("<|endoftext|>"),
            "eos_token_id": special_id("<|im_end|>"),
            "hidden_act": "silu",
            "hidden_size": s.hidden_size,
            "initializer_range": 0.02,
            "intermediate_size": s.intermediate_size,
            "max_position_embeddings": 128000,
            "num_attention_heads": s.heads,
            "num_hidden_layers": s.layers,
            "num_key_value_heads": s.kv_heads,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": s.mrope_section},
            "tie_word_embeddings": s.tie_word_embeddings,
            "use_cache": true,
            "vocab_size": s.vocab_size
        },
        "vision_config": {
            "model_type": "qwen2_5_vl_vision",
            "depth": s.vision_depth,
            "fullatt_block_indexes": s.fullatt,
            "hidden_act": "silu",
            "hidden_size": s.vision_hidden,
            "in_channels": 3,
            "initializer_range": 0.02,
            "intermediate_size": s.vision_intermediate,
            "num_heads": s.vision_heads,
            "out_hidden_size": s.hidden_size,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "tokens_per_second": 2,
            "window_size": s.window_size
        }
    })
}

/// Qwen2.5-VL's published `preprocessor_config.json`.
pub fn preprocessor_json() -> serde_json::Value {
    json!({
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2_5_VLProcessor",
        "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
        "min_pixels": 3136, "max_pixels": 12_845_056,
        "size": {"shortest_edge": 3136, "longest_edge": 12_845_056},
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711]
    })
}

/// Every tensor name and shape of a Qwen2.5-VL spec's checkpoint.
pub fn tensor_shapes(s: &TinySpec) -> Vec<(String, Vec<usize>)> {
    let mut v: Vec<(String, Vec<usize>)> = Vec::new();
    let mut add = |n: String, sh: &[usize]| v.push((n, sh.to_vec()));
    let (vh, vi) = (s.vision_hidden, s.vision_intermediate);
    add("visual.patch_embed.proj.weight".into(), &[vh, 3, 2, 14, 14]);
    for i in 0..s.vision_depth {
        let b = format!("visual.blocks.{i}");
        add(format!("{b}.norm1.weight"), &[vh]);
        add(format!("{b}.norm2.weight"), &[vh]);
        add(format!("{b}.attn.qkv.weight"), &[3 * vh, vh]);
        add(format!("{b}.attn.qkv.bias"), &[3 * vh]);
        add(format!("{b}.attn.proj.weight"), &[vh, vh]);
        add(format!("{b}.attn.proj.bias"), &[vh]);
        for (n, o, i) in [
            ("gate_proj", vi, vh),
            ("up_proj", vi, vh),
            ("down_proj", vh, vi),
        ] {
            add(format!("{b}.mlp.{n}.weight"), &[o, i]);
            add(format!("{b}.mlp.{n}.bias"), &[o]);
        }
    }
    let merged = vh * 4;
    add("visual.merger.ln_q.weight".into(), &[vh]);
    add("visual.merger.mlp.0.weight".into(), &[merged, merged]);
    add("visual.merger.mlp.0.bias".into(), &[merged]);
    add(
        "visual.merger.mlp.2.weight".into(),
        &[s.hidden_size, merged],
    );
    add("visual.merger.mlp.2.bias".into(), &[s.hidden_size]);
    let (h, hd, inter) = (s.hidden_size, s.head_dim, s.intermediate_size);
    add("model.embed_tokens.weight".into(), &[s.vocab_size, h]);
    for i in 0..s.layers {
        let l = format!("model.layers.{i}");
        for (n, o) in [
            ("q_proj", s.heads * hd),
            ("k_proj", s.kv_heads * hd),
            ("v_proj", s.kv_heads * hd),
        ] {
            add(format!("{l}.self_attn.{n}.weight"), &[o, h]);
            add(format!("{l}.self_attn.{n}.bias"), &[o]);
        }
        add(format!("{l}.self_attn.o_proj.weight"), &[h, s.heads * hd]);
        add(format!("{l}.mlp.gate_proj.weight"), &[inter, h]);
        add(format!("{l}.mlp.up_proj.weight"), &[inter, h]);
        add(format!("{l}.mlp.down_proj.weight"), &[h, inter]);
        add(format!("{l}.input_layernorm.weight"), &[h]);
        add(format!("{l}.post_attention_layernorm.weight"), &[h]);
    }
    add("model.norm.weight".into(), &[h]);
    if !s.tie_word_embeddings {
        add("lm_head.weight".into(), &[s.vocab_size, h]);
    }
    v
}
