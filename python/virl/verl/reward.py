"""``compute_score`` for verl's ``reward.custom_reward_function``.

Configure it (verl 0.9.x; the old top-level ``custom_reward_function`` key is
ignored by ``main_ppo`` since verl PR #6710)::

    reward.custom_reward_function.path=pkg://virl.verl.reward
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.trace=/shared/traces/run-1   # optional: the studio follows it

It returns the same scalar keys for every sample -- ``score`` (= R),
``acc`` (R_ans), ``r_rat``, ``r_fmt``, ``coverage`` (0 when the sample has no
rationale box), ``zooms``, ``acc_rat`` (0 without zooms) and
``gt_version`` -- and ``virl_actions``, the per-action detail as one JSON
string (a ``virl score`` line's ``actions``).

The ground truth is the row's ``reward_model.ground_truth`` as ``virl export
--format verl`` writes it: a JSON string ``{"sample": <manifest line>,
"dataset": <dataset folder>, "shown": [w, h]}``. When the dataset folder is
readable, the sample's *current* boxes are used: a correction saved in the
studio counts from the next call on, and ``gt_version`` records which boxes
each score used.

Zooms come from the zoom tool's records (``extra_info["virl_zooms"]``); a
run that used another zoom tool has none, and the boxes are then read from
the ``<tool_call>`` text as ``virl score --format deepeyes`` reads them, in
the frame the model saw (``shown``) and mapped to original pixels. A
malformed turn scores R_fmt = -1. Bad model text never raises.

``reward_kwargs``: ``trace`` (a folder; or ``$VIRL_TRACE``), ``metrics``
(verl's ``file`` logger JSONL for the studio's curves; or
``$VERL_FILE_LOGGER_PATH``), ``reward`` (overrides of the reward constants, on
top of ``$VIRL_REWARD``), ``min_side`` (the zoom tool's minimum side, 28).
"""

from __future__ import annotations

import json
import logging
import os
import re
from functools import lru_cache
from typing import Any, Optional

# Absolute imports: verl may load this file by its path (a `file://` path).
from virl import _core
from virl.verl import board
from virl.verl.config import reward_config_json
from virl.verl.tool import to_original

logger = logging.getLogger(__name__)

_TOOL_RESPONSE = re.compile(r"<tool_response>(.*?)</tool_response>", re.S)
_ROLE_TAIL = re.compile(r"\s*(user|assistant)\s*$")
_ROLE_HEAD = re.compile(r"^\s*(user|assistant)\s*\n")


@lru_cache(maxsize=8)
def _scorer(config: str) -> "_core.Scorer":
    return _core.Scorer(config)


@lru_cache(maxsize=8)
def _trace(path: str, dataset: str, metrics: Optional[str], config: str) -> "_core.Trace":
    return _core.Trace(path, dataset, "verl", metrics, config)


@lru_cache(maxsize=4096)
def _ground_truth(text: str) -> tuple:
    """(sample JSON, dataset folder or None, shown (w, h) or None, sample dict)."""
    try:
        gt = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"reward_model.ground_truth is not the JSON `virl export --format verl` writes ({e}): {text[:80]!r}"
        ) from None
    if not isinstance(gt, dict) or not isinstance(gt.get("sample"), dict):
        raise ValueError(f"reward_model.ground_truth has no `sample` object: {text[:80]!r}")
    shown = gt.get("shown")
    return json.dumps(gt["sample"]), gt.get("dataset"), tuple(shown) if shown else None, gt["sample"]


def _transcript(question: str, size: tuple, text: str, zoom_turns: dict) -> list:
    """The conversation as the studio shows it, from verl's decoded response
    (``skip_special_tokens`` leaves role names at turn boundaries)."""
    turns = [{"role": "user", "text": f"<image {size[0]}x{size[1]}>\n{question}"}]
    pos, k = 0, 0
    for m in _TOOL_RESPONSE.finditer(text):
        a = _ROLE_TAIL.sub("", _ROLE_HEAD.sub("", text[pos:m.start()]))
        turns.append(dict({"role": "assistant", "text": a}, **zoom_turns.get(k, {})))
        turns.append({"role": "tool", "text": m.group(1).strip()})
        pos, k = m.end(), k + 1
    turns.append(dict({"role": "assistant", "text": _ROLE_HEAD.sub("", text[pos:])}, **zoom_turns.get(k, {})))
    return turns


def _cut_off(text: str, answer: Optional[str], actions: list) -> bool:
    """Whether the episode was cut off (turn or length limit) rather than
    ended by the model: no answer, and nothing written after the last tool
    response. A model that stops without answering is not cut off (its
    R_ans is 0 all the same)."""
    if answer is not None or not actions:
        return False
    tail = text.rsplit("</tool_response>", 1)
    return len(tail) == 2 and not _ROLE_HEAD.sub("", tail[1]).strip()


def _step(extra: dict) -> int:
    for k in ("global_steps", "max_global_steps", "min_global_steps"):
        v = extra.get(k)
        if v is not None:
            try:
                return int(v)
            except (TypeError, ValueError):
                pass
    env = os.environ.get("VIRL_STEP")
    return int(env) if env and env.isdigit() else 0


def compute_score(data_source: Any = None, solution_str: str = "", ground_truth: Any = None,
                  extra_info: Optional[dict] = None, **kwargs: Any) -> dict:
    """Scores one verl trajectory with the ViRL reward (see the module docs)."""
    extra = dict(extra_info or {})
    config = reward_config_json(kwargs.get("reward"))
    scorer = _scorer(config)
    if isinstance(ground_truth, dict):
        ground_truth = json.dumps(ground_truth)
    sample_json, dataset, shown, sample = _ground_truth(str(ground_truth))
    size = (float(sample["width"]), float(sample["height"]))
    text = solution_str if isinstance(solution_str, str) else str(solution_str)
    # A tokenizer can decode to lone surrogates; they are not UTF-8.
    text = text.encode("utf-8", "replace").decode("utf-8")
    boxes, answer, errors = _core.parse_model_output(text)
    records = extra.get("virl_zooms")
    min_side = float(kwargs.get("min_side", 28.0))
    if records is None:
        # Another zoom tool: read the calls off the text, in the frame the model saw.
        actions = []
        for b in boxes:
            p = to_original(b, shown, size) if shown else list(b)
            actions.append({"proposed": p, "executed": _core.execute_box(p, size[0], size[1], min_side)})
    else:
        actions = [{"proposed": r["proposed"], "executed": r["executed"], "turn": r.get("turn")}
                   for r in list(records)]
    uid = str(extra.get("virl_uid") or extra.get("uid") or sample["id"])
    zoom_turns: dict = {}
    ordinals = []  # the assistant turn of each zoom, from 0 (a run of mask-1 tokens)
    for k, a in enumerate(actions):
        t = a.get("turn")
        ordinals.append(int(t) if t is not None else k)
        if t is not None:
            zoom_turns.setdefault(int(t), {"zoom": a["proposed"]})
            a["turn"] = 1 + 2 * int(t)  # index into the transcript: user, (assistant, tool)*
    image = sample.get("image", "")
    if dataset and image and not os.path.isabs(image):
        image = os.path.join(dataset, image)
    traj = {
        "sample": sample["id"], "group": uid, "iteration": _step(extra), "truth": sample["answer"],
        "answer": answer, "truncated": _cut_off(text, answer, actions), "actions": actions, "format_errors": errors,
        "transcript": _transcript(sample.get("question", ""), size, text, zoom_turns), "image": image,
    }
    scored_json = scorer.score(json.dumps(traj), sample_json, dataset if dataset and os.path.isdir(dataset) else None)
    scored = json.loads(scored_json)
    trace = kwargs.get("trace") or os.environ.get("VIRL_TRACE")
    if trace:
        try:
            metrics = kwargs.get("metrics") or os.environ.get("VERL_FILE_LOGGER_PATH")
            _trace(str(trace), str(dataset or ""), metrics, config).append(scored_json)
        except (OSError, ValueError) as e:  # never stop a run over its trace
            logger.warning("virl trace: %s", e)
    runs = extra.get("virl_turn_tokens")
    if runs is not None:
        zooms = [[o, s.get("iou"), bool(s.get("redundant"))] for o, s in zip(ordinals, scored["actions"])]
        board.publish(uid, runs, scored["rewards"]["total"], zooms, config)
    rewards = scored["rewards"]
    ious = [a.get("iou") for a in scored["actions"] if a.get("iou") is not None]
    return {
        "score": float(rewards["total"]),
        "acc": float(rewards["ans"]),
        "r_rat": float(rewards["rat"]),
        "r_fmt": float(rewards["fmt"]),
        "coverage": float(scored.get("coverage") or 0.0),
        "zooms": float(len(scored["actions"])),
        "acc_rat": float(sum(i >= 0.5 for i in ious) / len(ious)) if ious else 0.0,
        "gt_version": float(scored.get("gt_version") or 0),
        "virl_actions": json.dumps(json.loads(_core.score_line(scored_json))["actions"]),
    }
