"""Sampling parameters stated in full, so nothing from a model folder's ``generation_config.json`` leaks in.

``model.generate`` fills every parameter its ``GenerationConfig`` leaves unset
(``None``) from the model's own generation config (transformers >= 5), and
published checkpoints set some: Qwen2.5-Instruct ships ``repetition_penalty
1.05``, ``top_k 20``, ``top_p 0.8``, ``temperature 0.7``. A greedy accuracy or
a KL sample would then not be what the experiment config says. So every
generation circuitdrift runs (greedy target accuracy, KL samples, GRPO
rollouts) goes through :func:`folder_defaults_ignored`, which gives the model
a generation config holding only its special-token ids for the duration, and
states its parameters as one :class:`Sampling`, which results record.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from transformers import GenerationConfig, PreTrainedModel

# The token ids a model's generation config may carry: kept, since they are facts of the vocabulary.
_TOKEN_IDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")


@dataclass(frozen=True)
class Sampling:
    """Every parameter that decides which token ``generate`` picks (neutral values switch a filter off)."""

    do_sample: bool
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k filter
    min_p: float = 0.0
    typical_p: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0

    @classmethod
    def greedy(cls, max_new_tokens: int) -> Sampling:
        return cls(do_sample=False, max_new_tokens=max_new_tokens)

    @classmethod
    def at_temperature(cls, max_new_tokens: int, temperature: float, top_p: float = 1.0) -> Sampling:
        """As the steering CLI and the transfer config state it: temperature 0 is greedy, above it samples."""
        sample = temperature > 0
        return cls(do_sample=sample, max_new_tokens=max_new_tokens, temperature=temperature if sample else 1.0,
                   top_p=top_p)

    def to_dict(self) -> dict:
        return asdict(self)

    def generation_config(self, eos_token_id: Sequence[int] | int | None, pad_token_id: int | None) -> GenerationConfig:
        """A GenerationConfig with every sampling parameter set (greedy applies no sampling filter)."""
        filters = {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                   "typical_p": self.typical_p} if self.do_sample else {}
        if self.do_sample and self.min_p > 0:  # unset is off once the folder's defaults are hidden
            filters["min_p"] = self.min_p
        return GenerationConfig(
            do_sample=self.do_sample, max_new_tokens=self.max_new_tokens, num_beams=1,
            repetition_penalty=self.repetition_penalty, no_repeat_ngram_size=self.no_repeat_ngram_size,
            epsilon_cutoff=0.0, eta_cutoff=0.0, eos_token_id=list(eos_token_id) if isinstance(eos_token_id, Sequence)
            else eos_token_id, pad_token_id=pad_token_id, **filters,
        )  # fmt: skip


def generating_model(model) -> PreTrainedModel:
    """The transformers model whose ``generation_config`` ``generate`` reads (through PEFT and DDP wrappers)."""
    while hasattr(model, "module"):  # DistributedDataParallel and friends
        model = model.module
    if hasattr(model, "get_base_model"):  # PEFT
        model = model.get_base_model()
    return model


@contextmanager
def folder_defaults_ignored(model) -> Iterator[None]:
    """For the duration, ``model``'s generation config holds only its special-token ids; restored in ``finally``."""
    target = generating_model(model)
    own = target.generation_config
    bare = GenerationConfig(**{k: getattr(own, k) for k in _TOKEN_IDS if getattr(own, k, None) is not None})
    target.generation_config = bare
    try:
        yield
    finally:
        target.generation_config = own
