"""``virl export --format verl``: a dataset folder as verl's RL parquet.

One row per sample, in the schema verl's ``RLHFDataset`` reads:

- ``data_source``: ``virl/<dataset folder name>`` (or ``--data-source``);
- ``prompt``: chat messages -- a system prompt for the zoom tool, and the
  user turn with the ``<image>`` placeholder and the question;
- ``images``: ``[{"image": <absolute path>, "resized_width": w, "resized_height": h}]``:
  the size the model is shown, fixed here (Qwen's ``smart_resize``: multiples
  of 28 within ``--min-pixels``/``--max-pixels``), so that the zoom tool and
  ``compute_score`` know the frame of the model's boxes;
- ``ability``: ``visual_reasoning``;
- ``reward_model``: ``{"style": "rule", "ground_truth": <JSON string>}`` with the
  sample (answer, options, rationale boxes, image size), the dataset folder
  and the shown size, as ``virl.verl.reward.compute_score`` reads it;
- ``extra_info``: ``index``, ``split``, ``sample`` and the zoom tool's
  per-sample arguments in ``tools_kwargs.image_zoom_in_tool.create_kwargs``;
- ``agent_name``: ``virl_agent``.

Written with pyarrow (installed with verl): the nested columns come out
exactly as verl's own example datasets (written with pandas/datasets) do.
The write is atomic: a temporary file, then a rename.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional

from .. import _core
from .tool import TOOL_NAME

#: Our dialect's system instruction, from the engine (``dialect::prompts``):
#: verl's chat template appends the tools block from the tool's schema, as
#: the studio does, so a model sees one prompt in both.
SYSTEM_PROMPT = _core.dialect_prompt("virl", "")["instruction"]


#: Qwen2.5-VL's defaults (qwen_vl_utils): 28-px patches, 4 to 16384 tokens.
FACTOR = 28
MIN_PIXELS = 4 * 28 * 28
MAX_PIXELS = 16384 * 28 * 28


def smart_resize(width: int, height: int, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS,
                 factor: int = FACTOR) -> tuple:
    """The size Qwen2.5-VL's preprocessing shows a ``width x height`` image at
    (``qwen_vl_utils.smart_resize``): both sides multiples of ``factor``,
    the area within ``[min_pixels, max_pixels]``, the aspect kept. The
    engine's rule (the studio's VLM uses the same), as ``(width, height)``."""
    return tuple(_core.smart_resize(int(width), int(height), int(factor), int(min_pixels), int(max_pixels)))


def question_text(sample: dict) -> str:
    """The question's turn, as the engine writes it for our dialect."""
    return _core.dialect_prompt("virl", sample["question"], list(sample.get("options") or []))["user"]


def rows(dataset: str, split: str = "train", data_source: Optional[str] = None,
         min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS,
         agent_name: str = "virl_agent", system_prompt: str = SYSTEM_PROMPT) -> list:
    """The parquet rows of a dataset folder (corrections applied)."""
    root, samples = _core.load_dataset(dataset)
    source = data_source or f"virl/{os.path.basename(root.rstrip(os.sep))}"
    out = []
    for i, line in enumerate(samples):
        s = json.loads(line)
        w, h = int(s["width"]), int(s["height"])
        try:
            sw, sh = smart_resize(w, h, min_pixels, max_pixels)
        except ValueError as e:
            raise ValueError(f"{os.path.join(root, 'manifest.jsonl')}: sample {s['id']}: {e}") from None
        gt = {"sample": s, "dataset": root, "shown": [sw, sh]}
        out.append({
            "data_source": source,
            "prompt": [
                {"role": "system", "content": system_prompt},
                {"role": "user", "content": "<image>\n" + question_text(s)},
            ],
            "images": [{"image": s["image"], "resized_width": sw, "resized_height": sh}],
            "ability": "visual_reasoning",
            "reward_model": {"style": "rule", "ground_truth": json.dumps(gt)},
            "extra_info": {
                "index": i,
                "split": split,
                "sample": s["id"],
                "need_tools_kwargs": True,
                "tools_kwargs": {
                    TOOL_NAME: {"create_kwargs": {"image": s["image"], "width": w, "height": h, "shown": [sw, sh]}}
                },
            },
            "agent_name": agent_name,
        })
    return out


def write(rows_: list, out: str) -> None:
    """Writes the rows as parquet, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not rows_:
        raise ValueError("the dataset has no samples; nothing to export")
    table = pa.Table.from_pylist(rows_)
    tmp = f"{out}.tmp-{os.getpid()}"
    pq.write_table(table, tmp)
    os.replace(tmp, out)


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(prog="virl export --format verl", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help="the dataset folder (manifest.jsonl and images)")
    p.add_argument("--out", required=True, help="the parquet file to write")
    p.add_argument("--split", default="train", help="extra_info.split [train]")
    p.add_argument("--data-source", default=None, help="data_source [virl/<folder name>]")
    p.add_argument("--min-pixels", type=int, default=MIN_PIXELS, help=f"smallest area shown [{MIN_PIXELS}]")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS, help=f"largest area shown [{MAX_PIXELS}]")
    p.add_argument("--agent-name", default="virl_agent", help="the agent loop of every row [virl_agent]")
    a = p.parse_args(argv)
    try:
        r = rows(a.dataset, a.split, a.data_source, a.min_pixels, a.max_pixels, a.agent_name)
        write(r, a.out)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(r)} rows to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
