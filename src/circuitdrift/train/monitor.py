"""Watch GRPO's rollouts for the learning signal and for a collapse onto one answer.

On a small model, RL with Dr. GRPO can collapse onto a single answer (one
letter of a multiple-choice task). Once the G rewards of a group are all equal
the group gives no gradient, and a policy that gives one letter everywhere
cannot be left. TRL's per-step log averages this away, so
:class:`RolloutMonitor` wraps the task's reward function, leaves the rewards
untouched, and keeps what each generation batch looked like: its rewards, the
answer each completion gave, the group size. From those it reports, per
window of consecutive batches, the mean reward, the share of groups with
reward variance (the groups that teach anything), and the spread of answers
(entropy in bits, distinct answers, the top answer and its share), and finds
the first window at which the answers have collapsed.

What TRL passes (``GRPOTrainer._calculate_rewards``, TRL 1.16): one call per
generation batch, keywords only: ``prompts``, ``completions`` (strings, or
lists of messages for conversational data), ``completion_ids``, every other
dataset column as a list (``answer``, ``answers``), and ``trainer_state``,
``log_extra``, ``log_metric``. The rows are the ``RepeatSampler``'s order,
each prompt repeated G times in a row, so G consecutive completions are one
group; rewards are computed before the batch is shuffled and split into
micro-batches. With ``num_iterations`` = mu the batch serves mu optimizer
steps and is scored once. With one process a batch holds every prompt of a
step; under several processes each process scores (and this monitor sees)
only its own share, and groups stay whole only when G divides that share.

Pure Python apart from the task's reward call.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from transformers import TrainerCallback

from circuitdrift.io import write_json
from circuitdrift.tasks.base import Task, completion_text

# Below 0.5 bits the answers have lost almost all their spread: for a 4-way answer, 0.5 bits means about 90 %
# of the answers are one letter (90 % and one other letter: 0.47 bits; 92.5 % and the rest spread evenly over
# the other three: 0.50 bits), where a healthy policy on a balanced task sits near log2(4) = 2 bits.
ENTROPY_THRESHOLD_BITS = 0.5
# Two windows in a row, so one unlucky window is not called a collapse.
PATIENCE = 2
# A window where one answer is >= 95 % of all answers has collapsed whatever its entropy: with many rare
# answers (free-form tasks) the entropy can stay above the threshold while the policy gives one answer.
TOP_SHARE_THRESHOLD = 0.95
NO_ANSWER = "<none>"  # a completion the task could not parse


@dataclass(frozen=True)
class RolloutBatch:
    """One generation batch, as the reward function saw it."""

    index: int  # generation batch number in the whole run (counted from the run's start, also after a resume)
    step: int | None  # first optimizer step trained on these rollouts (None when called outside a Trainer)
    rewards: tuple[float, ...]
    answers: tuple[str, ...]  # parsed answer per completion, NO_ANSWER where none
    group_size: int


class RolloutMonitor:
    """Wraps ``task.reward`` for TRL; records every generation batch without changing a reward.

    ``first_batch`` numbers the first batch this monitor sees: a run resumed at step s (with mu steps per
    batch) starts at batch s // mu, so window numbers mean the same steps in a whole and a resumed run.
    """

    def __init__(self, task: Task, num_generations: int, first_batch: int = 0):
        if num_generations < 1:
            raise ValueError(f"num_generations must be >= 1, got {num_generations}")
        self.task = task
        self.num_generations = num_generations
        self.first_batch = first_batch
        self.batches: list[RolloutBatch] = []

    @property
    def reward_func(self):
        """The callable to give TRL; its ``__name__`` is "reward", as ``task.reward``'s is, so TRL's
        metric names (``rewards/reward/mean``, ``rewards/reward/std``) do not change."""
        return self.reward

    def reward(self, prompts: Sequence, completions: Sequence, answer: Sequence[str],
               answers: Sequence[Sequence[str]] | None = None, **kwargs) -> list[float]:
        """``task.reward``, unchanged, and a record of the batch."""
        rewards = self.task.reward(prompts, completions, answer, answers=answers, **kwargs)
        rows = kwargs.get("example")  # each row's example index: the answer read as the grader reads it
        parsed = (self.task.parse(completion_text(c)) if rows is None
                  else self.task.parse_example(completion_text(c), self.task.examples[i])
                  for c, i in zip(completions, rows or [None] * len(completions), strict=True))
        state = kwargs.get("trainer_state")
        self.batches.append(RolloutBatch(
            index=self.first_batch + sum(b.index >= self.first_batch for b in self.batches),  # restored ones excluded
            step=None if state is None else state.global_step + 1,
            rewards=tuple(float(r) for r in rewards),
            answers=tuple(NO_ANSWER if a is None else a for a in parsed),
            group_size=self.num_generations,
        ))
        return rewards

    def save(self, path: Path) -> None:
        """Write every batch seen so far to ``path`` (JSON): a checkpoint's share of the run's rollouts."""
        write_json(path, [asdict(b) for b in self.batches])

    def restore(self, path: Path) -> None:
        """Take back the batches before ``first_batch`` that a checkpoint saved (:meth:`save`), so a resumed
        run's windows equal a whole run's. A checkpoint without the file (written before it existed) leaves
        the resumed run's windows partial, as they were."""
        if not path.is_file():
            return
        saved = [RolloutBatch(**{**row, "rewards": tuple(row["rewards"]), "answers": tuple(row["answers"])})
                 for row in json.loads(path.read_text(encoding="utf-8"))]
        self.batches = [b for b in saved if b.index < self.first_batch] + self.batches

    def batch_stats(self) -> list[dict]:
        """The statistics of each generation batch on its own."""
        return [_stats(b.index, [b]) for b in self.batches]

    def windows(self, size: int) -> list[dict]:
        """Statistics pooled over windows of ``size`` consecutive batches (window w holds batches
        ``w*size .. w*size+size-1``; the first and last window of a resumed or cut run may be partial)."""
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        pooled: dict[int, list[RolloutBatch]] = {}
        for batch in self.batches:
            pooled.setdefault(batch.index // size, []).append(batch)
        return [_stats(w, batches) for w, batches in sorted(pooled.items())]

    def collapse(self, entropy_threshold_bits: float = ENTROPY_THRESHOLD_BITS, patience: int = PATIENCE, *,
                 window: int = 1, top_share: float = TOP_SHARE_THRESHOLD) -> dict | None:
        """The first window where the answers collapsed, with its statistics and ``reason``; None if none.

        Collapsed: the entropy is below ``entropy_threshold_bits`` in this window and the ``patience - 1``
        after it (reason "entropy"), or one answer is at least ``top_share`` of this window (reason
        "top_share"). Windows are ``window`` batches each.
        """
        stats = self.windows(window)
        for i, current in enumerate(stats):
            if current["top_share"] >= top_share:
                return {"reason": "top_share", **current}
            run = stats[i : i + patience]
            if len(run) == patience and all(s["entropy_bits"] < entropy_threshold_bits for s in run):
                return {"reason": "entropy", **current}
        return None

    def summary(self, window: int) -> dict:
        """JSON-ready: per-window statistics, the collapse (or None) and the thresholds used."""
        return {
            "window_batches": window,
            "group_size": self.num_generations,
            "batches": len(self.batches),
            "windows": self.windows(window),
            "collapse": self.collapse(window=window),
            "thresholds": {"entropy_bits": ENTROPY_THRESHOLD_BITS, "patience": PATIENCE,
                           "top_share": TOP_SHARE_THRESHOLD},
        }


def entropy_bits(counts: Counter) -> float:
    """Shannon entropy, in bits, of the distribution ``counts`` describes (0 for one value or none)."""
    total = sum(counts.values())
    if not total:
        return 0.0
    return max(0.0, -sum(c / total * math.log2(c / total) for c in counts.values() if c))  # no -0.0


def _stats(index: int, batches: Sequence[RolloutBatch]) -> dict:
    """Pool batches: rewards and answers over all completions; groups never cross a batch. A batch whose
    length is not a multiple of G (only possible across processes) counts its whole groups only."""
    rewards = [r for b in batches for r in b.rewards]
    counts = Counter(a for b in batches for a in b.answers)
    groups = varied = 0
    for b in batches:
        g = b.group_size
        for start in range(0, len(b.rewards) - g + 1, g):
            groups += 1
            varied += len(set(b.rewards[start : start + g])) > 1
    top, top_count = min(counts.items(), key=lambda kv: (-kv[1], kv[0])) if counts else (None, 0)
    steps = [b.step for b in batches if b.step is not None]
    return {
        "window": index,
        "first_batch": batches[0].index,
        "last_batch": batches[-1].index,
        "first_step": min(steps) if steps else None,
        "last_step": max(steps) if steps else None,
        "completions": len(rewards),
        "mean_reward": math.fsum(rewards) / len(rewards) if rewards else None,
        "groups": groups,
        "share_groups_with_variance": varied / groups if groups else None,
        "entropy_bits": entropy_bits(counts),
        "distinct_answers": len(counts),
        "top_answer": top,
        "top_share": top_count / counts.total() if counts else 0.0,
    }


ROLLOUTS_FILE = "rollout_batches.json"


class MonitorCheckpoint(TrainerCallback):
    """Saves the monitor's batches into each checkpoint folder, for :meth:`RolloutMonitor.restore` on resume."""

    def __init__(self, monitor: RolloutMonitor):
        self.monitor = monitor

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            self.monitor.save(folder / ROLLOUTS_FILE)
