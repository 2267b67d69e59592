"""Difference-of-means steering vectors, one per layer, and the rule that picks the layer to steer.

r_l = mean over positive prompts of h_l(last token) - mean over negative prompts,
h_l the residual stream after block l (Arditi et al. 2024's refusal direction
with harmful prompts positive, harmless negative). Each set is split in two:
the first part fits the means, the held-out rest scores each layer.

Layer rule: the layer whose direction best separates the *held-out* prompts,
measured as Cohen's d of their projections on r_hat_l (difference of the two
means over the pooled standard deviation); ties go to the earlier layer. A
``layer_range`` (first, last, inclusive) restricts the rule to those layers: the
last layers often separate best yet steer worst (their direction is about the
next token, not the request).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from safetensors.torch import load_file
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from circuitdrift.errors import InputError
from circuitdrift.io import write_bytes
from circuitdrift.steer.residual import last_token_residuals

LAYER_RULE = "max held-out Cohen's d of projections on r_hat_l"


@dataclass
class SteeringVectors:
    """Per-layer directions and how they were made; ``layer`` is the one the rule chose."""

    directions: Tensor  # [n_layers, hidden] float32, positive mean minus negative mean
    separation: list[float]  # [n_layers] held-out Cohen's d per layer
    layer: int
    meta: dict = field(default_factory=dict)  # model, prompt sources and counts, the rule

    @property
    def vector(self) -> Tensor:
        """The chosen layer's direction [hidden]."""
        return self.directions[self.layer]

    def save(self, path: str | Path) -> Path:
        """One safetensors file: the directions, with the rest as JSON in its metadata."""
        from safetensors.torch import save

        info = {"separation": self.separation, "layer": self.layer, "meta": self.meta}
        data = save({"directions": self.directions.contiguous()}, metadata={"steering": json.dumps(info)})
        return write_bytes(path, data)

    @classmethod
    def load(cls, path: str | Path) -> SteeringVectors:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"steering vector '{path}': no such file")
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                info = json.loads((handle.metadata() or {})["steering"])
            directions = load_file(str(path))["directions"]
        except (KeyError, ValueError, OSError, SafetensorError) as err:
            raise InputError(f"steering vector '{path}': not a file `steer vector` wrote ({err})") from err
        return cls(directions, [float(s) for s in info["separation"]], int(info["layer"]), info.get("meta", {}))

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("directions")
        d["norms"] = [round(float(n), 6) for n in self.directions.norm(dim=-1)]
        return d


def cohens_d(pos: Tensor, neg: Tensor) -> float:
    """(mean(pos) - mean(neg)) / pooled standard deviation, for 1-D samples (0 when both are constant)."""
    n1, n2 = len(pos), len(neg)
    pooled = ((n1 - 1) * pos.var(unbiased=True) + (n2 - 1) * neg.var(unbiased=True)) / max(n1 + n2 - 2, 1)
    diff = float(pos.mean() - neg.mean())
    sd = float(pooled.sqrt())
    return 0.0 if sd == 0.0 else diff / sd


def layer_separation(directions: Tensor, pos: Tensor, neg: Tensor) -> list[float]:
    """Held-out Cohen's d per layer: ``directions`` [L, hidden], ``pos``/``neg`` [L, n, hidden]."""
    unit = directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return [cohens_d(pos[i] @ unit[i], neg[i] @ unit[i]) for i in range(directions.shape[0])]


def choose_layer(separation: Sequence[float], allowed: Sequence[int] | None = None) -> int:
    """The stated rule: the largest held-out separation (the earliest layer on a tie)."""
    candidates = list(range(len(separation))) if allowed is None else list(allowed)
    return max(candidates, key=lambda i: (separation[i], -i))


def split_fit(prompts: Sequence[str], held_out: float) -> tuple[list[str], list[str]]:
    """The first part fits the mean, the rest (a ``held_out`` fraction, at least 2) scores the layers."""
    k = max(2, round(len(prompts) * held_out))
    if len(prompts) - k < 1:
        raise InputError(f"steering vector: {len(prompts)} prompts are too few to hold out {k} (need >= {k + 1})")
    return list(prompts[:-k]), list(prompts[-k:])


def difference_of_means(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    positive: Sequence[str],
    negative: Sequence[str],
    *,
    held_out: float = 0.25,
    layer: int | None = None,
    meta: dict | None = None,
    batch_size: int = 32,
    layer_range: tuple[int, int] | None = None,
) -> SteeringVectors:
    """Directions from the fit parts, separation from the held-out parts; ``layer`` overrides the rule,
    ``layer_range`` (first, last) restricts it."""
    pos_fit, pos_test = split_fit(positive, held_out)
    neg_fit, neg_test = split_fit(negative, held_out)
    res = {name: last_token_residuals(model, tokenizer, p, batch_size)
           for name, p in (("pf", pos_fit), ("nf", neg_fit), ("pt", pos_test), ("nt", neg_test))}
    directions = res["pf"].mean(dim=1) - res["nf"].mean(dim=1)  # [L, hidden]
    separation = layer_separation(directions, res["pt"], res["nt"])
    n_layers = directions.shape[0]
    if layer is not None and not 0 <= layer < n_layers:
        raise InputError(f"steering layer {layer}: the model has layers 0..{n_layers - 1}")
    allowed = None
    if layer_range is not None:
        first, last = layer_range
        if not 0 <= first <= last < n_layers:
            raise InputError(f"steering layer range {first}-{last}: the model has layers 0..{n_layers - 1}")
        allowed = range(first, last + 1)
    chosen = choose_layer(separation, allowed) if layer is None else layer
    rule = LAYER_RULE + (f", layers {layer_range[0]}-{layer_range[1]}" if layer_range else "")
    info = {"rule": rule if layer is None else "given", "n_fit": [len(pos_fit), len(neg_fit)],
            "n_held_out": [len(pos_test), len(neg_test)], **(meta or {})}
    return SteeringVectors(directions, [round(s, 6) for s in separation], chosen, info)

