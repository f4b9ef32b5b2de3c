#!/usr/bin/env python3
"""Equivalence check of virl's Qwen3-VL against Hugging Face transformers.

Creates a small random Qwen3-VL with transformers (the same shapes as
`virl vlm init --preset tiny`, or Qwen3-VL-2B's with --preset 2b), saves it
with `save_pretrained` plus a byte-level tokenizer, and runs it on two images
in a two-turn conversation (the second image arrives in a later user turn,
as a zoom crop does). It writes the inputs and transformers' logits at every
position; `virl vlm compare` then runs our model on the same files and
reports the error.

    python3 bench/qwen3vl_reference.py --out /tmp/qref            # f32 + bf16
    virl vlm compare --model /tmp/qref/model --reference /tmp/qref/reference.safetensors
    virl vlm compare ... --dtype bf16 --reference /tmp/qref/reference-bf16.safetensors

Needs torch, torchvision, transformers >= 4.57 (5.10.4, the version verl 0.9.1
installs, tested), safetensors, pillow: python/requirements.txt.
"""
import argparse
import inspect
import json
import os

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

SPECIALS = [("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
            ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|image_pad|>", True),
            ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
            ("<think>", False), ("</think>", False), ("<tool_response>", False),
            ("</tool_response>", False)]
SID = {t: 256 + i for i, (t, _) in enumerate(SPECIALS)}

PRESETS = {
    "tiny": dict(vocab=320, hidden=64, inter=128, layers=2, heads=4, kv=2, hd=16, section=[2, 3, 3],
                 vdepth=2, vhidden=32, vinter=64, vheads=2, npos=64, deepstack=[0]),
    "2b": dict(vocab=151936, hidden=2048, inter=6144, layers=28, heads=16, kv=8, hd=128,
               section=[24, 20, 20], vdepth=24, vhidden=1024, vinter=4096, vheads=16, npos=2304,
               deepstack=[5, 11, 17]),
}


def byte_chars():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    out = [""] * 256
    for b, c in zip(bs, cs):
        out[b] = chr(c)
    return out


def tokenizer_json():
    vocab = {c: i for i, c in enumerate(byte_chars())}
    added = [{"id": 256 + i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": s} for i, (t, s) in enumerate(SPECIALS)]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": False, "vocab": vocab, "merges": []}}


def text_ids(s):
    """Byte-level ids of plain text (one token per byte)."""
    return list(s.encode("utf-8"))


def build(preset, seed):
    p = PRESETS[preset]
    cfg = Qwen3VLConfig(
        text_config=dict(vocab_size=p["vocab"], hidden_size=p["hidden"], intermediate_size=p["inter"],
                         num_hidden_layers=p["layers"], num_attention_heads=p["heads"],
                         num_key_value_heads=p["kv"], head_dim=p["hd"], hidden_act="silu",
                         max_position_embeddings=262144, rms_norm_eps=1e-6, tie_word_embeddings=True,
                         rope_theta=5000000.0,
                         rope_scaling={"rope_type": "default", "mrope_section": p["section"],
                                       "mrope_interleaved": True},
                         rope_parameters={"rope_type": "default", "rope_theta": 5000000.0,
                                          "mrope_section": p["section"], "mrope_interleaved": True},
                         attention_bias=False),
        vision_config=dict(depth=p["vdepth"], hidden_size=p["vhidden"], intermediate_size=p["vinter"],
                           num_heads=p["vheads"], in_channels=3, patch_size=16, spatial_merge_size=2,
                           temporal_patch_size=2, out_hidden_size=p["hidden"],
                           num_position_embeddings=p["npos"], deepstack_visual_indexes=p["deepstack"],
                           hidden_act="gelu_pytorch_tanh"),
        image_token_id=SID["<|image_pad|>"], video_token_id=SID["<|video_pad|>"],
        vision_start_token_id=SID["<|vision_start|>"], vision_end_token_id=SID["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(cfg).eval()
    # Weights far from the 0.02-std default so that the logits are not
    # near-uniform and errors would show: matrices ~ N(0, 1/fan_in), norms
    # 1 +- 0.1, embeddings N(0, 1).
    with torch.no_grad():
        for name, w in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                w.copy_(1 + 0.1 * torch.randn_like(w))
            elif name.endswith("bias"):
                w.copy_(0.02 * torch.randn_like(w))
            elif "embed" in name:
                w.copy_(torch.randn_like(w))
            else:
                fan_in = int(np.prod(w.shape[1:]))
                w.copy_(torch.randn_like(w) / fan_in ** 0.5)
    return model, cfg


def test_images():
    a = np.zeros((96, 128, 3), np.uint8)  # 128x96: no resize at factor 32
    yy, xx = np.mgrid[0:96, 0:128]
    a[..., 0] = (xx * 2) % 256
    a[..., 1] = (yy * 3) % 256
    a[..., 2] = ((xx // 16 + yy // 16) % 2) * 200
    b = np.zeros((64, 64, 3), np.uint8)
    b[16:48, 8:56] = [250, 30, 30]
    b[..., 2] = (np.arange(64) * 4)[None, :]
    return Image.fromarray(a), Image.fromarray(b)


def conversation(n1, n2):
    """Turn 1: system, the image (`n1` tokens) and the question; turn 2
    (after the assistant's tool call): the crop (`n2` tokens) in a tool
    response. Returns the ids and `split`: the first `split` tokens are one
    chunk, the rest another (exercises the KV cache)."""
    ids = ([SID["<|im_start|>"]] + text_ids("system\nYou zoom.") + [SID["<|im_end|>"]] + text_ids("\n")
           + [SID["<|im_start|>"]] + text_ids("user\n") + [SID["<|vision_start|>"]]
           + [SID["<|image_pad|>"]] * n1 + [SID["<|vision_end|>"]] + text_ids("What is red?")
           + [SID["<|im_end|>"]] + text_ids("\n") + [SID["<|im_start|>"]] + text_ids("assistant\n")
           + [SID["<think>"]] + text_ids("look") + [SID["</think>"]] + [SID["<tool_call>"]]
           + text_ids('{"name": "image_zoom_in_tool"}') + [SID["</tool_call>"]])
    split = len(ids)
    ids += ([SID["<|im_end|>"]] + text_ids("\n") + [SID["<|im_start|>"]] + text_ids("user\n")
            + [SID["<tool_response>"]] + [SID["<|vision_start|>"]] + [SID["<|image_pad|>"]] * n2
            + [SID["<|vision_end|>"]] + [SID["</tool_response>"]] + [SID["<|im_end|>"]] + text_ids("\n")
            + [SID["<|im_start|>"]] + text_ids("assistant\n<answer>7</answer>"))
    return ids, split


def save_references(model, conv, px, out_dir, meta):
    """Runs `model` on the conversation in f32 and bf16 and saves the inputs
    and every position's logits for `virl vlm compare`."""
    ids, split = conv
    grid = px["image_grid_thw"]
    input_ids = torch.tensor([ids])
    # transformers 5.x builds M-RoPE positions from the token types the
    # processor returns (1 = image token, 0 = text); older versions took
    # them from input_ids alone and have no such argument.
    extra = {}
    if "mm_token_type_ids" in inspect.signature(model.forward).parameters:
        extra["mm_token_type_ids"] = (input_ids == SID["<|image_pad|>"]).to(torch.int32)
    meta = dict(meta, split=split, transformers=__import__("transformers").__version__, torch=torch.__version__)
    for dtype, name in ((torch.float32, "reference.safetensors"), (torch.bfloat16, "reference-bf16.safetensors")):
        m = model.to(dtype)
        with torch.no_grad():
            out = m(input_ids=input_ids, pixel_values=px["pixel_values"].to(dtype), image_grid_thw=grid, **extra)
        logits = out.logits[0].float().contiguous()
        save_file({"input_ids": input_ids[0].to(torch.int64).contiguous(), "logits": logits,
                   "pixel_values": px["pixel_values"].float().contiguous(),
                   "image_grid_thw": grid.to(torch.int64).contiguous()},
                  os.path.join(out_dir, name), metadata={k: json.dumps(v) for k, v in meta.items()})
        print(f"{name}: {len(ids)} tokens, images {grid.tolist()}, logits {tuple(logits.shape)}, "
              f"max |logit| {logits.abs().max().item():.3f}")
    model.to(torch.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    mdir = os.path.join(args.out, "model")
    os.makedirs(mdir, exist_ok=True)
    model, cfg = build(args.preset, args.seed)
    model.save_pretrained(mdir, safe_serialization=True)
    with open(os.path.join(mdir, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(), f)
    with open(os.path.join(mdir, "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "Qwen2VLImageProcessorFast", "patch_size": 16,
                   "temporal_patch_size": 2, "merge_size": 2, "image_mean": [0.5] * 3,
                   "image_std": [0.5] * 3, "size": {"shortest_edge": 1024, "longest_edge": 16777216}}, f)

    img1, img2 = test_images()
    paths = [os.path.join(args.out, n) for n in ("image1.png", "image2.png")]
    img1.save(paths[0])
    img2.save(paths[1])
    proc = Qwen2VLImageProcessor(patch_size=16, temporal_patch_size=2, merge_size=2,
                                     image_mean=[0.5] * 3, image_std=[0.5] * 3,
                                     size={"shortest_edge": 1024, "longest_edge": 16777216})
    px = proc(images=[img1, img2], return_tensors="pt")
    grid = px["image_grid_thw"]
    n1, n2 = [int(g.prod()) // 4 for g in grid]

    meta = {"images": paths, "preset": args.preset, "seed": args.seed}
    save_references(model, conversation(n1, n2), px, args.out, meta)
    model.to(torch.float32)


if __name__ == "__main__":
    main()
