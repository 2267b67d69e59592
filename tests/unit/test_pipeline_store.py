"""The run store: keyed freshness, tamper detection, path containment, atomic writes."""

from __future__ import annotations

import pytest

from circuitdrift.engine.store import RunStore, key_of
from circuitdrift.errors import InputError


def test_fresh_only_with_same_key_and_content(tmp_path):
    store = RunStore(tmp_path / "run")
    store.write_json("a/b.json", {"x": 1}, key="k1")
    assert store.fresh("a/b.json", "k1")
    assert not store.fresh("a/b.json", "k2")  # a changed setting
    path = store.path("a/b.json")
    path.write_text(path.read_text().replace("1", "2"))  # hand-edited
    assert not store.fresh("a/b.json", "k1")
    store.write_json("a/b.json", {"x": 1}, key="k1")
    path.write_text(path.read_text()[:5])  # truncated
    assert not store.fresh("a/b.json", "k1")
    assert RunStore(tmp_path / "run").key("a/b.json") == "k1"  # the manifest persists


def test_folders_are_hashed_and_begin_is_not_fresh(tmp_path):
    store = RunStore(tmp_path)
    folder = store.path("train/sft")
    folder.mkdir(parents=True)
    (folder / "w.bin").write_bytes(b"abc")
    store.begin("train/sft", "k")
    assert not store.fresh("train/sft", "k") and store.key("train/sft") == "k"
    store.mark("train/sft", "k")
    assert store.fresh("train/sft", "k")
    (folder / "w.bin").write_bytes(b"abd")
    assert not store.fresh("train/sft", "k")
    store.remove("train/sft")
    assert not folder.exists() and store.key("train/sft") is None


def test_paths_cannot_leave_the_run_folder(tmp_path):
    store = RunStore(tmp_path / "run")
    with pytest.raises(InputError, match="would leave the run folder"):
        store.path("..", "outside.json")
    with pytest.raises(InputError, match="would leave the run folder"):
        store.write_json("/etc/passwd", {}, key="k")
    assert not (tmp_path / "outside.json").exists()


def test_unwritable_output_is_an_input_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="--out"):
        RunStore(blocker / "run")


def test_damaged_manifest_costs_only_recomputation(tmp_path):
    store = RunStore(tmp_path)
    store.write_json("x.json", [1], key="k")
    (tmp_path / "state.json").write_text("{broken")
    again = RunStore(tmp_path)
    assert not again.fresh("x.json", "k")


def test_keys_are_stable_and_order_free():
    assert key_of({"a": 1, "b": 2}) == key_of({"b": 2, "a": 1})
    assert key_of(1, 2) != key_of(2, 1)


def test_no_temporary_files_left_behind(tmp_path):
    store = RunStore(tmp_path)
    store.write_text("r.md", "hello", key="k")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.md", "state.json"]
