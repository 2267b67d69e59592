"""The device decides the number of worker processes: one per GPU on CUDA, one per core on CPU, --jobs overrides.

The CUDA cases mock torch's device count: before the rule, a 16-core GPU machine got 16 workers, each loading
its own copy of the model onto one GPU.
"""

import os

import pytest
import torch

from circuitdrift.engine.pool import JobPlan, default_jobs, job_plan, run_all


@pytest.fixture
def four_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_cuda_gets_one_worker_per_gpu(four_gpus):
    for device in ("cuda", "auto"):
        plan = job_plan(device)
        assert (plan.jobs, plan.gpus) == (4, ("0", "1", "2", "3"))


def test_cuda_workers_use_the_gpus_the_parent_was_given(four_gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7,5,3,1")
    assert job_plan("cuda").gpus == ("7", "5", "3", "1")


def test_one_chosen_gpu_or_a_spread_model_gets_one_worker(four_gpus):
    assert job_plan("cuda:2") == JobPlan(1, (), job_plan("cuda:2").reason)
    assert job_plan("cuda:2", 2).start == job_plan("cuda", 2).start == "spawn"
    assert job_plan("auto-map").jobs == 1


def test_cpu_gets_one_worker_per_core(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert job_plan("cpu") == JobPlan(default_jobs(), (), "device cpu: one worker per core", start="forkserver")
    assert job_plan("auto").jobs == default_jobs()
    assert job_plan("cpu", 3).start == "forkserver"  # --jobs keeps how CPU workers start


def test_jobs_overrides_the_count_and_keeps_the_gpus(four_gpus):
    plan = job_plan("cuda", 2)
    assert (plan.jobs, plan.gpus) == (2, ("0", "1", "2", "3"))
    assert plan.reason.startswith("--jobs 2")
    assert plan.start == "spawn"  # never forked where CUDA may have been initialised
    assert job_plan("cpu", 3).jobs == 3


def visible_device(_item):
    return os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES")


def test_each_worker_process_sees_its_own_gpu():
    """Two workers, two "GPUs": every worker process has one id, and no two workers share one (no CUDA needed)."""
    results = [r for _, r, _ in run_all(visible_device, list(range(6)), JobPlan(2, ("0", "1")))]
    by_pid = {}
    for pid, gpu in results:
        by_pid.setdefault(pid, set()).add(gpu)
    assert all(len(gpus) == 1 for gpus in by_pid.values())
    seen = [next(iter(g)) for g in by_pid.values()]
    assert len(seen) == len(set(seen)) and set(seen) <= {"0", "1"}


def test_environment_json_records_the_plan():
    from circuitdrift.pipeline.config import parse_config
    from circuitdrift.pipeline.run import environment

    config = parse_config({"base_model": "organism", "target_task": "science-qa", "probes": ["ioi"]})
    plan = JobPlan(4, ("0", "1", "2", "3"), "device cuda: one worker per GPU (4)")
    assert environment(config, plan)["jobs"] == {"jobs": 4, "gpus": ["0", "1", "2", "3"],
                                                 "reason": "device cuda: one worker per GPU (4)", "start": "spawn"}
