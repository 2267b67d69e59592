"""The organism's recipe: architecture, corpus mixture and pretraining hyperparameters.

``FULL`` is the recipe of the shipped organism; ``reduced()`` is the same
recipe at toy size, for the end-to-end test that keeps the recipe from rotting.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from circuitdrift.organism.corpus import Mixture


@dataclass(frozen=True)
class Architecture:
    """A Qwen2ForCausalLM with grouped-query attention (8 query heads share 2 key/value heads)."""

    n_layers: int = 4
    hidden: int = 256
    n_heads: int = 8
    n_kv_heads: int = 2
    intermediate: int = 512
    max_positions: int = 256
    rope_theta: float = 10_000.0


@dataclass(frozen=True)
class Recipe:
    architecture: Architecture = field(default_factory=Architecture)
    mixture: Mixture = field(default_factory=Mixture)
    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    scheduler: str = "cosine"
    # the corpus order is the training order (see corpus.build_corpus); length-grouped batches, which
    # make each batch one kind of text, kept in-context skills from forming at all
    sampling: str = "sequential"
    max_grad_norm: float = 0.0  # no clipping
    head_dropout: float = 0.0  # DropHead with mean replacement (build.head_dropout); 0.2 cost IOI accuracy (0.55)
    eval_examples: int = 200  # per probe and for science-qa, from the test split
    threads: int = 1  # CPU threads: one is robust on a shared machine and gives the same sums on any core count

    def to_dict(self) -> dict:
        return asdict(self)


FULL = Recipe()


def reduced() -> Recipe:
    """A recipe that builds in seconds: two tiny layers and a few hundred documents."""
    return replace(
        FULL,
        architecture=Architecture(n_layers=2, hidden=32, n_heads=4, n_kv_heads=2, intermediate=64),
        mixture=FULL.mixture.scaled(0.003),
        warmup_steps=2,
        eval_examples=16,
    )
