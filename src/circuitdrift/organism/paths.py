"""Where the shipped organism lives inside the package."""

from __future__ import annotations

from pathlib import Path


def organism_dir() -> Path:
    """Folder with the shipped organism (config, safetensors, tokenizer, card)."""
    return Path(__file__).resolve().parent / "weights"
