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
class PostTraining:
    """Instruction tuning after pretraining: SFT (TRL, completion-only loss) on one split of some tasks.

    The shipped organism is tuned on the multiple-choice questions about the pretraining half of the
    substances, as a chat model is instruction-tuned before anyone fine-tunes it on a new task. Without
    this stage the held-out science-qa accuracy sat on a fragile, untrained read-out: every method's
    first fine-tuning steps dropped it below the base before it rose (docs/organism.md, "The recipe",
    also for why the naming questions are left out).
    """

    tasks: tuple[str, ...] = ("science-qa",)
    split: str = "pretrain"
    steps: int = 100
    prompts_per_step: int = 32
    learning_rate: float = 1e-4
    warmup_steps: int = 3

    def train_config(self, seed: int) -> dict:
        """The settings of :func:`circuitdrift.train.run.train` for this stage."""
        return {"steps": self.steps, "prompts_per_step": self.prompts_per_step, "learning_rate": self.learning_rate,
                "warmup_steps": self.warmup_steps, "lr_schedule": "constant_with_warmup", "train_split": self.split,
                "seed": seed}


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
    post_training: PostTraining | None = field(default_factory=PostTraining)  # None: the pretrained model as is

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
        post_training=replace(FULL.post_training, steps=2, prompts_per_step=4, warmup_steps=0),
    )
