"""The credit board: how per-action quality reaches the ``virl`` estimator.

verl 0.9.1 hands an advantage estimator tensors only (``token_level_rewards``,
``response_mask``, ``index`` = the ``uid`` of each row). ``compute_score``
knows each zoom's IoU and redundancy but runs in reward workers (other
processes, other hosts). So ``compute_score`` *publishes* each trajectory's
zooms under a key the estimator can rebuild from its own tensors:

    key = (uid, lengths of the row's runs of response-mask-1 tokens)

The ``virl_agent`` loop puts the uid and the run lengths into the
trajectory's ``extra_fields`` (which reach ``compute_score`` as
``extra_info``); the estimator reads the same run lengths off
``response_mask``. Rows of one group with the same runs are told apart by
their reward ``R_i``. Rows that share uid, runs and reward but zoomed
differently cannot be told apart by anything verl hands an estimator; the
estimator then gives them plain ``A_i`` (and says how many), never another
row's credit. The key is content, not position, so it survives
verl's batch balancing (``balance_batch`` reorders rows) and resharding.

Where it lives: a named Ray actor (``virl_credit_board`` in namespace
``virl``) when Ray is running, so every worker reaches it; a dict in this
process otherwise (tests, a single-process run). Publishing is a synchronous
call, so an entry is on the board before verl receives the reward.
Entries are taken by the estimator; validation rollouts are never
published, and entries nobody takes (a row verl dropped) are dropped after
``TTL_SECONDS``.
"""

from __future__ import annotations

import threading
import time
from typing import Iterable

ACTOR_NAME = "virl_credit_board"
NAMESPACE = "virl"
TTL_SECONDS = 3600.0


def key(uid: str, runs: Iterable[int]) -> str:
    """The board key of a row: its uid and the lengths of its assistant turns."""
    return f"{uid}|{','.join(str(int(r)) for r in runs)}"


class Board:
    """Entries by key: each a dict with ``reward``, ``zooms`` ([turn, iou, redundant]),
    ``config`` (the reward config JSON) and ``time``."""

    def __init__(self) -> None:
        self._entries: dict = {}
        self._lock = threading.Lock()
        self._last_purge = time.time()

    def put(self, k: str, entry: dict) -> None:
        now = time.time()
        with self._lock:
            self._entries.setdefault(k, []).append(entry)
            if now - self._last_purge > 60.0:
                self._last_purge = now
                for kk in [kk for kk, v in self._entries.items() if now - v[-1]["time"] > TTL_SECONDS]:
                    del self._entries[kk]

    def take(self, keys: Iterable[str]) -> dict:
        with self._lock:
            return {k: self._entries.pop(k) for k in set(keys) if k in self._entries}

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())


_local = Board()
_actor = None


def _ray_actor():
    """The cluster-wide board, or None when Ray is not running."""
    global _actor
    try:
        import ray
    except ImportError:  # pragma: no cover - ray comes with verl
        return None
    if not ray.is_initialized():
        return None
    if _actor is None:
        remote = ray.remote(num_cpus=0)(Board)
        _actor = remote.options(
            name=ACTOR_NAME, namespace=NAMESPACE, get_if_exists=True, lifetime="detached"
        ).remote()
    return _actor


def publish(uid: str, runs: Iterable[int], reward: float, zooms: list, config: str) -> None:
    """Puts one trajectory's zooms on the board (see the module docs)."""
    entry = {"reward": float(reward), "zooms": zooms, "config": config, "time": time.time()}
    k = key(uid, runs)
    actor = _ray_actor()
    if actor is None:
        _local.put(k, entry)
    else:
        import ray

        ray.get(actor.put.remote(k, entry))


def collect(keys: Iterable[str]) -> dict:
    """Takes the entries of these keys off the board (local and cluster)."""
    keys = list(set(keys))
    found = _local.take(keys)
    actor = _ray_actor()
    if actor is not None:
        import ray

        for k, v in ray.get(actor.take.remote([k for k in keys if k not in found])).items():
            found.setdefault(k, []).extend(v)
    return found


def pending() -> int:
    """How many entries wait on this process's board (for tests and diagnostics)."""
    return len(_local)
