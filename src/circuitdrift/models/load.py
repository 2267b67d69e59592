"""Load a causal LM and its tokenizer from a hub id, a local folder, or a built-in name.

Built-in names are those plug-ins registered (:mod:`circuitdrift.models.registry`).

Loading never unpickles: weights are read from safetensors only, unless the
caller passes ``allow_pickle=True``. ``trust_remote_code`` is off unless asked.
Every model that will be compared must use the same attention kernel and dtype;
callers pass the same arguments to each ``load_model`` call.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from circuitdrift.errors import InputError
from circuitdrift.models.heads import HeadLayout
from circuitdrift.models.registry import builtin_model_dir, builtin_models

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


DEVICE_MAP = "auto-map"  # --device auto-map: device_map="auto", layers spread over the GPUs (then CPU)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; asking for CUDA without one is an input error."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {name}: no CUDA GPU is available on this machine (use --device cpu)")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise InputError(f"--device {name}: not a device name (use auto, cpu, cuda or {DEVICE_MAP})") from err


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise InputError(f"--dtype {dtype}: unknown (use one of {', '.join(DTYPES)})")
    return DTYPES[dtype]


def resolve_model_path(name_or_path: str | os.PathLike, allow_pickle: bool = False) -> str:
    """Return what ``from_pretrained`` should receive, checking local folders first."""
    name = str(name_or_path)
    if name in builtin_models():
        return str(builtin_model_dir(name))
    path = Path(name).expanduser()
    looks_local = path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1
    if not looks_local:
        return name  # a hub id
    if not path.is_dir():
        raise InputError(f"model '{name}': no such folder")
    if not (path / "config.json").is_file():
        raise InputError(f"model '{name}': not a model folder (no config.json; save one with save_pretrained)")
    has_safetensors = any(path.glob("*.safetensors"))
    has_pickle = any(path.glob("*.bin")) or any(path.glob("*.pt"))
    if not has_safetensors and has_pickle and not allow_pickle:
        raise InputError(
            f"model '{name}': weights are pickled (.bin) and loading them can execute code; "
            "convert to safetensors or pass --allow-pickle if you trust the source"
        )
    if not has_safetensors and not has_pickle:
        raise InputError(f"model '{name}': no weights in the folder (expected *.safetensors)")
    return str(path)


def load_tokenizer(name_or_path: str | os.PathLike, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    source = resolve_model_path(name_or_path, allow_pickle=True)
    try:
        if _saved_as_plain_fast_tokenizer(source):
            tokenizer = PreTrainedTokenizerFast.from_pretrained(source)
        else:
            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise InputError(f"model '{name_or_path}': could not load its tokenizer ({_first_line(err)})") from err
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    name_or_path: str | os.PathLike,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device = "auto",
    attn_implementation: str = "sdpa",
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model (eval mode, on ``device``) and tokenizer from a hub id, a local folder, or a built-in name.

    ``device="auto-map"`` loads with ``device_map="auto"`` (Accelerate spreads the decoder layers over the
    visible GPUs, then CPU memory), for a model that does not fit one GPU; head hooks work across the devices
    (:func:`~circuitdrift.models.heads.head_hooks`).
    """
    source = resolve_model_path(name_or_path, allow_pickle=allow_pickle)
    mapped = str(device) == DEVICE_MAP
    torch_device = None if mapped else resolve_device(device)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source,
            dtype=resolve_dtype(dtype),
            attn_implementation=attn_implementation,
            trust_remote_code=trust_remote_code,
            use_safetensors=None if allow_pickle else True,
            **({"device_map": "auto"} if mapped else {}),
        )
    except (OSError, ValueError, KeyError) as err:
        hint = " (no network here? pass a local folder)" if source == str(name_or_path) else ""
        raise InputError(f"model '{name_or_path}': could not load ({_first_line(err)}){hint}") from err
    HeadLayout.of(model)  # fail early on an unsupported architecture
    if torch_device is not None:
        model.to(torch_device)
    model.eval()
    return model, load_tokenizer(name_or_path, trust_remote_code=trust_remote_code)


def _saved_as_plain_fast_tokenizer(source: str) -> bool:
    """A local tokenizer saved from a bare ``tokenizers`` object (like the organism's).

    AutoTokenizer would pick the model family's tokenizer class from config.json
    and replace its pre-tokenizer; such a folder must load as a plain fast tokenizer.
    """
    config = Path(source) / "tokenizer_config.json"
    if not config.is_file():
        return False
    try:
        cls = json.loads(config.read_text(encoding="utf-8")).get("tokenizer_class")
    except json.JSONDecodeError:
        return False
    return cls in ("TokenizersBackend", "PreTrainedTokenizerFast")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
