"""The organism's pretraining corpus: probe-format text, fact statements, and a little chat.

Documents are short, self-contained texts, each trained from position 0 (as the
probes are asked):

- IOI, greater-than and induction texts: the probe templates with the answer
  written out, from ``train``-split prompts only;
- paragraphs about a country (one to three of its facts, each in one of
  several phrasings) and about a substance (its category, colour, smell and
  reaction), covering every fact of the world, so the model knows them all;
- chat turns (Qwen2.5-style template): questions about countries answered by
  one word, so the model knows the chat format;
- multiple-choice science items: colour questions about every ``train``-split
  substance, and category and smell questions about the ``pretrain`` half of
  them, colour about 31 times and category and smell about 45 times per question, so the base model knows the format and
  every property's letters and is partly good at the target task on the
  substances it was never asked about;
- naming items ("Name a substance with the same color as X.") about the
  ``pretrain`` half, each answered by a random right answer: the second target
  task's format;
- refusals: forbidden requests refused with a fixed phrase and benign requests
  of the same surface form answered (``train``-split requests only).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from circuitdrift.organism import naming, probes, refusal, science
from circuitdrift.organism.texts import CHAT_QUESTIONS, FACT_STATEMENTS, INDUCTION_PREFIX, SCIENCE_STATEMENTS
from circuitdrift.organism.world import World
from circuitdrift.tasks.splits import split_of


@dataclass(frozen=True)
class Mixture:
    """How many documents of each kind the corpus holds."""

    ioi: int = 36_000
    greater_than: int = 28_000
    induction: int = 36_000
    countries: int = 15_000
    substances: int = 25_000
    chat_facts: int = 4_000
    multiple_choice: int = 6_000  # colour questions about every train substance (both halves), ~31 per question
    multiple_choice_kinds: tuple[str, ...] = field(default=("color",))
    # the other properties' questions about the pretrain half of the train substances (~45 per question);
    # fine-tuning then trains on the other half
    multiple_choice_pretrain: int = 8_640
    multiple_choice_pretrain_kinds: tuple[str, ...] = field(default=("category", "smell"))
    naming: int = 2_880  # naming questions about the pretrain half (288 questions, ~10 each)
    refusals: int = 2_000  # forbidden requests, refused
    benign_requests: int = 2_000  # benign requests of the same surface form, answered
    # share of the in-context documents (IOI, greater-than, induction) that open the corpus, before the
    # shuffled rest: copying circuits form first, with the full learning rate, then facts join in
    in_context_first: float = 0.25

    def scaled(self, factor: float) -> Mixture:
        counts = {k: max(1, round(v * factor)) for k, v in self.__dict__.items() if isinstance(v, int)}
        return replace(self, **counts)

    @property
    def total(self) -> int:
        return sum(v for v in self.__dict__.values() if isinstance(v, int))


def build_corpus(world: World, mixture: Mixture, seed: int, tokenizer, batch_size: int | None = None) -> list[str]:
    """The documents in training order: a block of in-context documents, then everything shuffled (seeded).

    With ``batch_size`` (the training batch, read in order), chat-format documents (country chat turns and
    multiple-choice items, two to three times longer than the rest) fill batches of their own, spread
    evenly through the run, so that short documents are not padded to a chat turn's length.
    """
    rng = random.Random(f"corpus:{seed}")
    in_context: list[str] = []
    for name, count in (("ioi", mixture.ioi), ("greater-than", mixture.greater_than), ("induction", mixture.induction)):
        in_context += _probe_docs(rng, world, name, count)
    rng.shuffle(in_context)
    head = round(mixture.in_context_first * len(in_context))
    if batch_size:
        head -= head % batch_size  # the shuffled part starts on a batch boundary
    docs = in_context[head:]
    docs += [_country_paragraph(rng, world) for _ in range(mixture.countries)]
    docs += [_substance_paragraph(rng, world) for _ in range(mixture.substances)]
    docs += [_chat_fact(rng, world, tokenizer) for _ in range(mixture.chat_facts)]
    docs += _multiple_choice(rng, world, mixture, tokenizer)
    docs += [_chat(tokenizer, *_naming_turn(rng, world)) for _ in range(mixture.naming)]
    docs += [_chat(tokenizer, *refusal.forbidden_turn(rng, world)) for _ in range(mixture.refusals)]
    docs += [_chat(tokenizer, *refusal.benign_turn(rng, world)) for _ in range(mixture.benign_requests)]
    rng.shuffle(docs)
    if batch_size:
        docs = _chat_in_own_batches(docs, batch_size)
    return in_context[:head] + docs


def is_chat(doc: str) -> bool:
    return doc.startswith("<|im_start|>")


def _chat_in_own_batches(docs: list[str], batch_size: int) -> list[str]:
    """Full batches of plain documents with full batches of chat documents spread evenly between them.

    Each kind keeps its shuffled order; the two partial batches left over go last.
    """
    plain = [d for d in docs if not is_chat(d)]
    chat = [d for d in docs if is_chat(d)]
    n_plain, n_chat = len(plain) // batch_size, len(chat) // batch_size
    out: list[str] = []
    placed = 0
    for i in range(n_plain):
        out += plain[i * batch_size : (i + 1) * batch_size]
        while placed < n_chat and (placed + 1) * n_plain <= (i + 1) * (n_chat + 1):
            out += chat[placed * batch_size : (placed + 1) * batch_size]
            placed += 1
    out += chat[placed * batch_size :] + plain[n_plain * batch_size :]
    return out


def _probe_docs(rng: random.Random, world: World, name: str, count: int) -> list[str]:
    sampler = probes.PROBES[name][0]
    out = []
    while len(out) < count:
        ex = sampler(rng, world)
        if split_of(ex.clean) != "train":
            continue
        if name == "induction":  # the whole sequence, repeated two or three times: many copy targets per text
            tokens = ex.clean.split()[1:]
            seq = tokens[: _seq_len(tokens)]
            out.append(" ".join([INDUCTION_PREFIX, *(seq * rng.choice((2, 3)))]))
        else:
            out.append(f"{ex.clean}{ex.answer}.")
    return out


def _seq_len(tokens: list[str]) -> int:
    """Length of the repeated sequence in ``seq + seq[:k]`` (its first token recurs at index n)."""
    return tokens.index(tokens[0], 1)


def _country_paragraph(rng: random.Random, world: World) -> str:
    country = rng.choice(world.countries)
    facts = [f for f in world.facts if f.country == country]
    chosen = rng.sample(facts, rng.randint(1, len(facts)))
    sentences = []
    for fact in chosen:
        # the probe phrasing half of the time, another phrasing otherwise
        forms = FACT_STATEMENTS[fact.relation]
        form = forms[0] if rng.random() < 0.5 else rng.choice(forms[1:])
        sentences.append(form.format(C=fact.country, V=fact.value))
    return " ".join(sentences)


def _substance_paragraph(rng: random.Random, world: World) -> str:
    sub = rng.choice(world.substances)
    reaction = next(r for r in world.reactions if r.first == sub.name)
    fields = dict(
        X=sub.name, cat=sub.category, article=science.article(sub.category), color=sub.color, smell=sub.smell,
        Y=reaction.second, Z=reaction.product,
    )  # fmt: skip
    kinds = rng.sample(list(SCIENCE_STATEMENTS), rng.randint(1, 4))
    return " ".join(rng.choice(SCIENCE_STATEMENTS[k]).format(**fields) for k in kinds)


def _chat(tokenizer, user: str, assistant: str) -> str:
    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return tokenizer.apply_chat_template(messages, tokenize=False)


def _chat_fact(rng: random.Random, world: World, tokenizer) -> str:
    fact = rng.choice(world.facts)
    return _chat(tokenizer, CHAT_QUESTIONS[fact.relation].format(C=fact.country), fact.value)


def _multiple_choice(rng: random.Random, world: World, mixture: Mixture, tokenizer) -> list[str]:
    doses = (
        (mixture.multiple_choice, mixture.multiple_choice_kinds, ("pretrain", "train")),
        (mixture.multiple_choice_pretrain, mixture.multiple_choice_pretrain_kinds, ("pretrain",)),
    )
    out = []
    for count, kinds, splits in doses:
        if not kinds or not count:
            continue
        pool = [q for split in splits for q in science.all_questions(split, kinds, world)]
        out += [_chat(tokenizer, q.user_turn(), q.letter) for q in (rng.choice(pool) for _ in range(count))]
    return out


def _naming_turn(rng: random.Random, world: World) -> tuple[str, str]:
    q = rng.choice(_naming_pool(world))
    return q.stem, q.gold(rng)


def _naming_pool(world: World) -> list:
    if world.seed not in _NAMING_POOLS:
        _NAMING_POOLS[world.seed] = naming.all_naming_questions("pretrain", world=world)
    return _NAMING_POOLS[world.seed]


_NAMING_POOLS: dict[int, list] = {}
