"""Built-in tasks for real Hugging Face models, registered by name for every command that takes a TASK.

A built-in plug-in (:mod:`circuitdrift.plugins`): importing it only fills the task registry;
examples are built when a task is resolved, for the model's tokenizer. The
``hf-`` prefix keeps these apart from the organism's ``ioi``, ``greater-than``,
``induction``, ``factual`` and ``science-qa``. The science tasks take an
argument naming their data: ``sciq:/data/sciq`` (see :mod:`circuitdrift.tasks.science`).
"""

from __future__ import annotations

from circuitdrift.tasks.registry import register_probe_set, register_task

# the prior-capability probes `eval` measures on a model no other plug-in claims
REAL_PROBES = ("hf-ioi", "hf-greater-than", "hf-factual", "hf-induction")
register_probe_set(REAL_PROBES)

register_task(
    "hf-ioi", target="circuitdrift.tasks.probes:ioi_task",
    description="indirect object identification for any tokenizer: 'When Mary and John went to the store, "
    "John gave a drink to' -> Mary",
)  # fmt: skip
register_task(
    "hf-greater-than", target="circuitdrift.tasks.probes:greater_than_task",
    description="any later year (one token, or two digit tokens on digit-splitting tokenizers): "
    "'The war lasted from the year 1732 to the year 17' -> 38",
)  # fmt: skip
register_task(
    "hf-factual", target="circuitdrift.tasks.probes:factual_task",
    description="capital-city recall, one-token capitals of this tokenizer: 'The capital of France is' -> Paris",
)  # fmt: skip
register_task(
    "hf-factual-chat", target="circuitdrift.tasks.probes:factual_chat_task",
    description="capital-city recall asked as a chat turn in the model's template: "
    "'What is the capital of France? Answer with the name only.' -> Paris",
)  # fmt: skip
register_task(
    "hf-induction", target="circuitdrift.tasks.probes:induction_task",
    description="continue a repeated random word sequence: 'Sequence: river apple stone river apple' -> stone",
)  # fmt: skip
register_task(
    "sciq", target="circuitdrift.tasks.science:sciq_task",
    description="target task: SciQ multiple choice (A-D) as a chat turn; allenai/sciq, "
    "or sciq:PATH / $CIRCUITDRIFT_SCIQ",
)  # fmt: skip
register_task(
    "sciknoweval-chem-l3", target="circuitdrift.tasks.science:sciknoweval_chem_l3_task",
    description="target task: SciKnowEval Chemistry L3 multiple choice (A-D) as a chat turn; hicai-zju/SciKnowEval, or "
    "sciknoweval-chem-l3:PATH / $CIRCUITDRIFT_SCIKNOWEVAL",
)  # fmt: skip
