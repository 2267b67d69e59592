"""RL through TRL's ``GRPOTrainer`` with the Dr. GRPO loss and no KL penalty (docs/methods.md §6).

The reward function is the task's own :meth:`Task.reward`, the grader that
measures accuracy, so reward and evaluation cannot drift apart. Prompts come
in the order fixed by :mod:`.data` (``shuffle_dataset=False``): each optimizer
step takes ``prompts_per_step`` prompts x ``num_generations`` rollouts, and
each rollout batch is reused for ``num_iterations`` (mu) optimizer steps.
Dr. GRPO also drops the per-group std normalisation (``scale_rewards="none"``
by default). TRL logs the learning signal at every step: ``reward``,
``reward_std`` and ``frac_reward_zero_std`` (groups whose rewards are all equal
give no gradient). Those are step means; a :class:`~.monitor.RolloutMonitor`
wrapping the reward keeps each rollout batch, to find a collapse onto one answer.

Rollouts are sampled with the config's temperature and top-p and every other
filter off (top-k 0, repetition penalty 1): TRL states those, and
:class:`FolderDefaultsIgnoredGRPOTrainer` hides the model folder's
generation_config.json while it generates, so nothing TRL leaves unset (min-p,
no-repeat n-grams, ...) comes from the checkpoint. With ``rl.use_vllm`` the
rollouts come from vLLM through TRL's own integration in colocate mode (the
``vllm`` extra, a CUDA GPU); TRL hands vLLM the same sampling parameters.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from circuitdrift.errors import InputError
from circuitdrift.models.generate import CHAT_TEMPLATE_KWARGS
from circuitdrift.models.prefix import unhooked
from circuitdrift.models.sampling import Sampling, folder_defaults_ignored
from circuitdrift.tasks.base import Task
from circuitdrift.train.checkpoints import save_model_folder
from circuitdrift.train.config import TrainConfig
from circuitdrift.train.data import rl_dataset
from circuitdrift.train.monitor import RolloutMonitor
from circuitdrift.train.prompt_pass import PromptPassHolder, completion_logps, reused_prompt_pass
from circuitdrift.train.shared_prefix import compact_lm_head, trainer_takes_shared_prefix
from circuitdrift.train.trainer_args import common_args, trainer_inputs


def vllm_settings(config: TrainConfig) -> dict:
    """GRPOConfig's vLLM arguments: TRL's colocate mode (one process, the training GPUs), or none."""
    if not config.rl.use_vllm:
        return {}
    if importlib.util.find_spec("vllm") is None:
        raise InputError("rl.use_vllm: vLLM is not installed; pip install -c constraints.txt 'circuitdrift[vllm]' "
                         "on a CUDA machine, or set rl.use_vllm: false")
    if not torch.cuda.is_available():
        raise InputError("rl.use_vllm: vLLM generates on a CUDA GPU and none is visible; set rl.use_vllm: false")
    return {"use_vllm": True, "vllm_mode": "colocate",
            "vllm_gpu_memory_utilization": config.rl.vllm_gpu_memory_utilization}


def grpo_args(config: TrainConfig, output_dir: Path, progress: bool = False) -> GRPOConfig:
    rl = config.rl
    return GRPOConfig(
        **vllm_settings(config),
        **common_args(config, "rl", output_dir, progress),
        num_generations=rl.num_generations,
        num_iterations=rl.num_iterations,
        loss_type=rl.loss_type,
        scale_rewards=rl.scale_rewards,
        beta=rl.beta,
        epsilon=rl.epsilon,
        temperature=rl.temperature,
        top_p=rl.top_p,
        top_k=0,
        min_p=None,
        repetition_penalty=1.0,
        max_completion_length=rl.max_completion_length,
        shuffle_dataset=False,
        remove_unused_columns=False,
        chat_template_kwargs=dict(CHAT_TEMPLATE_KWARGS),  # the prompt every stage sees: no thinking block
    )


def rollout_sampling(config: TrainConfig) -> Sampling:
    """The rollouts' sampling parameters, as :class:`Sampling` states them (recorded with the results)."""
    rl = config.rl
    return Sampling(do_sample=True, max_new_tokens=rl.max_completion_length, temperature=rl.temperature,
                    top_p=rl.top_p)


def vllm_loadable(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> PreTrainedModel:
    """Give ``model`` a folder vLLM can load: TRL's colocate mode builds ``LLM(model=model.name_or_path)``.

    A model made in memory (``from_config``, a benchmark's random init) has an empty name; it is saved to
    ``folder`` and named after it. TRL then copies the trained weights into vLLM at every step.
    """
    if model.name_or_path:  # the folder or hub id it was loaded from
        return model
    save_model_folder(model, tokenizer, folder)
    model.name_or_path = model.config._name_or_path = str(folder)
    return model


class FolderDefaultsIgnoredGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer, generating with only the parameters it states (see the module docstring), and
    without TRL's repeated arithmetic where that is exact (one process, a text model without LoRA, logit
    scaling or activation checkpointing): each step's prompts are run once, for the rollouts and the loss
    (:mod:`.prompt_pass`), their shared prefix once (:mod:`.shared_prefix`). ``shared_prefix=False`` keeps
    TRL's forward; ``prompt_passes_reused`` counts the loss calls the rollouts' pass served."""

    def __init__(self, *args, shared_prefix: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.shared_prefix = shared_prefix and trainer_takes_shared_prefix(self)
        self.compact_head = shared_prefix
        self.prompt_passes = PromptPassHolder()
        self.prompt_passes_reused = 0

    def _generate(self, prompts: list):
        model = self.accelerator.unwrap_model(self.model)
        self.prompt_passes.take()  # a pass the loss did not use is dropped before the next one is made
        passes = reused_prompt_pass(model, self.prompt_passes, keep_graph=self.model.training) \
            if self.shared_prefix and unhooked(model) else contextlib.nullcontext()
        with folder_defaults_ignored(model), passes:
            return super()._generate(prompts)

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                                           compute_entropy=False, compute_aux_loss=False, **multimodal):
        if self.shared_prefix and unhooked(model) and not compute_aux_loss \
                and all(v is None for v in multimodal.values()):
            size = batch_size or input_ids.size(0)
            prompt_pass = self.prompt_passes.take() if size >= input_ids.size(0) else None  # one call, every prompt
            with self.accelerator.autocast():
                parts = [completion_logps(model, input_ids[start:start + size], attention_mask[start:start + size],
                                          completion_length=logits_to_keep, temperature=self.temperature,
                                          compute_entropy=compute_entropy, prompt_pass=prompt_pass)
                         for start in range(0, input_ids.size(0), size)]
            self.prompt_passes_reused += sum(reused for *_, reused in parts)
            logps = torch.cat([p[0] for p in parts])
            return logps, torch.cat([p[1] for p in parts]) if compute_entropy else None, None
        with compact_lm_head() if self.compact_head else contextlib.nullcontext():
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **multimodal)


def grpo_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: Task,
    *,
    config: TrainConfig,
    output_dir: Path,
    callbacks: Sequence[TrainerCallback] = (),
    peft_config=None,
    progress: bool = False,
    monitor: RolloutMonitor | None = None,
    shared_prefix: bool = True,
) -> GRPOTrainer:
    """A GRPOTrainer rewarded by ``task.reward``, through ``monitor`` when one is given (same rewards, recorded);
    ``shared_prefix=False``: TRL's own scoring forward (the reference the fast path is tested against)."""
    if config.rl.use_vllm:
        model = vllm_loadable(model, tokenizer, Path(output_dir) / "vllm-model")
    return FolderDefaultsIgnoredGRPOTrainer(
        reward_funcs=monitor.reward_func if monitor is not None else task.reward,
        args=grpo_args(config, output_dir, progress),
        train_dataset=rl_dataset(task, config),
        shared_prefix=shared_prefix,
        **trainer_inputs(model, tokenizer, callbacks, peft_config),
    )
