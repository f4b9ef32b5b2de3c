"""The credit board across processes: compute_score in Ray workers (as verl's
reward-loop workers run it), the estimator in the driver."""

from __future__ import annotations

import random

import pytest

from conftest import gt_string, samples
from test_estimator import WIDTH, make_row, to_dataproto


@pytest.fixture()
def ray_cluster():
    ray = pytest.importorskip("ray")  # installed with verl; never skipped under python/requirements.txt
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"VIRL_REWARD": '{"alpha": 0.3}'}})
    yield ray
    from virl.verl import board
    board._actor = None
    ray.shutdown()


def test_entries_published_by_workers_reach_the_driver(ray_cluster, dataset):
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.ray_trainer import compute_advantage

    ray = ray_cluster
    rng = random.Random(5)
    s = next(iter(samples(dataset).values()))
    b = s["rationales"][0]["bbox"]
    far = [b[0] + 200, b[1], b[2] + 200, b[3]]
    rows = [make_row(rng, s, "R", [b], s["answer"]), make_row(rng, s, "R", [far], s["answer"]),
            make_row(rng, s, "R", [], "wrong")]

    @ray.remote
    def score(text, gt, extra):
        import os

        from omegaconf import OmegaConf
        from verl.trainer.ppo.reward import get_custom_reward_fn

        cfg = OmegaConf.create({"reward": {"custom_reward_function": {
            "path": "pkg://virl.verl.reward", "name": "compute_score", "reward_kwargs": {}}}})
        fn = get_custom_reward_fn(cfg)
        return fn(data_source="x", solution_str=text, ground_truth=gt, extra_info=extra), os.getpid()

    import os
    results = ray.get([score.remote(r["text"], gt_string(s, dataset), {
        "virl_zooms": r["records"], "virl_uid": r["uid"], "virl_turn_tokens": r["runs"]}) for r in rows])
    scores = [sc for sc, _ in results]
    assert all(pid != os.getpid() for _, pid in results)
    out = compute_advantage(to_dataproto(rows, scores), adv_estimator="virl", config=AlgoConfig())
    adv = out.batch["advantages"]
    # Row 0 zoomed on the rationale with A > 0: its zoom turn gets m = 1 + alpha (0.3, from
    # the workers' VIRL_REWARD) times A; its answer turn gets A.
    zoom_turn = adv[0][: rows[0]["runs"][0]]  # the first run of mask-1 tokens
    answer_tok = adv[0][max(i for i, m in enumerate(rows[0]["mask"]) if m)]
    assert zoom_turn.unique().numel() == 1 and answer_tok > 0
    assert (zoom_turn[0] / answer_tok).item() == pytest.approx(1.3, abs=1e-5)
    assert adv.shape == (3, WIDTH)
