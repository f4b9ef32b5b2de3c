"""`virl import --format verl` reads a verl RL parquet: our own export comes
back with its boxes, another run's rows (embedded image bytes) come in
without boxes, and a bad row is named."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from conftest import samples


def run(virl_bin, *args):
    env = dict(os.environ, VIRL_PYTHON=sys.executable)
    return subprocess.run([str(virl_bin), *args], env=env, capture_output=True, text=True)


def test_an_export_comes_back_with_the_same_boxes(virl_bin, dataset, tmp_path):
    pq_file = tmp_path / "train.parquet"
    r = run(virl_bin, "export", "--format", "verl", "--dataset", str(dataset), "--out", str(pq_file))
    assert r.returncode == 0, r.stderr
    back = tmp_path / "back"
    r = run(virl_bin, "import", "--format", "verl", str(pq_file), "--out", str(back))
    assert r.returncode == 0, r.stderr
    before, after = samples(dataset), samples(back)
    assert sorted(before) == sorted(after)
    for k, s in before.items():
        t = after[k]
        assert (t["question"], t["answer"], t["width"], t["height"]) == (
            s["question"], s["answer"], s["width"], s["height"])
        for a, b in zip(s["rationales"], t["rationales"]):
            assert all(abs(x - y) < 1e-3 for x, y in zip(a["bbox"], b["bbox"]))
    # No staging folder is left beside the new dataset.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back", "train.parquet"]


def png_bytes(w, h):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def test_another_runs_rows_come_in_without_boxes_and_a_bad_row_is_named(virl_bin, tmp_path):
    rows = [
        {"data_source": "deepeyes/vstar", "prompt": [{"role": "user", "content": "<image>\nWhat colour is the bus?"}],
         "images": [{"bytes": png_bytes(40, 30), "path": None}],
         "reward_model": {"style": "rule", "ground_truth": "red"}, "extra_info": {"index": 7}},
        {"data_source": "deepeyes/vstar", "prompt": [{"role": "user", "content": "<image>\nAnd this?"}],
         "images": [], "reward_model": {"style": "rule", "ground_truth": "blue"}, "extra_info": {"index": 8}},
    ]
    pq_file = tmp_path / "run.parquet"
    pq.write_table(pa.Table.from_pylist(rows), pq_file)
    out = tmp_path / "ds"
    r = run(virl_bin, "import", "--format", "verl", str(pq_file), "--out", str(out))
    assert r.returncode != 0
    assert "run.parquet" in r.stderr and "line 2" in r.stderr and "no images" in r.stderr, r.stderr
    r = run(virl_bin, "import", "--format", "verl", str(pq_file), "--out", str(out), "--skip-bad")
    assert r.returncode == 0, r.stderr
    (s,) = samples(out).values()
    assert (s["id"], s["question"], s["answer"]) == ("deepeyes-vstar-7", "What colour is the bus?", "red")
    assert (s["width"], s["height"], s["rationales"]) == (40, 30, [])
    assert (out / s["image"]).exists()


def test_a_file_that_is_not_parquet_is_named(virl_bin, tmp_path):
    bad = tmp_path / "x.parquet"
    bad.write_bytes(b"not parquet")
    r = run(virl_bin, "import", "--format", "verl", str(bad), "--out", str(tmp_path / "ds"))
    assert r.returncode != 0 and "x.parquet" in r.stderr and "parquet" in r.stderr, r.stderr


def test_hr_bench_parquet_imports_like_its_tsv(virl_bin, tmp_path):
    import base64

    rows = [
        {"index": 0, "question": "What colour is the car?", "A": "red", "B": "blue", "C": "green", "D": "white",
         "answer": "B", "category": "single", "cycle_category": "0",
         "image": base64.b64encode(png_bytes(64, 48)).decode()},
        {"index": 1, "question": "Bad", "A": "a", "B": "b", "C": "c", "D": "d", "answer": "E",
         "category": "single", "cycle_category": "0", "image": base64.b64encode(png_bytes(8, 8)).decode()},
    ]
    pq_file = tmp_path / "hr_bench_4k.parquet"
    pq.write_table(pa.Table.from_pylist(rows), pq_file)
    out = tmp_path / "hr"
    r = run(virl_bin, "import", "--format", "hrbench", str(pq_file), "--out", str(out))
    assert r.returncode != 0 and "hr_bench_4k.parquet" in r.stderr and '"E" is not the letter' in r.stderr, r.stderr
    r = run(virl_bin, "import", "--format", "hrbench", str(pq_file), "--out", str(out), "--skip-bad")
    assert r.returncode == 0, r.stderr
    (s,) = samples(out).values()
    assert (s["id"], s["answer"], s["options"], s["rationales"]) == (
        "hrbench-0", "blue", ["red", "blue", "green", "white"], [])
    assert (s["width"], s["height"]) == (64, 48)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr", "hr_bench_4k.parquet"]


def viscot_file(tmp_path, imgs, rel, size, qid, box, question, answer):
    """One Visual-CoT training record about a new image `imgs/rel` of `size`,
    with its normalised `box`; returns the JSON file's path."""
    from PIL import Image

    (imgs / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (20, 120, 200)).save(imgs / rel)
    conv = [{"from": "human", "value": f"<image>\n{question} Please provide the bounding box coordinate of the region."},
            {"from": "gpt", "value": json.dumps(box)}, {"from": "human", "value": "<image>"},
            {"from": "gpt", "value": answer}]
    vc = tmp_path / "viscot.json"
    vc.write_text(json.dumps([{"question_id": qid, "image": [rel, f"{rel}###{json.dumps(box)}"],
                               "conversations": conv}]))
    return vc


def test_visual_cot_and_vstar_imports_round_trip_through_verl_parquet(virl_bin, tmp_path):
    from PIL import Image

    imgs = tmp_path / "imgs"
    vc = viscot_file(tmp_path, imgs, "gqa/wide.png", (200, 100), 1, [0.25, 0.3, 0.5, 0.6], "What is it?", "a cup")
    vstar = tmp_path / "vstar"
    vstar.mkdir()
    Image.new("RGB", (120, 80), (9, 9, 9)).save(vstar / "sa_1.jpg")
    (vstar / "sa_1.json").write_text(json.dumps({"target_object": ["cup"], "bbox": [[10.5, 10.25, 20, 15]],
                                                 "question": "Is there a cup?", "options": ["Yes", "No"]}))
    for name, args in [("viscot", ["--format", "viscot", str(vc), "--images", str(imgs)]),
                       ("vstar", ["--format", "vstar", str(vstar)])]:
        ds = tmp_path / f"{name}-ds"
        r = run(virl_bin, "import", *args, "--out", str(ds))
        assert r.returncode == 0, r.stderr
        pq_file = tmp_path / f"{name}.parquet"
        r = run(virl_bin, "export", "--format", "verl", "--dataset", str(ds), "--out", str(pq_file))
        assert r.returncode == 0, r.stderr
        back = tmp_path / f"{name}-back"
        r = run(virl_bin, "import", "--format", "verl", str(pq_file), "--out", str(back))
        assert r.returncode == 0, r.stderr
        a, b = samples(ds), samples(back)
        assert sorted(a) == sorted(b)
        for k in a:
            for x, y in zip(a[k]["rationales"], b[k]["rationales"]):
                assert all(abs(u - v) < 1e-3 for u, v in zip(x["bbox"], y["bbox"])), (x, y)
    assert samples(tmp_path / "viscot-ds")["1"]["rationales"][0]["bbox"] == [50.0, 10.0, 100.0, 70.0]


def test_a_referenced_dataset_round_trips_through_verl_parquet_without_copying(virl_bin, tmp_path):
    """Images referenced in place (the importers' default) stay where they lie
    through export to verl parquet and import again; `--copy-images` copies
    them, byte for byte, into the new dataset."""
    imgs = tmp_path / "pool"
    vc = viscot_file(tmp_path, imgs, "textvqa/tall.png", (90, 160), 3, [0.5, 0.25, 0.75, 0.5],
                     "What does the sign say?", "stop")
    original = (imgs / "textvqa" / "tall.png").resolve()
    ds = tmp_path / "ds"
    r = run(virl_bin, "import", "--format", "viscot", str(vc), "--images", str(imgs), "--out", str(ds))
    assert r.returncode == 0, r.stderr
    first = samples(ds)["3"]
    assert first["image"] == str(original) and not (ds / "images").exists()
    pq_file = tmp_path / "ds.parquet"
    r = run(virl_bin, "export", "--format", "verl", "--dataset", str(ds), "--out", str(pq_file))
    assert r.returncode == 0, r.stderr
    rows = pq.read_table(pq_file).to_pylist()
    assert rows[0]["images"][0]["image"] == str(original)
    back, copied = tmp_path / "back", tmp_path / "copied"
    r = run(virl_bin, "import", "--format", "verl", str(pq_file), "--out", str(back))
    assert r.returncode == 0, r.stderr
    r = run(virl_bin, "import", "--format", "verl", str(pq_file), "--out", str(copied), "--copy-images")
    assert r.returncode == 0, r.stderr
    by_ref, by_copy = samples(back)["3"], samples(copied)["3"]
    assert by_ref["image"] == str(original) and not (back / "images").exists()
    # (`load_dataset` gives image paths resolved against the dataset folder.)
    copy = Path(by_copy["image"])
    assert copy.resolve().is_relative_to(copied.resolve()), copy
    assert copy.read_bytes() == original.read_bytes()
    for s in (by_ref, by_copy):
        assert (s["width"], s["height"]) == (90, 160)
        # Visual-CoT boxes are normalised by the padded square's side (160):
        # x = 0.5·160 − (160 − 90)//2 = 45, y = 0.25·160 = 40.
        for x, y in zip(first["rationales"][0]["bbox"], s["rationales"][0]["bbox"]):
            assert abs(x - y) < 1e-3
        assert first["rationales"][0]["bbox"] == [45.0, 40.0, 85.0, 80.0]
    # Nothing was written beside the image pool.
    assert sorted(p.name for p in imgs.iterdir()) == ["textvqa"]
    assert sorted(p.name for p in (imgs / "textvqa").iterdir()) == ["tall.png"]
