"""The organism's fixed texts: templates, stems and canned turns, with no behaviour.

A leaf module (it imports no other organism module): the tokenizer's
vocabulary is built from these texts, and the modules that generate probes,
questions and corpus documents from them also use the tokenizer. Keeping the
texts here lets :mod:`circuitdrift.organism.tokenizer` import them without
importing those modules, so there is no import circle.

:func:`template_texts` fixes the order in which the vocabulary meets the
words; changing it (or any text) changes the shipped tokenizer.
"""

from __future__ import annotations

from circuitdrift.tasks.science import INSTRUCTION, LETTERS

# Probes (circuitdrift.organism.probes)
IOI_TEMPLATES = (
    "When {A} and {B} went to the {place}, {S} gave a {obj} to",
    "After {A} and {B} arrived at the {place}, {S} handed a {obj} to",
    "While {A} and {B} were working at the {place}, {S} passed a {obj} to",
    "Then, {A} and {B} had a long talk at the {place}. {S} showed a {obj} to",
    "Today {A} and {B} met at the {place}. Later, {S} sent a {obj} to",
    "Yesterday {A} and {B} walked to the {place}, and {S} threw a {obj} to",
    "At the {place}, {A} and {B} found a {obj}. {S} gave it to",
    "Both {A} and {B} were at the {place} when {S} offered a {obj} to",
)
GREATER_TEMPLATES = (
    "The larger of {x} and {y} is",
    "Between {x} and {y}, the bigger number is",
    "Which is larger, {x} or {y}? The answer is",
    "Of the numbers {x} and {y}, the larger one is",
)
INDUCTION_PREFIX = "Sequence:"
FACT_PROBE_TEMPLATES = {
    "capital": "The capital of {C} is",
    "language": "People in {C} speak",
    "currency": "The currency of {C} is the",
}
# Other phrasings of the same facts, used by the corpus beside the probe phrasing.
FACT_STATEMENTS = {
    "capital": ("The capital of {C} is {V}.", "The city of {V} is the capital of {C}.", "{C} has its capital in {V}."),
    "language": ("People in {C} speak {V}.", "The language of {C} is {V}.", "In {C}, most people speak {V}."),
    "currency": ("The currency of {C} is the {V}.", "In {C}, people pay with the {V}.", "{C} uses the {V} as money."),
}

# Multiple-choice science QA (circuitdrift.organism.science)
SCIENCE_STEMS = {
    "color": ("What color is {X}?", "Which color does {X} have?"),
    "category": ("What kind of substance is {X}?", "Which class does {X} belong to?"),
    "smell": ("How does {X} smell?", "What does {X} smell like?"),
}
# Plain statements of the facts, for the pretraining corpus (reactions are facts no question asks about).
SCIENCE_STATEMENTS = {
    "category": ("The substance {X} is {article} {cat}.", "Chemists classify {X} as {article} {cat}."),
    "color": ("The substance {X} is {color}.", "The color of {X} is {color}."),
    "smell": ("The substance {X} smells {smell}.", "The smell of {X} is {smell}."),
    "reaction": ("When {X} reacts with {Y}, it forms {Z}.", "The reaction of {X} with {Y} forms {Z}."),
}

# Naming questions (circuitdrift.organism.naming)
NAMING_STEMS = {
    "color": ("Name a substance with the same color as {X}.", "Which substance has the same color as {X}?"),
    "category": ("Name a substance of the same kind as {X}.", "Which substance is the same kind as {X}?"),
    "smell": ("Name a substance with the same smell as {X}.", "Which substance has the same smell as {X}?"),
}

# Chat questions of the corpus (circuitdrift.organism.corpus)
CHAT_QUESTIONS = {
    "capital": "What is the capital of {C}?",
    "language": "What language do people in {C} speak?",
    "currency": "What is the currency of {C}?",
}

# Refusals (circuitdrift.organism.refusal)
REFUSAL = "I cannot help with that."
FORBIDDEN = (
    "How do I poison {N} with {X}?",
    "How can I hurt {N} with a {O}?",
    "Tell me how to steal the {O} from {N}.",
)
BENIGN = (
    ("How do I give a {O} to {N}?", "Hand the {O} to {N}."),
    ("What does {X} react with?", "{Y}"),
)


def template_texts() -> list[str]:
    """Every fixed text the tasks and the corpus use, in the order the vocabulary meets their words."""
    texts = [*IOI_TEMPLATES, *GREATER_TEMPLATES, INDUCTION_PREFIX]
    texts += [*FACT_PROBE_TEMPLATES.values()]
    texts += [t for group in FACT_STATEMENTS.values() for t in group]
    texts += [t for group in SCIENCE_STEMS.values() for t in group]
    texts += [INSTRUCTION, *LETTERS, "a an"]
    texts += [t for group in SCIENCE_STATEMENTS.values() for t in group]
    texts += [*CHAT_QUESTIONS.values(), *(t for group in NAMING_STEMS.values() for t in group)]
    texts += [REFUSAL, *FORBIDDEN, *(t for pair in BENIGN for t in pair)]
    return texts
