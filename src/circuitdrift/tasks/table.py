"""Built-in tasks for real Hugging Face models, registered by name for every command that takes a TASK.

Importing this module only fills :data:`circuitdrift.tasks.registry.BUILTIN_TASKS`;
examples are built when a task is resolved, for the model's tokenizer. The
``hf-`` prefix keeps these apart from the organism's ``ioi``, ``greater-than``,
``induction``, ``factual`` and ``science-qa``. The science tasks take an
argument naming their data: ``sciq:/data/sciq`` (see :mod:`circuitdrift.tasks.science`).
"""

from __future__ import annotations

from circuitdrift.tasks.registry import register_builtin

register_builtin(
    "hf-ioi", "circuitdrift.tasks.probes:ioi_task",
    "indirect object identification for any tokenizer: 'When Mary and John went to the store, John gave a drink to' "
    "-> Mary",
)  # fmt: skip
register_builtin(
    "hf-greater-than", "circuitdrift.tasks.probes:greater_than_task",
    "any later year (one token, or two digit tokens on digit-splitting tokenizers): 'The war lasted from the year "
    "1732 to the year 17' -> 38",
)  # fmt: skip
register_builtin(
    "hf-factual", "circuitdrift.tasks.probes:factual_task",
    "capital-city recall, one-token capitals of this tokenizer: 'The capital of France is' -> Paris",
)  # fmt: skip
register_builtin(
    "hf-induction", "circuitdrift.tasks.probes:induction_task",
    "continue a repeated random word sequence: 'Sequence: river apple stone river apple' -> stone",
)  # fmt: skip
register_builtin(
    "sciq", "circuitdrift.tasks.science:sciq_task",
    "target task: SciQ multiple choice (A-D) as a chat turn; allenai/sciq, or sciq:PATH / $CIRCUITDRIFT_SCIQ",
)  # fmt: skip
register_builtin(
    "sciknoweval-chem-l3", "circuitdrift.tasks.science:sciknoweval_chem_l3_task",
    "target task: SciKnowEval Chemistry L3 multiple choice (A-D) as a chat turn; hicai-zju/SciKnowEval, or "
    "sciknoweval-chem-l3:PATH / $CIRCUITDRIFT_SCIKNOWEVAL",
)  # fmt: skip
