"""The reward config of a verl run, shared by ``compute_score`` and the estimator.

One source: the environment variable ``VIRL_REWARD``, a JSON object of
overrides of DESIGN §4-5's constants (``{"alpha": 0.3, "mode": "virl"}``),
which every Ray worker sees when it is passed through
``+ray_kwargs.ray_init.runtime_env.env_vars``. ``compute_score`` also takes
``reward_kwargs.reward`` (the same object), applied on top. The estimator
uses the config each trajectory was scored with (it travels on the credit
board), so the two can never disagree.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any, Mapping, Optional

from .. import _core


@lru_cache(maxsize=64)
def _validated(overrides_json: str) -> str:
    return _core.reward_config(overrides_json)


def reward_config_json(overrides: Optional[Mapping[str, Any]] = None) -> str:
    """The validated config (JSON): defaults, then ``$VIRL_REWARD``, then ``overrides``."""
    merged: dict = {}
    env = os.environ.get("VIRL_REWARD", "").strip()
    if env:
        try:
            merged.update(json.loads(env))
        except json.JSONDecodeError as e:
            raise ValueError(f"VIRL_REWARD is not a JSON object of reward constants: {e}") from None
    if overrides:
        merged.update(dict(overrides))
    return _validated(json.dumps(merged, sort_keys=True))
