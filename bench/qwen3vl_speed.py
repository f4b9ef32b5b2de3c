#!/usr/bin/env python3
"""Qwen3-VL tokens per second with Hugging Face transformers: the peer of
`virl bench vlm` on the same checkpoint, image and token ids.

    virl vlm init --preset tiny --out /tmp/q-tiny
    python3 bench/qwen3vl_speed.py --model /tmp/q-tiny --device cpu
    virl bench vlm --model /tmp/q-tiny --crop-side 0

Prefill: one forward over the prompt (text + image tokens). Decode:
`model.generate(max_new_tokens=N, min_new_tokens=N, do_sample=False)`
minus one prefill, per new token. Median of --reps runs after a warm-up.
Prints JSON.
"""
import argparse
import inspect
import json
import statistics
import time

import numpy as np
import torch
from PIL import Image
from transformers import Qwen3VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor


def bench_image(side):
    """The same image as virl's `bench_image`."""
    y, x = np.mgrid[0:side, 0:side].astype(np.uint32)
    a = np.zeros((side, side, 3), np.uint8)
    a[..., 0] = (x * 255 // side).astype(np.uint8)
    a[..., 1] = (y * 255 // side).astype(np.uint8)
    a[..., 2] = np.where(((x // 32) + (y // 32)) % 2 == 0, 200, 40)
    return Image.fromarray(a)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16", "f16"])
    ap.add_argument("--image-side", type=int, default=512)
    ap.add_argument("--text-tokens", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--attn", default="sdpa")
    a = ap.parse_args()
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[a.dtype]
    t0 = time.perf_counter()
    model = Qwen3VLForConditionalGeneration.from_pretrained(a.model, dtype=dtype,
                                                            attn_implementation=a.attn).to(a.device).eval()
    load_s = time.perf_counter() - t0
    cfg = model.config
    proc = Qwen2VLImageProcessor(patch_size=16, temporal_patch_size=2, merge_size=2,
                                 image_mean=[0.5] * 3, image_std=[0.5] * 3,
                                 size={"shortest_edge": 1024, "longest_edge": 16777216})
    px = proc(images=[bench_image(a.image_side)], return_tensors="pt")
    n_img = int(px["image_grid_thw"][0].prod()) // 4
    with open(f"{a.model}/tokenizer.json") as f:
        added = {t["content"]: t["id"] for t in json.load(f)["added_tokens"]}
    half = a.text_tokens // 2
    ids = ([added["<|im_start|>"]] + [97] * half + [cfg.vision_start_token_id] + [cfg.image_token_id] * n_img
           + [cfg.vision_end_token_id] + [97] * (a.text_tokens - half))
    inputs = {"input_ids": torch.tensor([ids], device=a.device),
              "attention_mask": torch.ones(1, len(ids), dtype=torch.long, device=a.device),
              "pixel_values": px["pixel_values"].to(a.device, dtype),
              "image_grid_thw": px["image_grid_thw"].to(a.device)}
    # transformers after 5.10 wants the token types for M-RoPE (1 = image), as its processor returns them.
    if "mm_token_type_ids" in inspect.signature(model.forward).parameters or "mm_token_type_ids" in \
            inspect.getsource(type(model.model).forward):
        inputs["mm_token_type_ids"] = torch.tensor([[int(t == cfg.image_token_id) for t in ids]], device=a.device)

    def sync():
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()

    pre, dec = [], []
    with torch.no_grad():
        for rep in range(a.reps + 1):
            sync()
            t = time.perf_counter()
            # Last position's logits only, as generate's prefill (and ours) computes them.
            model(**inputs, use_cache=True, logits_to_keep=1)
            sync()
            p = time.perf_counter() - t
            t = time.perf_counter()
            out = model.generate(**inputs, max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens,
                                 do_sample=False, pad_token_id=added["<|endoftext|>"])
            sync()
            g = time.perf_counter() - t
            assert out.shape[1] == len(ids) + a.new_tokens
            if rep > 0:
                pre.append(len(ids) / p)
                dec.append(a.new_tokens / max(g - p, 1e-9))
    print(json.dumps({
        "impl": f"transformers {__import__('transformers').__version__} generate, torch {torch.__version__}",
        "model": a.model, "device": a.device, "dtype": a.dtype, "attn": a.attn,
        "image_side": a.image_side, "image_tokens": n_img, "prefill_tokens": len(ids),
        "decode_tokens": a.new_tokens, "load_s": load_s, "threads": torch.get_num_threads(),
        "prefill_tokens_per_s": statistics.median(pre), "decode_tokens_per_s": statistics.median(dec),
        "reps": a.reps}, indent=2))


if __name__ == "__main__":
    main()
