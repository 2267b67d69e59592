"""Multiple-choice science QA for any chat model: SciQ and SciKnowEval (Chemistry, L3), through ``datasets``.

This is the paper's target task (docs/methods.md §6): a question, four options A-D,
one letter expected, asked as a user turn of the model's own chat template.
The rows come from the Hugging Face Hub by default, or from local files of the
same schema (JSON, JSON Lines or Parquet), read by the same ``load_dataset``
call with ``data_files=``, so an offline machine runs exactly the code a
connected one does.

Where the data comes from, first match wins:

1. the task spec's argument, ``sciq:/data/sciq`` (a file or a folder; a hub id
   such as ``sciq:me/sciq-mirror`` also works);
2. the environment variable ``CIRCUITDRIFT_SCIQ`` / ``CIRCUITDRIFT_SCIKNOWEVAL``
   (a local file or folder);
3. the hub: ``allenai/sciq``, ``hicai-zju/SciKnowEval`` (``data/Chemistry/*.jsonl``).

Splits. SciQ has train / validation / test on the hub; a local folder keeps
them when its file names, or the sub-folders that hold them, say which split
they hold (``train``, ``validation`` / ``valid`` / ``val`` / ``dev``, ``test`` as
a word of the name, e.g. ``data/train-00000-of-00001.parquet``,
``sciq_test.jsonl`` or ``validation/part-0.jsonl``). SciKnowEval ships one
split, and local files without split names are one pool too: a pool is cut
80 / 10 / 10 into train / validation / test by a hash of the question text,
so the splits are disjoint, stable across machines, and identical questions
land in the same split.

Each item's options are shuffled with a seeded generator keyed by the item
(the same seed gives the same order whatever else is loaded). The
counterfactual is the same question with the options permuted so that the
correct letter changes: the correct option swaps places with another one (or,
when no swap keeps the token length, any other permutation that does; items
with none are skipped). The number of repaired and skipped items is written
into ``Task.description``.

Differences from the paper: the paper used the SciKnowEval items as released
(its options in their order); here options are reshuffled so that the letter
carries no prior, and the train/test split is ours (the paper does not state
one).
"""

from __future__ import annotations

import itertools
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from circuitdrift.errors import InputError, TooFewExamples
from circuitdrift.models.generate import chat_prompt
from circuitdrift.tasks.base import Example, Task
from circuitdrift.tasks.splits import SPLITS, split_of

LETTERS = ("A", "B", "C", "D")
INSTRUCTION = "Answer with the letter of the correct option."
DATA_SUFFIXES = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}
METADATA_STEMS = {"dataset_info", "dataset_infos", "dataset_dict", "state"}
SPLIT_WORDS = {"train": ("train",), "validation": ("validation", "valid", "val", "dev"), "test": ("test",)}


def multiple_choice_turn(stem: str, options: Sequence[str]) -> str:
    """The user turn of a multiple-choice question: the stem, one "A. option" line each, the instruction."""
    lines = [stem, *(f"{letter}. {option}" for letter, option in zip(LETTERS, options, strict=True))]
    return "\n".join([*lines, INSTRUCTION])


@dataclass(frozen=True)
class Question:
    """A four-option question, from a dataset row or the organism's world (which also records what it asks)."""

    stem: str
    options: tuple[str, str, str, str]
    correct: int  # index into options
    kind: str = ""  # the organism's question kind (color, category, smell); "" for dataset rows
    subject: str = ""  # the organism's substance asked about; "" for dataset rows

    @property
    def letter(self) -> str:
        return LETTERS[self.correct]

    def user_turn(self) -> str:
        return multiple_choice_turn(self.stem, self.options)

    def permuted(self, order: Sequence[int]) -> Question:
        """The options in ``order`` (``order[i]`` is the old index shown at slot i)."""
        return replace(self, options=tuple(self.options[i] for i in order), correct=list(order).index(self.correct))


@dataclass
class MultipleChoiceTask(Task):
    """A task graded by the option a reply names: its letter (``"B"``, ``"B."``, ``"(B)"``) or its text.

    :meth:`parse` reads the first stand-alone letter A-D (the reply's own letter only). With the
    example's ``options`` known, :meth:`parse_example` reads the option named first, by its letter
    or by its text (``"iron"``, ``"B) iron"``), so a model that answers with the option's word is
    graded right, in evaluation and in RL's reward alike (:func:`named_option`).

    ``label`` is what SFT trains on: ``letter`` (the gold letter) or ``word`` (the correct option's
    text, far less likely under a base model asked for a letter: the off-policy SFT arm).
    """

    label: Literal["letter", "word"] = "letter"

    @property
    def chance(self) -> float:
        return 1 / len(LETTERS)

    def parse(self, completion: str) -> str | None:
        match = LETTER.search(completion)
        return match.group(1) if match else None

    def parse_example(self, completion: str, example: Example) -> str | None:
        if not example.options:
            return self.parse(completion)
        index = named_option(completion, example.options)
        return None if index is None else LETTERS[index]

    def sft_label(self, example: Example) -> str:
        if self.label == "letter":
            return example.answer
        if not example.options:
            raise InputError(f"task '{self.name}': a word label needs the options of every example")
        return example.options[LETTERS.index(example.answer)]

    def with_label(self, label: str) -> MultipleChoiceTask:
        """The same task whose SFT label is ``label`` (letter or word); grading is unchanged."""
        if label not in LABELS:
            raise InputError(f"label '{label}': unknown (use one of {', '.join(LABELS)})")
        if label == "word" and not all(ex.options for ex in self.examples):
            raise InputError(f"task '{self.name}': a word label needs the options of every example")
        return replace(self, label=label)


LABELS = ("letter", "word")
LETTER = re.compile(r"(?<![A-Za-z])([ABCD])(?![A-Za-z])")
LONE_LETTER = re.compile(r"\W*([A-Da-d])\W*")  # a reply that is one letter alone, in either case


def named_option(completion: str, options: Sequence[str]) -> int | None:
    """The index of the option a reply names first, by its letter or by its text; None if it names none.

    A letter counts where it stands alone (upper case inside a reply, as :meth:`MultipleChoiceTask.parse`
    reads it; either case when it is the whole reply: ``"b"``). An option's text counts as whole words,
    case-insensitively (``"Iron"``). The earliest mention wins (``"B) copper"`` names B); at one position
    the longer mention wins (``"iron oxide"`` over ``"iron"``), then the letter. A reply that names no
    option, or names a wrong one first, is graded wrong.
    """
    lone = LONE_LETTER.fullmatch(completion)
    if lone:
        return LETTERS.index(lone.group(1).upper())
    mentions = [(m.start(), -1, 0, LETTERS.index(m.group(1))) for m in LETTER.finditer(completion)]
    lowered = completion.lower()
    for index, option in enumerate(options):
        text = option.strip().lower()
        if not text:
            continue
        for m in re.finditer(rf"(?<!\w){re.escape(text)}(?!\w)", lowered):
            mentions.append((m.start(), -len(text), 1, index))
    return min(mentions)[3] if mentions else None


# ---- the two datasets: where they live and how a row becomes a Question -------------------------------------


def sciq_question(row: dict, index: int) -> Question | None:
    """An ``allenai/sciq`` row: question, distractor1-3, correct_answer (support is not shown)."""
    options = [_text(row, "correct_answer", index), *(_text(row, f"distractor{k}", index) for k in (1, 2, 3))]
    return Question(_text(row, "question", index), tuple(options), 0)


def sciknoweval_chem_l3_question(row: dict, index: int) -> Question | None:
    """A ``hicai-zju/SciKnowEval`` row, kept when it is Chemistry, level L3, ``mcq-4-choices``."""
    details = row.get("details") or {}
    if row.get("domain") != "Chemistry" or row.get("type") != "mcq-4-choices" or details.get("level") != "L3":
        return None
    choices = row.get("choices")
    if not isinstance(choices, dict) or not isinstance(choices.get("text"), list):
        raise InputError(f"row {index}: key 'choices' must hold 'text' and 'label' lists")
    texts, labels = [str(t).strip() for t in choices["text"]], [str(x).strip() for x in choices.get("label") or []]
    if len(texts) != 4 or len(labels) != 4:
        raise InputError(f"row {index}: an mcq-4-choices item has {len(texts)} choices and {len(labels)} labels")
    key = str(row.get("answerKey", "")).strip()
    if key not in labels:
        raise InputError(f"row {index}: answerKey {key!r} is not one of the labels {labels}")
    return Question(_text(row, "question", index), tuple(texts), labels.index(key))


def _text(row: dict, key: str, index: int) -> str:
    if row.get(key) is None:  # datasets fills a key that some rows lack with None
        raise InputError(f"row {index}: missing key '{key}'")
    value = row[key]
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"row {index}: key '{key}' must be a non-empty string")
    return value.strip()


@dataclass(frozen=True)
class McqDataset:
    """A multiple-choice dataset: its task name, hub location, environment variable and row reader."""

    task_name: str
    hub_id: str
    hub_data_files: str | None  # a pattern inside the hub repo, or None for the repo's own splits
    env_var: str
    native_splits: bool  # the hub repo has train/validation/test
    to_question: Callable[[dict, int], Question | None]  # None: the row is not part of this task
    description: str


SCIQ = McqDataset(
    "sciq", "allenai/sciq", None, "CIRCUITDRIFT_SCIQ", True, sciq_question,
    "SciQ multiple-choice science questions (A-D), as a chat turn",
)  # fmt: skip
SCIKNOWEVAL_CHEM_L3 = McqDataset(
    "sciknoweval-chem-l3", "hicai-zju/SciKnowEval", "data/Chemistry/*.jsonl", "CIRCUITDRIFT_SCIKNOWEVAL", False,
    sciknoweval_chem_l3_question,
    "SciKnowEval Chemistry L3 multiple choice (A-D), as a chat turn",
)  # fmt: skip


# ---- loading rows through datasets (hub or local files) -----------------------------------------------------


@dataclass(frozen=True)
class Location:
    hub_id: str | None = None
    path: Path | None = None

    def __str__(self) -> str:
        return str(self.path) if self.path is not None else str(self.hub_id)


def locate(dataset: McqDataset, source: str | None = None) -> Location:
    """Where ``dataset`` is read from: the spec's argument, else its environment variable, else the hub."""
    where = f"task '{dataset.task_name}:{source}'" if source else f"${dataset.env_var}"
    value = source or os.environ.get(dataset.env_var, "").strip()
    if not value:
        return Location(hub_id=dataset.hub_id)
    path = Path(value).expanduser()
    if path.exists() or value.startswith((".", "/", "~")) or value.count("/") != 1:
        if not path.exists():
            raise InputError(f"{where}: '{value}': no such file or folder")
        return Location(path=path)
    return Location(hub_id=value)


def load_rows(dataset: McqDataset, location: Location, split: str) -> tuple[list[dict], bool]:
    """Rows of ``split`` (or of the whole pool) and whether they still need the hash split."""
    import datasets

    if location.path is None:
        data_files = dataset.hub_data_files if location.hub_id == dataset.hub_id else None
        try:
            if dataset.native_splits:
                return list(datasets.load_dataset(location.hub_id, split=split)), False
            loaded = datasets.load_dataset(location.hub_id, data_files=data_files)
            return [row for part in loaded.values() for row in part], True
        except OSError as err:  # offline, unreachable, or no such dataset (ConnectionError, FileNotFoundError)
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise InputError(
                f"dataset '{location.hub_id}': cannot load it from the Hugging Face Hub ({reason}); offline, pass "
                f"local files: '{dataset.task_name}:/path/to/files' or {dataset.env_var}=/path/to/files"
            ) from None
    files, builder = _data_files(location.path)
    by_split = {s: [f for f in files if _names_split(f, location.path, s)] for s in SPLITS}
    use_splits = dataset.native_splits and any(by_split.values())
    if use_splits and not by_split[split]:
        raise InputError(f"{location.path}: no data file for split '{split}' (its name must contain "
                         f"{' or '.join(SPLIT_WORDS[split])})")
    chosen = by_split[split] if use_splits else files
    try:
        rows = datasets.load_dataset(builder, data_files=[str(f) for f in chosen], split="train")
    except Exception as err:  # datasets raises many kinds for unreadable files; name the files and the reason
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{location.path}: cannot read {builder} files ({reason})") from None
    return list(rows), not use_splits


def _data_files(path: Path) -> tuple[list[Path], str]:
    if path.is_file():
        files = [path] if path.suffix in DATA_SUFFIXES else []
    else:  # skip hidden folders (hf download's .cache) and the hub's metadata files
        files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix in DATA_SUFFIXES
                       and not any(part.startswith(".") for part in f.relative_to(path).parts)
                       and f.stem not in METADATA_STEMS)
    if not files:
        raise InputError(f"{path}: no data files (.json, .jsonl or .parquet)")
    builders = {DATA_SUFFIXES[f.suffix] for f in files}
    if len(builders) > 1:
        raise InputError(f"{path}: mixes JSON and Parquet files; keep one format")
    return files, builders.pop()


def _names_split(file: Path, root: Path, split: str) -> bool:
    """Whether the file's name, or a folder between ``root`` and it, names ``split`` (``data/train-0.parquet``)."""
    relative = file.relative_to(root).with_suffix("") if file != root else Path(file.stem)
    words = re.split(r"[^a-z]+", str(relative).lower())
    return any(word in words for word in SPLIT_WORDS[split])


# ---- questions -> examples ----------------------------------------------------------------------------------


def load_questions(dataset: McqDataset, split: str, source: str | None = None) -> tuple[list[Question], str]:
    """The questions of ``split`` in the file's order, and a note on where they came from."""
    if split not in SPLITS:
        raise InputError(f"split '{split}': unknown (use one of {', '.join(SPLITS)})")
    location = locate(dataset, source)
    rows, pooled = load_rows(dataset, location, split)
    questions, kept = [], 0
    for i, row in enumerate(rows):
        try:
            question = dataset.to_question(row, i)
        except InputError as err:
            raise InputError(f"dataset '{location}': {err}") from None
        kept += question is not None
        if question is not None and (not pooled or split_of(question.stem) == split):
            questions.append(question)
    if not questions:
        raise InputError(f"dataset '{location}': no {dataset.task_name} questions in split '{split}'")
    how = (f"{len(questions)} of the {kept} questions kept, split by question hash 80/10/10" if pooled
           else f"{len(questions)} questions in split '{split}' as given")
    return questions, f"from {location}, {how}"


def shuffled(question: Question, rng: random.Random) -> Question:
    order = list(range(4))
    rng.shuffle(order)
    return question.permuted(order)


def counterfactual(question: Question, rng: random.Random, length: Callable[[Question], int]) -> tuple[Question, bool]:
    """A permutation of the options that moves the correct one and keeps ``length``; (question, repaired).

    Swaps of the correct option with another slot come first (in seeded
    order); when none keeps the length, any permutation that moves the
    correct option does (``repaired``). None at all: :class:`LookupError`.
    """
    target = length(question)
    others = [i for i in range(4) if i != question.correct]
    rng.shuffle(others)
    for other in others:
        order = list(range(4))
        order[question.correct], order[other] = other, question.correct
        candidate = question.permuted(order)
        if length(candidate) == target:
            return candidate, False
    permutations = [p for p in itertools.permutations(range(4)) if p[question.correct] != question.correct]
    rng.shuffle(permutations)
    for order in permutations:
        candidate = question.permuted(order)
        if candidate.correct != question.correct and length(candidate) == target:
            return candidate, True
    raise LookupError("no permutation keeps the token length")


def mcq_task(
    dataset: McqDataset, split: str = "test", n: int | None = None, seed: int = 0, tokenizer=None,
    source: str | None = None,
) -> MultipleChoiceTask:
    """Chat-templated multiple-choice examples for ``tokenizer``: answer = the letter, counterfactual = options
    permuted (same token length, another letter)."""
    name = dataset.task_name
    if tokenizer is None:
        raise InputError(f"task '{name}': builds prompts in the model's chat template; pass the model's tokenizer")
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(f"task '{name}': the tokenizer has no chat template (use an instruct/chat model)")
    questions, origin = load_questions(dataset, split, source)
    order = random.Random(f"{name}:{split}:{seed}").sample(range(len(questions)), len(questions))
    want = len(questions) if n is None else n
    examples, turns, repaired, skipped = [], [], 0, 0
    for index in order:
        if len(examples) == want:
            break
        item_rng = random.Random(f"{name}:{seed}:{questions[index].stem}:{'|'.join(questions[index].options)}")
        question = shuffled(questions[index], item_rng)
        if len(set(question.options)) < 4:
            skipped += 1  # two identical options: a permutation cannot change the correct letter
            continue
        try:
            corrupt, fixed = counterfactual(question, item_rng, lambda q: _length(tokenizer, q))
        except LookupError:
            skipped += 1
            continue
        repaired += fixed
        examples.append(Example(chat_prompt(tokenizer, question.user_turn()),
                                chat_prompt(tokenizer, corrupt.user_turn()), question.letter, corrupt.letter,
                                options=question.options))
        turns.append(question.user_turn())
    if not examples or (n is not None and len(examples) < n):
        message = (f"task '{name}': split '{split}' has {len(examples)} usable questions, fewer than n={want} "
                   f"({skipped} skipped: duplicate options or no equal-length counterfactual)")
        raise TooFewExamples(message, len(examples)) if examples else InputError(message)
    description = (f"{dataset.description}; {origin}; counterfactual = options permuted, {repaired} repaired by a "
                   f"non-swap permutation, {skipped} skipped (no equal-length permutation or duplicate options)")
    return MultipleChoiceTask(name, examples, description, templated=True, chat_prompts=turns)


def _length(tokenizer, question: Question) -> int:
    return len(tokenizer(chat_prompt(tokenizer, question.user_turn()), add_special_tokens=False).input_ids)


def sciq_task(split: str = "test", n: int | None = None, seed: int = 0, tokenizer=None,
              source: str | None = None) -> MultipleChoiceTask:
    """SciQ (``allenai/sciq``, or local files: ``sciq:PATH`` / ``$CIRCUITDRIFT_SCIQ``)."""
    return mcq_task(SCIQ, split, n, seed, tokenizer, source)


def sciknoweval_chem_l3_task(split: str = "test", n: int | None = None, seed: int = 0, tokenizer=None,
                             source: str | None = None) -> MultipleChoiceTask:
    """SciKnowEval Chemistry L3 MCQ (``hicai-zju/SciKnowEval``, or ``sciknoweval-chem-l3:PATH`` /
    ``$CIRCUITDRIFT_SCIKNOWEVAL``)."""
    return mcq_task(SCIKNOWEVAL_CHEM_L3, split, n, seed, tokenizer, source)
