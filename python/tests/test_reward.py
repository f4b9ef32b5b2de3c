"""compute_score as verl 0.9.1 loads and calls it: the documented keys, the
values `virl score` gives, bad model text, corrections from the studio, and
the trace under several writers."""

from __future__ import annotations

import json
import multiprocessing as mp
import math
import time

import pytest

from conftest import gt_string, load_compute_score, samples, virl_score
from virl import _core

KEYS = {"score", "acc", "r_rat", "r_fmt", "coverage", "zooms", "acc_rat", "truncated", "gt_version",
        "virl_actions", "virl_format"}
STRINGS = {"gt_version", "virl_actions", "virl_format"}  # verl skips strings in its metrics


def call(compute_score, text, sample, dataset, extra=None, shown=None):
    # As verl's NaiveRewardManager.run_single calls it.
    return compute_score(data_source="virl/zoombench", solution_str=text,
                         ground_truth=gt_string(sample, dataset, shown), extra_info=extra or {"index": 0})


def tool_call(box):
    return '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": %s}}</tool_call>' % json.dumps(box)


def texts(ss):
    """DeepEyes-style responses as verl decodes them (special tokens skipped)."""
    out = []
    for i, s in enumerate(ss):
        b = s["rationales"][0]["bbox"]
        far = [b[0] + 150, b[1] + 150, b[2] + 150, b[3] + 150]
        out.append((s, f"<think>the placard</think>{tool_call(b)}user\n<tool_response>\nZoomed in.\n"
                       f"</tool_response>\nassistant\n<answer>{s['answer'] if i % 2 == 0 else '99'}</answer>"))
        out.append((s, f"{tool_call(far)}user\n<tool_response>\nok\n</tool_response>\nassistant\n"
                       f"{tool_call(b)}user\n<tool_response>\nok\n</tool_response>\nassistant\n<answer>{s['answer']}</answer>"))
        out.append((s, f"I think it is <answer>{s['answer']}</answer>"))
        out.append((s, f"{tool_call([1, 2, 'x', 4])}<answer>{s['answer']}</answer>"))  # malformed call
    return out


def test_keys_and_values_equal_virl_score_deepeyes(dataset, virl_bin, tmp_path):
    cs = load_compute_score()
    ss = list(samples(dataset).values())
    cases = texts(ss)
    got = [call(cs, t, s, dataset) for s, t in cases]
    for g in got:
        assert set(g) == KEYS
        assert all(isinstance(v, float) for k, v in g.items() if k not in STRINGS)
        assert all(isinstance(g[k], str) for k in STRINGS)
    # `virl score` scores a whole file by group; compare the per-trajectory parts
    # (the group advantage is the estimator's business in verl).
    cli = virl_score(virl_bin, dataset, [{"sample": s["id"], "group": f"g{i}", "output": t}
                                         for i, (s, t) in enumerate(cases)], "deepeyes", tmp_path)
    assert len(cli) == len(got)
    for g, line in zip(got, cli):
        r = line["rewards"]
        assert (g["score"], g["acc"], g["r_rat"], g["r_fmt"]) == (r["total"], r["ans"], r["rat"], r["fmt"])
        assert g["coverage"] == (line["coverage"] or 0.0)
        assert g["zooms"] == len(line["actions"])
        actions = json.loads(g["virl_actions"])
        assert [a["iou"] for a in actions] == [a["iou"] for a in line["actions"]]
        assert [a["fidelity"] for a in actions] == [a["fidelity"] for a in line["actions"]]
    assert [g["r_fmt"] for g in got[:4]] == [0.0, 0.0, 0.0, -1.0]
    assert got[0]["acc"] == 1.0 and got[0]["acc_rat"] == 1.0


def test_tool_records_are_scored_and_equal_virl_score(dataset, virl_bin, tmp_path):
    cs = load_compute_score()
    s = next(iter(samples(dataset).values()))
    b = s["rationales"][0]["bbox"]
    recs = [{"proposed": [b[0] - 4, b[1] - 4, b[2] + 4, b[3] + 4], "executed": b, "turn": 0},
            {"proposed": [10, 10, 40, 40], "executed": [10, 10, 40, 40], "turn": 1}]
    # The text's boxes are ignored when the tool recorded the zooms.
    text = f"{tool_call([0, 0, 5, 5])}x{tool_call([0, 0, 5, 5])}<answer>{s['answer']}</answer>"
    g = call(cs, text, s, dataset, {"virl_zooms": recs})
    cli = virl_score(virl_bin, dataset, [{"sample": s["id"], "zooms": [r["proposed"] for r in recs],
                                          "answer": s["answer"]}], "virl", tmp_path)[0]
    assert g["score"] == cli["rewards"]["total"]
    assert [a["iou"] for a in json.loads(g["virl_actions"])] == [a["iou"] for a in cli["actions"]]


def test_boxes_in_the_shown_frame_are_mapped_to_original_pixels(dataset, virl_bin, tmp_path):
    cs = load_compute_score()
    s = next(iter(samples(dataset).values()))
    b = s["rationales"][0]["bbox"]
    shown = (378, 378)  # the model saw the 768 px image at 378 px
    k = 378 / s["width"]
    text = f"{tool_call([x * k for x in b])}<answer>{s['answer']}</answer>"
    g = call(cs, text, s, dataset, shown=shown)
    assert json.loads(g["virl_actions"])[0]["iou"] == pytest.approx(1.0, abs=1e-9)
    # `virl score` maps the same way when the line says what the model was shown.
    cli = virl_score(virl_bin, dataset, [{"sample": s["id"], "output": text, "shown": list(shown)}],
                     "deepeyes", tmp_path)[0]
    assert cli["rewards"]["total"] == g["score"]
    assert [a["iou"] for a in cli["actions"]] == [a["iou"] for a in json.loads(g["virl_actions"])]


@pytest.mark.parametrize("text", [
    "", "<answer>", "</tool_call></tool_call>", "<tool_call>{\"name\": \"image_zoom_in_tool\", "
    "\"arguments\": {\"bbox_2d\": [NaN, 1, 2, 3]}}</tool_call>", "\x00\udcff" * 3,
    "<tool_call>" * 1000, tool_call([5, 5, 1, 1]) + "<answer>7</answer>", "a" * 100000,
])
def test_bad_model_text_never_raises(dataset, text):
    cs = load_compute_score()
    s = next(iter(samples(dataset).values()))
    g = call(cs, text, s, dataset)
    assert set(g) == KEYS and math.isfinite(g["score"])


def test_a_correction_saved_in_the_studio_counts_from_the_next_call(fresh_dataset, tmp_path):
    cs = load_compute_score(trace=str(tmp_path / "trace"))
    s = next(iter(samples(fresh_dataset).values()))
    b = s["rationales"][0]["bbox"]
    moved = [b[0] + 60, b[1], b[2] + 60, b[3]]
    text = f"{tool_call(moved)}<answer>{s['answer']}</answer>"
    before = call(cs, text, s, fresh_dataset)
    # What the annotation editor appends to the journal when a box is moved.
    edit = {"time": time.time(), "sample": s["id"], "op": "move", "before": s["rationales"],
            "after": [{"bbox": moved, "label": s["rationales"][0].get("label", "")}]}
    with open(fresh_dataset / "annotations.jsonl", "a") as f:
        f.write(json.dumps(edit) + "\n")
    after = call(cs, text, s, fresh_dataset)  # the ground truth string is the stale export
    assert json.loads(before["virl_actions"])[0]["iou"] < 0.2
    assert json.loads(after["virl_actions"])[0]["iou"] == pytest.approx(1.0)
    assert after["score"] > before["score"]
    assert after["gt_version"] != before["gt_version"]
    traced = [json.loads(l) for l in (tmp_path / "trace/rollouts/iter-000000.jsonl").read_text().splitlines()]
    assert [str(t["gt_version"]) for t in traced] == [before["gt_version"], after["gt_version"]]


def _writer(args):
    trace, dataset, n, k = args
    cs = load_compute_score(trace=trace)
    ss = list(samples(dataset).values())
    for i in range(n):
        s = ss[i % len(ss)]
        call(cs, f"{tool_call(s['rationales'][0]['bbox'])}<answer>{s['answer']}</answer>" + "x" * (i * 37 % 5000),
             s, dataset, {"virl_uid": f"w{k}-{i}", "max_global_steps": 5})


def test_several_reward_workers_trace_at_once_without_losing_a_line(dataset, tmp_path):
    trace = str(tmp_path / "trace")
    with mp.get_context("spawn").Pool(4) as pool:
        pool.map(_writer, [(trace, dataset, 150, k) for k in range(4)])
    lines = (tmp_path / "trace/rollouts/iter-000005.jsonl").read_text().splitlines()
    assert len(lines) == 600
    recs = [json.loads(l) for l in lines]
    assert len({r["group"] for r in recs}) == 600
    assert all(r["iteration"] == 5 and r["image"].endswith(".png") for r in recs)
    assert recs[0]["transcript"][0]["role"] == "user"
    # A resumed run appends; nothing traced before is lost.
    _writer((trace, dataset, 10, 9))
    assert len((tmp_path / "trace/rollouts/iter-000005.jsonl").read_text().splitlines()) == 610


def test_a_bad_ground_truth_names_the_field(dataset):
    cs = load_compute_score()
    with pytest.raises(ValueError, match="ground_truth"):
        cs(data_source="x", solution_str="", ground_truth="7", extra_info={})
    s = dict(next(iter(samples(dataset).values())))
    s["rationales"] = [{"bbox": [10, 10, 5, 5]}]
    with pytest.raises(ValueError, match="rationales"):
        call(cs, "", s, dataset)


def test_a_response_cut_after_a_zoom_is_truncated_and_one_that_stops_is_not(dataset, tmp_path):
    cs = load_compute_score(trace=str(tmp_path / "trace"))
    s = next(iter(samples(dataset).values()))
    b = s["rationales"][0]["bbox"]
    cut = f"{tool_call(b)}user\n<tool_response>\nZoomed in.\n</tool_response>\nassistant\n"
    stopped = f"{tool_call(b)}user\n<tool_response>\nZoomed in.\n</tool_response>\nassistant\nI am not sure."
    for text in (cut, stopped, "no idea"):
        g = call(cs, text, s, dataset)
        assert g["acc"] == 0.0
    traced = [json.loads(l) for l in (tmp_path / "trace/rollouts/iter-000000.jsonl").read_text().splitlines()]
    assert [t["truncated"] for t in traced] == [True, False, False]
