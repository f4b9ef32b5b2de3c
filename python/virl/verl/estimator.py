"""The ``virl`` advantage estimator, registered in verl on import.

Use it with ``algorithm.adv_estimator=virl`` and ``algorithm.use_kl_in_reward=False``
(put the KL in the actor loss instead: R_i is read as the sum of a row's
``token_level_rewards``). Token-level advantages follow DESIGN §5 exactly,
computed by the engine (``credit::tokens``):

- the tokens of the assistant turn that made zoom k get ``m_k * A_i``;
- the other response tokens (reasoning, the answer) get ``A_i``;
- tool-response tokens (``response_mask`` 0) get 0;
- ``A_i = (R_i - mean) / (std + eps)`` over the rows sharing a ``uid``, with
  the n - 1 standard deviation. A group of one, or one whose rewards are all
  equal, gets ``A_i = 0`` (verl's own GRPO gives a lone row A = R; DESIGN §5
  does not).

Each row's zooms (IoU, redundancy, assistant turn) come from the credit board
(:mod:`virl.verl.board`), published by ``compute_score``. A row with no entry
(a dataset row whose ``agent_name`` is not ``virl_agent``, a validation
batch) gets ``m = 1`` throughout, i.e. plain group-normalised advantages, and
a warning with the count is logged once per call.
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


def rows_for(rewards: np.ndarray, runs: list, uids: list) -> tuple:
    """Matches every row to its board entry; returns ``(rows, config, missing)``
    where ``rows`` is what ``_core.token_advantages`` takes."""
    keys = [board.key(u, r) for u, r in zip(uids, runs)]
    found = board.collect(keys)
    rows, config, missing = [], None, 0
    for k, uid, r in zip(keys, uids, rewards):
        cands = found.get(k, [])
        zooms: list = []
        if cands:
            j = min(range(len(cands)), key=lambda i: abs(cands[i]["reward"] - float(r)))
            if abs(cands[j]["reward"] - float(r)) <= 1e-4 * max(1.0, abs(float(r))):
                e = cands.pop(j)
                zooms = [(int(t), iou, bool(red)) for t, iou, red in e["zooms"]]
                config = config or e["config"]
            else:
                missing += 1
        else:
            missing += 1
        rows.append((float(r), uid, zooms))
    return rows, config, missing


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
    mask = response_mask.detach().to(torch.float32).cpu().numpy()
    uids = [str(u) for u in index] if index is not None else [str(i) for i in range(n)]
    runs = _core.mask_runs(mask)
    rows, cfg, missing = rows_for(rewards, runs, uids)
    if missing:
        logger.warning(
            "virl estimator: %d of %d rows have no per-action scores on the credit board "
            "(agent_name must be virl_agent, and compute_score must be virl.verl.reward); "
            "they get unmodulated advantages", missing, n)
    adv, _, unplaced = _core.token_advantages(rows, mask, cfg or reward_config_json())
    if unplaced:
        logger.warning("virl estimator: %d zooms lie past their response's end (cut at the length limit)", unplaced)
    out = torch.from_numpy(adv).to(device=token_level_rewards.device, dtype=token_level_rewards.dtype)
    return out, out


def register() -> None:
    """Registers ``virl`` with verl (idempotent)."""
    from verl.trainer.ppo import core_algos

    if core_algos.ADV_ESTIMATOR_REGISTRY.get(NAME) is not compute_virl_advantage:
        core_algos.ADV_ESTIMATOR_REGISTRY.pop(NAME, None)
        core_algos.register_adv_est(NAME)(compute_virl_advantage)


def describe_config() -> dict:
    """The reward config the estimator falls back to (``$VIRL_REWARD``)."""
    return json.loads(reward_config_json())
