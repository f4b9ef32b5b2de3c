"""One prompt and one box rule per dialect, from the engine, on both paths.

The studio's rollouts and `virl export --format verl` write the same prompt
(verl's chat template renders the tool schema the studio renders itself);
the verl tool's schema is the engine's; `virl score --format DIALECT` maps
each dialect's boxes to original pixels.
"""

from __future__ import annotations

import json

import yaml

from conftest import REPO, samples, virl_score
from virl import _core
from virl.verl.export import SYSTEM_PROMPT, rows
from virl.verl.tool import SCHEMA


def test_the_recipe_the_tool_and_the_studio_declare_one_schema():
    cfg = yaml.safe_load((REPO / "recipes" / "verl" / "tool_config.yaml").read_text())
    assert cfg["tools"][0]["tool_schema"] == SCHEMA
    p = _core.dialect_prompt("virl", "What?")
    # The studio's system turn: the instruction verl exports, then the tools
    # block with the schema as Qwen's template renders it (`tojson`).
    assert p["instruction"] == SYSTEM_PROMPT
    assert p["system"].startswith(SYSTEM_PROMPT + "\n\n# Tools\n")
    assert "<tools>\n" + json.dumps(SCHEMA, ensure_ascii=False) + "\n</tools>" in p["system"]


def test_export_writes_the_engines_prompt(dataset):
    r = rows(str(dataset))[0]
    s = samples(dataset)[r["extra_info"]["sample"]]
    p = _core.dialect_prompt("virl", s["question"], s.get("options") or [])
    assert r["prompt"][0]["content"] == p["instruction"]
    assert r["prompt"][1]["content"] == "<image>\n" + p["user"]


def test_every_dialect_has_a_prompt_and_unknown_ones_are_named():
    for d in ["virl", "deepeyes", "chain-of-focus", "mini-o3", "pixel-reasoner", "qwen3-vl"]:
        assert _core.dialect_prompt(d, "Q?")["user"].startswith("Q?")
    try:
        _core.dialect_prompt("o3", "Q?")
    except ValueError as e:
        assert "deepeyes" in str(e)
    else:
        raise AssertionError("an unknown dialect must be refused")


def test_virl_score_reads_mini_o3_and_composes_its_crops(virl_bin, dataset, tmp_path):
    s = next(iter(samples(dataset).values()))
    w, h = s["width"], s["height"]
    text = ('<grounding>{"bbox_2d": [0.0, 0.0, 0.5, 0.5], "source": "original_image"}</grounding>'
            '<grounding>{"bbox_2d": [0.5, 0.5, 1.0, 1.0], "source": "observation_1"}</grounding>'
            "<answer>x</answer>")
    out = virl_score(virl_bin, dataset, [{"sample": s["id"], "output": text}], "mini-o3", tmp_path)
    boxes = [a["bbox"] for a in out[0]["actions"]]
    assert boxes == [[0.0, 0.0, w / 2, h / 2], [w / 4, h / 4, w / 2, h / 2]]
