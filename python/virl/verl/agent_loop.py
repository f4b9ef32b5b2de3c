"""``virl_agent``: verl's ``tool_agent`` loop, plus what the ``virl`` estimator needs.

It runs verl's ``ToolAgentLoop`` unchanged, then adds to the trajectory's
``extra_fields`` (which reach ``compute_score`` as ``extra_info``):

- ``virl_uid``: the row's GRPO group (verl's ``uid``);
- ``virl_turn_tokens``: the lengths of the response's runs of model tokens,
  one per assistant turn, after verl's length cut.

Together they key the trajectory on the credit board (:mod:`virl.verl.board`).
Select it per row with the dataset's ``agent_name`` column (``virl export
--format verl`` writes ``virl_agent``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core

NAME = "virl_agent"

try:
    from verl.experimental.agent_loop.agent_loop import register as _register
    from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop
except ImportError:  # pragma: no cover - verl is needed only inside verl
    ToolAgentLoop = None


def turn_tokens(response_mask: list) -> list:
    """The lengths of the runs of 1s in a response mask."""
    if not response_mask:
        return []
    return _core.mask_runs(np.asarray([response_mask], dtype=np.float32))[0]


if ToolAgentLoop is not None:

    class VirlAgentLoop(ToolAgentLoop):
        """verl's tool agent loop, keyed for the ``virl`` estimator."""

        async def run(self, sampling_params: dict, **kwargs: Any):
            out = await super().run(sampling_params, **kwargs)
            out.extra_fields["virl_uid"] = str(kwargs.get("uid", ""))
            out.extra_fields["virl_turn_tokens"] = turn_tokens(out.response_mask)
            return out

    def register() -> None:
        """Registers ``virl_agent`` with verl (idempotent)."""
        from verl.experimental.agent_loop.agent_loop import _agent_loop_registry

        if NAME not in _agent_loop_registry:
            _register(NAME)(VirlAgentLoop)
