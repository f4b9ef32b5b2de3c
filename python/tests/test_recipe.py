"""The recipe's launch script composes into a valid verl 0.9.1 config:
every override names a key verl has, and what it sets is what we mean."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

from conftest import REPO


def launch_args(tmp_path) -> list:
    """The arguments recipes/verl/run_qwen2_5_vl_7b.sh passes to python3 (a shim records them)."""
    shim = tmp_path / "bin" / "python3"
    shim.parent.mkdir()
    shim.write_text(f"#!{sys.executable}\nimport json, sys\n"
                    f"with open({str(tmp_path / 'args.json')!r}, 'w') as f:\n"
                    f"    json.dump(sys.argv[1:], f)\n")
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, PATH=f"{shim.parent}:{os.environ['PATH']}", TRAIN="/data/train.parquet",
               MODEL="/models/qwen", TRACE=str(tmp_path / "trace"))
    subprocess.run(["bash", str(REPO / "recipes/verl/run_qwen2_5_vl_7b.sh")], env=env, check=True)
    return json.loads((tmp_path / "args.json").read_text())


def test_the_recipe_composes_with_verls_config(tmp_path):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    import verl

    args = launch_args(tmp_path)
    assert args[:2] == ["-m", "verl.trainer.main_ppo"]
    cfg_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=cfg_dir, version_base=None):
        cfg = compose(config_name="ppo_trainer", overrides=args[2:])
    assert cfg.algorithm.adv_estimator == "virl" and cfg.algorithm.use_kl_in_reward is False
    r = cfg.actor_rollout_ref.rollout
    # 6 zooms and the answer: verl ends an episode after max_assistant_turns
    # turns without running the last turn's call (ToolAgentLoop).
    assert (r.n, r.multi_turn.enable, r.multi_turn.max_assistant_turns) == (8, True, 7)
    # No reference model for a KL term weighted zero (verl builds one whenever use_kl_loss is on).
    from verl.trainer.ppo.utils import need_reference_policy
    assert not need_reference_policy(cfg)
    assert r.multi_turn.tool_config_path.endswith("recipes/verl/tool_config.yaml")
    assert r.agent.default_agent_loop == "virl_agent"
    rf = cfg.reward.custom_reward_function
    assert (rf.path, rf.name) == ("pkg://virl.verl.reward", "compute_score")
    assert rf.reward_kwargs.trace == str(tmp_path / "trace")
    env = OmegaConf.to_container(cfg.ray_kwargs.ray_init.runtime_env.env_vars)
    assert env["VERL_USE_EXTERNAL_MODULES"] == "virl.verl"
    assert json.loads(env["VIRL_REWARD"]) == {"mode": "virl"}
    assert list(cfg.trainer.logger) == ["console", "file"] and cfg.trainer.n_gpus_per_node == 8


def test_the_agent_loop_yaml_names_the_loop():
    from omegaconf import OmegaConf
    from hydra.utils import get_class

    loops = OmegaConf.load(REPO / "recipes/verl/agent_loop.yaml")
    assert [l.name for l in loops] == ["virl_agent"]
    cls = get_class(loops[0]._target_)
    from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop
    assert issubclass(cls, ToolAgentLoop)
