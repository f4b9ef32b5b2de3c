"""``virl import --format verl``: the rows of a verl RL parquet as samples.

Reads the parquet with pyarrow and writes one JSON line per row for the Rust
side (``dataset::interchange::from_verl_rows``), which checks every sample
and writes the dataset folder:

- a row written by ``virl export --format verl`` carries its whole sample in
  ``reward_model.ground_truth`` (boxes in original pixels), so it comes back
  unchanged;
- any other row (a verl run's own dataset) gives its question from the last
  user message (the ``<image>`` placeholder removed), its answer from
  ``reward_model.ground_truth``, and no rationale boxes.

Images are taken from ``images[0]``: a path (``image`` / ``path`` key, or a
plain string; relative paths are relative to the parquet's folder), or the
image file's ``bytes``, which are written to ``--staging``.

Output lines: ``{"row": i, "sample": {...}, "source_image": path}`` or
``{"row": i, "error": "..."}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional

_MAGIC = [(b"\x89PNG", "png"), (b"\xff\xd8", "jpg"), (b"GIF8", "gif"), (b"RIFF", "webp"), (b"BM", "bmp")]


def _text(content) -> str:
    """A chat message's text: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return ""


def _image(entry, base: str, staging: str, row: int) -> str:
    if isinstance(entry, dict):
        data = entry.get("bytes")
        if data:
            ext = next((e for m, e in _MAGIC if bytes(data[: len(m)]) == m), "img")
            os.makedirs(staging, exist_ok=True)
            path = os.path.join(staging, f"row-{row}.{ext}")
            with open(path, "wb") as f:
                f.write(data)
            return path
        entry = entry.get("image") or entry.get("path")
    if not isinstance(entry, str) or not entry:
        raise ValueError("images[0] has neither a path nor bytes")
    if entry.startswith("file://"):
        entry = entry[len("file://"):]
    return entry if os.path.isabs(entry) else os.path.join(base, entry)


def record(i: int, row: dict, base: str, staging: str) -> dict:
    """One parquet row as a sample (or an error), see the module doc."""
    images = row.get("images") or []
    if not images:
        raise ValueError("no images[0]: ViRL samples are questions about an image")
    source = _image(images[0], base, staging, i)
    gt = (row.get("reward_model") or {}).get("ground_truth")
    parsed = None
    if isinstance(gt, str):
        try:
            parsed = json.loads(gt)
        except ValueError:
            parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("sample"), dict):
        return {"row": i, "sample": parsed["sample"], "source_image": source}
    users = [m for m in (row.get("prompt") or []) if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise ValueError("no user message in prompt")
    question = _text(users[-1].get("content")).replace("<image>", "").strip()
    if isinstance(parsed, dict) and "answer" in parsed:
        answer = parsed["answer"]
    elif isinstance(gt, (list, tuple)) and gt:
        answer = gt[0]
    else:
        answer = gt
    if answer is None or str(answer).strip() == "":
        raise ValueError("reward_model.ground_truth holds no answer")
    extra = row.get("extra_info") or {}
    index = extra.get("index", i) if isinstance(extra, dict) else i
    source_name = str(row.get("data_source") or "verl").replace("/", "-")
    sample = {
        "id": f"{source_name}-{index}",
        "image": os.path.basename(source),
        "width": 0,
        "height": 0,
        "question": question,
        "answer": str(answer).strip(),
        "rationales": [],
        "meta": {"source": "verl", "data_source": row.get("data_source"), "row": i},
    }
    return {"row": i, "sample": sample, "source_image": source}


def read_parquet(path: str):
    """The pyarrow table of ``path``, or None after printing why it cannot
    be read (naming the file)."""
    try:
        import pyarrow.parquet as pq

        return pq.read_table(path)
    except Exception as e:  # noqa: BLE001 -- any reader failure is the file's problem
        print(f"error: {path}: cannot read as parquet ({e})", file=sys.stderr)
        return None


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(prog="virl import --format verl", description=__doc__.split("\n\n")[0])
    p.add_argument("--parquet", required=True)
    p.add_argument("--staging", required=True, help="folder for images embedded as bytes")
    p.add_argument("--out", required=True, help="the JSON Lines file to write")
    a = p.parse_args(argv)
    table = read_parquet(a.parquet)
    if table is None:
        return 1
    base = os.path.dirname(os.path.abspath(a.parquet))
    with open(a.out, "w", encoding="utf-8") as out:
        for i, row in enumerate(table.to_pylist()):
            try:
                rec = record(i, row, base, a.staging)
            except (ValueError, TypeError, OSError) as e:
                rec = {"row": i, "error": str(e)}
            out.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
