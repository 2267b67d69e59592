"""CPU workers forked from a preloaded fork server: the same results as spawned ones and as the parent's own, the
run's environment at each pool, one torch thread, and no worker left behind when the run is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from circuitdrift.engine.pool import JobPlan, run_all


def seeded_product(seed: int) -> tuple[float, int, str | None, int]:
    """A torch computation, this worker's pid, an environment variable and its torch thread count."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(64, 64, generator=generator)
    return float((a @ a).sum()), os.getpid(), os.environ.get("CIRCUITDRIFT_TEST_MARK"), torch.get_num_threads()


@pytest.mark.parametrize("start", ["forkserver", "spawn"])
def test_forked_and_spawned_workers_compute_what_the_parent_does(start, monkeypatch):
    here = [seeded_product(seed)[0] for seed in range(4)]
    monkeypatch.setenv("CIRCUITDRIFT_TEST_MARK", "first")
    first = {item: result for item, result, _ in run_all(seeded_product, list(range(4)), JobPlan(2, start=start))}
    assert [first[seed][0] for seed in range(4)] == here
    assert {r[2] for r in first.values()} == {"first"} and {r[3] for r in first.values()} == {1}
    assert os.getpid() not in {r[1] for r in first.values()}
    if start == "spawn":
        return  # a spawned worker is a new process of the parent's environment, whenever it starts
    # a later pool sees the environment as it is now, not as it was when the fork server started
    monkeypatch.setenv("CIRCUITDRIFT_TEST_MARK", "second")
    second = [result for _, result, _ in run_all(seeded_product, list(range(2)), JobPlan(2, start=start))]
    assert {r[2] for r in second} == {"second"}


def parent_of_worker(_item) -> tuple[int, int]:
    return os.getpid(), os.getppid()


def test_every_pool_forks_from_one_fork_server():
    """The point of the fork server: it imports once, and every later pool of the run forks from it."""
    pools = [[r for _, r, _ in run_all(parent_of_worker, [0, 1, 2], JobPlan(2, start="forkserver"))]
             for _ in range(2)]
    parents = {parent for pool in pools for _, parent in pool}
    workers = [{pid for pid, _ in pool} for pool in pools]
    assert len(parents) == 1 and os.getpid() not in parents  # one server, not this process
    assert not workers[0] & workers[1]  # new workers for the second pool, forked from the same server


def test_killing_the_run_kills_its_forked_workers(tmp_path):
    pids = tmp_path / "pids"
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import os, time
        from circuitdrift.engine.pool import JobPlan, run_all

        def sleeper(i):
            with open({str(pids)!r}, "a") as f:
                f.write(f"{{os.getpid()}}\\n")
            time.sleep(300)

        if __name__ == "__main__":
            list(run_all(sleeper, [0, 1], JobPlan(2, start="forkserver")))
    """))
    run = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while (not pids.exists() or len(pids.read_text().split()) < 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = [int(p) for p in pids.read_text().split()]
        assert len(workers) == 2 and run.pid not in workers
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    deadline = time.monotonic() + 30
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [p for p in workers if _running(p)]
        time.sleep(0.1)
    assert not alive, f"workers {alive} outlived the killed run"


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_start_early_starts_the_server_the_first_pool_then_uses(tmp_path):
    """start_early: the fork server runs before any pool (so it imports while the run works), and the first pool
    forks from it; a spawned or single-worker plan starts nothing."""
    script = tmp_path / "early.py"
    script.write_text(textwrap.dedent("""
        import json, os
        from circuitdrift.engine.pool import JobPlan, run_all, start_early
        from tests.unit.test_forkserver_workers import parent_of_worker

        def servers():
            out = []
            for child in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open(f"/proc/{child}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                    with open(f"/proc/{child}/cmdline", "rb") as f:
                        cmdline = f.read()
                except (OSError, ValueError, IndexError):
                    continue
                if ppid == os.getpid() and b"forkserver" in cmdline:
                    out.append(int(child))
            return out

        if __name__ == "__main__":
            start_early(JobPlan(2), parent_of_worker)  # spawn: nothing
            start_early(JobPlan(1, start="forkserver"), parent_of_worker)  # no workers: nothing
            before = servers()
            start_early(JobPlan(2, start="forkserver"), parent_of_worker)
            started = servers()
            pool = [r for _, r, _ in run_all(parent_of_worker, [0, 1], JobPlan(2, start="forkserver"))]
            print(json.dumps({"before": before, "started": started, "parents": sorted({p for _, p in pool})}))
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["before"] == []
    assert len(found["started"]) == 1 and found["parents"] == found["started"]
