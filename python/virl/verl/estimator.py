"""The ``virl`` advantage estimator, registered in verl on import.

Use it with ``algorithm.adv_estimator=virl`` and ``algorithm.use_kl_in_reward=False``
(put the KL in the actor loss instead: R_i is read as the sum of a row's
``token_level_rewards``). Token-level advantages follow DESIGN §5 exactly,
computed by the engine (``credit::tokens``):

- the tokens of the assistant turn that made zoom k get ``m_k * A_i``;
- the other response tokens (reasoning, the answer) get ``A_i``;
- tool-response tokens (``response_mask`` 0) get 0;
- ``A_i = (R_i - mean) / (std + eps)`` over the rows sharing a ``uid``, with
  the n - 1 standard deviation; with ``algorithm.norm_adv_by_std_in_grpo=False``
  (Dr. GRPO) ``A_i = R_i - mean``. A group of one, or one whose rewards are all
  equal, gets ``A_i = 0`` (verl's own GRPO gives a lone row A = R; DESIGN §5
  does not).

Each row's zooms (IoU, redundancy, assistant turn) come from the credit board
(:mod:`virl.verl.board`), published by ``compute_score``. A row with no entry
(a dataset row whose ``agent_name`` is not ``virl_agent``, a validation
batch) gets ``m = 1`` throughout, i.e. plain group-normalised advantages, and
a warning with the count is logged once per call. So does a row that cannot
be told apart from another row of its group with other zooms (same turn
lengths, same reward): it never gets another row's credit.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Optional

import numpy as np
import torch

from .. import _core
from . import board
from .config import reward_config_json

logger = logging.getLogger(__name__)

NAME = "virl"


def _same_reward(a: float, b: float) -> bool:
    # R_i travels to the estimator as float32 token rewards, summed.
    return abs(a - b) <= 1e-4 * max(1.0, abs(a), abs(b))


def _clusters(values: list) -> list:
    """Indices of ``values`` grouped into runs of (chained) equal rewards."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out: list = []
    for i in order:
        if out and _same_reward(values[out[-1][-1]], values[i]):
            out[-1].append(i)
        else:
            out.append([i])
    return out


def rows_for(rewards: np.ndarray, runs: list, uids: list) -> tuple:
    """Matches every row to its board entry; returns ``(rows, config,
    missing, ambiguous)`` where ``rows`` is what ``_core.token_advantages``
    takes.

    A row is found by its key (uid, turn lengths) and its reward. Rows that
    share all three are told apart by nothing verl gives an estimator; if
    their entries' zooms differ, none of them gets modulation (plain A_i on
    every token), because any pairing could give a row another row's
    credit. They are counted in ``ambiguous``. The result does not depend
    on the order of the batch."""
    n = len(uids)
    keys = [board.key(u, r) for u, r in zip(uids, runs)]
    found = board.collect(keys)
    zooms_of: list = [[] for _ in range(n)]
    config, missing, ambiguous = None, 0, 0
    by_key: dict = {}
    for i, k in enumerate(keys):
        by_key.setdefault(k, []).append(i)
    for k, members in by_key.items():
        entries = found.get(k, [])
        if len(members) == 1 and len(entries) == 1:  # the common case: one row, one entry
            i, e = members[0], entries[0]
            if _same_reward(float(rewards[i]), float(e["reward"])):
                config = config or e["config"]
                zooms_of[i] = [(int(t), iou, bool(red)) for t, iou, red in e["zooms"]]
            else:
                missing += 1
            continue
        values = [float(rewards[i]) for i in members] + [float(e["reward"]) for e in entries]
        for cluster in _clusters(values):
            rows_here = [members[j] for j in cluster if j < len(members)]
            ents = [entries[j - len(members)] for j in cluster if j >= len(members)]
            if not rows_here:
                continue  # entries nobody asked for (a validation rollout, a dropped row)
            matched = min(len(rows_here), len(ents))
            missing += len(rows_here) - matched
            if not ents:
                continue
            config = config or ents[0]["config"]
            if len(ents) > 1 and len({json.dumps(e["zooms"]) for e in ents}) > 1:
                ambiguous += matched
                continue
            z = [(int(t), iou, bool(red)) for t, iou, red in ents[0]["zooms"]]
            for i in rows_here[:matched]:
                zooms_of[i] = z
    rows = [(float(r), uid, zooms_of[i]) for i, (uid, r) in enumerate(zip(uids, rewards))]
    return rows, config, missing, ambiguous


def compute_virl_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Optional[np.ndarray] = None,
    config: Optional[Any] = None,
    **kwargs: Any,
) -> tuple:
    """verl's estimator interface: returns ``(advantages, returns)``, both
    ``(batch, response_length)``; returns equal advantages, as in GRPO."""
    n = token_level_rewards.shape[0]
    rewards = token_level_rewards.sum(dim=-1).detach().to(torch.float64).cpu().numpy()
    mask = response_mask.detach().cpu()
    if mask.dtype not in (torch.int64, torch.bool, torch.float32):
        mask = mask.to(torch.float32)
    mask = mask.numpy()  # read in place by the engine: no converted copy
    uids = [str(u) for u in index] if index is not None else [str(i) for i in range(n)]
    runs = _core.mask_runs(mask)
    rows, cfg, missing, ambiguous = rows_for(rewards, runs, uids)
    if missing:
        logger.warning(
            "virl estimator: %d of %d rows have no per-action scores on the credit board "
            "(agent_name must be virl_agent, and compute_score must be virl.verl.reward); "
            "they get unmodulated advantages", missing, n)
    if ambiguous:
        logger.warning(
            "virl estimator: %d of %d rows share their group, turn lengths and reward with a row whose "
            "zooms differ, and cannot be told apart: they get unmodulated advantages", ambiguous, n)
    STATS.update(rows=n, missing=missing, ambiguous=ambiguous)
    cfg = _with_norm(cfg or reward_config_json(), config)
    adv, _, unplaced = _core.token_advantages(rows, mask, cfg)
    if unplaced:
        logger.warning("virl estimator: %d zooms lie past their response's end (cut at the length limit)", unplaced)
    out = torch.from_numpy(adv).to(device=token_level_rewards.device, dtype=token_level_rewards.dtype)
    return out, out


# What the last call saw (for tests and diagnostics): rows, and how many had no
# board entry or an ambiguous one.
STATS: dict = {}


def _with_norm(cfg: str, algorithm: Any) -> str:
    """The reward config with verl's ``algorithm.norm_adv_by_std_in_grpo``
    (default True) as ``adv_by_std``: False gives ``A_i = R_i − mean``."""
    by_std = True
    if algorithm is not None:
        get = algorithm.get if hasattr(algorithm, "get") else lambda k, d=None: getattr(algorithm, k, d)
        v = get("norm_adv_by_std_in_grpo", True)
        by_std = True if v is None else bool(v)
    c = json.loads(cfg)
    if c.get("adv_by_std", True) == by_std:
        return cfg
    c["adv_by_std"] = by_std
    return json.dumps(c)


def register() -> None:
    """Registers ``virl`` with verl (idempotent)."""
    from verl.trainer.ppo import core_algos

    if core_algos.ADV_ESTIMATOR_REGISTRY.get(NAME) is not compute_virl_advantage:
        core_algos.ADV_ESTIMATOR_REGISTRY.pop(NAME, None)
        core_algos.register_adv_est(NAME)(compute_virl_advantage)


def describe_config() -> dict:
    """The reward config the estimator falls back to (``$VIRL_REWARD``)."""
    return json.loads(reward_config_json())
