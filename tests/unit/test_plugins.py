"""Plug-ins fill the model and task registries; the organism is one, and its import circle is gone."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from circuitdrift import plugins
from circuitdrift.errors import InputError
from circuitdrift.models import registry as models_registry
from circuitdrift.models.load import resolve_model_path
from circuitdrift.organism.paths import organism_dir
from circuitdrift.organism.plugin import PROBES
from circuitdrift.organism.tokenizer import organism_tokenizer
from circuitdrift.tasks import registry as tasks_registry
from circuitdrift.tasks.registry import builtin_tasks, default_probes, resolve_task
from circuitdrift.tasks.table import REAL_PROBES


def test_the_organism_registers_its_model_tasks_and_probes():
    assert "organism" in models_registry.builtin_models()
    assert models_registry.builtin_model_dir("organism") == organism_dir()
    assert resolve_model_path("organism") == str(organism_dir())
    assert {"ioi", "greater-than", "induction", "factual", "science-qa", "science-name"} <= set(builtin_tasks())
    assert resolve_task("science-qa", n=3).name == "science-qa"
    assert default_probes(organism_tokenizer()) == PROBES
    assert default_probes(None) == REAL_PROBES


def test_unknown_or_unbuilt_builtin_model_is_one_line_input_error(monkeypatch, tmp_path):
    with pytest.raises(InputError, match="not a built-in model .*organism"):
        models_registry.builtin_model_dir("no-such-model")
    monkeypatch.setitem(models_registry.BUILTIN_MODELS, "empty", models_registry.BuiltinModel(
        folder=lambda: tmp_path, missing_hint="build it first"))
    with pytest.raises(InputError, match="weights are missing .*build it first"):
        resolve_model_path("empty")


def test_a_registered_probe_set_wins_for_the_tokenizers_it_fits(monkeypatch, word_tokenizer):
    monkeypatch.setattr(tasks_registry, "PROBE_SETS", [*tasks_registry.PROBE_SETS])
    assert default_probes(word_tokenizer) == REAL_PROBES
    tasks_registry.register_probe_set(("hf-ioi",), fits=lambda tokenizer: tokenizer is word_tokenizer)
    assert default_probes(word_tokenizer) == ("hf-ioi",)
    assert default_probes(organism_tokenizer()) == PROBES


def test_entry_point_plugins_are_loaded_once(monkeypatch):
    loaded = []

    class Entry:
        def load(self):
            loaded.append(True)

    monkeypatch.setattr(plugins, "_loaded", False)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [Entry()] if group == "circuitdrift.plugins" else [])
    plugins.load_plugins()
    plugins.load_plugins()
    assert loaded == [True]


def test_the_tokenizer_imports_no_module_that_uses_it():
    """The organism's import circle is broken: tokenizer.py needs only the leaf texts and the world."""
    code = ("import json, sys, circuitdrift.organism.tokenizer; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('circuitdrift.organism.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == ["circuitdrift.organism.texts", "circuitdrift.organism.tokenizer",
                             "circuitdrift.organism.world"]
