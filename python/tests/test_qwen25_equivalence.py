"""Qwen2.5-VL in the engine equals transformers 5.10.4 on random weights.

`bench/qwen25vl_reference.py` builds a random Qwen2.5-VL with transformers
(three vision blocks, the middle one full attention, the others in 112 px
windows), saves it and transformers' logits over a two-turn conversation with
two images of different sizes (the first one's 9 x 6 merged grid does not
divide into 4 x 4-unit windows). `virl vlm compare` runs ours on the same
files: in one pass and through the KV cache in two chunks. The same weights
are then rewritten in the other config and tensor-name layouts a checkpoint
can come in, and must give the same logits.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
from safetensors.numpy import load_file, save_file

from conftest import REPO

SCRIPT = REPO / "bench" / "qwen25vl_reference.py"


def compare(virl_bin, model, ref, dtype="f32"):
    out = subprocess.run([str(virl_bin), "vlm", "compare", "--model", str(model), "--reference", str(ref),
                          "--dtype", dtype], check=True, capture_output=True, text=True).stdout
    rel = [float(x) for x in re.findall(r"max \|diff\| / max \|ref\| ([0-9.e+-]+)", out)]
    agree = float(re.search(r"arg-max agreement\s+([0-9.]+) %", out).group(1))
    return rel, agree, out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("q25ref")
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(d)], check=True, capture_output=True)
    return d


def test_logits_equal_transformers_in_one_pass_and_through_the_cache(reference, virl_bin):
    rel, agree, out = compare(virl_bin, reference / "model", reference / "reference.safetensors")
    assert len(rel) == 2, out
    assert max(rel) <= 1e-5, out
    assert agree == 100.0, out


def test_bf16_runs_and_mostly_agrees(reference, virl_bin):
    # Reported, not a claim of equality: bf16 rounds differently in every op.
    rel, agree, out = compare(virl_bin, reference / "model", reference / "reference-bf16.safetensors", "bf16")
    assert max(rel) < 0.1 and agree >= 80.0, out


def flat_hub_layout(cfg: dict) -> dict:
    """config.json as the Hub's Qwen2.5-VL-7B-Instruct has it (transformers
    4.49): text keys at the top, `rope_scaling` of type mrope, `in_chans`."""
    t = cfg["text_config"]
    rope = t["rope_parameters"]
    flat = {k: v for k, v in cfg.items() if k != "text_config"}
    flat.update({k: v for k, v in t.items() if k not in ("rope_parameters", "model_type")})
    flat["rope_theta"] = rope["rope_theta"]
    flat["rope_scaling"] = {"type": "mrope", "mrope_section": rope["mrope_section"]}
    flat["vision_config"] = dict(cfg["vision_config"], in_chans=3)
    flat["transformers_version"] = "4.49.0.dev0"
    return flat


def nested_453_layout(cfg: dict) -> dict:
    """transformers 4.53-4.57: `text_config` nested, `rope_scaling` + `rope_theta`."""
    out = json.loads(json.dumps(cfg))
    t = out["text_config"]
    rope = t.pop("rope_parameters")
    t["rope_theta"] = rope["rope_theta"]
    t["rope_scaling"] = {"type": "default", "mrope_section": rope["mrope_section"], "rope_type": "default"}
    return out


@pytest.mark.parametrize("layout", ["flat-4.49", "nested-4.53", "model.visual+language_model", "sharded"])
def test_every_checkpoint_layout_gives_the_same_logits(reference, virl_bin, tmp_path, layout):
    src = reference / "model"
    dst = tmp_path / "model"
    shutil.copytree(src, dst)
    cfg = json.loads((src / "config.json").read_text())
    if layout == "flat-4.49":
        (dst / "config.json").write_text(json.dumps(flat_hub_layout(cfg)))
    elif layout == "nested-4.53":
        (dst / "config.json").write_text(json.dumps(nested_453_layout(cfg)))
    else:
        w = load_file(str(src / "model.safetensors"))
        (dst / "model.safetensors").unlink()
        if layout == "model.visual+language_model":
            w = {("model." + k if k.startswith("visual.") else
                  k.replace("model.", "model.language_model.", 1) if k.startswith("model.") else k): v
                 for k, v in w.items()}
            save_file(w, str(dst / "model.safetensors"))
        else:
            names = sorted(w)
            half = {n: ("model-00001-of-00002.safetensors" if i % 2 else "model-00002-of-00002.safetensors")
                    for i, n in enumerate(names)}
            for f in set(half.values()):
                save_file({n: w[n] for n in names if half[n] == f}, str(dst / f))
            (dst / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": half}))
    rel, agree, out = compare(virl_bin, dst, reference / "reference.safetensors")
    assert max(rel) <= 1e-5 and agree == 100.0, out


def test_virl_init_writes_what_transformers_loads_with_no_missing_key(virl_bin, tmp_path):
    d = tmp_path / "q25"
    subprocess.run([str(virl_bin), "vlm", "init", "--preset", "qwen2.5-tiny", "--out", str(d)], check=True,
                   capture_output=True)
    r = subprocess.run([sys.executable, str(SCRIPT), "--check-load", str(d)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
