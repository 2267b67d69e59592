"""The last layer's MLP only where its output is read.

A decoder's last MLP feeds nothing but its own position's final hidden state: no later layer attends to it.
So at positions whose final hidden state nobody reads, the MLP (70% of a Llama-style layer's weights) is
wasted work: a prompt pass that only fills a key/value cache reads none of them, a GRPO prompt pass reads each
prompt's last token (it scores the first completion token), and an SFT step reads the positions before its
labels. :func:`reading_only` runs the last layer's MLP at the read positions alone; elsewhere it adds
nothing, so the hidden states there are not the model's and must not be read. Keys, values and every read
position are computed exactly as before (tests/unit/test_unread.py).
"""

from __future__ import annotations

import contextlib

import torch

from circuitdrift.models.methods import replaced_method

_MIXTURE_FIELDS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")


def last_layer_mlp(backbone: torch.nn.Module) -> torch.nn.Module | None:
    """The last decoder layer's position-wise MLP (``layers[-1].mlp``, ``h[-1].mlp``), or None where the
    backbone has no single list of its layers or the model routes tokens to experts."""
    text = backbone.config.get_text_config()
    if any(getattr(text, field, None) for field in _MIXTURE_FIELDS):
        return None
    n_layers = getattr(text, "num_hidden_layers", None)
    lists = [m for m in backbone.children() if isinstance(m, torch.nn.ModuleList) and len(m) == n_layers]
    if len(lists) != 1 or not n_layers:
        return None
    mlp = getattr(lists[0][-1], "mlp", None)
    return mlp if isinstance(mlp, torch.nn.Module) else None


@contextlib.contextmanager
def reading_only(backbone: torch.nn.Module, read: torch.Tensor | None):
    """Within: a backbone call over ``read``'s shape (``[rows, columns]``, True where the caller reads the final
    hidden state) runs the last layer's MLP at the read positions only. ``read`` None (everything read), a
    backbone without a plain last MLP, or a call of another shape: the model's own forward. Restored in
    ``finally``."""
    mlp = None if read is None or bool(read.all()) else last_layer_mlp(backbone)
    if mlp is None:
        yield
        return
    original = mlp.forward

    def forward(hidden_states, *args, **kwargs):
        if args or kwargs or hidden_states.shape[:-1] != read.shape:
            return original(hidden_states, *args, **kwargs)
        computed = original(hidden_states[read])  # no rows where nothing is read; its dtype is autocast's
        out = computed.new_zeros((*read.shape, computed.size(-1)))
        # masked_scatter fills read positions in row-major order, the order hidden_states[read] lists them
        return out.masked_scatter(read.unsqueeze(-1), computed)

    with replaced_method(mlp, "forward", forward):
        yield
