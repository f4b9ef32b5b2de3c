"""``compute_score`` for verl's ``reward.custom_reward_function``.

Configure it (verl 0.9.x; the old top-level ``custom_reward_function`` key is
ignored by ``main_ppo`` since verl PR #6710)::

    reward.custom_reward_function.path=pkg://virl.verl.reward
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.trace=/shared/traces/run-1   # optional: the studio follows it

It returns the same keys for every sample: the numbers ``score`` (= R),
``acc`` (R_ans), ``r_rat``, ``r_fmt``, ``coverage`` (0 when the sample has no
rationale box), ``zooms``, ``acc_rat`` (0 without zooms) and ``truncated``
(1 when verl cut the episode off at its turn or length limit), and the
strings ``gt_version``, ``virl_actions`` (the per-action detail, a ``virl
score`` line's ``actions`` as JSON) and ``virl_format`` (the format
problems, a JSON list; empty when R_fmt = 0). verl averages the numbers into
its metrics and skips the strings.

The ground truth is the row's ``reward_model.ground_truth`` as ``virl export
--format verl`` writes it: a JSON string ``{"sample": <manifest line>,
"dataset": <dataset folder>, "shown": [w, h]}``. When the dataset folder is
readable, the sample's *current* boxes are used: a correction saved in the
studio counts from the next call on, and ``gt_version`` records which boxes
each score used.

Zooms come from the zoom tool's records (``extra_info["virl_zooms"]``); a
run that used another zoom tool has none, and the boxes are then read from
the ``<tool_call>`` text as ``virl score --format deepeyes`` reads them, in
the frame the model saw (``shown``) and mapped to original pixels. One rule
for both: a call whose box is four finite numbers with x2 > x1, y2 > y1 is a
zoom (clipped to the image when scored); any other call is a format error
and never a zoom.

Bad model text never raises and never stalls: every parser is linear in the
length of the response, so megabytes of one repeated tag score in
milliseconds (BENCHMARKS.md). A malformed trajectory scores R_fmt = -1 with
its reasons. An episode that verl cut off at its turn or length limit
(``virl_stop`` from the ``virl_agent`` loop, or an unanswered tool call at
the end of the text) is ``truncated``: R_ans = 0, and not answering is not a
format error.

Validation rollouts (the ``virl_agent`` loop marks them ``virl_validate``)
are traced to ``<trace>/validation``, a session of its own, and are kept off
the credit board.

``reward_kwargs``: ``trace`` (a folder; or ``$VIRL_TRACE``), ``metrics``
(verl's ``file`` logger JSONL for the studio's curves; or
``$VERL_FILE_LOGGER_PATH``), ``reward`` (overrides of the reward constants, on
top of ``$VIRL_REWARD``), ``min_side`` (the zoom tool's minimum side, 28).
"""

from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from typing import Any, Optional

# Absolute imports: verl may load this file by its path (a `file://` path).
from virl import _core
from virl.verl import board
from virl.verl.config import reward_config_json

logger = logging.getLogger(__name__)

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
    if shown is not None:
        ok = isinstance(shown, (list, tuple)) and len(shown) == 2 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x < float("inf") for x in shown)
        if not ok:
            raise ValueError(f"reward_model.ground_truth.shown must be [width, height] in pixels, got {shown!r}")
    sample_json = json.dumps(gt["sample"])
    _core.check_sample(sample_json)  # a bad row is the setup's fault: it raises, naming the field
    return sample_json, gt.get("dataset"), tuple(shown) if shown else None, gt["sample"]


_OPEN, _CLOSE = "<tool_response>", "</tool_response>"
_ROLES = ("user", "assistant")


def _strip_role_head(s: str) -> str:
    r"""``s`` without a leading role line (``"user\n"``, ``"  assistant  \n"``)
    that ``skip_special_tokens`` leaves at a turn boundary. Linear time (a
    regex with ``\s*`` on both sides of the role is quadratic on a long run
    of whitespace)."""
    t = s.lstrip()
    for r in _ROLES:
        if t.startswith(r):
            rest = t[len(r):]
            ws = len(rest) - len(rest.lstrip())
            nl = rest.rfind("\n", 0, ws)
            if nl >= 0:
                return rest[nl + 1:]
    return s


def _strip_role_tail(s: str) -> str:
    """``s`` without a trailing role name (``"…\nuser"``). Linear time."""
    t = s.rstrip()
    for r in _ROLES:
        if t.endswith(r):
            return t[: len(t) - len(r)].rstrip()
    return s


def _segments(text: str) -> tuple:
    """The assistant segments and the tool responses of verl's decoded
    response, in order: ``([a0, a1, …], [t0, …])`` with one more assistant
    segment than tool responses. A ``<tool_response>`` never closed ends the
    scan (the rest is the last assistant segment). Linear time: every search
    starts where the previous one ended."""
    assistant, tool = [], []
    pos = 0
    while True:
        i = text.find(_OPEN, pos)
        if i < 0:
            break
        j = text.find(_CLOSE, i + len(_OPEN))
        if j < 0:
            break
        assistant.append(text[pos:i])
        tool.append(text[i + len(_OPEN):j])
        pos = j + len(_CLOSE)
    assistant.append(text[pos:])
    return assistant, tool


def _transcript(question: str, size: tuple, text: str, zoom_turns: dict) -> list:
    """The conversation as the studio shows it, from verl's decoded response
    (``skip_special_tokens`` leaves role names at turn boundaries)."""
    turns = [{"role": "user", "text": f"<image {size[0]}x{size[1]}>\n{question}"}]
    assistant, tool = _segments(text)
    for k, a in enumerate(assistant):
        a = _strip_role_head(a)
        if k < len(tool):
            a = _strip_role_tail(a)
        turns.append(dict({"role": "assistant", "text": a}, **zoom_turns.get(k, {})))
        if k < len(tool):
            turns.append({"role": "tool", "text": tool[k].strip()})
    return turns


# Why verl's agent loop ended an episode (``virl_agent`` writes ``virl_stop``).
STOP_MODEL, STOP_TURNS, STOP_LENGTH = "model", "turns", "length"
# Read off the text: cut off at one limit or the other (the last turn is unfinished or unanswered).
STOP_CUT = "cut"


def _stop_reason(text: str, extra: dict) -> Optional[str]:
    """``virl_stop`` from the ``virl_agent`` loop; without it (verl's plain
    ``tool_agent``), read off the text: after the last tool response the
    model wrote nothing, or a tool call that was never answered. verl stops
    generation at each tool call and runs it, so an unanswered call means
    the loop was cut off (turn or length limit)."""
    stop = extra.get("virl_stop")
    if stop in (STOP_MODEL, STOP_TURNS, STOP_LENGTH):
        return stop
    i = text.rfind(_CLOSE)
    if i < 0:
        return None
    tail = _strip_role_head(text[i + len(_CLOSE):])
    return STOP_CUT if not tail.strip() or "<tool_call>" in tail else None


def _cut_off_errors(text: str, errors: list, stop: Optional[str]) -> list:
    """The format problems of an episode that verl cut off: not having
    answered is the cut's doing, not a format error; after a cut at the
    length limit, so is whatever the unfinished last turn left open, so
    only the turns before it are checked."""
    if stop in (STOP_LENGTH, STOP_CUT):
        i = text.rfind(_CLOSE)
        errors = _core.parse_model_output(text[: i + len(_CLOSE)] if i >= 0 else "")[2]
    return [e for e in errors if e != NO_ANSWER]


NO_ANSWER = "no <answer>…</answer>"


def _step(extra: dict) -> int:
    """verl's global step as the server reports it; a value that is not a
    step (verl's -1 for "unknown", junk) counts as missing."""
    for k in ("global_steps", "max_global_steps", "min_global_steps"):
        v = extra.get(k)
        if v is not None:
            try:
                step = int(v)
            except (TypeError, ValueError, OverflowError):
                continue
            if 0 <= step < 1 << 53:
                return step
    env = os.environ.get("VIRL_STEP")
    return int(env) if env and env.isdigit() else 0


KEYS = ("score", "acc", "r_rat", "r_fmt", "coverage", "zooms", "acc_rat", "truncated",
        "gt_version", "virl_actions", "virl_format")


def _records(records: Any, size: tuple, min_side: float) -> tuple:
    """The zoom tool's records as actions, and the format problems of the
    calls it rejected. A rejected call (its box not four finite numbers with
    x2 > x1, y2 > y1) is never a zoom, whatever else the trajectory did: the
    same rule as a call read from the text. A record that is not what
    ``ZoomTool`` writes is reported, not trusted."""
    actions, errors = [], []
    if not isinstance(records, (list, tuple)):
        return [], [f"extra_info.virl_zooms is a {type(records).__name__}, not a list of the zoom tool's records"]
    for k, r in enumerate(records):
        if not isinstance(r, dict):
            errors.append(f"zoom record {k + 1} is not an object")
            continue
        if r.get("rejected"):
            errors.append(f"tool call rejected by the zoom tool: {str(r['rejected'])[:200]}")
            continue
        try:
            p = _core.to_original(list(r["proposed"]), size, size)  # checks: four finite numbers, well formed
            e = r.get("executed")
            e = _core.execute_box(p, size[0], size[1], min_side) if e is None else _core.to_original(list(e), size, size)
            t = r.get("turn")
            t = None if t is None else int(t)
            if t is not None and not 0 <= t < 1 << 20:
                raise ValueError(f"turn {t} is not an assistant turn")
        except (KeyError, TypeError, ValueError, OverflowError) as err:
            errors.append(f"zoom record {k + 1} is malformed ({err})")
            continue
        actions.append({"proposed": p, "executed": e, "turn": t})
    return actions, errors


def _empty(config: str, reason: str) -> dict:
    """What a trajectory scores when it cannot be scored at all (a fault of
    ours, logged): no answer, no zoom, R_fmt = −1, with the reason."""
    c = json.loads(config)
    fmt = -1.0 * float(c.get("lambda_fmt", 0.2))
    r_rat = float(c.get("r_none", -1.0)) * float(c.get("lambda_rat", 0.5)) if c.get("mode") != "outcome" else 0.0
    return {"score": r_rat + fmt, "acc": 0.0, "r_rat": 0.0, "r_fmt": -1.0, "coverage": 0.0, "zooms": 0.0,
            "acc_rat": 0.0, "truncated": 0.0, "gt_version": "", "virl_actions": "[]",
            "virl_format": json.dumps([reason])}


def compute_score(data_source: Any = None, solution_str: str = "", ground_truth: Any = None,
                  extra_info: Optional[dict] = None, **kwargs: Any) -> dict:
    """Scores one verl trajectory with the ViRL reward (see the module docs).

    Whatever the model wrote and whatever the tool recorded, this returns
    a score: problems become R_fmt = −1 with their reasons in
    ``virl_format``. Only a broken setup raises: reward constants that do
    not validate, or a row whose ground truth is not what ``virl export
    --format verl`` writes."""
    config = reward_config_json(kwargs.get("reward"))
    scorer = _scorer(config)
    if isinstance(ground_truth, dict):
        ground_truth = json.dumps(ground_truth)
    sample_json, dataset, shown, sample = _ground_truth(str(ground_truth))
    try:
        return _score(scorer, config, sample_json, dataset, shown, sample, solution_str,
                      dict(extra_info or {}) if isinstance(extra_info, dict) else {}, kwargs)
    except Exception as e:  # the last guard: a bug of ours must not stop a run
        logger.exception("virl compute_score: sample %s could not be scored", sample.get("id"))
        return _empty(config, f"could not be scored: {type(e).__name__}: {e}"[:500])


def _score(scorer, config: str, sample_json: str, dataset, shown, sample: dict, solution_str: Any,
           extra: dict, kwargs: dict) -> dict:
    size = (float(sample["width"]), float(sample["height"]))
    text = solution_str if isinstance(solution_str, str) else str(solution_str)
    # A tokenizer can decode to lone surrogates; they are not UTF-8.
    text = text.encode("utf-8", "replace").decode("utf-8")
    boxes, answer, errors = _core.parse_model_output(text)
    min_side = float(kwargs.get("min_side", 28.0))
    records = extra.get("virl_zooms")
    rejected: list = []
    if records is None:
        # Another zoom tool: read the calls off the text, in the frame the model saw.
        actions = []
        for b in boxes:
            p = _core.to_original(list(b), shown, size) if shown else list(b)
            actions.append({"proposed": p, "executed": _core.execute_box(p, size[0], size[1], min_side)})
    else:
        actions, rejected = _records(records, size, min_side)
    stop = _stop_reason(text, extra) if answer is None else None
    truncated = answer is None and stop is not None and stop != STOP_MODEL
    if truncated:
        errors = _cut_off_errors(text, errors, stop)
    errors = list(errors) + rejected
    validation = bool(extra.get("virl_validate"))
    uid = str(extra.get("virl_uid") or extra.get("uid") or sample["id"])
    zoom_turns: dict = {}
    ordinals = []  # the assistant turn of each zoom, from 0 (a run of mask-1 tokens)
    for k, a in enumerate(actions):
        t = a.get("turn")
        ordinals.append(t if t is not None else k)
        if t is not None:
            zoom_turns.setdefault(t, {"zoom": a["proposed"]})
            a["turn"] = 1 + 2 * t  # index into the transcript: user, (assistant, tool)*
    image = sample.get("image", "")
    if dataset and image and not os.path.isabs(image):
        image = os.path.join(dataset, image)
    traj = {
        "sample": sample["id"], "group": uid, "iteration": _step(extra), "truth": sample["answer"],
        "answer": answer, "truncated": truncated, "actions": actions, "format_errors": errors,
        "transcript": _transcript(sample.get("question", ""), size, text, zoom_turns), "image": image,
    }
    trace = kwargs.get("trace") or os.environ.get("VIRL_TRACE")
    tr = None
    if trace:
        if validation:  # its own session beside the training trace: the studio opens either
            trace = os.path.join(str(trace), VALIDATION_TRACE)
        try:
            metrics = None if validation else kwargs.get("metrics") or os.environ.get("VERL_FILE_LOGGER_PATH")
            tr = _trace(str(trace), str(dataset or ""), metrics, config)
        except (OSError, ValueError) as e:  # never stop a run over its trace
            logger.warning("virl trace: %s", e)
    # Scored, traced and summed up in the engine: the record is not sent back as JSON.
    report = json.loads(scorer.score_report(json.dumps(traj), sample_json,
                                            dataset if dataset and os.path.isdir(dataset) else None, tr))
    if report["trace_error"]:
        logger.warning("virl trace: %s", report["trace_error"])
    actions = report["actions"]
    rewards = report["rewards"]
    runs = extra.get("virl_turn_tokens")
    if runs is not None and not validation:  # no estimator takes a validation rollout's credit
        zooms = [[o, a.get("iou"), bool(a.get("redundant"))] for o, a in zip(ordinals, actions)]
        try:
            board.publish(uid, runs, rewards["total"], zooms, config)
        except Exception as e:  # ours, not the model's: the estimator then gives this row plain A_i
            logger.warning("virl credit board: trajectory of %s not published (%s: %s)", uid, type(e).__name__, e)
    return {
        "score": float(rewards["total"]),
        "acc": float(rewards["ans"]),
        "r_rat": float(rewards["rat"]),
        "r_fmt": float(rewards["fmt"]),
        "coverage": float(report["coverage"] or 0.0),
        "zooms": float(len(actions)),
        "acc_rat": float(report["acc_rat"] or 0.0),  # the engine's Trajectory::rat_accuracy
        "truncated": float(truncated),
        # A string, so that verl does not average it into its validation metrics.
        "gt_version": str(report["gt_version"] or ""),
        "virl_actions": json.dumps(actions),
        "virl_format": json.dumps(report["format_errors"]),
    }


# Validation rollouts are traced into this folder of the trace: a session of its own.
VALIDATION_TRACE = "validation"
