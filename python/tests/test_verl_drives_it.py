"""verl runs the plugin, not only our calls: verl 0.9.1's own agent-loop
worker code (`AgentLoopWorker._run_agent_loop`, `ToolAgentLoop`'s state
machine, its hermes tool parser, its Continuous Token builder for Qwen2.5-VL
with a real image processor, `qwen_vl_utils`) drives the `virl_agent` loop
and the `ZoomTool` on rows that verl's `RLHFDataset` read from `virl export
--format verl`; then `compute_score`, the trace, the credit board and
`compute_advantage(adv_estimator="virl")`.

What stands in for the parts that need a GPU: the model server is scripted
(it answers with token ids, as vLLM's server does), and the tokenizer is a
byte-level stand-in with Qwen's special tokens (tests/offline_qwen.py): no
weights can be downloaded here. The actor update (FSDP) is not run."""

from __future__ import annotations

import asyncio
import json
import os

import numpy as np
import pytest
import torch

import offline_qwen
from conftest import REPO, samples
from test_export import export


class ScriptedServer:
    """verl's server manager as the agent loop calls it: each call gets the
    next scripted assistant turn of its trajectory, as token ids."""

    def __init__(self, tokenizer, scripts: dict):
        self.tokenizer, self.scripts, self.calls = tokenizer, scripts, []

    async def generate(self, request_id, *, prompt_ids, sampling_params, image_data=None, **kw):
        from verl.workers.rollout.replica import TokenOutput

        text = self.tokenizer.decode(prompt_ids)
        key = next(k for k in self.scripts if k in text)  # the question tells the trajectory
        turn = sum(1 for c in self.calls if c[0] == key)
        self.calls.append((key, len(image_data or [])))
        reply = self.scripts[key][turn] + "<|im_end|>"
        return TokenOutput(token_ids=self.tokenizer.encode(reply, add_special_tokens=False),
                           extra_fields={"global_steps": 4})


def verl_config(tmp_path, max_turns, response_length):
    from hydra import compose, initialize_config_dir
    import verl

    cfg_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=cfg_dir, version_base=None):
        return compose(config_name="ppo_trainer", overrides=[
            "actor_rollout_ref.rollout.multi_turn.enable=True",
            f"actor_rollout_ref.rollout.multi_turn.max_assistant_turns={max_turns}",
            "actor_rollout_ref.rollout.multi_turn.format=hermes",
            f"actor_rollout_ref.rollout.multi_turn.tool_config_path={REPO / 'recipes/verl/tool_config.yaml'}",
            f"actor_rollout_ref.rollout.response_length={response_length}",
            "actor_rollout_ref.rollout.prompt_length=4096",
        ])


def call(box):
    return '<tool_call>\n{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": %s}}\n</tool_call>' % json.dumps(box)


def run_loop(cfg, server, tok, proc, item, validate=False):
    """One trajectory through verl's own worker code (AgentLoopWorker._run_agent_loop)."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
    from verl.tools.tool_registry import initialize_tools_from_config
    from verl.utils.dataset.rl_dataset import RLHFDataset

    class Worker:  # the attributes _run_agent_loop reads of its AgentLoopWorker
        config = cfg
        llm_client = server
        tokenizer, processor, hf_model_type, dataset_cls = tok, proc, "qwen2_5_vl", RLHFDataset
        tools = initialize_tools_from_config(cfg.actor_rollout_ref.rollout.multi_turn.tool_config_path)

        async def _agent_loop_postprocess(self, output, validate, **kwargs):
            return output

    kwargs = {k: v for k, v in item.items() if k in ("raw_prompt", "extra_info", "tools_kwargs", "index")}
    traj = {"step": 4, "sample_index": 0, "rollout_n": 0, "validate": validate}
    return asyncio.run(AgentLoopWorker._run_agent_loop(
        Worker(), {"temperature": 1.0}, traj, agent_name=item["agent_name"], uid=item["uid"], **kwargs))


@pytest.fixture(scope="module")
def rows(dataset, virl_bin, tmp_path_factory):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    tmp = tmp_path_factory.mktemp("verl-e2e")
    out = tmp / "train.parquet"
    assert export(virl_bin, dataset, out).returncode == 0
    proc = offline_qwen.processor()
    ds = RLHFDataset(data_files=str(out), tokenizer=proc.tokenizer, processor=proc,
                     config=OmegaConf.create({"filter_overlong_prompts": False, "cache_dir": str(tmp / "c")}))
    return [ds[i] for i in range(2)], proc


def test_verls_agent_loop_drives_the_tool_the_score_and_the_estimator(rows, dataset, tmp_path):
    from verl import DataProto
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.ray_trainer import compute_advantage
    from virl.verl import board
    from virl.verl.reward import compute_score

    items, proc = rows
    tok = proc.tokenizer
    ss = samples(dataset)
    item = items[0]
    s = ss[item["extra_info"]["sample"]]
    k = 756 / 768  # the shown frame (smart_resize of the 768 px canvas)
    good = [round(x * k, 1) for x in s["rationales"][0]["bbox"]]
    bad = [5, 5, 40, 40]
    q = s["question"]
    server = ScriptedServer(tok, {})
    cfg = verl_config(tmp_path, max_turns=7, response_length=2048)
    group = []
    for i, script in enumerate(([f"{call(good)}", f"<answer>{s['answer']}</answer>"],
                                [f"{call(bad)}", "<answer>no idea</answer>"],
                                [f"{call(bad)}", f"{call(good)}", f"{call(bad)}"])):
        server.scripts = {q: script}
        server.calls = []
        out = run_loop(cfg if i < 2 else verl_config(tmp_path, max_turns=3, response_length=2048),
                       server, tok, proc, dict(item, uid="g0"))
        group.append(out)
    # verl ran the tool: the crop went back to the model as an image, and the records are there.
    first = group[0]
    zooms = first.extra_fields["virl_zooms"]
    assert len(zooms) == 1 and zooms[0]["turn"] == 0
    assert first.extra_fields["virl_uid"] == "g0" and first.extra_fields["virl_stop"] == "model"
    assert len(first.multi_modal_data["images"]) == 2  # the image, then the crop
    assert len(first.extra_fields["virl_turn_tokens"]) == 2  # two assistant turns around the tool's response
    # The third trajectory hit the turn limit with a call never run: truncated, not malformed.
    assert group[2].extra_fields["virl_stop"] == "turns" and len(group[2].extra_fields["virl_zooms"]) == 2

    # verl's reward path: the decoded response and the extra fields, as its reward manager passes them.
    trace = tmp_path / "trace"
    scores = []
    for out in group:
        text = tok.decode(out.response_ids, skip_special_tokens=True)
        extra = dict(item["extra_info"], **out.extra_fields)
        scores.append(compute_score(data_source=item["data_source"], solution_str=text,
                                    ground_truth=item["reward_model"]["ground_truth"], extra_info=extra,
                                    trace=str(trace)))
    assert [sc["acc"] for sc in scores] == [1.0, 0.0, 0.0]
    assert [sc["truncated"] for sc in scores] == [0.0, 0.0, 1.0] and scores[2]["r_fmt"] == 0.0
    assert json.loads(scores[0]["virl_actions"])[0]["iou"] > 0.9

    # The estimator, through verl's compute_advantage, on the loop's own masks.
    width = max(len(o.response_mask) for o in group)
    mask = torch.zeros((3, width), dtype=torch.int64)
    tlr = torch.zeros((3, width), dtype=torch.float32)
    for i, (o, sc) in enumerate(zip(group, scores)):
        mask[i, :len(o.response_mask)] = torch.tensor(o.response_mask)
        tlr[i, max(j for j, m in enumerate(o.response_mask) if m)] = sc["score"]
    data = DataProto.from_dict(tensors={"token_level_rewards": tlr, "response_mask": mask},
                               non_tensors={"uid": np.array(["g0"] * 3, dtype=object)})
    adv = compute_advantage(data, adv_estimator="virl", config=AlgoConfig()).batch["advantages"]
    assert board.pending() == 0  # every published row was matched
    a0 = adv[0][mask[0].bool()]
    n0 = first.extra_fields["virl_turn_tokens"][0]
    assert float(a0[0]) > float(a0[-1]) > 0  # the good zoom's turn is up-weighted, the answer gets A_i
    assert torch.allclose(a0[:n0], a0[0]) and torch.all(adv[0][~mask[0].bool()] == 0)
    # The trace holds the three, at verl's step.
    lines = [json.loads(l) for f in (trace / "rollouts").glob("*.jsonl") for l in f.read_text().splitlines()]
    assert len(lines) == 3 and {l["iteration"] for l in lines} == {4}


def test_a_validation_rollout_from_verls_worker_is_marked(rows, dataset, tmp_path):
    items, proc = rows
    s = samples(dataset)[items[0]["extra_info"]["sample"]]
    server = ScriptedServer(proc.tokenizer, {s["question"]: [f"<answer>{s['answer']}</answer>"]})
    out = run_loop(verl_config(tmp_path, 7, 2048), server, proc.tokenizer, proc, dict(items[0], uid="v"),
                   validate=True)
    assert out.extra_fields["virl_validate"] is True and out.extra_fields["virl_stop"] == "model"
