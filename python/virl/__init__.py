"""ViRL Studio for Python: the ViRL rationale rewards and per-action credit.

Every number comes from the Rust engine (``virl._core``), the same code that
``virl score``, the trainer and the studio run; nothing here re-implements a
formula (DESIGN §4-5).

>>> import virl
>>> sample = {"id": "s1", "image": "s1.png", "width": 100, "height": 100,
...           "question": "What digit?", "answer": "7",
...           "rationales": [{"bbox": [10, 10, 30, 30], "label": "placard"}]}
>>> line = virl.score({"sample": "s1", "zooms": [[10, 10, 30, 30]], "answer": "7"}, sample)
>>> line["rewards"]["ans"], round(line["actions"][0]["iou"], 3)
(1.0, 1.0)

A trajectory is given in any layout ``virl score --format virl`` reads: the
short form ``{"sample", "group"?, "zooms": [[x1, y1, x2, y2], ...], "answer",
"truncated"?, "format_errors"?}`` or the full record (``actions`` with
``proposed``/``executed`` boxes). Boxes are in pixels of the original image.
A sample is a manifest line (``id``, ``image``, ``width``, ``height``,
``question``, ``answer``, ``options``?, ``rationales``).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Optional

from . import _core

__all__ = ["score", "score_group", "score_record", "reward_config", "parse_model_output", "execute_box"]
__version__ = _core.__version__


def _cfg(config: Optional[Mapping[str, Any]]) -> Optional[str]:
    return None if config is None else json.dumps(dict(config))


def reward_config(**overrides: Any) -> dict:
    """Every reward and credit constant (DESIGN §4-5), defaults with ``overrides``.

    ``mode`` is ``"outcome"``, ``"fidelity"`` or ``"virl"``. Raises ``ValueError``
    naming the constant when a value is out of range.
    """
    return json.loads(_core.reward_config(json.dumps(overrides)))


def score_record(trajectory: Mapping[str, Any], sample: Mapping[str, Any],
                 config: Optional[Mapping[str, Any]] = None) -> dict:
    """Scores one trajectory (DESIGN §4) and returns the full trajectory record.

    Its advantage and per-action credit are neutral until :func:`score_group`
    sees its group.
    """
    return json.loads(_core.score(json.dumps(trajectory), json.dumps(sample), _cfg(config)))


def score(trajectory: Mapping[str, Any], sample: Mapping[str, Any],
          config: Optional[Mapping[str, Any]] = None) -> dict:
    """Scores one trajectory; returns what a ``virl score`` output line holds.

    Keys: ``sample``, ``group``, ``rewards`` (``ans``, ``rat``, ``fmt``,
    ``total``), ``coverage``, ``advantage`` (0 for a lone trajectory) and
    ``actions`` (per zoom: ``bbox``, ``iou``, ``gt``, ``sigma``, ``beta``,
    ``redundant``, ``fidelity``, ``quality``, ``modulator``, ``advantage``).
    """
    rec = _core.score(json.dumps(trajectory), json.dumps(sample), _cfg(config))
    return json.loads(_core.score_line(rec))


def score_group(trajectories: Iterable[Mapping[str, Any]], samples: Mapping[str, Mapping[str, Any]],
                config: Optional[Mapping[str, Any]] = None) -> list:
    """Scores trajectories and assigns credit by group (DESIGN §5).

    ``samples`` maps a sample id to its sample. Trajectories are grouped by
    their ``group`` (default: the sample id), as ``virl score`` groups a file.
    Returns one ``virl score`` line per trajectory, in order.
    """
    cfg = _cfg(config)
    scored = []
    for i, t in enumerate(trajectories):
        sid = str(t.get("sample", ""))
        if sid not in samples:
            raise KeyError(f"trajectory {i}: sample {sid!r} is not among the samples given")
        scored.append(json.loads(_core.score(json.dumps(t), json.dumps(samples[sid]), cfg)))
    credited = json.loads(_core.assign_credit(json.dumps(scored), cfg))
    return [json.loads(_core.score_line(json.dumps(t))) for t in credited]


def parse_model_output(text: str) -> tuple:
    """``(boxes, answer, errors)`` read from DeepEyes-style model text
    (``<tool_call>`` with ``bbox_2d``, ``<answer>``), as ``virl score --format
    deepeyes`` reads it. Never raises: problems are in ``errors``."""
    return _core.parse_model_output(text)


def execute_box(bbox, width: float, height: float, min_side: float = 28.0) -> list:
    """The box a zoom crops on a ``width x height`` image: clipped to the image
    and grown to ``min_side`` around its centre (``env::execute_box``)."""
    return list(_core.execute_box([float(x) for x in bbox], float(width), float(height), float(min_side)))
