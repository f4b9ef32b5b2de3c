"""The zoom tool as verl loads it from the recipe's YAML, on a real image."""

from __future__ import annotations

import asyncio
import math
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, samples


@pytest.fixture()
def tool():
    from verl.tools.tool_registry import initialize_tools_from_config

    tools = initialize_tools_from_config(str(REPO / "recipes/verl/tool_config.yaml"))
    assert [t.name for t in tools] == ["image_zoom_in_tool"]
    return tools[0]


def run(tool, sample, params, shown=None, turns=1):
    agent = SimpleNamespace(assistant_turns=turns, extra_fields={})
    ck = {"image": sample["image"], "width": sample["width"], "height": sample["height"]}
    if shown:
        ck["shown"] = list(shown)

    async def go():
        iid, _ = await tool.create(create_kwargs=ck)  # as ToolAgentLoop calls it
        try:
            return await tool.execute(iid, params, agent_data=agent)
        finally:
            await tool.release(iid)

    resp, reward, metrics = asyncio.run(go())
    return resp, agent.extra_fields.get("virl_zooms", [])


def test_a_zoom_returns_the_original_pixels_and_records_both_boxes(tool, dataset):
    s = next(iter(samples(dataset).values()))
    shown = (384, 384)  # the model saw the 768 px image at half size
    resp, recs = run(tool, s, {"bbox_2d": [100, 120, 110, 126]}, shown=shown, turns=2)
    assert recs == [{"proposed": [200.0, 240.0, 220.0, 252.0],
                     "executed": recs[0]["executed"], "turn": 1}]
    x1, y1, x2, y2 = recs[0]["executed"]
    assert (x2 - x1, y2 - y1) == (28.0, 28.0)  # grown to min_side around the centre
    assert (x1 + x2) / 2 == 210.0 and (y1 + y2) / 2 == 246.0
    crop = np.asarray(resp.image[0])
    orig = np.asarray(Image.open(s["image"]).convert("RGB"))
    assert np.array_equal(crop, orig[int(y1):int(math.ceil(y2)), int(x1):int(math.ceil(x2))])
    assert "[100, 120, 110, 126]" in resp.text


def test_a_box_past_the_edge_is_clipped(tool, dataset):
    s = next(iter(samples(dataset).values()))
    resp, recs = run(tool, s, {"bbox_2d": [700, 700, 900, 900]})
    assert recs[0]["executed"] == [700.0, 700.0, 768.0, 768.0]
    assert resp.image[0].size == (68, 68)


@pytest.mark.parametrize("params, says", [
    # The engine's wording (trajectory::parse::parse_box, through the binding).
    ({"bbox_2d": [1, 2, 3]}, "expected 4 numbers"),
    ({"bbox_2d": [1, 2, "x", 4]}, "not a finite number"),
    ({"bbox_2d": [1, 2, float("nan"), 4]}, "not a finite number"),
    ({"bbox_2d": "1, 2, 3, 4"}, "expected [x1, y1, x2, y2]"),
    ({"bbox_2d": [50, 50, 10, 10]}, "degenerate"),
    ({"box": [1, 2, 3, 4]}, "no bbox_2d"),
    ("not a dict", "no bbox_2d"),
])
def test_bad_boxes_get_a_text_error(tool, dataset, params, says):
    s = next(iter(samples(dataset).values()))
    resp, recs = run(tool, s, params)
    assert resp.text.startswith("Error:") and says in resp.text
    # Recorded as rejected (compute_score: a format error, never a zoom).
    assert not resp.image and len(recs) == 1 and says in recs[0]["rejected"] and "proposed" not in recs[0]


def test_a_box_wholly_outside_is_executed_as_the_engine_executes_it(tool, dataset):
    # env::execute_box: a minimum box at the nearest point inside; the zoom counts (IoU 0 when scored).
    s = next(iter(samples(dataset).values()))
    resp, recs = run(tool, s, {"bbox_2d": [900, 900, 950, 950]})
    assert recs[0]["proposed"] == [900.0, 900.0, 950.0, 950.0]
    assert recs[0]["executed"] == [740.0, 740.0, 768.0, 768.0]
    assert resp.image[0].size == (28, 28)


def test_a_huge_box_in_a_smaller_shown_frame_is_the_whole_image(tool, dataset):
    # 1.7e308 scaled to original pixels overflowed to inf, and the tool answered with an error.
    s = next(iter(samples(dataset).values()))
    resp, recs = run(tool, s, {"bbox_2d": [0, 0, 1.7e308, 1.7e308]}, shown=(384, 384))
    assert all(math.isfinite(x) for x in recs[0]["proposed"])
    assert recs[0]["executed"] == [0.0, 0.0, 768.0, 768.0]
    assert resp.image[0].size == (768, 768)


def test_a_missing_image_is_a_text_error_naming_it(tool, dataset, tmp_path):
    s = dict(next(iter(samples(dataset).values())))
    s["image"] = str(tmp_path / "gone.png")
    resp, recs = run(tool, s, {"bbox_2d": [1, 1, 50, 50]})
    assert resp.text.startswith("Error:") and "gone.png" in resp.text
    assert recs == []  # the sample's fault, not the model's: no format error, no zoom
