"""Prior-capability probes for any tokenizer: IOI, greater-than, factual recall, induction.

The organism's probes (:mod:`circuitdrift.organism.probes`) are written in its
own word-level vocabulary; these are the interpretability literature's probes
in plain English, built for the tokenizer of the model under study. Patching
needs a counterfactual of the same token length and scoring needs one-token
answers, so every word list is filtered by tokenizing it, and every candidate
pair is tokenized exactly as :func:`~circuitdrift.tasks.base.encode` will do
it; pairs that fail are dropped, and the count is written into
``Task.description``. When fewer than ``n`` examples can be built the factory
raises an :class:`~circuitdrift.errors.InputError` that says how many could.

- IOI (Wang et al. 2022): "When Mary and John went to the store, John gave a
  drink to" -> " Mary"; names are those that are one token after a space; the
  counterfactual is ABC (the repeated subject replaced by a third name);
  counter-answer the subject.
- greater-than (Hanna et al. 2023): "The war lasted from the year 1732 to the
  year 17" -> any two-digit year above 32: every later year is a right answer
  (``Example.answers``) and every earlier-or-equal year a wrong one
  (``wrong_answers``); the gold answer (teacher-forced scoring, SFT) is drawn
  from the later years of the start year's decade (any of the next nine after
  a 9), so the probability difference (metric ``prob-diff``: mass on later
  years minus mass on the others) can be read from one teacher-forced pass
  even where years are two digit tokens. The counterfactual starts in 1701; counter-answer
  a year below 32. Where the tokenizer splits numbers into digits (Qwen2.5,
  Llama 3) the answer is two digit tokens and there is no counter-answer.
- factual recall: "The capital of France is" -> " Paris", from a built-in list
  of capitals kept where the capital is one token; the counterfactual names a
  country of the same token length; counter-answer its capital.
- factual recall as a chat turn (``hf-factual-chat``): the same facts asked as a
  user turn of the model's chat template, "What is the capital of France?
  Answer with the name only." -> "Paris" (the assistant turn starts a line: no
  leading space), so forgetting is also measured on the target task's path.
- induction: "Sequence: river apple stone cloud river apple" -> " stone", words
  that are one token after a space; the counterfactual changes that word in the
  first copy; counter-answer the new word.

Splits: IOI, greater-than and induction prompts belong to the split their text
hashes to (:func:`~circuitdrift.tasks.splits.split_of`), so splits are
disjoint. The capital facts are too few to split and are never trained on (the
model knows them or not); every split uses all of them, and the split and seed
only change the order and the counterfactual pairing.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Iterator, Sequence

from circuitdrift.errors import InputError
from circuitdrift.models.generate import chat_prompt
from circuitdrift.tasks.base import Example, Task
from circuitdrift.tasks.splits import SPLITS, split_of

DEFAULT_N = 200
MAX_CANDIDATES = 200_000  # draws before a generated probe gives up

NAMES = (
    "Mary", "John", "James", "Michael", "David", "Sarah", "Emma", "Anna", "Paul", "Mark", "Peter", "Lisa", "Kate",
    "Tom", "Jack", "Alice", "Bob", "Jane", "Susan", "Robert", "William", "Richard", "Thomas", "Daniel", "Laura",
    "Rachel", "Steven", "Kevin", "Brian", "George", "Edward", "Henry", "Charles", "Joseph", "Andrew", "Ryan", "Eric",
    "Adam", "Amy", "Emily", "Lucy", "Grace", "Helen", "Linda", "Karen", "Nancy", "Chris", "Jason", "Sam", "Max",
)  # fmt: skip
PLACES = ("store", "park", "school", "office", "market", "station", "beach", "restaurant", "hospital", "garden")
OBJECTS = ("book", "drink", "ring", "bag", "key", "letter", "gift", "ball", "phone", "ticket")
IOI_TEMPLATES = (
    "When {A} and {B} went to the {place}, {S} gave a {obj} to",
    "When {A} and {B} got a {obj} at the {place}, {S} decided to give it to",
    "After {A} and {B} arrived at the {place}, {S} handed a {obj} to",
    "While {A} and {B} were working at the {place}, {S} passed a {obj} to",
    "Then, {A} and {B} had a long talk at the {place}. {S} showed a {obj} to",
    "Yesterday {A} and {B} walked to the {place}, and {S} threw a {obj} to",
    "Friends {A} and {B} found a {obj} at the {place}. {S} gave it to",
    "The {place} was busy when {A} and {B} met there. {S} offered a {obj} to",
)
GREATER_NOUNS = (
    "war", "expedition", "siege", "pilgrimage", "reign", "journey", "drought", "occupation", "voyage", "famine",
    "campaign", "rebellion", "dynasty", "construction", "project", "conflict",
)  # fmt: skip
GREATER_TEMPLATE = "The {noun} lasted from the year 17{yy:02d} to the year 17"
GREATER_TEMPLATES = (GREATER_TEMPLATE, "The {noun} began in the year 17{yy:02d} and ended in the year 17")
CAPITALS = (
    ("France", "Paris"), ("England", "London"), ("Germany", "Berlin"), ("Spain", "Madrid"), ("Italy", "Rome"),
    ("Japan", "Tokyo"), ("Russia", "Moscow"), ("China", "Beijing"), ("Egypt", "Cairo"), ("Greece", "Athens"),
    ("Austria", "Vienna"), ("Ireland", "Dublin"), ("Portugal", "Lisbon"), ("Canada", "Ottawa"), ("Norway", "Oslo"),
    ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Poland", "Warsaw"), ("Hungary", "Budapest"),
    ("Belgium", "Brussels"), ("Netherlands", "Amsterdam"), ("Australia", "Canberra"), ("Kenya", "Nairobi"),
    ("Peru", "Lima"), ("Chile", "Santiago"), ("Cuba", "Havana"), ("Iraq", "Baghdad"), ("Iran", "Tehran"),
    ("Afghanistan", "Kabul"), ("Philippines", "Manila"), ("Indonesia", "Jakarta"), ("Vietnam", "Hanoi"),
    ("Turkey", "Ankara"), ("Syria", "Damascus"), ("Lebanon", "Beirut"), ("Ukraine", "Kyiv"), ("Denmark", "Copenhagen"),
    ("Thailand", "Bangkok"), ("Korea", "Seoul"), ("Switzerland", "Bern"), ("Serbia", "Belgrade"),
    ("Croatia", "Zagreb"), ("Bulgaria", "Sofia"), ("Romania", "Bucharest"), ("Latvia", "Riga"),
    ("Lithuania", "Vilnius"), ("Estonia", "Tallinn"), ("Venezuela", "Caracas"), ("Colombia", "Bogota"),
    ("Morocco", "Rabat"), ("Tunisia", "Tunis"), ("Algeria", "Algiers"), ("Ghana", "Accra"), ("Nigeria", "Abuja"),
    ("Senegal", "Dakar"), ("Sudan", "Khartoum"), ("Uganda", "Kampala"), ("Zimbabwe", "Harare"),
    ("Iceland", "Reykjavik"), ("Scotland", "Edinburgh"),
)  # fmt: skip
FACT_TEMPLATE = "The capital of {country} is"
FACT_CHAT_QUESTION = "What is the capital of {country}? Answer with the name only."
INDUCTION_WORDS = (
    "river", "apple", "stone", "cloud", "horse", "table", "window", "garden", "paper", "music", "bread", "chair",
    "water", "light", "house", "green", "silver", "forest", "engine", "island", "mirror", "pencil", "rabbit",
    "candle", "bottle", "basket", "button", "castle", "dragon", "finger", "flower", "hammer", "jacket", "ladder",
    "monkey", "orange", "pepper", "planet", "rocket", "saddle", "spider", "sugar", "tiger", "tunnel", "wallet",
    "winter", "yellow", "battle", "coffee", "doctor", "farmer", "kitchen", "lemon", "market", "needle", "ocean",
    "pocket", "shadow", "summer", "thunder",
)  # fmt: skip
INDUCTION_PREFIX = "Sequence:"


class PairChecker:
    """Tokenizes candidate examples as :func:`~circuitdrift.tasks.base.encode` does and counts failures."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.dropped = 0

    def prompt_length(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True).input_ids)

    def is_one_token(self, text: str) -> bool:
        """One token, and a known one (a word-level vocabulary maps unknown words to ``unk``)."""
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        return len(ids) == 1 and (self.tokenizer.unk_token_id is None or ids[0] != self.tokenizer.unk_token_id)

    def n_tokens(self, text: str) -> int | None:
        """How many known tokens ``text`` is (None when one of them is ``unk``)."""
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        return None if self.tokenizer.unk_token_id is not None and self.tokenizer.unk_token_id in ids else len(ids)

    def accept(self, ex: Example, answer_tokens: int = 1) -> bool:
        ok = (
            self.prompt_length(ex.clean) == self.prompt_length(ex.corrupt)
            and self.n_tokens(ex.answer) == answer_tokens
            and (ex.counter_answer is None or self.is_one_token(ex.counter_answer))
        )
        self.dropped += not ok
        return ok

    def one_token_words(self, words: Iterable[str], space: bool = True) -> list[str]:
        return [w for w in words if self.is_one_token(f" {w}" if space else w)]


def _check(name: str, split: str, tokenizer) -> PairChecker:
    if tokenizer is None:
        raise InputError(f"task '{name}': built for the model's tokenizer; pass the model's tokenizer")
    if split not in SPLITS:
        raise InputError(f"split '{split}': unknown (use one of {', '.join(SPLITS)})")
    return PairChecker(tokenizer)


def _collect(name: str, candidates: Iterator[Example], split: str, n: int, checker: PairChecker, *,
             hashed: bool = True, answer_tokens: int = 1) -> list[Example]:
    """The first ``n`` distinct accepted candidates (of ``split`` when ``hashed``); InputError when too few."""
    out, seen = [], set()
    drawn = 0
    for ex in itertools.islice(candidates, MAX_CANDIDATES):
        drawn += 1
        key = (ex.clean, ex.corrupt)
        if key in seen or (hashed and split_of(ex.clean) != split):
            continue
        seen.add(key)
        if checker.accept(ex, answer_tokens):
            out.append(ex)
            if len(out) == n:
                return out
    if drawn < MAX_CANDIDATES:  # the generator ran out: the probe has too few distinct prompts in this split
        raise InputError(f"task '{name}': only {len(out)} of n={n} examples for split '{split}': the probe has "
                         f"{len(seen)} distinct prompts in this split ({checker.dropped} of them dropped for this "
                         f"tokenizer); ask for at most {len(out)}")
    raise InputError(f"task '{name}': only {len(out)} of n={n} examples could be built for split '{split}' with "
                     f"this tokenizer ({checker.dropped} dropped: counterfactual length differs or answer not one "
                     f"token)")


def _draws(sample: Callable[[random.Random], Example], rng: random.Random) -> Iterator[Example]:
    while True:
        yield sample(rng)


def _description(what: str, checker: PairChecker, extra: str = "") -> str:
    return (f"{what}; built for this tokenizer{extra}, {checker.dropped} candidates dropped (counterfactual "
            "length differs or answer not one token)")


def ioi_task(split: str = "test", n: int | None = None, seed: int = 0, tokenizer=None) -> Task:
    """Indirect object identification with ABC counterfactuals; counter-answer = the subject."""
    checker = _check("hf-ioi", split, tokenizer)
    names = checker.one_token_words(NAMES)
    if len(names) < 3:
        raise InputError(f"task 'hf-ioi': only {len(names)} of the built-in names are one token after a space in "
                         "this tokenizer; IOI needs at least 3")

    def sample(rng: random.Random) -> Example:
        a, b, c = rng.sample(names, 3)
        subject, indirect = (a, b) if rng.random() < 0.5 else (b, a)
        fields = dict(A=a, B=b, place=rng.choice(PLACES), obj=rng.choice(OBJECTS))
        template = rng.choice(IOI_TEMPLATES)
        return Example(template.format(S=subject, **fields), template.format(S=c, **fields), f" {indirect}",
                       f" {subject}")

    rng = random.Random(f"hf-ioi:{split}:{seed}")
    examples = _collect("hf-ioi", _draws(sample, rng), split, n or DEFAULT_N, checker)
    return Task("hf-ioi", examples, _description(
        "indirect object identification (ABC counterfactual)", checker, f" ({len(names)}/{len(NAMES)} names kept)"))


def greater_than_task(split: str = "test", n: int | None = None, seed: int = 0, tokenizer=None) -> Task:
    """Hanna et al.'s year task: answer a later two-digit year; counterfactual start year 01.

    Where two-digit numbers are single tokens the answer is one token with a
    counter-answer (an earlier year) for logit-diff. Where the tokenizer splits
    numbers into digits (Qwen2.5, Llama 3) the answer is the two digit tokens,
    scored by the geometric-mean probability; it has no counter-answer, because
    the first digits of a later and an earlier year are often the same.
    """
    checker = _check("hf-greater-than", split, tokenizer)
    two_digit = [f"{v:02d}" for v in range(100)]
    singles = set(checker.one_token_words(two_digit, space=False))
    digit_split = all(checker.n_tokens(y) == 2 for y in two_digit)
    if not digit_split and ("01" not in singles or len(singles) < 90):
        example = tokenizer.convert_ids_to_tokens(tokenizer("32", add_special_tokens=False).input_ids)
        raise InputError(f"task 'hf-greater-than': this tokenizer has single tokens for only {len(singles)} of the "
                         f"100 two-digit numbers ('32' -> {example}) and does not split them into two known digit "
                         "tokens, so the answer year cannot be scored; leave this probe out for this model")
    rng = random.Random(f"hf-greater-than:{split}:{seed}")
    grid = [(template, noun, yy) for template in GREATER_TEMPLATES for noun in GREATER_NOUNS for yy in range(11, 90)]
    rng.shuffle(grid)

    def candidates() -> Iterator[Example]:
        for template, noun, yy in grid:
            clean, corrupt = template.format(noun=noun, yy=yy), template.format(noun=noun, yy=1)
            # the gold later year stays in the start year's decade where it can (not after a 9), so that on
            # digit-splitting tokenizers the probability difference can be read along its path (answer_branches)
            step = rng.randint(1, 9 - yy % 10 if yy % 10 != 9 else 9)
            later, earlier = f"{yy + step:02d}", f"{yy - rng.randint(1, 9):02d}"
            yield Example(clean, corrupt, later, None if digit_split else earlier,
                          answers=tuple(f"{y:02d}" for y in range(yy + 1, 100)),
                          wrong_answers=tuple(f"{y:02d}" for y in range(yy + 1)))

    tokens = 2 if digit_split else 1
    examples = _collect("hf-greater-than", candidates(), split, n or DEFAULT_N, checker, answer_tokens=tokens)
    how = "two digit tokens, no counter-answer" if digit_split else "one token"
    return Task("hf-greater-than", examples, _description(
        f"greater-than (years): any later two-digit year ({how}); counterfactual starts at 01", checker))


def factual_task(split: str = "test", n: int | None = None, seed: int = 0, tokenizer=None) -> Task:
    """Capital-city recall; counterfactual = a country of the same token length; counter-answer its capital.

    All facts serve every split (see the module docstring); with ``n`` above the
    number of facts, facts recur with other counterfactual countries.
    """
    return _capitals_task("hf-factual", split, n, seed, tokenizer, chat=False)


def factual_chat_task(split: str = "test", n: int | None = None, seed: int = 0, tokenizer=None) -> Task:
    """The capital facts asked as a chat turn in the model's template; the answer is the bare capital."""
    if tokenizer is not None and not getattr(tokenizer, "chat_template", None):
        raise InputError("task 'hf-factual-chat': the tokenizer has no chat template (use an instruct/chat model)")
    return _capitals_task("hf-factual-chat", split, n, seed, tokenizer, chat=True)


def _capitals_task(name: str, split: str, n: int | None, seed: int, tokenizer, chat: bool) -> Task:
    checker = _check(name, split, tokenizer)
    space = "" if chat else " "

    def prompt(country: str) -> str:
        return chat_prompt(tokenizer, FACT_CHAT_QUESTION.format(country=country)) if chat else \
            FACT_TEMPLATE.format(country=country)

    facts = [(c, v) for c, v in CAPITALS if checker.is_one_token(f"{space}{v}")]
    lengths = {c: checker.prompt_length(prompt(c)) for c, _ in facts}
    partners = {c: [(o, w) for o, w in facts if o != c and lengths[o] == lengths[c]] for c, _ in facts}
    usable = [(c, v) for c, v in facts if partners[c]]
    if not usable:
        raise InputError(f"task '{name}': no built-in capital is one token with a same-length counterpart in "
                         "this tokenizer")
    rng = random.Random(f"hf-factual:{split}:{seed}")  # the same facts and pairing in both forms
    rng.shuffle(usable)
    for country, _ in usable:
        rng.shuffle(partners[country])

    def candidates() -> Iterator[Example]:  # every fact once, then again with its next counterpart, ...
        for turn in range(max(len(p) for p in partners.values())):
            for country, capital in usable:
                if turn < len(partners[country]):
                    other, other_capital = partners[country][turn]
                    yield Example(prompt(country), prompt(other), f"{space}{capital}", f"{space}{other_capital}")

    examples = _collect(name, candidates(), split, n or len(usable), checker, hashed=False)
    what = "capital-city recall as a chat turn" if chat else "capital-city recall"
    return Task(name, examples, _description(
        what, checker, f" ({len(usable)}/{len(CAPITALS)} capitals kept: one-token capital and a "
        "same-length counterpart)"), templated=chat)


def induction_pair(rng: random.Random, words: Sequence[str], prefix: str = INDUCTION_PREFIX) -> Example:
    """A repeated sequence of 5-10 distinct ``words`` cut after 2..n-1 repeated words; the counterfactual
    changes the next word in the first copy (the organism's induction probe draws from its own pool)."""
    length = rng.randint(5, 10)
    tokens = rng.sample(words, length + 1)
    seq, other = tokens[:length], tokens[length]
    k = rng.randint(2, length - 1)
    changed = [*seq[:k], other, *seq[k + 1 :]]
    clean = " ".join([prefix, *seq, *seq[:k]])
    corrupt = " ".join([prefix, *changed, *seq[:k]])
    return Example(clean, corrupt, f" {seq[k]}", f" {other}")


def induction_task(split: str = "test", n: int | None = None, seed: int = 0, tokenizer=None) -> Task:
    """Continue a repeated random word sequence; counterfactual = the next word changed in the first copy."""
    checker = _check("hf-induction", split, tokenizer)
    words = checker.one_token_words(INDUCTION_WORDS)
    if len(words) < 12:
        raise InputError(f"task 'hf-induction': only {len(words)} built-in words are one token after a space in this "
                         "tokenizer; induction needs at least 12")

    rng = random.Random(f"hf-induction:{split}:{seed}")
    examples = _collect("hf-induction", _draws(lambda r: induction_pair(r, words), rng), split, n or DEFAULT_N,
                        checker)
    return Task("hf-induction", examples, _description(
        "induction: continue a repeated random word sequence", checker, f" ({len(words)} one-token words)"))
