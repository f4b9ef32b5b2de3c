"""The package as the repository holds it: no built core is committed (a
stale `python/virl/_core.abi3.so` shadowed the current one under
`PYTHONPATH=python`)."""

from __future__ import annotations

import subprocess

import pytest

from conftest import REPO


def test_no_built_extension_is_tracked():
    r = subprocess.run(["git", "ls-files", "python/virl"], cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"not a git checkout: {r.stderr.strip()}")
    tracked = r.stdout.split()
    assert "python/virl/verl/reward.py" in tracked
    assert not [f for f in tracked if f.endswith((".so", ".pyd", ".dylib"))]
