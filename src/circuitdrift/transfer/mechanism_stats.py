"""The mechanism's numbers read against the control (docs/methods.md §11, "Mechanism").

Every student measure is compared with the control students (alpha = 0), seed k
with seed k (they share their training seed):

- paired cosine: cos(shift_alpha,k - shift_0,k, r) per seed and layer, with a null from
  random directions (the same differences against Gaussian directions instead of r);
- effective alpha: the paired shift's component along r_hat at the chosen layer in units
  of the teacher's push per unit alpha there (relative scale: the base's mean residual norm;
  absolute: ||r||), comparable with the teacher's alpha;
- prompt-level paired measures (the ablation's difference-in-differences, the prefix
  log-likelihoods): mean over seeds per prompt, then a percentile bootstrap over prompts.
"""

from __future__ import annotations

import numpy as np

from circuitdrift.transfer.ratio import LEVEL


def paired_cosine(steered: np.ndarray, control: np.ndarray, r: np.ndarray) -> float:
    """cos(steered - control, r); 0 when the two are equal (no shift beyond the control, nothing along r)."""
    d = np.asarray(steered, dtype=float) - np.asarray(control, dtype=float)
    r = np.asarray(r, dtype=float)
    dn = np.linalg.norm(d)
    if dn == 0.0:
        return 0.0
    return float(d @ r / (dn * np.linalg.norm(r)))


def cosine_null(diffs: np.ndarray, observed: float, n_directions: int = 1000, seed: int = 0,
                level: float = LEVEL) -> dict:
    """The mean over seeds of cos(d_k, u) for Gaussian directions u: its band and the two-sided p of ``observed``.

    ``diffs`` [k, hidden] are the paired shifts; a zero difference counts as cosine 0.
    """
    diffs = np.asarray(diffs, dtype=float)
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((n_directions, diffs.shape[1]))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    norms = np.linalg.norm(diffs, axis=1)
    unit = np.divide(diffs, norms[:, None], out=np.zeros_like(diffs), where=norms[:, None] > 0)
    null = (u @ unit.T).mean(axis=1)  # [n_directions]
    tail = (1 - level) / 2
    lo, hi = np.quantile(null, [tail, 1 - tail])
    p = (1 + int(np.sum(np.abs(null) >= abs(observed)))) / (1 + n_directions)
    return {"lo": float(lo), "hi": float(hi), "p": float(p), "n_directions": n_directions}


def effective_alpha(diff: np.ndarray, r: np.ndarray, unit_push: float) -> float:
    """(diff . r_hat) / unit_push: the student's paired shift along r in units of the teacher's alpha."""
    r = np.asarray(r, dtype=float)
    return float(np.asarray(diff, dtype=float) @ (r / np.linalg.norm(r)) / unit_push)


def prompt_bootstrap(values: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = LEVEL) -> dict:
    """Mean of ``values`` [k, n] (seeds x prompts) with a percentile bootstrap over prompts (seeds kept)."""
    x = np.asarray(values, dtype=float)
    per_prompt = x.reshape(-1, x.shape[-1]).mean(axis=0)  # [n]
    n = per_prompt.size
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    boot = per_prompt[draws].mean(axis=1)
    tail = (1 - level) / 2
    lo, hi = np.quantile(boot, [tail, 1 - tail], method="inverted_cdf")
    return {"mean": float(per_prompt.mean()), "lo": float(lo), "hi": float(hi), "n_prompts": n, "n_boot": n_boot}


def ablation_did(steered: np.ndarray, steered_ablated: np.ndarray, control: np.ndarray,
                 control_ablated: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict:
    """(B_steered - B_steered,ablated) - (B_control - B_control,ablated), paired by seed and prompt: [k, n] each."""
    x = ((np.asarray(steered, float) - np.asarray(steered_ablated, float))
         - (np.asarray(control, float) - np.asarray(control_ablated, float)))
    return prompt_bootstrap(x, n_boot, seed)
