"""Build the model organism from scratch: world -> tokenizer -> corpus -> pretraining -> post-training -> card.

Launch: ``circuitdrift organism build --out DIR [--seed S]`` (about 15 minutes on
2 CPU cores for the full recipe). Pretraining is a plain causal-LM objective on
every token, run by the transformers ``Trainer`` (AdamW, cosine schedule); no
hand-written loop. The same seed gives the same corpus, the same batches and
the same initial weights; deterministic algorithms are on, so a rebuild on the
same machine and thread count reproduces the weights. Post-training
(:class:`~circuitdrift.organism.recipe.PostTraining`) is circuitdrift's own SFT
run (TRL ``SFTTrainer``) on the multiple-choice questions about the pretraining
half of the substances: instruction tuning before the target task.

The card (``card.json``) is measured by :mod:`circuitdrift.organism.card`
after training, on held-out test examples, never typed in.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from datasets import Dataset
from transformers import Qwen2Config, Qwen2ForCausalLM, Trainer, TrainingArguments

from circuitdrift.errors import InputError
from circuitdrift.models.heads import HeadLayout
from circuitdrift.organism.card import file_digest, make_card, measure_capabilities
from circuitdrift.organism.corpus import build_corpus
from circuitdrift.organism.recipe import FULL, PostTraining, Recipe
from circuitdrift.organism.tokenizer import organism_tokenizer
from circuitdrift.organism.world import WORLD_SEED, make_world
from circuitdrift.tasks.base import Task
from circuitdrift.tasks.registry import resolve_task

CARD_FILE = "card.json"


def model_config(recipe: Recipe, tokenizer) -> Qwen2Config:
    arch = recipe.architecture
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=arch.hidden,
        intermediate_size=arch.intermediate,
        num_hidden_layers=arch.n_layers,
        num_attention_heads=arch.n_heads,
        num_key_value_heads=arch.n_kv_heads,
        max_position_embeddings=arch.max_positions,
        rope_theta=arch.rope_theta,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    return config


def tokenized_corpus(recipe: Recipe, seed: int, tokenizer) -> Dataset:
    """Each document's ids followed by ``<|endoftext|>``; chat documents end with their own ``<|im_end|>``."""
    docs = build_corpus(make_world(WORLD_SEED), recipe.mixture, seed, tokenizer, recipe.batch_size)
    ids = tokenizer(docs, add_special_tokens=False).input_ids
    end = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    ids = [x + [end] for x in ids]
    return Dataset.from_dict({"input_ids": ids, "length": [len(x) for x in ids]})


class PadCollator:
    """Right-pads a batch; padded positions get label -100 (documents still learn their end token)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            ids[i, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
            mask[i, : len(f["input_ids"])] = 1
        labels = ids.masked_fill(mask == 0, -100)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@contextmanager
def head_dropout(model: Qwen2ForCausalLM, p: float, seed: int) -> Iterator[None]:
    """While training, replace each head's output by its batch mean with probability ``p`` (per example).

    DropHead (Zhou et al. 2020) with mean replacement instead of zeros: no head can be relied on
    to be present, so a task's computation does not lean on every head, and the replacement is
    the same intervention as the mean ablation that measures circuit faithfulness.
    """
    if p <= 0:
        yield
        return
    layout = HeadLayout.of(model)
    generator = torch.Generator().manual_seed(seed)

    def drop(module: torch.nn.Module, args: tuple) -> tuple | None:
        if not module.training:
            return None
        z = args[0].view(*args[0].shape[:-1], layout.n_heads, layout.head_dim)  # [B, T, H, d]
        mean = z.detach().mean(dim=(0, 1), keepdim=True)  # [1, 1, H, d]
        keep = torch.rand((z.shape[0], 1, layout.n_heads, 1), generator=generator) >= p
        return (torch.where(keep, z, mean).flatten(-2),)

    handles = [proj.register_forward_pre_hook(drop) for proj in layout.out_projs]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch CPU threads, restoring the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def pretrain(recipe: Recipe, seed: int, tokenizer, workdir: Path, progress: bool = True) -> Qwen2ForCausalLM:
    """A freshly initialised organism, pretrained on the seeded corpus by ``Trainer``."""
    with cpu_threads(recipe.threads):
        return _pretrain(recipe, seed, tokenizer, workdir, progress)


def _pretrain(recipe: Recipe, seed: int, tokenizer, workdir: Path, progress: bool) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    dataset = tokenized_corpus(recipe, seed, tokenizer)
    model = Qwen2ForCausalLM(model_config(recipe, tokenizer))
    args = TrainingArguments(
        output_dir=str(workdir),
        num_train_epochs=recipe.epochs,
        per_device_train_batch_size=recipe.batch_size,
        learning_rate=recipe.learning_rate,
        warmup_steps=recipe.warmup_steps,
        weight_decay=recipe.weight_decay,
        lr_scheduler_type=recipe.scheduler,
        train_sampling_strategy=recipe.sampling,
        max_grad_norm=recipe.max_grad_norm,
        length_column_name="length",
        seed=seed,
        data_seed=seed,
        save_strategy="no",
        logging_steps=50,
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=not progress,
        remove_unused_columns=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=PadCollator(tokenizer.pad_token_id))
    with head_dropout(model, recipe.head_dropout, seed):
        trainer.train()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = model.config.eos_token_id
    return model.eval()


def load_pretrained(folder: str | os.PathLike, recipe: Recipe, tokenizer) -> Qwen2ForCausalLM:
    """The pretrained model in ``folder``, refused unless its architecture is the recipe's."""
    folder = Path(folder)
    if not (folder / "model.safetensors").is_file():
        raise InputError(f"--pretrained {folder}: no model.safetensors in it")
    model = Qwen2ForCausalLM.from_pretrained(folder, use_safetensors=True)
    want = model_config(recipe, tokenizer).to_dict()
    have = model.config.to_dict()
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "max_position_embeddings"):
        if have.get(key) != want[key]:
            raise InputError(f"--pretrained {folder}: {key} is {have.get(key)}, the recipe's is {want[key]}")
    return model.eval()


def post_train(model: Qwen2ForCausalLM, tokenizer, stage: PostTraining, seed: int, workdir: Path) -> Qwen2ForCausalLM:
    """``model`` after the post-training stage, trained in place; its checkpoints go to ``workdir``."""
    from circuitdrift.train.run import train  # TRL is heavy: imported only when a build post-trains

    train("sft", model, post_training_task(stage, tokenizer), stage.train_config(seed), workdir, tokenizer=tokenizer)
    return model.eval()


def post_training_task(stage: PostTraining, tokenizer) -> Task:
    """The examples of every task of ``stage`` on its split, in one list (SFT needs prompts and gold answers)."""
    parts = [resolve_task(name, split=stage.split, tokenizer=tokenizer) for name in stage.tasks]
    chat = None if any(t.chat_prompts is None for t in parts) else [p for t in parts for p in t.chat_prompts]
    return Task("post-training", [ex for t in parts for ex in t.examples], templated=parts[0].templated,
                description=f"{' + '.join(stage.tasks)} on the {stage.split} split", chat_prompts=chat)


def build_organism(
    out: str | os.PathLike,
    seed: int = 0,
    recipe: Recipe = FULL,
    progress: bool = True,
    measure: Callable | None = None,
    pretrained: str | os.PathLike | None = None,
) -> dict:
    """Pretrain and post-train the organism, save it (safetensors, tokenizer, config) and its measured card.

    ``measure(model, tokenizer, recipe) -> dict`` fills the card's capability table;
    by default :func:`circuitdrift.organism.card.measure_capabilities`. ``pretrained``: a folder
    holding this recipe's pretrained model (an earlier build); pretraining is skipped, only
    post-training runs, and the card records the folder's weights digest under ``pretrained_from``.
    """
    out = Path(out)
    tokenizer = organism_tokenizer(WORLD_SEED)
    loaded = None if pretrained is None else load_pretrained(pretrained, recipe, tokenizer)  # refused before writing
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="organism-", dir=out.parent) as tmp:
        model = loaded if loaded is not None else pretrain(recipe, seed, tokenizer, Path(tmp) / "trainer", progress)
        if recipe.post_training is not None:
            with cpu_threads(recipe.threads):
                model = post_train(model, tokenizer, recipe.post_training, seed, Path(tmp) / "post-training")
        train_seconds = time.time() - started
        with cpu_threads(recipe.threads):
            capabilities = (measure or measure_capabilities)(model, tokenizer, recipe)
        staging = Path(tmp) / "model"
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        card = make_card(model, recipe, seed, capabilities=capabilities, train_seconds=train_seconds,
                         total_seconds=time.time() - started, folder=staging)
        if pretrained is not None:
            card["build"]["pretrained_from"] = file_digest(Path(pretrained) / "model.safetensors")
        text = json.dumps(card, indent=2) + "\n"
        (staging / CARD_FILE).write_text(text)
        for path in staging.iterdir():
            shutil.move(str(path), out / path.name)  # within one file system: a rename
    return json.loads(text)  # as written: tuples become lists
