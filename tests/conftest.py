"""Shared fixtures: random-init tiny models, a locally built tokenizer, toy tasks. No downloads.

``pytest --device cuda`` runs the tests that build models on that device (default ``cpu``): the
``device`` fixture names it, and :func:`make_model` puts its models there.
"""

from __future__ import annotations

import os
import random

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One thread per test process (pytest-xdist runs one process per core): the workers share the cores instead of
# each starting a thread per core, and subprocesses (the CLI tests) inherit the setting.
for _threads in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

from circuitdrift.models.tiny import tiny_model  # noqa: E402
from circuitdrift.models.wordlevel import build_word_tokenizer  # noqa: E402
from circuitdrift.tasks.base import Example, Task  # noqa: E402

WORDS = [f"w{i}" for i in range(48)]
DEVICE = "cpu"  # set from --device in pytest_configure


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu",
                     help="device of the models the tests build: cpu (default), cuda, cuda:1, ...")


def pytest_configure(config):
    global DEVICE
    name = config.getoption("--device")
    try:
        kind = torch.device(name).type
    except RuntimeError as err:
        raise pytest.UsageError(f"--device {name}: not a torch device ({err})") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError(f"--device {name}: CUDA is not available on this machine")
    DEVICE = name
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def device() -> str:
    """The --device the model-building tests run on."""
    return DEVICE


def exact_atol(device: str | None = None) -> float:
    """What "equal" allows on ``device``: 0 on CPU; on a GPU, kernels picked by batch shape (a batch of replicas
    against the plain batch) and reduction order differ in the last float32 bits."""
    return 0.0 if torch.device(device or DEVICE).type == "cpu" else 1e-6


@pytest.fixture(scope="session")
def word_tokenizer():
    return build_word_tokenizer(WORDS)


def toy_examples(n: int = 8, seed: int = 0, min_len: int = 4, max_len: int = 8) -> list[Example]:
    """Random word sequences; the counterfactual swaps one word, so lengths match."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(min_len, max_len)
        seq = [rng.choice(WORDS) for _ in range(length)]
        corrupt = list(seq)
        corrupt[rng.randrange(length)] = rng.choice(WORDS)
        answer, counter = rng.sample(WORDS, 2)
        out.append(Example(" ".join(seq), " ".join(corrupt), " " + answer, " " + counter))
    return out


@pytest.fixture
def toy_task() -> Task:
    return Task("toy", toy_examples())


def make_model(family: str = "qwen2", tokenizer=None, seed: int = 0, device: str | None = None, **kwargs):
    """A random-init tiny model on ``device`` (default: the session's --device); weights depend on the seed only."""
    vocab = len(tokenizer) if tokenizer is not None else 128
    defaults = dict(n_layers=3, hidden=32, n_heads=4, n_kv_heads=2)
    defaults.update(kwargs)
    return tiny_model(family, vocab_size=vocab, seed=seed, **defaults).to(device or DEVICE)


@pytest.fixture
def qwen2(word_tokenizer, device):
    return make_model("qwen2", word_tokenizer, device=device)


def self_consistent_task(model, tokenizer, n: int = 8, seed: int = 0) -> Task:
    """A toy task whose answers are the model's own greedy predictions where they round-trip as one token."""
    from circuitdrift.circuits.forward import run_logits
    from circuitdrift.tasks.base import collate, encode

    examples = []
    for ex in toy_examples(n, seed):
        probe = Task("probe", [ex])
        batch = collate(encode(probe, tokenizer), tokenizer.pad_token_id).to(next(model.parameters()).device)
        with torch.no_grad():
            logits = run_logits(model, batch.clean, batch)
        ranked = logits[0, batch.last_prompt_pos[0]].argsort(descending=True).tolist()
        words = [tokenizer.decode([i]) for i in ranked]
        # keep tokens that survive a round trip on their own, so the answer is exactly that token
        words = [w for i, w in zip(ranked, words, strict=True)
                 if tokenizer(w, add_special_tokens=False).input_ids == [i]]
        examples.append(Example(ex.clean, ex.corrupt, words[0], words[1]))
    return Task("self", examples)


def write_tiny_experiment(root, seeds=(0, 1), steps: int = 2, extra: dict | None = None):
    """A complete experiment on a random-init Qwen2 folder and JSONL tasks: seconds, no download.

    Returns the config path. The target task is a word-level "next word" task that
    both SFT and RL can move; the probes are toy clean/counterfactual tasks.
    """
    import json
    from pathlib import Path

    import yaml

    root = Path(root)
    tokenizer = build_word_tokenizer(WORDS)
    model = make_model("qwen2", tokenizer, n_layers=2)
    for config in (model.config, model.generation_config):
        config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    rng = random.Random(1)
    target = []
    for _ in range(16):
        seq = [rng.choice(WORDS[:8]) for _ in range(3)]
        target.append({"clean": " ".join(seq), "corrupt": " ".join(reversed(seq)), "answer": " " + seq[0]})
    (root / "target.jsonl").write_text("\n".join(json.dumps(r) for r in target) + "\n")
    for name, seed in (("probe-a", 2), ("probe-b", 3)):
        rows = [{"clean": e.clean, "corrupt": e.corrupt, "answer": e.answer, "counter_answer": e.counter_answer}
                for e in self_consistent_task(model, tokenizer, n=6, seed=seed).examples]
        (root / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    config = {
        "name": "tiny",
        "base_model": str(root / "base"),
        "target_task": str(root / "target.jsonl"),
        "probes": [str(root / "probe-a.jsonl"), str(root / "probe-b.jsonl")],
        "methods": ["sft", "rl"],
        "seeds": list(seeds),
        "device": "cpu",
        "train": {"steps": steps, "prompts_per_step": 2, "learning_rate": 1e-2, "checkpoint_steps": [1],
                  "rl": {"num_generations": 2, "max_completion_length": 2}},
        "analysis": {"n_examples": 6, "top_k": 3, "n_random": 2, "batch_size": 8, "target_goal": 0.5},
        "eval": {"target_n": 8, "probe_n": 6, "max_new_tokens": 2, "kl_samples": 4, "kl_max_new_tokens": 3,
                 "batch_size": 8},
    }
    for section, values in (extra or {}).items():
        if isinstance(values, dict):
            config.setdefault(section, {}).update(values)
        else:
            config[section] = values
    path = root / "experiment.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
