"""How far an SFT label lies from the base model: its negative log-likelihood under the base.

RL's Razor's precondition (docs/methods.md, "The precondition"): SFT can only pull a model
far from its base when its labels are unlikely under the base. A label the base already
gives much of its mass to (the letter of a multiple-choice answer) is nearly on-policy and
SFT on it is nearly KL-minimal; the correct option's word, which a base asked for a letter
almost never writes, is off-policy. ``label_nll`` measures that distance: the mean over
training examples of -log P_base(label | prompt), summed over the label's tokens, with the
prompt in the chat template exactly as SFT and evaluation see it (the task's own prompts,
encoded by :func:`~circuitdrift.tasks.base.encode`: prompt ids, then the label's ids). The
end-of-turn tokens after the label, the same for every arm, are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from circuitdrift.circuits.forward import model_device, scored_logits
from circuitdrift.circuits.metrics import answer_logprob
from circuitdrift.tasks.base import Example, Task, encode, iter_batches


@dataclass(frozen=True)
class LabelNLL:
    nats: float  # mean over examples of -log P(label | prompt), summed over the label's tokens
    nats_per_token: float  # the same divided by each label's token count, then averaged
    n_examples: int

    def to_dict(self) -> dict:
        return {"nats": self.nats, "nats_per_token": self.nats_per_token, "n_examples": self.n_examples}


def labelled_task(task: Task) -> Task:
    """A scoring copy of ``task`` whose gold answers are its SFT labels (:meth:`Task.sft_label`)."""
    examples = [Example(ex.clean, ex.corrupt, task.sft_label(ex)) for ex in task.examples]
    return Task(task.name, examples, task.description, templated=task.templated)


@torch.no_grad()
def label_nll(model: nn.Module, tokenizer, task: Task, batch_size: int = 32) -> LabelNLL:
    """The SFT labels' mean NLL under ``model`` (the base), one teacher-forced pass."""
    scored = labelled_task(task)
    device = model_device(model)
    sums, per_token = [], []
    for batch in iter_batches(encode(scored, tokenizer), batch_size, tokenizer.pad_token_id):
        batch = batch.to(device)
        mean_logprob = answer_logprob(*scored_logits(model, batch, ids=batch.clean)).double().cpu()
        lengths = batch.target_mask.sum(-1).double().cpu()
        sums.append(-mean_logprob * lengths)
        per_token.append(-mean_logprob)
    nats, nats_per_token = torch.cat(sums), torch.cat(per_token)
    return LabelNLL(float(nats.mean()), float(nats_per_token.mean()), len(scored))
