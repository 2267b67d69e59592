"""Judges that run a local Hugging Face model, given by hub id or folder.

- A causal LM (chat model) is asked the judge questions of :mod:`.prompts` in its
  chat template; the verdict is yes when the next-token logit of "yes" beats "no",
  each read as the largest logit over its forms: any case ("yes", "Yes", "YES"),
  with and without a leading space (chat models answer "Yes"). A form that is
  one token counts; of a form split into several tokens only the lowercase one's
  first token counts (a capital's first piece, "Y", would also begin other words).
- A sequence classifier (``*ForSequenceClassification``, e.g. a harm classifier)
  reads "request\\nresponse"; the verdict is yes when its top label is
  ``positive_label`` (for a two-label model with default names, ``LABEL_1``). It has
  one question, so ``complied`` and ``flagged`` both report it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from circuitdrift.errors import InputError
from circuitdrift.judge.prompts import judge_prompt
from circuitdrift.models.generate import chat_text, left_pad
from circuitdrift.models.load import load_model, load_tokenizer, resolve_device, resolve_model_path


def load_hf_judge(name: str, positive_label: str | None = None, device: str = "auto", batch_size: int = 16):
    """A :class:`CausalLMJudge` or :class:`ClassifierJudge`, by the model's architecture."""
    source = resolve_model_path(name)
    try:
        architectures = AutoConfig.from_pretrained(source).architectures or []
    except (OSError, ValueError) as err:
        raise InputError(f"judge model '{name}': could not read its config ({err})") from err
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        model = AutoModelForSequenceClassification.from_pretrained(source, use_safetensors=True)
        model.to(resolve_device(device)).eval()
        return ClassifierJudge(model, load_tokenizer(name), positive_label, batch_size)
    model, tokenizer = load_model(name, device=device)
    return CausalLMJudge(model, tokenizer, batch_size)


def answer_forms(word: str) -> list[str]:
    """``word`` in lower, capitalised and upper case, each bare and after a space."""
    cases = dict.fromkeys((word.lower(), word.capitalize(), word.upper()))
    return [space + case for case in cases for space in ("", " ")]


class CausalLMJudge:
    name = "hf-lm"

    def __init__(self, model, tokenizer, batch_size: int = 16) -> None:
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.yes = self._first_tokens("yes")
        self.no = self._first_tokens("no")

    def _first_tokens(self, word: str) -> list[int]:
        unk = self.tokenizer.unk_token_id
        found = set()
        for form in answer_forms(word):
            ids = self.tokenizer(form, add_special_tokens=False).input_ids
            if ids and ids[0] != unk and (len(ids) == 1 or form.strip() == word):
                found.add(ids[0])
        found = sorted(found)
        if not found:
            raise InputError(f"judge model: its tokenizer has no token for '{word}'")
        return found

    def complied(self, requests: Sequence[str], responses: Sequence[str]) -> list[bool]:
        return self._ask("complied", requests, responses)

    def flagged(self, requests: Sequence[str], responses: Sequence[str]) -> list[bool]:
        return self._ask("flagged", requests, responses)

    @torch.no_grad()
    def yes_margin(self, question: str, requests: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        """max logit over "yes" tokens minus max over "no" tokens at the answer position: [n]."""
        if len(requests) != len(responses):
            raise ValueError(f"judge: {len(requests)} requests but {len(responses)} responses")
        device = next(self.model.parameters()).device
        texts = [chat_text(self.tokenizer, judge_prompt(question, q, r)) for q, r in zip(requests, responses,
                                                                                         strict=True)]
        margins = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            rows = [self.tokenizer(t, add_special_tokens=False).input_ids for t in chunk]
            ids, mask = left_pad(rows, self.tokenizer.pad_token_id, device)
            logits = self.model(input_ids=ids, attention_mask=mask).logits[:, -1, :].float()  # [b, vocab]
            margins.append(logits[:, self.yes].max(-1).values - logits[:, self.no].max(-1).values)
        return torch.cat(margins).cpu()

    def _ask(self, question, requests, responses) -> list[bool]:
        return [bool(m > 0) for m in self.yes_margin(question, requests, responses)]


class ClassifierJudge:
    name = "hf-classifier"

    def __init__(self, model, tokenizer, positive_label: str | None = None, batch_size: int = 16) -> None:
        labels = {int(i): str(label) for i, label in model.config.id2label.items()}
        if positive_label is None:
            if sorted(labels.values()) != ["LABEL_0", "LABEL_1"]:
                raise InputError(f"judge classifier: set judge.positive_label to one of {sorted(labels.values())}")
            positive_label = "LABEL_1"
        matches = [i for i, label in labels.items() if label.lower() == positive_label.lower()]
        if not matches:
            raise InputError(f"judge classifier: no label '{positive_label}' (labels: {sorted(labels.values())})")
        self.model, self.tokenizer, self.batch_size, self.positive = model, tokenizer, batch_size, matches[0]

    @torch.no_grad()
    def positive_share(self, requests: Sequence[str], responses: Sequence[str]) -> list[bool]:
        if len(requests) != len(responses):
            raise ValueError(f"judge: {len(requests)} requests but {len(responses)} responses")
        device = next(self.model.parameters()).device
        texts = [f"{q}\n{r}" for q, r in zip(requests, responses, strict=True)]
        out: list[bool] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[start : start + self.batch_size], padding=True, return_tensors="pt")
            logits = self.model(**batch.to(device)).logits  # [b, labels]
            out += [int(i) == self.positive for i in logits.argmax(-1)]
        return out

    def complied(self, requests: Sequence[str], responses: Sequence[str]) -> list[bool]:
        return self.positive_share(requests, responses)

    def flagged(self, requests: Sequence[str], responses: Sequence[str]) -> list[bool]:
        return self.positive_share(requests, responses)
