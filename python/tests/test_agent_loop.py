"""`virl_agent`: verl's tool agent loop plus the credit board's key."""

from __future__ import annotations

import asyncio

import virl.verl  # noqa: F401


def test_the_loop_adds_the_uid_and_the_turn_lengths(monkeypatch):
    from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput, _agent_loop_registry
    from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop

    from virl.verl.agent_loop import VirlAgentLoop

    assert _agent_loop_registry["virl_agent"] == {"_target_": "virl.verl.agent_loop.VirlAgentLoop"}
    seen = {}

    async def tool_agent_run(self, sampling_params, **kwargs):
        seen.update(kwargs)
        # two assistant turns (3 and 2 tokens) around a tool response (4 tokens), as ToolAgentLoop returns them
        return AgentLoopOutput(prompt_ids=[7, 7], response_ids=list(range(9)),
                               response_mask=[1, 1, 1, 0, 0, 0, 0, 1, 1], num_turns=4,
                               metrics=AgentLoopMetrics(), extra_fields={"virl_zooms": [{"turn": 0}]})

    monkeypatch.setattr(ToolAgentLoop, "run", tool_agent_run)
    loop = object.__new__(VirlAgentLoop)  # no LLM server needed for what it adds
    out = asyncio.run(loop.run({"temperature": 1.0}, uid="u-42", raw_prompt=[], index=3))
    assert seen["uid"] == "u-42"
    assert out.extra_fields["virl_uid"] == "u-42"
    assert out.extra_fields["virl_turn_tokens"] == [3, 2]
    assert out.extra_fields["virl_zooms"] == [{"turn": 0}]
    # What verl's AgentLoopWorker does with it: the fields survive as_dict.
    assert out.as_dict()["extra_fields"]["virl_turn_tokens"] == [3, 2]
