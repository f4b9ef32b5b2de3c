#!/usr/bin/env python3
"""Equivalence check of virl's Qwen2.5-VL against Hugging Face transformers.

Creates a small random Qwen2.5-VL with transformers (the shapes of
`virl vlm init --preset qwen2.5-tiny`, or --preset 3b / 7b), saves it with
`save_pretrained` plus a byte-level tokenizer, and runs it, eager attention,
on two images of different sizes in a two-turn conversation (the second image
arrives in a later user turn, as a zoom crop does). The first image's merged
grid (9 x 6 units) does not divide into the 4 x 4-unit windows, and the
vision blocks at `fullatt_block_indexes` attend to whole images. It writes the
inputs and transformers' logits at every position; `virl vlm compare` runs our
model on the same files and reports the error.

    python3 bench/qwen25vl_reference.py --out /tmp/q25ref          # f32 + bf16
    virl vlm compare --model /tmp/q25ref/model --reference /tmp/q25ref/reference.safetensors

    python3 bench/qwen25vl_reference.py --check-load DIR
        loads a folder `virl vlm init --preset qwen2.5-*` wrote and fails if
        transformers reports a missing, unexpected or mismatched key.

Needs torch, transformers 5.10.4, safetensors, pillow: python/requirements.txt.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qwen3vl_reference import SID, conversation, save_references, tokenizer_json  # noqa: E402

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
PRESETS = {
    "tiny": dict(vocab=320, hidden=64, inter=128, layers=2, heads=4, kv=2, section=[2, 3, 3],
                 vdepth=3, vhidden=32, vinter=64, vheads=2, fullatt=[1], tie=False),
    "3b": dict(vocab=151936, hidden=2048, inter=11008, layers=36, heads=16, kv=2, section=[16, 24, 24],
               vdepth=32, vhidden=1280, vinter=3420, vheads=16, fullatt=[7, 15, 23, 31], tie=True),
    "7b": dict(vocab=152064, hidden=3584, inter=18944, layers=28, heads=28, kv=4, section=[16, 24, 24],
               vdepth=32, vhidden=1280, vinter=3420, vheads=16, fullatt=[7, 15, 23, 31], tie=False),
}


def build(preset, seed):
    p = PRESETS[preset]
    cfg = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=p["vocab"], hidden_size=p["hidden"], intermediate_size=p["inter"],
                         num_hidden_layers=p["layers"], num_attention_heads=p["heads"],
                         num_key_value_heads=p["kv"], hidden_act="silu", max_position_embeddings=128000,
                         rms_norm_eps=1e-6, tie_word_embeddings=p["tie"],
                         rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                          "mrope_section": p["section"]}),
        vision_config=dict(depth=p["vdepth"], hidden_size=p["vhidden"], intermediate_size=p["vinter"],
                           num_heads=p["vheads"], in_channels=3, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2, out_hidden_size=p["hidden"], window_size=112,
                           fullatt_block_indexes=p["fullatt"], hidden_act="silu"),
        image_token_id=SID["<|image_pad|>"], video_token_id=SID["<|video_pad|>"],
        vision_start_token_id=SID["<|vision_start|>"], vision_end_token_id=SID["<|vision_end|>"],
        tie_word_embeddings=p["tie"],
    )
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    # As qwen3vl_reference.py: weights far from the 0.02-std default so that
    # the logits are not near-uniform and errors would show.
    with torch.no_grad():
        for name, w in model.named_parameters():
            if "norm" in name or "ln_q" in name:
                w.copy_(1 + 0.1 * torch.randn_like(w))
            elif name.endswith("bias"):
                w.copy_(0.02 * torch.randn_like(w))
            elif "embed_tokens" in name:
                w.copy_(torch.randn_like(w))
            else:
                fan_in = int(np.prod(w.shape[1:]))
                w.copy_(torch.randn_like(w) / fan_in ** 0.5)
    return model


def test_images():
    # 252 x 168 (18 x 12 patches, 9 x 6 merged units: windows of 4 x 4 units
    # are clipped at the right and bottom) and 84 x 56 (a crop), both
    # multiples of 28, so no resize.
    a = np.zeros((168, 252, 3), np.uint8)
    yy, xx = np.mgrid[0:168, 0:252]
    a[..., 0] = (xx * 2) % 256
    a[..., 1] = (yy * 3) % 256
    a[..., 2] = ((xx // 16 + yy // 16) % 2) * 200
    b = np.zeros((56, 84, 3), np.uint8)
    b[10:40, 8:70] = [250, 30, 30]
    b[..., 2] = (np.arange(84) * 3)[None, :]
    return Image.fromarray(a), Image.fromarray(b)


def check_load(folder):
    _, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    print(json.dumps({k: list(map(str, v)) for k, v in info.items()}))
    if bad:
        sys.exit(f"{folder}: transformers reports {bad}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check-load", metavar="DIR")
    args = ap.parse_args()
    if args.check_load:
        check_load(args.check_load)
        return
    if not args.out:
        ap.error("--out is required")
    mdir = os.path.join(args.out, "model")
    os.makedirs(mdir, exist_ok=True)
    model = build(args.preset, args.seed)
    model.save_pretrained(mdir, safe_serialization=True)
    with open(os.path.join(mdir, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(), f)
    pre = dict(patch_size=14, temporal_patch_size=2, merge_size=2, image_mean=CLIP_MEAN, image_std=CLIP_STD,
               size={"shortest_edge": 3136, "longest_edge": 12845056})
    with open(os.path.join(mdir, "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "Qwen2VLImageProcessor", "min_pixels": 3136,
                   "max_pixels": 12845056, **pre}, f)

    img1, img2 = test_images()
    paths = [os.path.join(args.out, n) for n in ("image1.png", "image2.png")]
    img1.save(paths[0])
    img2.save(paths[1])
    px = Qwen2VLImageProcessor(**pre)(images=[img1, img2], return_tensors="pt")
    grid = px["image_grid_thw"]
    n1, n2 = [int(g.prod()) // 4 for g in grid]

    meta = {"images": paths, "preset": "qwen2.5-" + args.preset, "seed": args.seed}
    save_references(model, conversation(n1, n2), px, args.out, meta)

if __name__ == "__main__":
    main()
