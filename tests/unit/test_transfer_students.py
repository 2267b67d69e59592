"""Transfer students as LoRA adapters: no copy of the base, and the unmerged student equals the merged one."""

from __future__ import annotations

import pytest
import torch

from circuitdrift.errors import InputError
from circuitdrift.models.wordlevel import build_word_tokenizer
from circuitdrift.tasks.base import Example, Task
from circuitdrift.train.run import train
from circuitdrift.transfer.config import parse_transfer_config
from circuitdrift.transfer.stages import final_checkpoint, load_student
from tests.conftest import WORDS, make_model


def test_adapter_only_training_and_the_unmerged_student(tmp_path):
    tokenizer = build_word_tokenizer(WORDS)
    model = make_model("qwen2", tokenizer, device="cpu")
    model.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    task = Task("toy", [Example(f"w{i} w{i + 1}", f"w{i} w{i + 2}", f" w{i + 3}") for i in range(8)], "toy")
    student = {"steps": 2, "prompts_per_step": 4, "learning_rate": 1e-2, "lora": {"r": 4, "alpha": 8}}
    config = parse_transfer_config({"base_model": str(tmp_path / "base"), "student": student})
    with pytest.raises(InputError, match="adapter_only needs a LoRA config"):
        train("sft", model, task, config.student.model_copy(update={"lora": None}), tmp_path / "full",
              tokenizer=tokenizer, adapter_only=True)
    out = tmp_path / "student"
    kept = train("sft", model, task, config.student_config(0), out, tokenizer=tokenizer, adapter_only=True)
    assert kept == [out / "adapter" / "checkpoint-2"] and final_checkpoint(config, out) == kept[0]
    assert not list(out.glob("checkpoint-*"))  # no step-0 copy of the base, no merged export

    loaded, _ = load_student(config, out)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tmp_path / "base", dtype="float32")
    merged = PeftModel.from_pretrained(base, str(kept[0])).merge_and_unload()  # the exact float32 merge
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "base", dtype="float32")
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        got, want, before = (m(input_ids=ids).logits for m in (loaded, merged, plain))
    assert torch.allclose(got, want, atol=1e-5) and not torch.allclose(got, before, atol=1e-3)
