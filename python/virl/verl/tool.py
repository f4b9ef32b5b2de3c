"""The zoom tool for verl: ``image_zoom_in_tool`` with ``bbox_2d``, as in DeepEyes.

Configure it in the YAML at ``actor_rollout_ref.rollout.multi_turn.tool_config_path``
(``recipes/verl/tool_config.yaml``)::

    tools:
      - class_name: virl.verl.tool.ZoomTool
        config: {type: native, min_side: 28}
        tool_schema: ...   # optional: ZoomTool.SCHEMA is used when absent

Per-sample arguments come from the dataset row's
``extra_info.tools_kwargs.image_zoom_in_tool.create_kwargs``, written by
``virl export --format verl``: ``image`` (path of the original image),
``width``, ``height`` (its size) and ``shown`` (``[w, h]``, the size the model
was shown, which its ``bbox_2d`` is in).

A call maps the box from the shown frame to original pixels (the engine's
``BBox::shown_to_original``), executes it as the studio's environment does
(clipped to the image, grown to ``min_side``; a box wholly outside becomes a
minimum box at the nearest point inside: ``env::execute_box``), and returns
the crop of the original pixels. A malformed box (not four finite numbers
with x2 > x1, y2 > y1) gets a text error as the tool's response, never an
exception. Every call is recorded in ``agent_data.extra_fields["virl_zooms"]``
-- proposed and executed box in original pixels and the assistant turn that
made it, or ``rejected`` with the reason -- where ``compute_score`` reads it:
a rejected call is a format error and never a zoom.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import OrderedDict
from typing import Any, Optional
from uuid import uuid4

from PIL import Image

from .. import _core

try:  # verl is needed to run inside verl, not to import this module's helpers
    from verl.tools.base_tool import BaseTool
    from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse
except ImportError:  # pragma: no cover
    BaseTool = object  # type: ignore[assignment,misc]
    OpenAIFunctionToolSchema = None  # type: ignore[assignment]
    ToolResponse = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

TOOL_NAME = "image_zoom_in_tool"

#: The tool's schema: the engine's (``dialect::prompts::VIRL_TOOL_SCHEMA``),
#: the one the studio renders into its system prompt.
SCHEMA = json.loads(_core.dialect_prompt("virl", "")["tool_schema"])


class _Images:
    """A few decoded originals, shared by all trajectories of a worker."""

    def __init__(self, capacity: int = 8) -> None:
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.capacity = capacity

    def get(self, path: str) -> Image.Image:
        with self._lock:
            if path in self._cache:
                self._cache.move_to_end(path)
                return self._cache[path]
        with Image.open(path) as im:
            img = im.convert("RGB")
        with self._lock:
            self._cache[path] = img
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return img


def to_original(bbox, shown, size) -> list:
    """Maps a box from the shown frame ``shown = (w, h)`` to original pixels
    ``size = (W, H)`` (the engine's ``BBox::shown_to_original``: always
    finite and well formed); ``ValueError`` for a malformed box."""
    return _core.to_original(list(bbox), tuple(shown), tuple(size))


def read_box(parameters: Any) -> list:
    """The ``bbox_2d`` of a call's arguments, or ``ValueError`` saying what is wrong."""
    if not isinstance(parameters, dict) or "bbox_2d" not in parameters:
        raise ValueError("the call has no bbox_2d; call image_zoom_in_tool with {\"bbox_2d\": [x1, y1, x2, y2]}")
    # The engine's rule (trajectory::parse::parse_box), not a copy of it.
    return list(_core.check_box(parameters["bbox_2d"]))


class _SetupError(Exception):
    """The sample or the image is wrong, not the model's call."""


class ZoomTool(BaseTool):
    """``image_zoom_in_tool``: crops the original image (see the module docs)."""

    SCHEMA = SCHEMA

    def __init__(self, config: dict, tool_schema: Optional[Any] = None):
        if tool_schema is None and OpenAIFunctionToolSchema is not None:
            tool_schema = OpenAIFunctionToolSchema.model_validate(SCHEMA)
        super().__init__(config, tool_schema)
        self.min_side = float((config or {}).get("min_side", 28))
        self._instances: dict = {}
        self._images = _Images(int((config or {}).get("image_cache", 8)))

    async def create(self, instance_id: Optional[str] = None, **kwargs) -> tuple:
        instance_id = instance_id or str(uuid4())
        args = kwargs.get("create_kwargs", kwargs) or {}
        self._instances[instance_id] = dict(args)
        return instance_id, ToolResponse()

    def _zoom(self, args: dict, parameters: Any) -> tuple:
        """(crop, proposed, executed, shown box) in original pixels; ValueError
        for the model's malformed box, _SetupError for a bad sample or image."""
        for k in ("image", "width", "height"):
            if k not in args:
                raise _SetupError(
                    f"the sample gives the zoom tool no `{k}` (extra_info.tools_kwargs."
                    f"{TOOL_NAME}.create_kwargs.{k}); export the data with `virl export --format verl`"
                )
        w, h = float(args["width"]), float(args["height"])
        shown = args.get("shown") or [w, h]
        b = read_box(parameters)
        proposed = to_original(b, shown, (w, h))
        executed = _core.execute_box(proposed, w, h, self.min_side)
        try:
            img = self._images.get(str(args["image"]))
        except OSError as e:
            raise _SetupError(f"cannot read image {args['image']}: {e}") from None
        if img.size != (int(w), int(h)):
            raise _SetupError(
                f"image {args['image']} is {img.size[0]}x{img.size[1]}, but the dataset says {int(w)}x{int(h)}"
            )
        x1, y1 = int(math.floor(executed[0])), int(math.floor(executed[1]))
        x2, y2 = int(math.ceil(executed[2])), int(math.ceil(executed[3]))
        return img.crop((x1, y1, x2, y2)), proposed, list(executed), b

    async def execute(self, instance_id: str, parameters: dict, **kwargs) -> tuple:
        args = self._instances.get(instance_id, {})
        agent_data = kwargs.get("agent_data")
        records = agent_data.extra_fields.setdefault("virl_zooms", []) if agent_data is not None else None
        turn = max(int(getattr(agent_data, "assistant_turns", 1)) - 1, 0)
        try:
            crop, proposed, executed, shown_box = self._zoom(args, parameters)
        except ValueError as e:  # the model's call: a format error, never a zoom
            if records is not None:
                records.append({"rejected": str(e), "turn": turn})
            return ToolResponse(text=f"Error: {e}"), 0.0, {"virl_zoom_error": 1}
        except _SetupError as e:  # ours: the model is not to blame, and the call is not scored
            logger.warning("virl zoom tool: %s", e)
            return ToolResponse(text=f"Error: {e}"), 0.0, {"virl_zoom_error": 1}
        if records is not None:
            records.append({"proposed": proposed, "executed": executed, "turn": turn})
        region = ", ".join(str(int(round(x))) for x in shown_box)
        return (
            ToolResponse(image=[crop], text=f"Zoomed in on the image to the region [{region}]."),
            0.0,
            {"virl_zoom_error": 0},
        )

    async def release(self, instance_id: str, **kwargs) -> None:
        self._instances.pop(instance_id, None)
