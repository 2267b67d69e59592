"""Disk per transfer student for the 7B configs, from parameter counts x bytes (no weights downloaded).

Builds each model's architecture on the meta device from its published config values, counts the
parameters, and counts the LoRA parameters PEFT adds for the configs' adapter (r 8, all linear layers).
Prints JSON: parameters, the size of one full copy in bf16 and float32, of one adapter (float32, as
PEFT keeps it beside a bf16 base) and of its Adam state, and the totals for 21 students.

    python benchmarks/transfer_disk.py
"""

from __future__ import annotations

import json

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

# the published config.json values of each model (hidden sizes, layers, heads, vocabulary)
MODELS = {
    "Qwen/Qwen2.5-7B-Instruct": Qwen2Config(
        hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
        num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
    "meta-llama/Llama-2-7b-chat-hf": LlamaConfig(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=32, vocab_size=32000, tie_word_embeddings=False),
}
STUDENTS = 21  # 7 alphas (the control included) x 3 seeds
GB = 1e9


def figures(name: str, config) -> dict:
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    params = sum(p.numel() for p in model.parameters())
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    lora = sum(p.numel() for n, p in peft.named_parameters() if "lora_" in n)
    adapter, adam = lora * 4, lora * 4 * 2
    return {"model": name, "parameters": params, "lora_parameters": lora,
            "full_copy_bf16_GB": round(params * 2 / GB, 2), "full_copy_float32_GB": round(params * 4 / GB, 2),
            "adapter_MB": round(adapter / 1e6, 1), "adapter_with_adam_state_MB": round((adapter + adam) / 1e6, 1),
            "before_per_student_GB": round(params * 4 / GB + params * 2 / GB, 2),
            "before_21_students_GB": round(STUDENTS * params * 4 / GB, 1),
            "after_21_students_GB": round(STUDENTS * adapter / GB, 2)}


if __name__ == "__main__":
    print(json.dumps([figures(name, config) for name, config in MODELS.items()], indent=1))
