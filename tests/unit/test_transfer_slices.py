"""Alpaca's input column, disjoint slices of one prompt source, and the behaviour prompts kept out of the vector."""

from __future__ import annotations

import json

import pytest

from circuitdrift.errors import InputError
from circuitdrift.tasks.prompt_sets import resolve_prompts
from circuitdrift.transfer.config import parse_transfer_config
from circuitdrift.transfer.slices import check_disjoint, positive_prompts, probe_prompts, source_prompts

TEMPLATE = "{instruction}\n\n{input}"


@pytest.fixture
def alpaca(tmp_path):
    """Alpaca-shaped rows: every third has an input; 40 rows."""
    rows = [{"instruction": f"Task {i}.", "input": f"data {i}" if i % 3 == 0 else "", "output": "x"}
            for i in range(40)]
    path = tmp_path / "alpaca.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    harmful = [f"Harm {i}." for i in range(30)]
    (tmp_path / "advbench.txt").write_text("\n".join(harmful) + "\n")
    (tmp_path / "jbb.txt").write_text("\n".join(["harm 3", "Harm 7.", "Other 1.", "Other 2."]) + "\n")
    return tmp_path


def test_a_column_template_appends_the_input(alpaca):
    prompts = resolve_prompts(str(alpaca / "alpaca.jsonl"), 4, column=TEMPLATE)
    assert prompts == ["Task 0.\n\ndata 0", "Task 1.", "Task 2.", "Task 3.\n\ndata 3"]
    assert resolve_prompts(str(alpaca / "alpaca.jsonl"), 2, column="instruction") == ["Task 0.", "Task 1."]
    with pytest.raises(InputError, match="column template .* names no column 'context'"):
        resolve_prompts(str(alpaca / "alpaca.jsonl"), 2, column="{instruction} {context}")


def _config(root, **overrides):
    data = {
        "steering": {"positive": str(root / "advbench.txt"), "negative": str(root / "alpaca.jsonl"), "n": 8,
                     "negative_column": TEMPLATE},
        "teacher_data": {"prompts": str(root / "alpaca.jsonl"), "column": TEMPLATE, "skip": 8, "n": 20},
        "behaviour": {"prompts": str(root / "jbb.txt"), "n": 4},
    }
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value}
    return parse_transfer_config(data)


def test_slices_and_the_default_probes_are_disjoint(alpaca):
    config = _config(alpaca)
    check_disjoint(config)
    assert source_prompts(config.teacher_data)[0] == "Task 8." and len(source_prompts(config.teacher_data)) == 20
    assert probe_prompts(config) == [f"Task {i}." + (f"\n\ndata {i}" if i % 3 == 0 else "") for i in range(28, 40)]


def test_an_overlap_is_one_clear_error(alpaca):
    with pytest.raises(InputError, match=r"steering.negative and teacher_data share 4 prompt\(s\) .*skip, n"):
        check_disjoint(_config(alpaca, teacher_data={"skip": 4}))
    probes = {"probes": {"prompts": str(alpaca / "alpaca.jsonl"), "column": TEMPLATE, "skip": 20, "n": 10}}
    with pytest.raises(InputError, match=r"teacher_data and mechanism.probes share 8 prompt\(s\)"):
        check_disjoint(_config(alpaca, mechanism=probes))
    with pytest.raises(InputError, match="reads every prompt"):
        probe_prompts(_config(alpaca, teacher_data={"n": None}))


def test_behaviour_prompts_are_left_out_of_the_steering_vector(alpaca):
    positive = positive_prompts(_config(alpaca))
    assert len(positive) == 8 and "Harm 3." not in positive and "Harm 7." not in positive
    assert positive == [f"Harm {i}." for i in (0, 1, 2, 4, 5, 6, 8, 9)]
