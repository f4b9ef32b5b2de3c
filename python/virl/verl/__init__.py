"""virl.verl: ViRL rewards, zoom tool and per-action credit as a verl 0.9.x plugin.

Importing this module registers, through verl's own extension points only
(no fork, no patch):

- the advantage estimator ``virl`` (:mod:`virl.verl.estimator`);
- the agent loop ``virl_agent`` (:mod:`virl.verl.agent_loop`).

verl imports it in every process when the package is installed (the
``verl.plugins`` entry point) or when ``VERL_USE_EXTERNAL_MODULES=virl.verl``
is set. The reward function and the tool are named in verl's config:
``virl.verl.reward.compute_score`` and ``virl.verl.tool.ZoomTool``.
``recipes/verl/`` has a complete config.
"""

from __future__ import annotations

from .reward import compute_score
from .tool import ZoomTool

__all__ = ["compute_score", "ZoomTool"]


def _register() -> None:
    try:
        import verl  # noqa: F401
    except ImportError:  # the scoring API works without verl
        return
    from . import agent_loop, estimator

    estimator.register()
    if agent_loop.ToolAgentLoop is not None:
        agent_loop.register()


_register()
