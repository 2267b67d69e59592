"""Where each attention head's output lives, and hooks that read, patch and ablate it.

A head's *output* is its slice of the input to the attention output projection
(``o_proj`` in Llama/Qwen/Mistral, ``c_proj`` in GPT-2, ``dense`` in GPT-NeoX),
viewed as ``[batch, seq, n_heads, head_dim]``. Hooking that input works with any
attention kernel (eager, sdpa, flash) and with grouped-query attention, because
it sits after the kernel: nothing here depends on how the scores were computed.
Hooks live in context managers and are removed in ``finally``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from circuitdrift.errors import InputError

# model_type -> (path of the layer list, path of the output projection inside a layer)
FAMILIES: dict[str, tuple[str, str]] = {
    "qwen2": ("model.layers", "self_attn.o_proj"),
    "qwen3": ("model.layers", "self_attn.o_proj"),
    "llama": ("model.layers", "self_attn.o_proj"),
    "mistral": ("model.layers", "self_attn.o_proj"),
    "gpt2": ("transformer.h", "attn.c_proj"),
    "gpt_neox": ("gpt_neox.layers", "attention.dense"),
}

# fn(layer, z) -> replacement for z, or None to leave it; z is [batch, seq, n_heads, head_dim]
HeadFn = Callable[[int, Tensor], "Tensor | None"]


def unwrap(model: nn.Module) -> nn.Module:
    """The transformers model under PEFT or other wrappers."""
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return getattr(model, "module", model)  # DDP / Accelerate wrappers


@dataclass(frozen=True)
class HeadLayout:
    """Per-architecture facts about attention heads: counts, sizes and the output projections."""

    family: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    out_projs: tuple[nn.Module, ...]
    layers: nn.ModuleList  # the decoder blocks, in order

    @classmethod
    def of(cls, model: nn.Module) -> HeadLayout:
        inner = unwrap(model)
        config = inner.config
        family = getattr(config, "model_type", type(inner).__name__)
        if family not in FAMILIES:
            raise InputError(
                f"architecture '{family}' is not supported (supported families: {', '.join(sorted(FAMILIES))})"
            )
        layers_path, proj_path = FAMILIES[family]
        layers = inner.get_submodule(layers_path)
        n_heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_heads
        n_kv = getattr(config, "num_key_value_heads", None) or n_heads
        projs = tuple(layer.get_submodule(proj_path) for layer in layers)
        in_features = _in_features(projs[0])
        if in_features != n_heads * head_dim:
            raise InputError(
                f"architecture '{family}': output projection takes {in_features} features, "
                f"expected n_heads * head_dim = {n_heads} * {head_dim}"
            )
        return cls(family, len(projs), n_heads, n_kv, head_dim, projs, layers)

    @property
    def n_total(self) -> int:
        return self.n_layers * self.n_heads

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_layers, self.n_heads)

    def kv_group(self, head: int) -> int:
        """The key/value head a query head reads under grouped-query attention."""
        return head // (self.n_heads // self.n_kv_heads)

    def signature(self) -> dict[str, int | str]:
        """What two models must share for head-by-head comparison."""
        return {"n_layers": self.n_layers, "n_heads": self.n_heads, "head_dim": self.head_dim}

    def head_writes(self, layer: int, z: Tensor) -> Tensor:
        """Each head's write into the residual stream, without the bias: [b, s, H, d] -> [b, s, H, hidden]."""
        weight = _weight_in_out(self.out_projs[layer])  # [H*d, hidden]
        w = weight.reshape(self.n_heads, self.head_dim, -1)  # [H, d, hidden]
        return torch.einsum("bshd,hdo->bsho", z.to(w.dtype), w)

    def out_bias(self, layer: int) -> Tensor | None:
        return getattr(self.out_projs[layer], "bias", None)


def _in_features(proj: nn.Module) -> int:
    return _weight_in_out(proj).shape[0]


def _weight_in_out(proj: nn.Module) -> Tensor:
    """Weight as [in, out] for nn.Linear (stored [out, in]) and GPT-2's Conv1D (stored [in, out])."""
    base = getattr(proj, "base_layer", proj)  # PEFT LoRA wraps the original layer
    if isinstance(base, nn.Linear):
        return base.weight.T
    if type(base).__name__ == "Conv1D":
        return base.weight
    raise InputError(f"output projection of type {type(base).__name__} is not supported")


@contextmanager
def head_hooks(model: nn.Module, fn: HeadFn, layers: Iterable[int] | None = None) -> Iterator[HeadLayout]:
    """Call ``fn(layer, z)`` on every head output of the chosen layers during forward passes.

    ``z`` is ``[batch, seq, n_heads, head_dim]``. If ``fn`` returns a tensor it
    replaces the heads' output before the output projection. ``fn`` sees ``z``
    on the model's first device, where batches, masks and patch sources live,
    and what it returns goes back to the layer's device: with the layers spread
    over devices (``device_map``), every patch works unchanged; on one device
    the moves are no-ops.
    """
    layout = HeadLayout.of(model)
    home = next(model.parameters()).device
    chosen = range(layout.n_layers) if layers is None else layers
    handles = []
    try:
        for layer in chosen:

            def pre_hook(module, args, kwargs, layer=layer):
                x = args[0]  # [b, s, H*d]
                z = x.view(*x.shape[:-1], layout.n_heads, layout.head_dim).to(home)  # differentiable move
                new = fn(layer, z)
                if new is None:
                    return None
                return (new.reshape(x.shape).to(device=x.device, dtype=x.dtype), *args[1:]), kwargs

            handles.append(layout.out_projs[layer].register_forward_pre_hook(pre_hook, with_kwargs=True))
        yield layout
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def record_heads(model: nn.Module, detach: bool = True) -> Iterator[dict[int, Tensor]]:
    """Record every head output of the next forward pass: ``{layer: [b, s, H, d]}``."""
    store: dict[int, Tensor] = {}

    def save(layer: int, z: Tensor) -> None:
        store[layer] = z.detach().clone() if detach else z
        return None

    with head_hooks(model, save):
        yield store
