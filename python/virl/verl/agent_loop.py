"""``virl_agent``: verl's ``tool_agent`` loop, plus what the ``virl`` estimator needs.

It runs verl's ``ToolAgentLoop`` unchanged, then adds to the trajectory's
``extra_fields`` (which reach ``compute_score`` as ``extra_info``):

- ``virl_uid``: the row's GRPO group (verl's ``uid``);
- ``virl_turn_tokens``: the lengths of the response's runs of model tokens,
  one per assistant turn, after verl's length cut;
- ``virl_stop``: why the episode ended: ``model`` (the model stopped
  without a tool call), ``turns`` (``max_assistant_turns`` or
  ``max_user_turns`` reached: the last turn's tool call, if any, is never
  run) or ``length`` (the response reached ``response_length``);
- ``virl_validate``: whether verl is validating (see :func:`is_validation`).

Together they key the trajectory on the credit board (:mod:`virl.verl.board`).
Select it per row with the dataset's ``agent_name`` column (``virl export
--format verl`` writes ``virl_agent``).
"""

from __future__ import annotations

import asyncio
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


def is_validation() -> bool:
    """Whether the rollout running in this asyncio task is a validation rollout.

    verl 0.9.1 knows it (``batch.meta_info["validate"]``, or ``validate`` in
    the V1 trainer's batch) but does not pass it to the agent loop. Both
    trainers run each trajectory as a task of
    ``AgentLoopWorker._run_agent_loop(sampling_params, trajectory, …)``,
    whose ``trajectory["validate"]`` says it; this reads that argument.
    Anything else (a loop run outside verl's worker, another verl) reads as
    training, as before this was added."""
    try:
        task = asyncio.current_task()
        frame = getattr(task.get_coro(), "cr_frame", None) if task is not None else None
        traj = frame.f_locals.get("trajectory") if frame is not None else None
        return bool(traj.get("validate", False)) if isinstance(traj, dict) else False
    except Exception:  # never fail a rollout over a label
        return False


def stop_reason(num_turns: int, response_len: int, response_length: int, max_assistant_turns: Any,
                max_user_turns: Any) -> str:
    """Why verl's ``ToolAgentLoop`` ended an episode, from its output.
    It alternates assistant and tool turns and ends after an assistant
    turn, so ``num_turns = user + assistant + 1`` gives ``assistant =
    num_turns // 2`` and ``user = assistant − 1``."""
    assistant = int(num_turns) // 2
    user = max(assistant - 1, 0)
    if response_length and response_len >= int(response_length):
        return "length"
    if (max_assistant_turns and assistant >= int(max_assistant_turns)) or (
            max_user_turns and user >= int(max_user_turns)):
        return "turns"
    return "model"


if ToolAgentLoop is not None:

    class VirlAgentLoop(ToolAgentLoop):
        """verl's tool agent loop, keyed for the ``virl`` estimator."""

        async def run(self, sampling_params: dict, **kwargs: Any):
            validate = is_validation()
            out = await super().run(sampling_params, **kwargs)
            out.extra_fields["virl_uid"] = str(kwargs.get("uid", ""))
            out.extra_fields["virl_turn_tokens"] = turn_tokens(out.response_mask)
            out.extra_fields["virl_stop"] = stop_reason(
                out.num_turns, len(out.response_mask), getattr(self, "response_length", None),
                getattr(self, "max_assistant_turns", None), getattr(self, "max_user_turns", None))
            out.extra_fields["virl_validate"] = validate
            return out

    def register() -> None:
        """Registers ``virl_agent`` with verl (idempotent)."""
        from verl.experimental.agent_loop.agent_loop import _agent_loop_registry

        if NAME not in _agent_loop_registry:
            _register(NAME)(VirlAgentLoop)
