"""``circuitdrift steer vector`` (difference-of-means vectors) and ``steer generate`` (steered completions).

Mounted by :mod:`circuitdrift.cli` through :func:`register`.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from circuitdrift.circuits.cli_options import (
    AttnOpt,
    DeviceOpt,
    Dtype,
    DtypeOpt,
    ModelArg,
    check_output_path,
    load,
)
from circuitdrift.errors import InputError
from circuitdrift.judge.base import attack_success
from circuitdrift.judge.phrases import PhraseJudge
from circuitdrift.models.generate import Sampling, chat_completions, chat_text
from circuitdrift.steer.coherence import coherence
from circuitdrift.steer.steering import layers_from, steering
from circuitdrift.steer.vectors import SteeringVectors, difference_of_means
from circuitdrift.tasks.prompt_sets import resolve_prompts_up_to


class Scale(str, Enum):
    relative = "relative"
    absolute = "absolute"


class Span(str, Enum):
    at = "at"
    from_ = "from"


def register(app: typer.Typer) -> None:
    """Add the ``steer`` sub-app to ``app``."""
    steer = typer.Typer(help="Activation steering: difference-of-means vectors and steered generation.",
                        no_args_is_help=True)
    steer.command("vector")(vector)
    steer.command("generate")(generate)
    steer.command("curve")(curve)
    app.add_typer(steer, name="steer")


PromptsHelp = "a registered prompt set (organism-forbidden, ...), a .txt/.jsonl/.csv file, or hf:<dataset>"


def vector(
    model: ModelArg,
    *,
    out: Annotated[Path, typer.Option("--out", help="The .safetensors file to write.")],
    positive: Annotated[str, typer.Option("--positive", help=f"Prompts the direction points to: {PromptsHelp}.")],
    negative: Annotated[str, typer.Option("--negative", help=f"Prompts it points away from: {PromptsHelp}.")],
    n: Annotated[int | None, typer.Option("--n", min=4, help="Prompts per set (default: up to 100, all a smaller "
                                          "set has).")] = None,
    split: Annotated[str, typer.Option("--split", help="Split of a registered prompt set or hub dataset.")] = "train",
    column: Annotated[str, typer.Option("--column", help="Prompt column of a file or dataset.")] = "prompt",
    held_out: Annotated[float, typer.Option("--held-out", min=0.05, max=0.9,
                                            help="Share of each set held out to choose the layer.")] = 0.25,
    layer: Annotated[int | None, typer.Option("--layer", help="Use this layer instead of the rule.")] = None,
    layer_range: Annotated[str | None, typer.Option("--layer-range", help="FIRST-LAST: the rule chooses among "
                                                    "these layers only (inclusive).")] = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = Dtype.float32,
    attn: AttnOpt = "sdpa",
) -> None:
    """Difference of mean last-token residuals per layer; the layer chosen by held-out separation."""
    bounds = parse_layer_range(layer_range)
    if out.suffix != ".safetensors":
        raise InputError(f"--out {out}: expected a .safetensors file name")
    check_output_path(out)
    pos = _prompts(positive, n, 100, split, column)
    neg = _prompts(negative, n, 100, split, column)
    loaded, tokenizer = load(model, device, dtype, attn)
    vectors = difference_of_means(
        loaded, tokenizer, [chat_text(tokenizer, p) for p in pos], [chat_text(tokenizer, p) for p in neg],
        held_out=held_out, layer=layer, meta={"model": model, "positive": positive, "negative": negative,
                                               "split": split}, layer_range=bounds,
    )  # fmt: skip
    vectors.save(out)
    typer.echo(json.dumps({"out": str(out), **vectors.summary()}, indent=2))


def parse_layer_range(text: str | None) -> tuple[int, int] | None:
    """'8-20' -> (8, 20)."""
    if text is None:
        return None
    first, _, last = text.partition("-")
    try:
        bounds = int(first), int(last)
    except ValueError:
        raise InputError(f"--layer-range {text}: expected FIRST-LAST, e.g. 8-20") from None
    if bounds[0] > bounds[1]:
        raise InputError(f"--layer-range {text}: FIRST is after LAST")
    return bounds


SkipFirstOpt = Annotated[bool, typer.Option("--skip-first/--steer-first",
                                            help="Leave each sequence's first token unsteered.")]


def generate(
    model: ModelArg,
    *,
    vector_file: Annotated[Path, typer.Option("--vector", help="A file `steer vector` wrote.")],
    alpha: Annotated[float, typer.Option("--alpha", help="Steering strength (relative: a fraction of ||h||).")],
    prompt: Annotated[list[str] | None, typer.Option("--prompt", help="A user turn (repeatable).")] = None,
    prompts: Annotated[str | None, typer.Option("--prompts", help=f"Many user turns: {PromptsHelp}.")] = None,
    n: Annotated[int | None, typer.Option("--n", min=1, help="How many of --prompts (default: up to 10).")] = None,
    split: Annotated[str, typer.Option("--split")] = "test",
    scale: Annotated[Scale, typer.Option("--scale")] = Scale.relative,
    span: Annotated[Span, typer.Option("--span", help="Steer the chosen layer only, or it and every later one.")]
    = Span.from_,
    layer: Annotated[int | None, typer.Option("--layer", help="Steer from this layer (default: the file's).")]
    = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 16,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, help="0 = greedy.")] = 0.0,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = 1.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    skip_first: SkipFirstOpt = False,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = Dtype.float32,
    attn: AttnOpt = "sdpa",
) -> None:
    """Completions of user turns with the steering vector added at every position (JSON lines on stdout)."""
    turns = list(prompt or []) + (_prompts(prompts, n, 10, split, "prompt") if prompts else [])
    if not turns:
        raise InputError("give --prompt or --prompts")
    vectors = SteeringVectors.load(vector_file)
    loaded, tokenizer = load(model, device, dtype, attn)
    first = vectors.layer if layer is None else layer
    if not 0 <= first < vectors.directions.shape[0]:
        raise InputError(f"--layer {first}: the vectors have layers 0..{vectors.directions.shape[0] - 1}")
    chosen = layers_from(first, vectors.directions.shape[0], span.value)
    sampling = Sampling.at_temperature(max_new_tokens, temperature, top_p)
    with steering(loaded, vectors.directions[first], chosen, alpha, scale.value, skip_first=skip_first):
        texts = chat_completions(loaded, tokenizer, turns, sampling, seed=seed)
    for turn, text in zip(turns, texts, strict=True):
        typer.echo(json.dumps({"prompt": turn, "completion": text, "alpha": alpha}))


def curve(
    model: ModelArg,
    *,
    vector_file: Annotated[Path, typer.Option("--vector", help="A file `steer vector` wrote.")],
    alphas: Annotated[str, typer.Option("--alphas", help="Comma-separated steering strengths.")],
    prompts: Annotated[str, typer.Option("--prompts", help=f"Harmful user turns: {PromptsHelp}.")],
    n: Annotated[int | None, typer.Option("--n", min=1, help="How many of --prompts (default: up to 100).")] = None,
    split: Annotated[str, typer.Option("--split")] = "test",
    column: Annotated[str, typer.Option("--column")] = "prompt",
    scale: Annotated[Scale, typer.Option("--scale")] = Scale.relative,
    span: Annotated[Span, typer.Option("--span")] = Span.from_,
    layer: Annotated[int | None, typer.Option("--layer", help="Steer from this layer (default: the file's).")]
    = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 16,
    skip_first: SkipFirstOpt = False,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = Dtype.float32,
    attn: AttnOpt = "sdpa",
) -> None:
    """B (share of prompts complied with, phrase judge, greedy) at each alpha: where steering moves the behaviour,
    with the completions' coherence (mean log-prob per token under the unsteered model, trigram repetition)."""
    try:
        grid = [float(a) for a in alphas.split(",") if a.strip()]
    except ValueError as err:
        raise InputError(f"--alphas {alphas}: expected comma-separated numbers") from err
    turns = _prompts(prompts, n, 100, split, column)
    vectors = SteeringVectors.load(vector_file)
    loaded, tokenizer = load(model, device, dtype, attn)
    first = vectors.layer if layer is None else layer
    if not 0 <= first < vectors.directions.shape[0]:
        raise InputError(f"--layer {first}: the vectors have layers 0..{vectors.directions.shape[0] - 1}")
    chosen = layers_from(first, vectors.directions.shape[0], span.value)
    judge = PhraseJudge()
    rows = []
    for alpha in grid:
        with steering(loaded, vectors.directions[first], chosen, alpha, scale.value, skip_first=skip_first):
            texts = chat_completions(loaded, tokenizer, turns, Sampling.greedy(max_new_tokens))
        rows.append({"alpha": alpha, "B": attack_success(judge.complied(turns, texts)), "n": len(turns),
                     **coherence(loaded, tokenizer, turns, texts)})  # scored unsteered: outside the context
    typer.echo(json.dumps({"layers": chosen, "scale": scale.value, "skip_first": skip_first, "curve": rows},
                          indent=1))


def _prompts(spec: str, n: int | None, default: int, split: str, column: str) -> list[str]:
    """The prompts of ``spec``: an explicit --n must be met; the default takes what the set has, and says so."""
    prompts = resolve_prompts_up_to(spec, n, default=default, split=split, column=column)
    if n is None and len(prompts) < default:
        typer.echo(f"note: prompts '{spec}' has {len(prompts)} prompts; using all of them (the default is "
                   f"up to {default})", err=True)
    return prompts
