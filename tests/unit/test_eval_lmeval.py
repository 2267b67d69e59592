"""The LM Evaluation Harness adapter on a local multiple-choice task (no download)."""

import json

import pytest
import torch

from circuitdrift.errors import InputError
from tests.helpers.toy import THINGS, toy_model, toy_tokenizer

lm_eval = pytest.importorskip("lm_eval")

from circuitdrift.evaluate.lmeval import lm_eval_scores  # noqa: E402

CHOICES = ["red", "blue", "green", "white"]


@pytest.fixture
def local_task(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    docs = [
        {"question": f"what color is the {thing}?", "choices": CHOICES, "label": CHOICES.index(color)}
        for thing, color in THINGS.items()
        if color in CHOICES
    ]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tmp_path / "colors.yaml").write_text(
        "task: toy_colors_mc\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {tmp_path / 'docs.jsonl'}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\n'
        'doc_to_choice: "{{choices}}"\n'
        'doc_to_target: "{{label}}"\n'
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )
    return tmp_path, docs


def test_adapter_scores_a_local_task_like_a_direct_loglikelihood_count(local_task, device):
    path, docs = local_task
    tokenizer = toy_tokenizer()
    model = toy_model(tokenizer, seed=3, device=device)
    scores = lm_eval_scores(model, tokenizer, ["toy_colors_mc"], limit=None, include_path=path)
    correct = 0
    with torch.no_grad():
        for doc in docs:
            context = tokenizer(doc["question"], add_special_tokens=False).input_ids
            totals = []
            for choice in doc["choices"]:
                cont = tokenizer(" " + choice, add_special_tokens=False).input_ids
                logp = model(torch.tensor([context + cont])).logits[0].log_softmax(-1)
                totals.append(sum(float(logp[len(context) - 1 + k, t]) for k, t in enumerate(cont)))
            correct += int(max(range(len(totals)), key=totals.__getitem__) == doc["label"])
    assert scores == {"toy_colors_mc": pytest.approx(correct / len(docs))}


def test_unknown_tasks_are_input_errors(local_task):
    path, _ = local_task
    tokenizer = toy_tokenizer()
    with pytest.raises(InputError, match="no_such_task"):
        lm_eval_scores(toy_model(tokenizer), tokenizer, ["no_such_task"], include_path=path)


def test_a_dataset_missing_offline_is_one_error_naming_the_task(local_task, tmp_path):
    path, _ = local_task
    (path / "gone.yaml").write_text((path / "colors.yaml").read_text().replace("toy_colors_mc", "gone_mc")
                                    .replace(str(path / "docs.jsonl"), str(tmp_path / "absent.jsonl")))
    tokenizer = toy_tokenizer()
    with pytest.raises(InputError, match=r"lm-eval task 'gone_mc': its dataset could not be loaded") as err:
        lm_eval_scores(toy_model(tokenizer), tokenizer, ["gone_mc"], include_path=path)
    assert "\n" not in str(err.value)
