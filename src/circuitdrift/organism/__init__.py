"""The built-in model organism: a small Qwen2 model pretrained here on a synthetic world."""
