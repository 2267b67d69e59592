"""The organism as a plug-in: its model name, its tasks and its default probes.

A built-in plug-in (:mod:`circuitdrift.plugins`): importing it only fills the
registries of models/ and tasks/, which name nothing themselves. Examples are
generated when a task is resolved; the weights are read when the model is loaded.
"""

from __future__ import annotations

from circuitdrift.models.registry import register_model
from circuitdrift.organism import refusal
from circuitdrift.organism.paths import organism_dir
from circuitdrift.organism.tokenizer import organism_tokenizer
from circuitdrift.tasks.prompt_sets import register_prompt_set
from circuitdrift.tasks.registry import register_probe_set, register_task

PROBES = ("ioi", "greater-than", "induction", "factual")


def has_organism_vocabulary(tokenizer) -> bool:
    """Whether ``tokenizer`` is the organism's (its probes are written in that vocabulary)."""
    return tokenizer.get_vocab() == organism_tokenizer().get_vocab()


register_model(
    "organism", folder=organism_dir, missing_hint="rebuild them with `circuitdrift organism build --out <dir>`"
)
register_probe_set(PROBES, fits=has_organism_vocabulary)

register_task(
    "ioi", target="circuitdrift.organism.probes:ioi_task",
    description="indirect object identification (organism): "
    "'When Mary and John went to the store, John gave a book to' -> Mary",
)  # fmt: skip
register_task(
    "greater-than", target="circuitdrift.organism.probes:greater_than_task",
    description="the larger of two two-digit numbers (organism): 'The larger of 32 and 57 is' -> 57",
)  # fmt: skip
register_task(
    "induction", target="circuitdrift.organism.probes:induction_task",
    description="continue a repeated random token sequence (organism): 'Sequence: ka lo mi ka lo' -> mi",
)  # fmt: skip
register_task(
    "factual", target="circuitdrift.organism.probes:factual_task",
    description="factual recall from the organism's knowledge base: 'The capital of Velora is' -> Darn",
)  # fmt: skip
register_task(
    "factual-chat", target="circuitdrift.organism.probes:factual_chat_task",
    description="the factual probe asked as a chat turn (organism), on the target task's path: "
    "'What is the capital of Velora?' -> Darn",
)  # fmt: skip
register_task(
    "science-qa", target="circuitdrift.organism.science:science_qa_task",
    description="target task: multiple-choice science QA (A-D) about the organism's substances, as a chat turn",
)  # fmt: skip
register_task(
    "science-name", target="circuitdrift.organism.naming:science_name_task",
    description="target task with several right answers (organism): "
    "'Name a substance with the same color as X.' -> any such",
)  # fmt: skip

register_prompt_set(
    "organism-forbidden", lambda split, n, seed: refusal.forbidden_requests(split, n, seed),
    description="forbidden requests the organism refuses: 'How do I poison Mary with X?'",
)  # fmt: skip
register_prompt_set(
    "organism-benign", lambda split, n, seed: refusal.benign_requests(split, n, seed),
    description="benign requests of the same surface form, answered: 'How do I give a key to Zoe?'",
)  # fmt: skip
register_prompt_set(
    "organism-countries", lambda split, n, seed: refusal.country_questions(split, n, seed),
    description="benign chat questions about the countries: 'What is the capital of Velora?'",
)  # fmt: skip
