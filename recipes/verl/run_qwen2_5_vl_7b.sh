#!/usr/bin/env bash
# ViRL on Qwen2.5-VL-7B-Instruct with verl 0.9.x, DeepEyes-style: GRPO with
# n = 8 rollouts per question, at most 6 zooms and an answer (7 assistant
# turns: verl ends the episode after the 7th turn without running its call), on one
# node of 8 GPUs (80 GB each). The `virl` estimator modulates each zoom
# turn's advantage by its fidelity (DESIGN §5); compute_score is the ViRL
# reward (DESIGN §4); every scored trajectory is traced to $TRACE, which the
# studio follows live:   virl --open "$TRACE"
#
#   TRAIN=/data/vstar.parquet VAL=/data/vstar-val.parquet MODEL=/models/Qwen2.5-VL-7B-Instruct \
#   TRACE=/shared/traces/virl-7b bash recipes/verl/run_qwen2_5_vl_7b.sh [more hydra overrides]
#
# Every path must be on storage that all nodes see (the trace is written by
# the reward workers, the file logger by the driver). See recipes/verl/README.md.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"

: "${TRAIN:?set TRAIN to the parquet written by: virl export --format verl --dataset D --out train.parquet}"
: "${VAL:=$TRAIN}"
: "${MODEL:?set MODEL to a local Qwen2.5-VL-7B-Instruct folder (or a hub id the nodes can download)}"
: "${TRACE:?set TRACE to a folder on shared storage: the studio follows it (virl --open \$TRACE)}"
: "${PROJECT:=virl}"
: "${EXPERIMENT:=qwen2_5_vl_7b_virl}"
: "${NGPUS:=8}"
# verl's `file` logger (metrics JSONL for the studio's curves). verl opens it
# with mode "wb": a restarted run truncates it, so give each launch its own file.
: "${VERL_FILE_LOGGER_PATH:=$TRACE/verl-metrics-$(date +%Y%m%d-%H%M%S).jsonl}"
# The reward and credit constants (DESIGN §4-5), for compute_score and the estimator alike.
DEFAULT_REWARD='{"mode": "virl"}'
VIRL_REWARD="${VIRL_REWARD:-$DEFAULT_REWARD}"
export VERL_FILE_LOGGER_PATH VIRL_REWARD
mkdir -p "$TRACE"

python3 -m verl.trainer.main_ppo \
    algorithm.adv_estimator=virl \
    algorithm.use_kl_in_reward=False \
    data.train_files="$TRAIN" \
    data.val_files="$VAL" \
    data.train_batch_size=256 \
    data.max_prompt_length=8192 \
    data.max_response_length=16384 \
    data.return_raw_chat=True \
    data.filter_overlong_prompts=True \
    data.image_key=images \
    actor_rollout_ref.model.path="$MODEL" \
    actor_rollout_ref.model.use_remove_padding=True \
    actor_rollout_ref.model.enable_gradient_checkpointing=True \
    actor_rollout_ref.actor.optim.lr=1e-6 \
    actor_rollout_ref.actor.ppo_mini_batch_size=64 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1 \
    actor_rollout_ref.actor.use_kl_loss=False \
    actor_rollout_ref.actor.entropy_coeff=0.0 \
    actor_rollout_ref.actor.fsdp_config.param_offload=False \
    actor_rollout_ref.actor.fsdp_config.optimizer_offload=True \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.mode=async \
    actor_rollout_ref.rollout.n=8 \
    actor_rollout_ref.rollout.tensor_model_parallel_size=2 \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.6 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2 \
    actor_rollout_ref.rollout.multi_turn.enable=True \
    actor_rollout_ref.rollout.multi_turn.max_assistant_turns=7 \
    actor_rollout_ref.rollout.multi_turn.max_parallel_calls=1 \
    actor_rollout_ref.rollout.multi_turn.format=hermes \
    actor_rollout_ref.rollout.multi_turn.tool_config_path="$HERE/tool_config.yaml" \
    actor_rollout_ref.rollout.agent.agent_loop_config_path="$HERE/agent_loop.yaml" \
    actor_rollout_ref.rollout.agent.default_agent_loop=virl_agent \
    reward.custom_reward_function.path=pkg://virl.verl.reward \
    reward.custom_reward_function.name=compute_score \
    +reward.custom_reward_function.reward_kwargs.trace="$TRACE" \
    +reward.custom_reward_function.reward_kwargs.metrics="$VERL_FILE_LOGGER_PATH" \
    +ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES=virl.verl \
    +ray_kwargs.ray_init.runtime_env.env_vars.VIRL_REWARD="'$VIRL_REWARD'" \
    +ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH="$VERL_FILE_LOGGER_PATH" \
    trainer.logger='["console","file"]' \
    trainer.project_name="$PROJECT" \
    trainer.experiment_name="$EXPERIMENT" \
    trainer.n_gpus_per_node="$NGPUS" \
    trainer.nnodes=1 \
    trainer.save_freq=20 \
    trainer.test_freq=10 \
    trainer.total_epochs=1 \
    "$@"
