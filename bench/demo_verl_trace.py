#!/usr/bin/env python3
"""A simulated verl run, traced as the plugin traces a real one: for a look
at the studio without GPUs.

Nothing is trained. A scripted "policy" zooms near the ground truth with a
noise that shrinks step by step and answers right more often; every
trajectory goes through the real `compute_score` (with the zoom tool's
records, as verl's reward manager calls it), which appends it to the trace,
and each step's batch goes through verl's `compute_advantage` with the
`virl` estimator. verl's `file` logger is imitated for the entropy curve.

    .venv/bin/python bench/demo_verl_trace.py --out /tmp/virl-demo
    virl --open /tmp/virl-demo/trace
"""

from __future__ import annotations

import argparse
import json
import os
import random

import numpy as np
import torch

import virl.verl  # noqa: F401
from virl import _core
from virl.verl.reward import compute_score


def tool_call(b):
    return '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": %s}}</tool_call>' % json.dumps(
        [round(x) for x in b])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    data, trace = os.path.join(a.out, "data"), os.path.join(a.out, "trace")
    if not os.path.exists(os.path.join(data, "manifest.jsonl")):
        _core.write_zoombench(data, a.samples, a.seed)
    ss = [json.loads(l) for l in _core.load_dataset(data)[1]]
    rng = random.Random(a.seed)
    logger = os.path.join(trace, "verl-metrics.jsonl")
    os.makedirs(trace, exist_ok=True)
    from verl import DataProto
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.ray_trainer import compute_advantage

    for step in range(1, a.steps + 1):
        noise = 40.0 / step
        masks, scores, uids = [], [], []
        for s in ss:
            uid = f"{s['id']}@{step}"
            g = s["rationales"][0]["bbox"]
            for _ in range(a.n):
                k = rng.choice([0, 1, 1, 2, 2, 3])
                boxes = []
                for _ in range(k):
                    dx, dy = rng.gauss(0, noise), rng.gauss(0, noise)
                    grow = rng.uniform(0, 12)
                    boxes.append([g[0] + dx - grow, g[1] + dy - grow, g[2] + dx + grow, g[3] + dy + grow])
                right = rng.random() < 0.3 + 0.1 * step + (0.2 if k else 0)
                answer = s["answer"] if right else str(rng.randint(0, 9))
                text, runs, mask = "", [], []
                for i, b in enumerate(boxes):
                    text += f"<think>The placard should be near here ({i + 1}).</think>{tool_call(b)}"
                    text += f"user\n<tool_response>\nZoomed in on the image to the region.\n</tool_response>\nassistant\n"
                    runs.append(rng.randint(20, 60))
                    mask += [1] * runs[-1] + [0] * 30
                text += f"<think>I can read it now.</think><answer>{answer}</answer>"
                runs.append(rng.randint(10, 30))
                mask += [1] * runs[-1]
                recs = [{"proposed": b, "executed": _core.execute_box(b, s["width"], s["height"], 28.0), "turn": i}
                        for i, b in enumerate(boxes)]
                gt = json.dumps({"sample": s, "dataset": data})
                sc = compute_score(data_source="virl/demo", solution_str=text, ground_truth=gt,
                                   extra_info={"virl_zooms": recs, "virl_uid": uid, "virl_turn_tokens": runs,
                                               "max_global_steps": step}, trace=trace, metrics=logger)
                masks.append(mask)
                scores.append(sc["score"])
                uids.append(uid)
        width = max(len(m) for m in masks)
        mask = torch.tensor([m + [0] * (width - len(m)) for m in masks])
        tlr = torch.zeros(mask.shape)
        for i, m in enumerate(masks):
            tlr[i, len(m) - 1] = scores[i]
        d = DataProto.from_dict(tensors={"token_level_rewards": tlr, "response_mask": mask},
                                non_tensors={"uid": np.array(uids, dtype=object)})
        compute_advantage(d, adv_estimator="virl", config=AlgoConfig())
        with open(logger, "a") as f:
            f.write(json.dumps({"step": step, "data": {"actor/entropy": 1.2 / step ** 0.5,
                                                       "actor/pg_clipfrac": 0.02, "actor/ppo_kl": 0.001 * step}}) + "\n")
        print(f"step {step}: mean score {np.mean(scores):.3f}")
    print(f"virl --open {trace}")


if __name__ == "__main__":
    main()
