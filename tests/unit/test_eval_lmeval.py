"""The LM Evaluation Harness adapter on a local multiple-choice task (no download)."""

import json

import pytest
import torch

from circuitdrift.errors import InputError
from tests.helpers.toy import THINGS, toy_model, toy_tokenizer

lm_eval = pytest.importorskip("lm_eval")

from circuitdrift.evaluate import lmeval  # noqa: E402
from circuitdrift.evaluate.lmeval import check_requirements, lm_eval_scores, per_subtask_limits  # noqa: E402

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


def _correct(model, tokenizer, doc) -> int:
    """1 when the highest summed log-likelihood of ' choice' after the question is the label's."""
    context = tokenizer(doc["question"], add_special_tokens=False).input_ids
    totals = []
    with torch.no_grad():
        for choice in doc["choices"]:
            cont = tokenizer(" " + choice, add_special_tokens=False).input_ids
            logp = model(torch.tensor([context + cont], device=model.device)).logits[0].log_softmax(-1)
            totals.append(sum(float(logp[len(context) - 1 + k, t]) for k, t in enumerate(cont)))
    return int(max(range(len(totals)), key=totals.__getitem__) == doc["label"])


def test_adapter_scores_a_local_task_like_a_direct_loglikelihood_count(local_task, device):
    path, docs = local_task
    tokenizer = toy_tokenizer()
    model = toy_model(tokenizer, seed=3, device=device)
    scores = lm_eval_scores(model, tokenizer, ["toy_colors_mc"], limit=None, include_path=path)
    correct = sum(_correct(model, tokenizer, doc) for doc in docs)
    assert scores == {"toy_colors_mc": pytest.approx(correct / len(docs))}


def _group(path, docs):
    """toy_group: two subtasks over the two halves of the docs."""
    text = (path / "colors.yaml").read_text()
    for name, part in (("toy_half_a", docs[:4]), ("toy_half_b", docs[4:])):
        (path / f"{name}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in part))
        (path / f"{name}.yaml").write_text(text.replace("toy_colors_mc", name)
                                           .replace(str(path / "docs.jsonl"), str(path / f"{name}.jsonl")))
    (path / "group.yaml").write_text("group: toy_group\ntask:\n  - toy_half_a\n  - toy_half_b\n"
                                     "aggregate_metric_list:\n  - metric: acc\n    weight_by_size: true\n")


def test_limit_is_the_total_of_a_group_not_per_subtask(local_task):
    path, docs = local_task
    assert len(docs) == 8
    _group(path, docs)
    assert per_subtask_limits(["toy_group", "toy_colors_mc"], 4, path) == {"toy_group": 2, "toy_colors_mc": 4}
    assert per_subtask_limits(["toy_group"], 3, path) == {"toy_group": 2} and per_subtask_limits(
        ["toy_group"], None, path) == {"toy_group": None}
    tokenizer = toy_tokenizer()
    model = toy_model(tokenizer, seed=5)
    scores = lm_eval_scores(model, tokenizer, ["toy_group"], limit=4, include_path=path)
    first_two_of_each = docs[0:2] + docs[4:6]
    expected = sum(_correct(model, tokenizer, d) for d in first_two_of_each) / 4
    assert scores == {"toy_group": pytest.approx(expected)}


def test_the_chat_template_is_a_choice(local_task, monkeypatch):
    path, docs = local_task
    tokenizer = toy_tokenizer()
    assert tokenizer.chat_template
    model = toy_model(tokenizer, seed=3)
    calls = []
    original = type(tokenizer).apply_chat_template

    def counted(self, *args, **kwargs):
        calls.append(args[0] if args else kwargs.get("conversation"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(tokenizer), "apply_chat_template", counted)
    plain = lm_eval_scores(model, tokenizer, ["toy_colors_mc"], limit=None, include_path=path)
    assert calls == []
    templated = lm_eval_scores(model, tokenizer, ["toy_colors_mc"], limit=None, include_path=path,
                               apply_chat_template=True)
    assert calls and any(docs[0]["question"] in str(c) for c in calls)
    assert set(plain) == set(templated) == {"toy_colors_mc"}


def test_ifeval_requirements_are_named():
    with pytest.raises(InputError, match=r"'ifeval': needs the Python packages langdetect, immutabledict "
                                         r"\(pip install 'lm-eval\[ifeval\]'\) and NLTK's punkt_tab data"):
        check_requirements("ifeval", find_module=lambda m: None if m != "nltk" else object(),
                           find_data=lambda p: False)
    with pytest.raises(InputError, match=r"needs NLTK's punkt_tab data \(python -m nltk.downloader punkt_tab"):
        check_requirements("leaderboard_ifeval", find_module=lambda m: object(), find_data=lambda p: False)
    check_requirements("ifeval", find_module=lambda m: object(), find_data=lambda p: True)
    check_requirements("hellaswag", find_module=lambda m: None, find_data=lambda p: False)  # needs nothing more


def test_ifeval_in_this_environment_is_checked_before_the_harness_imports_it():
    import importlib.util

    if importlib.util.find_spec("langdetect") is not None:
        pytest.skip("lm-eval[ifeval] is installed here")
    with pytest.raises(InputError, match="'ifeval': needs the Python packages langdetect"):
        lmeval.check_lm_eval(["ifeval"])


def test_unknown_tasks_are_input_errors(local_task):
    path, _ = local_task
    tokenizer = toy_tokenizer()
    with pytest.raises(InputError, match="no_such_task"):
        lm_eval_scores(toy_model(tokenizer), tokenizer, ["no_such_task"], include_path=path)


def test_a_dataset_missing_offline_is_one_error_naming_the_task(local_task, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    path, _ = local_task
    (path / "gone.yaml").write_text((path / "colors.yaml").read_text().replace("toy_colors_mc", "gone_mc")
                                    .replace(str(path / "docs.jsonl"), str(tmp_path / "absent.jsonl")))
    tokenizer = toy_tokenizer()
    with pytest.raises(InputError, match=r"lm-eval task 'gone_mc': its dataset could not be loaded") as err:
        lm_eval_scores(toy_model(tokenizer), tokenizer, ["gone_mc"], include_path=path)
    assert "\n" not in str(err.value)
    assert "HF_HUB_OFFLINE not set: without network, fill the Hugging Face cache" in str(err.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    with pytest.raises(InputError, match=rf"offline mode is on and the dataset is not in the cache \({tmp_path}"):
        lmeval.check_lm_eval(["gone_mc"], include_path=path)
