"""verl's own compute_advantage with adv_estimator=virl equals the engine's
credit (as `virl score` prints it) token by token, on a batch shaped as
verl's agent loop produces it."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

import virl.verl  # noqa: F401  (registers the estimator and the agent loop)
from conftest import gt_string, load_compute_score, samples, virl_score
from virl.verl import board

WIDTH = 96


def _call(box) -> str:
    return '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": %s}}</tool_call>' % json.dumps(box)


def make_row(rng: random.Random, sample: dict, uid: str, zoom_boxes: list, answer: str,
             malformed: bool = False, run_lengths=None) -> dict:
    """One trajectory as verl's tool agent loop leaves it: the decoded text,
    the response mask (assistant runs of 1, tool responses 0, padding 0) and
    the zoom tool's records."""
    turns = len(zoom_boxes) + 1
    runs = run_lengths or [rng.randint(3, 9) for _ in range(turns)]
    mask, text = [], ""
    for k in range(turns):
        mask += [1] * runs[k]
        if k < len(zoom_boxes):
            text += f"<think>look {k}</think>{_call(zoom_boxes[k])}"
            text += "user\n<tool_response>\nZoomed in.\n</tool_response>\nassistant\n"
            mask += [0] * rng.randint(2, 6)
        else:
            text += ("<tool_call>{bad json</tool_call>" if malformed else "") + f"<answer>{answer}</answer>"
    mask += [0] * (WIDTH - len(mask))
    records = [{"proposed": b, "executed": b, "turn": k} for k, b in enumerate(zoom_boxes)]
    return {"sample": sample, "uid": uid, "text": text, "mask": mask, "records": records, "runs": runs}


def build_batch(dataset, rng):
    ss = list(samples(dataset).values())
    rows = []

    def near(s, dx):
        b = s["rationales"][0]["bbox"]
        return [b[0] + dx, b[1] + dx, b[2] + dx, b[3] + dx]

    # Group A: four rows, mixed quality, one malformed, one with a redundant re-look.
    s = ss[0]
    rows += [
        make_row(rng, s, "A", [near(s, 0)], s["answer"]),
        make_row(rng, s, "A", [near(s, 200), near(s, 2)], s["answer"]),
        make_row(rng, s, "A", [near(s, 0), near(s, 1)], "wrong", malformed=True),
        make_row(rng, s, "A", [], s["answer"]),
    ]
    # Group B: zero spread (same zoom, same answer, different token counts).
    s = ss[1]
    rows += [make_row(rng, s, "B", [near(s, 3)], s["answer"]) for _ in range(4)]
    # Group C: a group of one.
    s = ss[2]
    rows += [make_row(rng, s, "C", [near(s, 0)], s["answer"])]
    # Group D: two rows with the same turn structure, told apart by reward.
    s = ss[3]
    rows += [
        make_row(rng, s, "D", [near(s, 0)], s["answer"], run_lengths=[5, 5]),
        make_row(rng, s, "D", [near(s, 300)], s["answer"], run_lengths=[5, 5]),
        make_row(rng, s, "D", [near(s, 100)], "nope"),
    ]
    return rows


def score_rows(rows, dataset, compute_score):
    out = []
    for r in rows:
        extra = {"index": 0, "virl_zooms": r["records"], "virl_uid": r["uid"], "virl_turn_tokens": r["runs"]}
        out.append(compute_score(data_source="virl/test", solution_str=r["text"],
                                 ground_truth=gt_string(r["sample"], dataset), extra_info=extra))
    return out


def to_dataproto(rows, scores):
    from verl import DataProto

    mask = torch.tensor([r["mask"] for r in rows], dtype=torch.int64)
    tlr = torch.zeros(mask.shape, dtype=torch.float32)
    for i, (r, sc) in enumerate(zip(rows, scores)):
        last = max(j for j, m in enumerate(r["mask"]) if m)  # verl: the last valid response token
        tlr[i, last] = sc["score"]
    return DataProto.from_dict(
        tensors={"token_level_rewards": tlr, "response_mask": mask},
        non_tensors={"uid": np.array([r["uid"] for r in rows], dtype=object)},
    )


def expected_tokens(rows, cli_lines):
    exp = torch.zeros((len(rows), WIDTH), dtype=torch.float64)
    for i, (r, line) in enumerate(zip(rows, cli_lines)):
        per_turn = {k: a["advantage"] for k, a in enumerate(line["actions"])}  # zoom k in turn k
        turn, inside = -1, False
        for t, m in enumerate(r["mask"]):
            if m and not inside:
                turn += 1
            inside = bool(m)
            if m:
                exp[i, t] = per_turn.get(turn, line["advantage"])
    return exp


def cli_lines(rows, dataset, virl_bin, tmp_path):
    from virl import parse_model_output

    lines = []
    for r in rows:
        _, answer, errors = parse_model_output(r["text"])
        lines.append({"sample": r["sample"]["id"], "group": r["uid"], "answer": answer,
                      "truncated": answer is None, "format_errors": errors,
                      "zooms": [z["proposed"] for z in r["records"]]})
    return virl_score(virl_bin, dataset, lines, "virl", tmp_path)


@pytest.mark.parametrize("shuffle", [False, True], ids=["in-order", "balanced-reordered"])
def test_compute_advantage_virl_equals_engine_credit(dataset, virl_bin, tmp_path, shuffle):
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.ray_trainer import compute_advantage

    rng = random.Random(7)
    rows = build_batch(dataset, rng)
    scores = score_rows(rows, dataset, load_compute_score())
    cli = cli_lines(rows, dataset, virl_bin, tmp_path)
    for sc, line in zip(scores, cli):
        assert sc["score"] == pytest.approx(line["rewards"]["total"], abs=1e-12)
    data = to_dataproto(rows, scores)
    exp = expected_tokens(rows, cli)
    if shuffle:  # verl's balance_batch reorders rows between reward and advantage
        perm = list(range(len(rows)))
        rng.shuffle(perm)
        data.reorder(torch.tensor(perm))
        exp = exp[perm]
    out = compute_advantage(data, adv_estimator="virl", config=AlgoConfig())
    adv = out.batch["advantages"].to(torch.float64)
    assert adv.shape == (len(rows), WIDTH)
    assert torch.allclose(adv, exp, atol=2e-6), (adv - exp).abs().max()
    assert torch.equal(out.batch["returns"], out.batch["advantages"])
    # The zero-spread group and the group of one get 0 everywhere.
    uids = list(data.non_tensor_batch["uid"])
    for i, u in enumerate(uids):
        if u in ("B", "C"):
            assert adv[i].abs().max() == 0
    # Modulation is real: some zoom turn's tokens differ from the row's A_i.
    a_rows = [line["advantage"] for line in cli]
    assert any(abs(a["advantage"] - line["advantage"]) > 1e-3 for line in cli for a in line["actions"])
    assert any(abs(a) > 0.1 for a in a_rows)
    assert board.pending() == 0, "every entry was taken"


def test_group_of_one_differs_from_verl_grpo_as_documented(dataset):
    """DESIGN §5 gives a lone row A = 0; verl's GRPO gives it A = R (mean 0, std 1)."""
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.ray_trainer import compute_advantage

    rng = random.Random(1)
    s = next(iter(samples(dataset).values()))
    rows = [make_row(rng, s, "solo", [s["rationales"][0]["bbox"]], s["answer"])]
    scores = score_rows(rows, dataset, load_compute_score())
    virl_adv = compute_advantage(to_dataproto(rows, scores), adv_estimator="virl", config=AlgoConfig())
    grpo_adv = compute_advantage(to_dataproto(rows, scores), adv_estimator="grpo", config=AlgoConfig())
    assert virl_adv.batch["advantages"].abs().max() == 0
    r = scores[0]["score"]
    m = torch.tensor(rows[0]["mask"], dtype=torch.bool)
    assert torch.allclose(grpo_adv.batch["advantages"][0][m], torch.full((int(m.sum()),), r / (1 + 1e-6)))


def test_rows_without_board_entries_get_plain_group_advantages(dataset, caplog):
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.ray_trainer import compute_advantage

    rng = random.Random(3)
    s = next(iter(samples(dataset).values()))
    b = s["rationales"][0]["bbox"]
    rows = [make_row(rng, s, "E", [b], s["answer"]), make_row(rng, s, "E", [b], "wrong")]
    data = to_dataproto(rows, [{"score": 1.5}, {"score": 0.2}])  # never published
    out = compute_advantage(data, adv_estimator="virl", config=AlgoConfig())
    adv = out.batch["advantages"]
    m0 = torch.tensor(rows[0]["mask"], dtype=torch.bool)
    a0 = (1.5 - 0.85) / (np.std([1.5, 0.2], ddof=1) + 1e-6)
    assert torch.allclose(adv[0][m0], torch.full((int(m0.sum()),), a0, dtype=torch.float32))
    assert "2 of 2 rows have no per-action scores" in caplog.text


def test_verls_v1_trainer_path_reaches_the_virl_estimator(dataset):
    """verl 0.9.1's default (V1) trainer computes advantages through
    compute_advantage_for_multi_trajectories; non-GRPO estimators go to
    compute_advantage, so `virl` gets the same tensors there."""
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    rng = random.Random(11)
    s = next(iter(samples(dataset).values()))
    b = s["rationales"][0]["bbox"]
    rows = [make_row(rng, s, "V", [b], s["answer"]), make_row(rng, s, "V", [], "no")]
    scores = score_rows(rows, dataset, load_compute_score())
    data = to_dataproto(rows, scores)
    out = compute_advantage_for_multi_trajectories(data, batch_keys=["k0", "k1"], adv_estimator="virl",
                                                   num_repeat=2, config=AlgoConfig())
    adv = out.batch["advantages"]
    assert adv[0][0] > adv[0][max(i for i, m in enumerate(rows[0]["mask"]) if m)] > 0  # zoom turn up-weighted


def _twins(dataset, swap):
    """Two rows of one group with the same turn lengths and the same reward,
    whose zooms are of opposite quality, published as compute_score would;
    verl's batch holds them in the other order when ``swap``."""
    from virl.verl.config import reward_config_json

    s = next(iter(samples(dataset).values()))
    rng = random.Random(5)
    b = s["rationales"][0]["bbox"]
    rows = [make_row(rng, s, "T", [b], s["answer"], run_lengths=[4, 4]) for _ in range(2)]
    rows.append(make_row(rng, s, "T", [], "no", run_lengths=[6]))
    cfg = reward_config_json()
    board.publish("T", [4, 4], 1.25, [[0, 0.9, False]], cfg)  # a good zoom
    board.publish("T", [4, 4], 1.25, [[0, 0.0, False]], cfg)  # a bad zoom, same reward
    board.publish("T", [6], -0.5, [], cfg)
    data = to_dataproto(rows, [{"score": 1.25}, {"score": 1.25}, {"score": -0.5}])
    if swap:
        data.reorder(torch.tensor([1, 0, 2]))
    return rows, data


@pytest.mark.parametrize("swap", [False, True], ids=["scored-order", "swapped"])
def test_rows_that_cannot_be_told_apart_never_get_each_others_credit(dataset, caplog, swap):
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.ray_trainer import compute_advantage
    from virl.verl import estimator

    rows, data = _twins(dataset, swap)
    adv = compute_advantage(data, adv_estimator="virl", config=AlgoConfig()).batch["advantages"]
    a = (1.25 - np.mean([1.25, 1.25, -0.5])) / (np.std([1.25, 1.25, -0.5], ddof=1) + 1e-6)
    for i in (0, 1):  # plain A_i on every model token of both twins, whichever order
        m = data.batch["response_mask"][i].bool()
        assert torch.allclose(adv[i][m], torch.full((int(m.sum()),), a, dtype=torch.float32))
    assert estimator.STATS["ambiguous"] == 2 and estimator.STATS["missing"] == 0
    assert "2 of 3 rows share their group, turn lengths and reward" in caplog.text
    assert board.pending() == 0


def test_identical_twins_keep_their_modulation(dataset):
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.ray_trainer import compute_advantage
    from virl.verl import estimator
    from virl.verl.config import reward_config_json

    s = next(iter(samples(dataset).values()))
    rng = random.Random(6)
    rows = [make_row(rng, s, "I", [[0, 0, 9, 9]], s["answer"], run_lengths=[4, 4]) for _ in range(2)]
    rows.append(make_row(rng, s, "I", [], "no", run_lengths=[6]))
    cfg = reward_config_json()
    for _ in range(2):
        board.publish("I", [4, 4], 1.25, [[0, 0.9, False]], cfg)
    board.publish("I", [6], -0.5, [], cfg)
    data = to_dataproto(rows, [{"score": 1.25}, {"score": 1.25}, {"score": -0.5}])
    adv = compute_advantage(data, adv_estimator="virl", config=AlgoConfig()).batch["advantages"]
    assert estimator.STATS["ambiguous"] == 0
    for i in (0, 1):  # q = 1 on the zoom turn: 1.5 A_i there, A_i on the answer turn
        last = max(j for j, m in enumerate(rows[i]["mask"]) if m)
        assert float(adv[i][last]) > 0
        assert float(adv[i][0]) == pytest.approx(1.5 * float(adv[i][last]), rel=1e-6)


def test_norm_adv_by_std_in_grpo_is_honoured(dataset):
    """Dr. GRPO: A_i = R_i - mean, as verl's own GRPO computes it with the flag off."""
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.ray_trainer import compute_advantage

    rng = random.Random(3)
    s = next(iter(samples(dataset).values()))
    rows = [make_row(rng, s, "N", [], s["answer"]), make_row(rng, s, "N", [], "wrong"),
            make_row(rng, s, "N", [], "x")]
    scores = [{"score": 1.5}, {"score": 0.2}, {"score": -0.3}]
    cfg = AlgoConfig(norm_adv_by_std_in_grpo=False)
    virl = compute_advantage(to_dataproto(rows, scores), adv_estimator="virl", config=cfg).batch["advantages"]
    grpo = compute_advantage(to_dataproto(rows, scores), adv_estimator="grpo", config=cfg,
                             norm_adv_by_std_in_grpo=False).batch["advantages"]
    for i in range(3):
        m = torch.tensor(rows[i]["mask"], dtype=torch.bool)
        assert torch.allclose(virl[i][m], grpo[i][m], atol=1e-6)
        assert float(virl[i][m][0]) == pytest.approx(scores[i]["score"] - 0.4666666, abs=1e-5)
    board.collect([])
