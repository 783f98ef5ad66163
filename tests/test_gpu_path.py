"""The GPU path's rules, checked where no GPU is: stack sizing by device memory, one
stack at a time, the replayed training step, and running out of memory midway.

What needs a GPU itself (the graph's arithmetic, the times) is measured by
``bench/gpu.py`` on one; these tests cover the decisions around it on the CPU.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from miaudit import jobs, resources
from miaudit.data import load_dataset
from miaudit.errors import ConfigError, ModelError
from miaudit.jobs import Execution, ShadowJob, run_jobs
from miaudit.models import Recipe, classifier, torch_batched
from miaudit.models.torch_batched import (
    GPU_MAX_STACK,
    GPU_MEMORY_SHARE,
    GPU_OVERHEAD,
    _StepGraph,
    stack_size,
    train_stack,
    training_bytes,
    use_graph,
)

RECIPE = Recipe(model="mlp", epochs=2, batch_size=64, hidden=16)
CENSUS_MLP = Recipe(model="mlp")  # the default audit's: 362 -> 128 -> 46
CNN = Recipe(model="cnn")
GIB = 2**30


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize(
    ("recipe", "shape", "classes", "n_train"),
    [(CENSUS_MLP, (362,), 46, 10_000), (CNN, (1, 28, 28), 10, 10_000), (RECIPE, (64,), 10, 200)],
)
@pytest.mark.parametrize("memory_gib", [0.5, 8, 80, 141])
def test_a_gpu_stack_fits_the_share_of_memory_it_is_given(
    monkeypatch, recipe, shape, classes, n_train, memory_gib
):
    memory = int(memory_gib * GIB)
    monkeypatch.setattr(resources, "device_memory", lambda device="cpu": memory)
    per_model = int(GPU_OVERHEAD * training_bytes(recipe, shape, classes, n_train))
    limit = jobs.stack_limit(recipe, shape, classes, "cuda", n_train)
    assert 1 <= limit <= GPU_MAX_STACK
    assert limit * per_model <= GPU_MEMORY_SHARE * memory or limit == 1
    # The largest that fits, unless the cap binds: one more would not.
    if limit < GPU_MAX_STACK:
        assert (limit + 1) * per_model > GPU_MEMORY_SHARE * memory
    # Not capped at the CPU's chunk: the census MLP fills 256 on an 80 GiB card.
    if memory_gib >= 80 and recipe is CENSUS_MLP:
        assert limit == GPU_MAX_STACK
    # The user's --max-stack caps it; the CPU keeps its chunk of 8.
    assert jobs.stack_limit(recipe, shape, classes, "cuda", n_train, max_stack=3) == min(3, limit)
    monkeypatch.setattr(resources, "device_memory", lambda device="cpu": 64 * GIB)
    assert jobs.stack_limit(recipe, shape, classes, "cpu", n_train) == jobs.CHUNK


def test_stack_size_rule():
    assert stack_size(10, 1000, 0.5, 256) == 50
    assert stack_size(10, 1000, 0.5, 16) == 16
    assert stack_size(600, 1000, 0.5, 256) == 0  # not even one
    assert stack_size(0, 1000, 0.5, 4) == 4


def test_a_model_past_the_gpus_memory_is_refused_naming_the_memory(monkeypatch):
    monkeypatch.setattr(resources, "device_memory", lambda device="cpu": 4 * GIB)
    huge = Recipe(model="mlp", hidden=500_000)
    with pytest.raises(ConfigError) as err:
        jobs.stack_limit(huge, (362,), 46, "cuda", 10_000)
    assert "4.0 GiB" in str(err.value) and "hidden" in str(err.value)


def test_the_gpu_takes_one_stack_at_a_time_as_large_as_fits():
    # 256 jobs: one stack where it fits, else near-equal stacks of at most the limit.
    assert [len(c) for c in jobs._chunks(256, 256, spread=1)] == [256]
    assert [len(c) for c in jobs._chunks(256, 100, spread=1)] == [85, 86, 85]
    assert [len(c) for c in jobs._chunks(8, 256, spread=1)] == [8]
    # The CPU spreads its jobs over two cores as before.
    assert [len(c) for c in jobs._chunks(8, 8)] == [4, 4]


def test_train_models_stacks_by_device_memory_on_a_gpu(monkeypatch):
    monkeypatch.setattr(resources, "device_memory", lambda device="cpu": 80 * GIB)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert classifier.max_stack(CENSUS_MLP, (362,), 46, cuda, 10_000) == GPU_MAX_STACK
    assert classifier.max_stack(CENSUS_MLP, (362,), 46, cpu, 10_000) == torch_batched.MAX_STACK
    monkeypatch.setattr(resources, "device_memory", lambda device="cpu": GIB // 64)
    assert classifier.max_stack(CNN, (1, 28, 28), 10, cuda, 10_000) == 1


def test_graph_replay_is_chosen_for_the_mlp_on_a_gpu_only():
    assert use_graph(CENSUS_MLP, torch.device("cuda"))
    assert use_graph(CENSUS_MLP, torch.device("cuda"), 64)  # launch-bound: replayed
    assert not use_graph(CENSUS_MLP, torch.device("cuda"), 256)  # compute-bound: eager
    assert not use_graph(CENSUS_MLP, torch.device("cpu"))
    assert not use_graph(CNN, torch.device("cuda"))
    assert not use_graph(Recipe(model="mlp", optimizer="sgd"), torch.device("cuda"))
    X, y = torch.zeros(10, 4), torch.zeros(10, dtype=torch.long)
    with pytest.raises(ValueError, match="GPU"):
        train_stack(RECIPE, X, y, 2, [np.arange(10)], [0], graphs=True)


class _FakeGraph:
    """Stands in for torch.cuda.CUDAGraph: a recording notes the step and applies
    nothing; a replay runs the noted step on whatever its buffer holds then."""

    recording: _FakeGraph | None = None

    def __init__(self) -> None:
        self.recorded = None

    def replay(self) -> None:
        self.recorded()


class _FakeStream:
    def __init__(self, *a, **k) -> None:
        pass

    def wait_stream(self, other) -> None:
        pass


@contextlib.contextmanager
def _fake_capture(graph):
    _FakeGraph.recording = graph
    try:
        yield
    finally:
        _FakeGraph.recording = None


def test_the_replayed_step_trains_on_every_minibatch_once_in_order(monkeypatch):
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", _fake_capture)
    monkeypatch.setattr(torch.cuda, "Stream", _FakeStream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: _FakeStream())
    applied = []

    def step(flat: torch.Tensor) -> None:
        if _FakeGraph.recording is not None:  # recorded, not run: replays read `flat` then
            _FakeGraph.recording.recorded = lambda: applied.append(flat.tolist())
            return
        applied.append(flat.tolist())

    replay = _StepGraph(step, 3, torch.device("cpu"))
    batches = [torch.tensor([i, i + 1, i + 2]) for i in range(0, 30, 3)]
    for b in batches:
        replay(b)
    assert applied == [b.tolist() for b in batches]
    assert replay.graph is not None and replay.calls == len(batches)


def _cuda_run(monkeypatch, digits, cache, fail_on: set[int]):
    """run_jobs on "cuda", trained on the CPU underneath; stacks listed in ``fail_on``
    (by the order they start) run out of GPU memory."""
    monkeypatch.setattr(resources, "device_memory", lambda device="cpu": 80 * GIB)
    monkeypatch.setattr(resources, "gpu_memory_now", lambda device: (1 * GIB, 80 * GIB, 79 * GIB))
    real, started = classifier.train_models, []

    def train(recipe, X, y, n_classes, sets, seeds, *, device="cpu", **kw):
        started.append(len(sets))
        if len(started) in fail_on:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(recipe, X, y, n_classes, sets, seeds, device="cpu", **kw)

    monkeypatch.setattr(classifier, "train_models", train)
    rng = np.random.default_rng(0)
    job_list = [
        ShadowJob(np.sort(rng.choice(1797, 200, replace=False)), 100 + k, np.arange(50))
        for k in range(6)
    ]
    outputs, facts = run_jobs(
        RECIPE, digits.X, digits.y, 10, job_list, device="cuda",
        execution=Execution(job_cache=cache, max_stack=2),
    )  # fmt: skip
    return outputs, facts, started


def test_running_out_of_gpu_memory_midway_names_the_setting_and_keeps_finished_stacks(
    monkeypatch, digits, tmp_path
):
    with pytest.raises(ModelError) as err:
        _cuda_run(monkeypatch, digits, tmp_path, fail_on={2})
    message = str(err.value)
    assert "\n" not in message
    assert "out of memory" in message and "--max-stack" in message
    assert "79.0 GiB" in message and "1.0 of 80.0 GiB free" in message
    # The stack finished before the failure is in the cache: only the rest train now.
    outputs, facts, started = _cuda_run(monkeypatch, digits, tmp_path, fail_on=set())
    assert facts == {"trained": 4, "from_cache": 2, "corrupt": 0}
    assert started == [2, 2] and len(outputs) == 6


def test_max_stack_is_validated():
    with pytest.raises(ConfigError, match="--max-stack 0"):
        Execution(max_stack=0)


@pytest.mark.parametrize(("device", "workers"), [("cuda", 1), ("cpu", 4)])
def test_a_local_dask_cluster_on_a_gpu_has_one_worker(monkeypatch, digits, device, workers):
    import dask.distributed

    started = {}

    class Stop(Exception):
        pass

    def cluster(**kwargs):
        started.update(kwargs)
        raise Stop

    monkeypatch.setattr(dask.distributed, "LocalCluster", cluster)
    job = ShadowJob(np.arange(100), 0, np.arange(10))
    with pytest.raises(Stop):
        jobs._run_dask(
            jobs.as_family(RECIPE), digits.X, digits.y, 10, [job], [[0]], None, device,
            Execution(executor="dask", workers=4), None, None,
        )  # fmt: skip
    assert started["n_workers"] == workers


def test_a_gpu_that_is_not_there_is_one_line(monkeypatch, capsys, tmp_path):
    from miaudit.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main([
        "audit", "--dataset", "digits", "--shadows", "2", "--device", "cuda",
        "--no-job-cache", "--out", str(tmp_path / "out"),
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("miaudit: error:")]
    assert "no CUDA GPU is available" in line


def test_stacks_for_a_dask_cluster_are_sized_to_its_smallest_workers_gpu(monkeypatch, digits):
    # This machine's GPU is large; the cluster's smallest is not: the chunks sent to
    # the workers are sized to theirs.
    monkeypatch.setattr(resources, "device_memory", lambda device="cpu": 80 * GIB)
    asked = []

    def workers(scheduler, device):
        asked.append((scheduler, device))
        return GIB // 32

    sent = []

    def run_dask(family, X, y, n_classes, job_list, todo, *rest):
        sent.extend(len(c) for c in todo)

    monkeypatch.setattr(jobs, "workers_memory", workers)
    monkeypatch.setattr(jobs, "_run_dask", run_dask)
    job_list = [ShadowJob(np.arange(1000), k, np.arange(10)) for k in range(64)]
    execution = Execution(job_cache=False, executor="dask", scheduler="tcp://10.0.0.1:8786")
    run_jobs(CENSUS_MLP, digits.X, digits.y, 10, job_list, device="cuda", execution=execution)
    assert asked == [("tcp://10.0.0.1:8786", "cuda")]
    limit = jobs.stack_limit(CENSUS_MLP, (64,), 10, "cuda", 1000, None, GIB // 32)
    assert 1 < limit < jobs.stack_limit(CENSUS_MLP, (64,), 10, "cuda", 1000) == GPU_MAX_STACK
    assert max(sent) <= limit and sum(sent) == 64
    # A local cluster trains on this machine's GPU: nothing to ask.
    asked.clear()
    sent.clear()
    run_jobs(CENSUS_MLP, digits.X, digits.y, 10, job_list, device="cuda",
             execution=Execution(job_cache=False, executor="dask"))  # fmt: skip
    assert asked == [] and sent == [64]


def test_a_dask_clusters_memory_is_asked_of_its_workers():
    from dask.distributed import LocalCluster

    # In-process workers: the question still travels through the scheduler to each.
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    )
    try:
        address = cluster.scheduler_address
        assert jobs.workers_memory(address, "cpu") == resources.device_memory("cpu")
        if not torch.cuda.is_available():
            with pytest.raises(ConfigError) as err:
                jobs.workers_memory(address, "cuda")
            message = str(err.value)
            assert "\n" not in message and message.startswith("Dask worker ")
            assert "no CUDA GPU is available" in message
    finally:
        cluster.close()
