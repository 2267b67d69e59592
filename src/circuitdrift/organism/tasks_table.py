"""The organism's built-in tasks, registered by name for every command that takes a TASK.

Importing this module only fills :data:`circuitdrift.tasks.registry.BUILTIN_TASKS`;
the examples are generated when a task is resolved.
"""

from __future__ import annotations

from circuitdrift.tasks.registry import register_builtin

register_builtin(
    "ioi", "circuitdrift.organism.probes:ioi_task",
    "indirect object identification (organism): 'When Mary and John went to the store, John gave a book to' -> Mary",
)  # fmt: skip
register_builtin(
    "greater-than", "circuitdrift.organism.probes:greater_than_task",
    "the larger of two two-digit numbers (organism): 'The larger of 32 and 57 is' -> 57",
)  # fmt: skip
register_builtin(
    "induction", "circuitdrift.organism.probes:induction_task",
    "continue a repeated random token sequence (organism): 'Sequence: ka lo mi ka lo' -> mi",
)  # fmt: skip
register_builtin(
    "factual", "circuitdrift.organism.probes:factual_task",
    "factual recall from the organism's knowledge base: 'The capital of Velora is' -> Darn",
)  # fmt: skip
register_builtin(
    "science-qa", "circuitdrift.organism.science:science_qa_task",
    "target task: multiple-choice science QA (A-D) about the organism's substances, as a chat turn",
)  # fmt: skip
register_builtin(
    "science-name", "circuitdrift.organism.naming:science_name_task",
    "target task with several right answers (organism): 'Name a substance with the same color as X.' -> any such",
)  # fmt: skip
