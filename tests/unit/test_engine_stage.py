"""cached_stage: fresh items are read back and never recomputed; resumable items are started and finished."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from circuitdrift.engine.progress import Reporter
from circuitdrift.engine.stage import Item, cached_stage
from circuitdrift.engine.store import RunStore


@dataclass(frozen=True)
class Square:
    n: int

    @property
    def label(self) -> str:
        return f"n {self.n}"


def square(job: Square) -> int:
    return job.n * job.n


def context(tmp_path):
    return SimpleNamespace(store=RunStore(tmp_path / "run"), reporter=Reporter(quiet=True), jobs=1,
                           config=SimpleNamespace(threads=1))


def items(keys: dict[int, str]) -> list[Item]:
    return [Item(n, f"n {n}", key, (f"out/{n}.json",)) for n, key in keys.items()]


def test_only_stale_items_are_computed_and_values_come_back_by_name(tmp_path):
    ctx = context(tmp_path)
    made = []

    def save(item, value):
        made.append(item.name)
        ctx.store.write_json(item.rels[0], value, item.key)
        return value

    run = dict(worker=square, job=lambda item: Square(item.name), save=save,
               load=lambda item: ctx.store.read_json(item.rels[0]))
    assert cached_stage(ctx, "squares", items({2: "a", 3: "a"}), **run) == {2: 4, 3: 9}
    assert made == [2, 3]
    values = cached_stage(ctx, "squares", items({2: "a", 3: "b"}), **run)  # 3's inputs changed
    assert made == [2, 3, 3] and values == {2: 4, 3: 9}
    assert ctx.store.key("out/3.json") == "b"


def test_in_process_compute_and_the_jobs_order(tmp_path):
    ctx = context(tmp_path)
    seen = []

    def runner(fn, jobs):
        seen.extend(job.n for job in jobs)
        for job in jobs:
            yield job, fn(job), 0.0

    cached_stage(ctx, "ordered", items({1: "k", 2: "k", 3: "k"}), worker=square, job=lambda item: Square(item.name),
                 runner=runner, order=lambda job: -job.n, save=lambda item, v: None)
    assert seen == [3, 2, 1]
    values = cached_stage(ctx, "here", items({5: "k"}), compute=lambda item: item.name + 1,
                          save=lambda item, v: ctx.store.write_json(item.rels[0], v, item.key) and v)
    assert values == {5: 6} and ctx.store.read_json("out/5.json") == 6
    with pytest.raises(ValueError, match="compute, or worker and job"):
        cached_stage(ctx, "neither", items({1: "k"}))


def test_a_resumable_item_is_begun_before_its_job_and_marked_after(tmp_path):
    ctx = context(tmp_path)
    folder = ctx.store.path("train/a")
    folder.mkdir(parents=True)
    (folder / "stale.txt").write_text("other settings")
    ctx.store.begin("train/a", "old")
    states = []

    def train(job: Square) -> None:
        states.append(ctx.store.key("train/a"))
        assert not (folder / "stale.txt").exists()  # started under another key: removed first
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "weights.txt").write_text(str(job.n))

    def runner(fn, jobs):
        for job in jobs:
            yield job, fn(job), 0.0

    item = Item("a", "a", "new", ("train/a",))
    cached_stage(ctx, "training", [item], worker=train, job=lambda item: Square(7), runner=runner, resumable=True)
    assert states == ["new"] and ctx.store.fresh("train/a", "new")
    cached_stage(ctx, "training", [item], worker=train, job=lambda item: Square(7), runner=runner, resumable=True)
    assert states == ["new"]  # fresh: not trained again
