"""compute_score under what a policy writes when a run goes wrong (issue 23):
any text and any tool records score without raising, in linear time, and
episodes verl cut off are marked truncated, not malformed."""

from __future__ import annotations

import json
import math
import signal
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import gt_string, load_compute_score, samples

TAGS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<answer>", "</answer>",
        "<think>", "</think>", "user\n", "assistant\n", " ", "\n", "{", "}", '"bbox_2d"', "[", "]", ",",
        '{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2, 30, 40]}}', "7", "1e308", "NaN"]


def call(cs, text, sample, dataset, extra=None, shown=None):
    return cs(data_source="virl/zoombench", solution_str=text,
              ground_truth=gt_string(sample, dataset, shown), extra_info=extra or {})


def tool_call(box):
    return '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": %s}}</tool_call>' % json.dumps(box)


def turn(box):
    return f"{tool_call(box)}user\n<tool_response>\nZoomed in.\n</tool_response>\nassistant\n"


@pytest.fixture(scope="module")
def cs():
    return load_compute_score()


@pytest.fixture(scope="module")
def sample(dataset):
    return next(iter(samples(dataset).values()))


def well_formed(out):
    assert set(out) == {"score", "acc", "r_rat", "r_fmt", "coverage", "zooms", "acc_rat", "truncated",
                        "gt_version", "virl_actions", "virl_format"}
    for k, v in out.items():
        if k in ("gt_version", "virl_actions", "virl_format"):
            assert isinstance(v, str)
        else:
            assert isinstance(v, float) and math.isfinite(v), (k, v)
    assert isinstance(json.loads(out["virl_format"]), list)
    assert (out["r_fmt"] == -1.0) == bool(json.loads(out["virl_format"]))


def test_a_huge_box_in_a_smaller_shown_frame_scores(cs, sample, dataset):
    # 9000 x 6000 after smart_resize is shown smaller: x 1.7e308 overflowed to inf and raised ValueError.
    s = dict(sample, width=9000, height=6000)
    s["rationales"] = [{"bbox": [100, 100, 400, 400], "label": "x"}]
    out = call(cs, f"{tool_call([0, 0, 1.7e308, 1.7e308])}<answer>7</answer>", s, None, shown=(1008, 672))
    well_formed(out)
    assert out["zooms"] == 1.0 and out["r_fmt"] == 0.0
    a = json.loads(out["virl_actions"])[0]
    assert a["iou"] == pytest.approx(300 * 300 / (9000 * 6000))  # the whole image, clipped


@st.composite
def records(draw):
    junk = st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.text(max_size=5),
                     st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=5))
    rec = st.fixed_dictionaries({}, optional={"proposed": junk, "executed": junk, "turn": junk,
                                              "rejected": st.one_of(st.none(), st.text(max_size=8))})
    return draw(st.one_of(st.none(), st.text(max_size=5), st.lists(st.one_of(rec, junk), max_size=4)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.one_of(st.sampled_from(TAGS), st.text(max_size=12)), max_size=40),
       recs=records(), stop=st.sampled_from([None, "model", "turns", "length", "junk", 3]),
       shown=st.sampled_from([None, (384, 384), (1, 1)]),
       step=st.sampled_from([None, -1, 7, "x", 2 ** 70, float("nan")]),
       runs=st.sampled_from([None, [3, 4], ["a"], "junk", [-1]]))
def test_any_text_and_any_records_score_without_raising(cs, sample, dataset, parts, recs, stop, shown, step, runs):
    from virl.verl import board

    extra = {} if recs is None else {"virl_zooms": recs}
    for k, v in (("virl_stop", stop), ("global_steps", step), ("virl_turn_tokens", runs)):
        if v is not None:
            extra[k] = v
    out = call(cs, "".join(parts), sample, dataset, extra, shown)
    well_formed(out)
    # Scored by the rules, not by the last guard (which is for bugs of ours).
    assert not any("could not be scored" in e for e in json.loads(out["virl_format"])), out["virl_format"]
    if runs is not None:
        board.collect([board.key(sample["id"], [3, 4]), board.key(sample["id"], [-1])])


@contextmanager
def hang_guard(seconds):
    """Fails a case that runs for minutes (the quadratic code took 355 s on
    1 MB). Not a speed assertion: BENCHMARKS.md measures the time."""
    def fail(*_):
        raise TimeoutError(f"still running after {seconds} s: not linear")
    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


MB = 1 << 20


def degenerate(kind: str, size: int) -> str:
    unit = {"tool_response": "<tool_response>", "answer": "<answer>", "close_call": "</tool_call>",
            "tool_turn": turn([1, 2, 30, 40]), "think": "<think>", "spaces": " \n"}[kind]
    text = unit * (size // len(unit))
    return text + "<tool_call>" if kind == "close_call" else text + "user"


@pytest.mark.parametrize("kind", ["tool_response", "answer", "close_call", "tool_turn", "think", "spaces"])
def test_a_megabyte_of_one_tag_scores_low_with_a_short_reason(cs, sample, dataset, kind):
    with hang_guard(60):
        out = call(cs, degenerate(kind, MB), sample, dataset)
    well_formed(out)
    assert out["r_fmt"] == -1.0 and out["acc"] == 0.0
    assert len(json.loads(out["virl_format"])) <= 25


def test_episodes_cut_off_by_verl_are_truncated_not_malformed(cs, sample, dataset):
    b = sample["rationales"][0]["bbox"]
    recs = [{"proposed": b, "executed": b, "turn": 0}]
    # The turn limit: the last turn's call is never run (ToolAgentLoop stops before parsing it).
    at_turn_limit = turn(b) + f"<think>again</think>{tool_call(b)}"
    # The length limit: the last turn stops mid-word.
    at_length_limit = turn(b) + '<think>look<tool_call>{"name": "image_zo'
    for text, stop in [(at_turn_limit, "turns"), (at_turn_limit, None), (at_length_limit, "length"),
                       (at_length_limit, None)]:
        extra = {"virl_zooms": recs, **({"virl_stop": stop} if stop else {})}
        out = call(cs, text, sample, dataset, extra)
        assert out["truncated"] == 1.0, (text, stop)
        assert out["r_fmt"] == 0.0 and out["acc"] == 0.0 and out["zooms"] == 1.0, out
    # A model that stops without answering is not cut off: that is a format error.
    out = call(cs, turn(b) + "I give up.", sample, dataset, {"virl_zooms": recs, "virl_stop": "model"})
    assert out["truncated"] == 0.0 and out["r_fmt"] == -1.0


def test_a_rejected_call_is_never_a_zoom(cs, sample, dataset):
    b = sample["rationales"][0]["bbox"]
    bad = [b[2], b[1], b[0], b[3]]  # x2 < x1
    only_bad = {"virl_zooms": [{"rejected": "bbox_2d is empty", "turn": 0}]}
    bad_then_good = {"virl_zooms": [{"rejected": "bbox_2d is empty", "turn": 0},
                                    {"proposed": b, "executed": b, "turn": 1}]}
    a = call(cs, turn(bad) + f"<answer>{sample['answer']}</answer>", sample, dataset, only_bad)
    c = call(cs, turn(bad) + turn(b) + f"<answer>{sample['answer']}</answer>", sample, dataset, bad_then_good)
    assert (a["zooms"], c["zooms"]) == (0.0, 1.0)
    assert a["r_fmt"] == c["r_fmt"] == -1.0
    assert any("rejected" in e for e in json.loads(a["virl_format"]))
    # Read from the text (another zoom tool), the same call is the same: not a zoom, a format error.
    t = call(cs, turn(bad) + f"<answer>{sample['answer']}</answer>", sample, dataset)
    assert (t["zooms"], t["r_fmt"]) == (0.0, -1.0)


def test_validation_rollouts_are_traced_apart_and_kept_off_the_board(cs, sample, dataset, tmp_path):
    from virl.verl import board

    cs = load_compute_score(trace=str(tmp_path / "trace"))
    b = sample["rationales"][0]["bbox"]
    text = turn(b) + f"<answer>{sample['answer']}</answer>"
    before = board.pending()
    for validate in (False, True):
        extra = {"virl_zooms": [{"proposed": b, "executed": b, "turn": 0}], "virl_uid": f"u{validate}",
                 "virl_turn_tokens": [3, 4], "global_steps": 10, "virl_validate": validate}
        out = call(cs, text, sample, dataset, extra)
        assert isinstance(out["gt_version"], str)  # not averaged into verl's validation metrics
    assert board.pending() == before + 1  # the training rollout only
    board.collect([board.key("uFalse", [3, 4])])
    train = (tmp_path / "trace" / "rollouts").rglob("*.jsonl")
    val = (tmp_path / "trace" / "validation" / "rollouts").rglob("*.jsonl")
    lines = lambda files: [json.loads(l) for f in files for l in f.read_text().splitlines()]
    assert [t["group"] for t in lines(train)] == ["uFalse"]
    assert [t["group"] for t in lines(val)] == ["uTrue"]


def test_a_trace_that_cannot_be_written_never_stops_the_score(sample, dataset, tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the trace folder should be")
    cs = load_compute_score(trace=str(blocker))
    out = call(cs, f"<answer>{sample['answer']}</answer>", sample, dataset)
    well_formed(out)
    assert out["acc"] == 1.0 and "virl trace" in caplog.text
