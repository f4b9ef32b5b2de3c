"""Shared fixtures: a ZoomBench dataset folder, the `virl` binary, verl's loaders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from virl import _core

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """Six ZoomBench samples (768 px canvases) as a dataset folder."""
    d = tmp_path_factory.mktemp("zoombench") / "data"
    _core.write_zoombench(str(d), 6, 0)
    return d


@pytest.fixture()
def fresh_dataset(tmp_path, dataset) -> Path:
    """A private copy of the dataset, for tests that correct it."""
    d = tmp_path / "data"
    shutil.copytree(dataset, d)
    return d


def samples(d: Path) -> dict:
    return {json.loads(l)["id"]: json.loads(l) for l in _core.load_dataset(str(d))[1]}


@pytest.fixture(scope="session")
def virl_bin() -> Path:
    """The `virl` command line: $VIRL_BIN, else the workspace's debug build
    (`cargo build --bin virl`, which the README's test command runs first)."""
    p = Path(os.environ.get("VIRL_BIN", REPO / "target" / "debug" / "virl"))
    if not p.exists():
        raise RuntimeError(f"{p} does not exist: run `cargo build --bin virl` first, or set VIRL_BIN")
    return p


def virl_score(virl_bin: Path, dataset: Path, lines: list, fmt: str, tmp: Path, *flags: str) -> list:
    """Runs `virl score` on these input lines; returns its output lines."""
    inp, out = tmp / f"in-{fmt}.jsonl", tmp / f"out-{fmt}.jsonl"
    inp.write_text("".join(json.dumps(l) + "\n" for l in lines))
    subprocess.run([str(virl_bin), "score", "--dataset", str(dataset), "--rollouts", str(inp),
                    "--format", fmt, "--out", str(out), *flags], check=True, capture_output=True)
    return [json.loads(l) for l in out.read_text().splitlines() if l.strip()]


def gt_string(sample: dict, dataset: Path, shown=None) -> str:
    """The ground truth as `virl export --format verl` writes it."""
    g = {"sample": sample, "dataset": str(dataset)}
    if shown:
        g["shown"] = list(shown)
    return json.dumps(g)


def load_compute_score(**reward_kwargs):
    """compute_score exactly as verl 0.9.1 loads it (reward.custom_reward_function)."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    cfg = OmegaConf.create({"reward": {"custom_reward_function": {
        "path": "pkg://virl.verl.reward", "name": "compute_score", "reward_kwargs": reward_kwargs}}})
    return get_custom_reward_fn(cfg)


sys.path.insert(0, str(Path(__file__).parent))
