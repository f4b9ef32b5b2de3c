"""`virl export --format verl` writes verl's RL parquet, and verl's own
RLHFDataset reads it (offline: a stand-in processor, no model download)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from conftest import samples
from virl.verl.export import smart_resize


def export(virl_bin, dataset, out, *flags):
    env = dict(os.environ, VIRL_PYTHON=sys.executable)
    return subprocess.run([str(virl_bin), "export", "--format", "verl", "--dataset", str(dataset),
                           "--out", str(out), *flags], env=env, capture_output=True, text=True)


def test_the_parquet_reads_back_in_verls_schema(virl_bin, dataset, tmp_path):
    out = tmp_path / "train.parquet"
    r = export(virl_bin, dataset, out)
    assert r.returncode == 0, r.stderr
    t = pq.read_table(out)
    assert t.column_names == ["data_source", "prompt", "images", "ability", "reward_model",
                              "extra_info", "agent_name"]
    rows = t.to_pylist()
    ss = samples(dataset)
    assert len(rows) == len(ss)
    row = rows[0]
    s = ss[row["extra_info"]["sample"]]
    assert row["data_source"] == "virl/data" and row["agent_name"] == "virl_agent"
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert "image_zoom_in_tool" in row["prompt"][0]["content"]
    assert row["prompt"][1]["content"] == "<image>\n" + s["question"]
    img = row["images"][0]
    assert os.path.isabs(img["image"]) and os.path.exists(img["image"])
    assert (img["resized_width"], img["resized_height"]) == (756, 756)  # Qwen's smart_resize of 768
    gt = json.loads(row["reward_model"]["ground_truth"])
    assert gt["sample"]["rationales"] == s["rationales"] and gt["shown"] == [756, 756]
    ck = row["extra_info"]["tools_kwargs"]["image_zoom_in_tool"]["create_kwargs"]
    assert ck == {"image": img["image"], "width": 768, "height": 768, "shown": [756, 756]}


def test_verls_dataset_class_reads_the_rows(virl_bin, dataset, tmp_path):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    out = tmp_path / "train.parquet"
    assert export(virl_bin, dataset, out).returncode == 0
    cfg = OmegaConf.create({"filter_overlong_prompts": False, "cache_dir": str(tmp_path / "cache")})
    processor = SimpleNamespace(image_processor=SimpleNamespace(patch_size=14))
    ds = RLHFDataset(data_files=str(out), tokenizer=None, config=cfg, processor=processor)
    assert len(ds) == len(samples(dataset))
    item = ds[0]
    user = item["raw_prompt"][1]["content"]
    assert user[0]["type"] == "image" and user[0]["resized_width"] == 756
    assert user[1] == {"type": "text", "text": "\n" + samples(dataset)[item["extra_info"]["sample"]]["question"]}
    assert item["tools_kwargs"]["image_zoom_in_tool"]["create_kwargs"]["shown"] == [756, 756]
    assert item["agent_name"] == "virl_agent"


def test_a_bad_dataset_is_an_error_naming_the_file(virl_bin, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "manifest.jsonl").write_text('{"id": "a", "image": "a.png", "width": 10}\n')
    r = export(virl_bin, d, tmp_path / "x.parquet")
    assert r.returncode != 0
    assert "manifest.jsonl" in r.stderr and not (tmp_path / "x.parquet").exists()


@pytest.mark.parametrize("w, h, expect", [(768, 768, (756, 756)), (7680, 4320, (4760, 2688)), (20, 20, (56, 56))])
def test_smart_resize_matches_qwen(w, h, expect):
    assert smart_resize(w, h) == expect


def test_export_finds_the_packages_python_from_a_fresh_shell(virl_bin, dataset, tmp_path):
    """No VIRL_PYTHON, no active virtualenv, and a PATH whose python3 lacks
    the package: `virl` finds the .venv of the working directory, or of the
    checkout its binary was built in."""
    bare = {k: v for k, v in os.environ.items() if k not in ("VIRL_PYTHON", "VIRTUAL_ENV", "PYTHONPATH")}
    bare["PATH"] = "/usr/bin:/bin"
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    args = [str(virl_bin), "export", "--format", "verl", "--dataset", str(dataset)]
    r = subprocess.run(args + ["--out", str(tmp_path / "a.parquet")], env=bare, cwd=work,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert pq.read_table(tmp_path / "a.parquet").num_rows == len(samples(dataset))
    if os.path.realpath(sys.prefix) == os.path.realpath(virl_bin.parents[2] / ".venv"):
        # ./run-tests' layout: the checkout's .venv beside target/
        r = subprocess.run(args + ["--out", str(tmp_path / "b.parquet")], env=bare, cwd=tmp_path,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    # Nowhere to be found: the error says what was tried and what to do.
    empty = tmp_path / "empty"
    empty.mkdir()
    r = subprocess.run(args + ["--out", str(tmp_path / "c.parquet")], env=dict(bare, VIRL_PYTHON="/nonexistent/python"),
                       cwd=empty, capture_output=True, text=True)
    assert r.returncode != 0 and "VIRL_PYTHON" in r.stderr


def test_smart_resize_is_the_engines_and_refuses_what_qwen_refuses():
    from virl import _core

    assert smart_resize(768, 768) == _core.smart_resize(768, 768) == (756, 756)
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(1, 300)  # qwen_vl_utils raises too: the aspect ratio must be under 200
    with pytest.raises(ValueError, match="0x5"):
        smart_resize(0, 5)
