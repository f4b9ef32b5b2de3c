#!/usr/bin/env python3
"""Speed of the verl plugin (BENCHMARKS.md, "verl plugin").

1. compute_score, and compute_score plus the trace, per trajectory: a
   three-zoom DeepEyes-style response with the zoom tool's records, on a
   ZoomBench sample, called as verl's reward manager calls it.
2. compute_score on what a policy gone wrong writes: 64 KB, 256 KB and
   1 MB of one repeated tag (and of plain text), with the trace.
3. The `virl` estimator against verl's own GRPO through verl's
   compute_advantage, on a 512 x 4096 batch (64 groups of 8, multi-turn
   masks with tool-response gaps).

    .venv/bin/python bench/verl_plugin_bench.py
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import tempfile
import time

import numpy as np
import torch

import virl.verl  # noqa: F401
from virl import _core
from virl.verl import board
from virl.verl.reward import compute_score


def tool_call(b):
    return '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": %s}}</tool_call>' % json.dumps(b)


def bench_score(tmp: str, n: int = 2000) -> dict:
    data = os.path.join(tmp, "data")
    _core.write_zoombench(data, 8, 0)
    ss = [json.loads(l) for l in _core.load_dataset(data)[1]]
    calls = []
    for i in range(n):
        s = ss[i % len(ss)]
        b = s["rationales"][0]["bbox"]
        boxes = [[b[0] + d, b[1] + d, b[2] + d, b[3] + d] for d in (40, 5, 0)]
        text = "".join(f"<think>step {k}</think>{tool_call(x)}user\n<tool_response>\nZoomed in.\n</tool_response>\nassistant\n"
                       for k, x in enumerate(boxes)) + f"<answer>{s['answer']}</answer>"
        gt = json.dumps({"sample": s, "dataset": data, "shown": [756, 756]})
        extra = {"virl_zooms": [{"proposed": x, "executed": x, "turn": k} for k, x in enumerate(boxes)],
                 "virl_uid": f"u{i // 8}", "virl_turn_tokens": [40, 38, 35, 20], "max_global_steps": 1}
        calls.append((text, gt, extra))
    out = {}
    for name, kw in (("compute_score", {}), ("compute_score + trace", {"trace": os.path.join(tmp, "trace")})):
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            for text, gt, extra in calls:
                compute_score(data_source="virl/zb", solution_str=text, ground_truth=gt, extra_info=extra, **kw)
            runs.append((time.perf_counter() - t0) / n * 1e6)
            board.collect([k for k in list(board._local._entries)])  # empty the board
        out[name] = runs
    return out


DEGENERATE = {
    "<tool_response>": "<tool_response>",
    "<answer>": "<answer>",
    "</tool_call> then one <tool_call>": "</tool_call>",
    "a whole tool turn": ('<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2, 30, 40]}}'
                          '</tool_call>user\n<tool_response>\nZoomed in.\n</tool_response>\nassistant\n'),
    "whitespace": " \n",
    "plain text": "the placard is red and the digit is seven. ",
}


def bench_degenerate(tmp: str, reps: int = 3) -> dict:
    data = os.path.join(tmp, "data-d")
    _core.write_zoombench(data, 1, 0)
    s = json.loads(_core.load_dataset(data)[1][0])
    gt = json.dumps({"sample": s, "dataset": data, "shown": [756, 756]})
    out = {}
    for name, unit in DEGENERATE.items():
        for size in (64 << 10, 256 << 10, 1 << 20):
            text = unit * (size // len(unit)) + ("<tool_call>" if unit == "</tool_call>" else "")
            runs = []
            for _ in range(reps):
                t0 = time.perf_counter()
                compute_score(data_source="virl/zb", solution_str=text, ground_truth=gt, extra_info={},
                              trace=os.path.join(tmp, "trace-d"))
                runs.append((time.perf_counter() - t0) * 1e3)
            out[(name, size)] = runs
    return out


def batch(rng: random.Random, rows: int = 512, width: int = 4096):
    mask = np.zeros((rows, width), dtype=np.int64)
    runs_of, zooms_of = [], []
    for i in range(rows):
        pos, runs = 0, []
        turns = rng.randint(1, 6)
        for k in range(turns):
            n = rng.randint(100, 500)
            if pos + n > width:
                break
            mask[i, pos:pos + n] = 1
            runs.append(n)
            pos += n + rng.randint(200, 400)
        runs_of.append(runs)
        zooms_of.append([[k, rng.random(), rng.random() < 0.1] for k in range(len(runs) - 1)])
    uids = np.array([f"g{i // 8}" for i in range(rows)], dtype=object)
    rewards = np.array([rng.uniform(-1, 2) for _ in range(rows)], dtype=np.float32)
    return mask, runs_of, zooms_of, uids, rewards


def bench_estimator(reps: int = 7) -> dict:
    from verl import DataProto
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.ray_trainer import compute_advantage

    rng = random.Random(0)
    mask, runs_of, zooms_of, uids, rewards = batch(rng)
    tlr = np.zeros(mask.shape, dtype=np.float32)
    for i in range(len(mask)):
        tlr[i, np.nonzero(mask[i])[0][-1]] = rewards[i]
    cfg = _core.reward_config(None)
    out = {"virl": [], "grpo": []}
    for _ in range(reps):
        for i in range(len(mask)):
            board.publish(uids[i], runs_of[i], float(rewards[i]), zooms_of[i], cfg)
        for est in ("virl", "grpo"):
            d = DataProto.from_dict(tensors={"token_level_rewards": torch.from_numpy(tlr.copy()),
                                             "response_mask": torch.from_numpy(mask.copy())},
                                    non_tensors={"uid": uids.copy()})
            t0 = time.perf_counter()
            compute_advantage(d, adv_estimator=est, config=AlgoConfig())
            out[est].append((time.perf_counter() - t0) * 1e3)
    return out


def main():
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for (k, size), v in bench_degenerate(tmp).items():
            print(f"degenerate {k:34s} {size >> 10:5d} KB ms: " + ", ".join(f"{x:.1f}" for x in v)
                  + f"  (median {statistics.median(v):.1f})")
        for k, v in bench_score(tmp).items():
            print(f"{k:24s} µs/trajectory: " + ", ".join(f"{x:.0f}" for x in v) + f"  (median {statistics.median(v):.0f})")
    for k, v in bench_estimator().items():
        print(f"estimator {k:6s} 512x4096 ms: " + ", ".join(f"{x:.1f}" for x in v) + f"  (median {statistics.median(v):.1f})")


if __name__ == "__main__":
    main()
