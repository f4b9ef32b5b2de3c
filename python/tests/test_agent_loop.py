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


def _fake_tool_agent(monkeypatch, num_turns, mask):
    from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput
    from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop

    async def tool_agent_run(self, sampling_params, **kwargs):
        return AgentLoopOutput(prompt_ids=[7], response_ids=list(range(len(mask))), response_mask=mask,
                               num_turns=num_turns, metrics=AgentLoopMetrics(), extra_fields={})

    monkeypatch.setattr(ToolAgentLoop, "run", tool_agent_run)


def _loop(response_length=64, max_assistant_turns=7, max_user_turns=None):
    from virl.verl.agent_loop import VirlAgentLoop

    loop = object.__new__(VirlAgentLoop)
    loop.response_length, loop.max_assistant_turns, loop.max_user_turns = (
        response_length, max_assistant_turns, max_user_turns)
    return loop


def test_the_loop_says_why_the_episode_ended(monkeypatch):
    # ToolAgentLoop: num_turns = user + assistant + 1, and it ends after an assistant turn.
    cases = [
        (4, [1] * 3 + [0] * 2 + [1] * 2, {}, "model"),                      # zoom, answer
        (14, [1, 0] * 6 + [1], {}, "turns"),                                  # 7 assistant turns
        (4, [1] * 30 + [0] * 4 + [1] * 30, {"response_length": 64}, "length"),
        (6, [1, 0, 1, 0, 1], {"max_assistant_turns": None, "max_user_turns": 2}, "turns"),
    ]
    for num_turns, mask, limits, want in cases:
        _fake_tool_agent(monkeypatch, num_turns, mask)
        out = asyncio.run(_loop(**limits).run({}, uid="u", raw_prompt=[]))
        assert out.extra_fields["virl_stop"] == want, (num_turns, limits)
        assert out.extra_fields["virl_validate"] is False


def test_validation_is_read_from_verls_own_worker_call(monkeypatch):
    """verl's AgentLoopWorker._run_agent_loop (the code both trainers run)
    calls the loop; the loop learns from it whether verl is validating."""
    import hydra
    from omegaconf import OmegaConf
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker, _agent_loop_registry

    _fake_tool_agent(monkeypatch, 2, [1, 1, 1])
    monkeypatch.setattr(hydra.utils, "instantiate", lambda config, **kw: _loop())

    class Worker:  # what _run_agent_loop reads of its AgentLoopWorker
        config = OmegaConf.create({"data": {}})
        llm_client = tokenizer = processor = hf_model_type = dataset_cls = None
        tools = []

        async def _agent_loop_postprocess(self, output, validate, **kwargs):
            return output, validate

    assert "virl_agent" in _agent_loop_registry
    for validate in (False, True):
        traj = {"step": 3, "sample_index": 0, "rollout_n": 0, "validate": validate}
        out, seen = asyncio.run(AgentLoopWorker._run_agent_loop(
            Worker(), {}, traj, agent_name="virl_agent", raw_prompt=[], uid="u"))
        assert seen is validate and out.extra_fields["virl_validate"] is validate
