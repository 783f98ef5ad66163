"""Shadow training jobs: the cache invalidates honestly, resumes exactly, and runs on Dask."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import miaudit
from miaudit.cli import main
from miaudit.data import load_dataset
from miaudit.errors import ConfigError
from miaudit.jobs import Execution, JobCache, ShadowJob, run_jobs
from miaudit.models import Recipe, classifier

RECIPE = Recipe(model="mlp", epochs=2, batch_size=64, hidden=16)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _jobs(n=3, size=200, seed=0):
    rng = np.random.default_rng(seed)
    return [
        ShadowJob(np.sort(rng.choice(1797, size, replace=False)), 100 + k, np.arange(50))
        for k in range(n)
    ]


def _run(digits, jobs, cache, **kw):
    kw.setdefault("recipe", RECIPE)
    recipe = kw.pop("recipe")
    X, y = kw.pop("X", digits.X), kw.pop("y", digits.y)
    return run_jobs(recipe, X, y, 10, jobs, execution=Execution(job_cache=cache), **kw)


def test_second_identical_run_trains_nothing_and_gives_the_same_bytes(digits, tmp_path):
    first, facts1 = _run(digits, _jobs(), tmp_path)
    second, facts2 = _run(digits, _jobs(), tmp_path)
    assert facts1 == {"trained": 3, "from_cache": 0, "corrupt": 0}
    assert facts2 == {"trained": 0, "from_cache": 3, "corrupt": 0}
    for a, b in zip(first, second, strict=True):
        assert a.dtype == np.float32 and np.array_equal(a, b)


@pytest.mark.parametrize(
    "change",
    ["data", "recipe", "train", "query", "seed", "extra", "partner", "versions", "classes"],
)
def test_each_ingredient_of_the_key_invalidates(digits, tmp_path, monkeypatch, change):
    jobs = _jobs()
    _run(digits, jobs, tmp_path, extra=digits.X[:5])
    kw = {"extra": digits.X[:5]}
    if change == "data":
        X = digits.X.copy()
        X[7, 3] += 1.0
        kw["X"] = X
    elif change == "recipe":
        kw["recipe"] = RECIPE.model_copy(update={"lr": RECIPE.lr * 2})
    elif change == "train":
        jobs[1] = ShadowJob(np.sort(np.r_[jobs[1].train[1:], 1796]), jobs[1].seed, jobs[1].query)
    elif change == "query":
        jobs[1] = ShadowJob(jobs[1].train, jobs[1].seed, np.arange(51))
    elif change == "seed":
        jobs[1] = ShadowJob(jobs[1].train, 999, jobs[1].query)
    elif change == "extra":
        kw["extra"] = digits.X[1:6]
    elif change == "partner":
        jobs = jobs[:2]  # the stack the first two trained in changes
    elif change == "versions":
        from miaudit import jobs as module

        real = module.library_versions
        monkeypatch.setattr(module, "library_versions", lambda: {**real(), "torch": "9.9"})
    elif change == "classes":
        _, facts = run_jobs(
            RECIPE, digits.X, digits.y, 11, jobs, extra=digits.X[:5],
            execution=Execution(job_cache=tmp_path),
        )  # fmt: skip
        assert facts["trained"] == 3
        return
    _, facts = _run(digits, jobs, tmp_path, **kw)
    assert facts["trained"] > 0, change


def test_corrupt_entries_are_never_read(digits, tmp_path):
    first, _ = _run(digits, _jobs(), tmp_path)
    entries = sorted(tmp_path.glob("*/*.npz"))
    entries[0].write_bytes(entries[0].read_bytes()[:-20])  # truncated behind our back
    check = sorted(tmp_path.glob("*/*.sha256"))[1]
    check.write_text("0" * 64)  # and a checksum edited
    again, facts = _run(digits, _jobs(), tmp_path)
    assert facts["corrupt"] == 2 and facts["trained"] == 3  # one chunk: retrained whole
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a, b)
    assert JobCache(tmp_path).info()["entries"] == 3


def test_a_full_disk_is_one_clear_error(digits, tmp_path, monkeypatch):
    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(ConfigError, match=r"No space left on device.*--no-job-cache"):
        _run(digits, _jobs(1), tmp_path)


FAST = {"target_size": 150, "shadows": 5, "target": {"epochs": 5}, "seed": 9}


def _results(folder):
    d = json.loads((folder / "results.json").read_text())
    d.pop("timings_s"), d.pop("run_id")
    return d


def test_killed_audit_resumes_to_the_same_result(tmp_path, monkeypatch):
    from miaudit import jobs

    # Chunks of 2 in every run: the kill lands between chunks, and both runs stack
    # the same models together.
    monkeypatch.setattr(jobs, "CHUNK", 2)
    # The uninterrupted run, with its own cache.
    miaudit.audit(
        dataset="digits", out=tmp_path / "whole",
        execution=Execution(job_cache=tmp_path / "cache-a"), **FAST,
    )  # fmt: skip
    # The same audit, killed with SIGKILL while its second chunk of shadows trains.
    script = textwrap.dedent(
        f"""
        import os, signal
        import miaudit, miaudit.jobs as jobs, miaudit.models.classifier as classifier
        from miaudit.jobs import Execution
        jobs.CHUNK = 2
        real, calls = classifier.train_models, []
        def train(*a, **k):
            calls.append(1)
            if len(calls) == 3:  # the target, the first chunk, then killed
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*a, **k)
        classifier.train_models = train
        # One worker: the chunks train in order, so the first is cached at the kill.
        miaudit.audit(dataset="digits", out={str(tmp_path / "never")!r},
                      execution=Execution(job_cache={str(tmp_path / "cache-b")!r}, workers=1),
                      **{FAST!r})
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()
    assert not (tmp_path / "never").exists()
    assert JobCache(tmp_path / "cache-b").info()["entries"] == 2  # the first chunk
    # Rerun the same command: only the rest is trained.
    resumed = miaudit.audit(
        dataset="digits", out=tmp_path / "resumed",
        execution=Execution(job_cache=tmp_path / "cache-b"), **FAST,
    )  # fmt: skip
    assert resumed.execution["jobs"] == {"trained": 3, "from_cache": 2, "corrupt": 0}
    # The same results.json, apart from timings, as the uninterrupted run.
    assert _results(tmp_path / "resumed") == _results(tmp_path / "whole")


@pytest.mark.slow
def test_dask_local_cluster_gives_the_local_result(tmp_path):
    local = miaudit.audit(
        dataset="digits", execution=Execution(job_cache=False), attacks=["shokri", "lira"], **FAST
    )
    dask = miaudit.audit(
        dataset="digits",
        execution=Execution(job_cache=tmp_path, executor="dask", workers=2),
        attacks=["shokri", "lira"],
        **FAST,
    )
    assert dask.execution["jobs"]["trained"] == 5
    for name in local.scores:
        np.testing.assert_array_equal(dask.scores[name], local.scores[name])


def test_unreachable_scheduler_and_bad_execution(capsys):
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler"):
        miaudit.audit(
            dataset="digits",
            execution=Execution(job_cache=False, executor="dask", scheduler="tcp://127.0.0.1:9"),
            **FAST,
        )
    with pytest.raises(ConfigError, match="--scheduler needs --executor dask"):
        Execution(scheduler="tcp://x:1")
    code = main(["audit", "--dataset", "digits", "--executor", "spark"])
    assert code == 2 and "use local or dask" in capsys.readouterr().err


def test_cache_info_and_clear(digits, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MIAUDIT_JOB_CACHE", str(tmp_path / "jobs"))
    _run(digits, _jobs(2), tmp_path / "jobs")
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert "jobs" in out and "4 files" in out
    assert main(["cache", "clear"]) == 0
    assert "cleared jobs: 4 files" in capsys.readouterr().out
    # Emptied, and still marked as miaudit's own.
    assert [p.name for p in (tmp_path / "jobs").iterdir()] == [".miaudit-cache"]
    assert main(["cache", "clear", "nope"]) == 2


def test_an_identical_second_audit_trains_nothing(tmp_path, monkeypatch):
    execution = Execution(job_cache=tmp_path)
    first = miaudit.audit(dataset="digits", execution=execution, out=tmp_path / "a", **FAST)
    assert first.execution["jobs"]["trained"] == 5

    def refuse(*a, **k):
        raise AssertionError("trained a model that the job cache holds")

    monkeypatch.setattr("miaudit.models.classifier.train_models", refuse)
    monkeypatch.setattr("miaudit.attacks.shokri.ShokriAttack.fit", refuse)
    second = miaudit.audit(dataset="digits", execution=execution, out=tmp_path / "b", **FAST)
    assert second.execution["jobs"] == {"trained": 0, "from_cache": 5, "corrupt": 0}
    assert _results(tmp_path / "a") == _results(tmp_path / "b")
    # A corrupt target entry is dropped and trained again, never loaded.
    weights = next((tmp_path / "models").glob("*/weights.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    monkeypatch.undo()
    third = miaudit.audit(dataset="digits", execution=execution, out=tmp_path / "c", **FAST)
    assert third.execution["jobs"]["trained"] == 0
    assert _results(tmp_path / "c") == _results(tmp_path / "a")


@pytest.mark.slow
def test_a_worker_killed_mid_job_has_its_chunk_rerun(tmp_path, monkeypatch):
    import os
    import signal
    import threading
    import time as time_module

    from dask.distributed import Client, LocalCluster

    from miaudit import jobs

    settings = {**FAST, "shadows": 4, "target": {"epochs": 60}}
    monkeypatch.setattr(jobs, "CHUNK", 2)  # two chunks, one per worker, in both runs
    reference = miaudit.audit(dataset="digits", execution=Execution(job_cache=False), **settings)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
    client = Client(cluster)
    try:
        pids = list(client.run(os.getpid).values())
        killed = []

        def kill_one():
            # Wait until both workers are busy training, then kill one of them.
            deadline = time_module.monotonic() + 60
            while time_module.monotonic() < deadline:
                if sum(len(v) for v in client.processing().values()) >= 2:
                    time_module.sleep(0.5)
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
                    return
                time_module.sleep(0.05)

        thread = threading.Thread(target=kill_one)
        thread.start()
        result = miaudit.audit(
            dataset="digits",
            execution=Execution(
                job_cache=tmp_path, executor="dask", scheduler=cluster.scheduler_address
            ),
            **settings,
        )
        thread.join()
    finally:
        client.close()
        cluster.close()
    assert killed, "no worker was killed: the test did not exercise anything"
    assert result.execution["jobs"]["trained"] == 4
    for name in reference.scores:
        np.testing.assert_array_equal(result.scores[name], reference.scores[name])


def test_progress_moves_per_epoch_and_counts_cached_jobs_as_done(digits, tmp_path):
    calls = []
    _run(digits, _jobs(3), tmp_path, progress=lambda d, t: calls.append((d, t)))
    # 3 networks x 2 epochs, reported as they train, never going back.
    assert calls[-1] == (6, 6) and len(calls) > 3
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(calls))
    calls.clear()
    _run(digits, _jobs(3), tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(6, 6)]


def test_chunks_on_threads_give_the_bytes_of_one_after_another(digits, monkeypatch):
    from miaudit import jobs

    monkeypatch.setattr(jobs, "CHUNK", 2)  # 5 jobs: chunks of 2, 1 and 2
    calls = []
    one = run_jobs(RECIPE, digits.X, digits.y, 10, _jobs(5), execution=Execution(False, workers=1))
    two = run_jobs(
        RECIPE, digits.X, digits.y, 10, _jobs(5),
        execution=Execution(False, workers=2), progress=lambda d, t: calls.append((d, t)),
    )  # fmt: skip
    assert one[1] == two[1] == {"trained": 5, "from_cache": 0, "corrupt": 0}
    for a, b in zip(one[0], two[0], strict=True):
        assert np.array_equal(a, b)
    # Progress from both threads adds up, ends at the total, never goes back.
    assert calls[-1] == (10, 10) and all(a[0] <= b[0] for a, b in itertools.pairwise(calls))


def test_a_failing_chunk_stops_the_other_threads(digits, monkeypatch):
    from miaudit import jobs

    monkeypatch.setattr(jobs, "CHUNK", 1)
    real, started = classifier.train_models, []

    def train(*a, **k):
        started.append(1)
        if len(started) == 1:
            raise RuntimeError("boom")
        return real(*a, **k)

    monkeypatch.setattr(classifier, "train_models", train)
    with pytest.raises(RuntimeError, match="boom"):
        run_jobs(RECIPE, digits.X, digits.y, 10, _jobs(6), execution=Execution(False, workers=2))
    # The pool was shut down: chunks not yet started never started.
    assert len(started) < 6


def test_kept_models_give_the_outputs_and_come_back_from_the_cache(digits, tmp_path, monkeypatch):
    from miaudit.models import load_model

    jobs_ = _jobs(3)
    plain, _ = _run(digits, jobs_, tmp_path / "cache")
    # Outputs cached without their models: with --keep-models the jobs train again.
    keep = Execution(job_cache=tmp_path / "cache", keep_models=tmp_path / "kept")
    outputs, facts = run_jobs(RECIPE, digits.X, digits.y, 10, jobs_, execution=keep)
    assert facts == {"trained": 3, "from_cache": 0, "corrupt": 0}
    for k, job in enumerate(jobs_):
        assert np.array_equal(outputs[k], plain[k])
        model = load_model(tmp_path / "kept" / f"{k:03d}")
        np.testing.assert_allclose(model.predict_proba(digits.X[job.query]), outputs[k], atol=1e-6)

    def refuse(*a, **k):
        raise AssertionError("trained a model that the job cache holds")

    monkeypatch.setattr("miaudit.models.classifier.train_models", refuse)
    again = Execution(job_cache=tmp_path / "cache", keep_models=tmp_path / "kept-again")
    outputs2, facts2 = run_jobs(RECIPE, digits.X, digits.y, 10, jobs_, execution=again)
    assert facts2 == {"trained": 0, "from_cache": 3, "corrupt": 0}
    assert all(np.array_equal(a, b) for a, b in zip(outputs, outputs2, strict=True))
    assert sorted(p.name for p in (tmp_path / "kept-again").iterdir()) == ["000", "001", "002"]
    # A kept model edited in the cache is caught by its checksum and trained again.
    monkeypatch.undo()
    weights = next((tmp_path / "cache" / "models").glob("*/weights.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-8])
    third = Execution(job_cache=tmp_path / "cache", keep_models=tmp_path / "kept-3")
    outputs3, facts3 = run_jobs(RECIPE, digits.X, digits.y, 10, jobs_, execution=third)
    assert facts3["corrupt"] == 1 and facts3["trained"] == 3  # one chunk: retrained whole
    for a, b in zip(outputs, outputs3, strict=True):
        assert np.array_equal(a, b)


def test_keep_models_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["audit", "--dataset", "digits", "--target-size", "150", "--shadows", "3"]
    assert main([*args, "--seed", "1", "--keep-models", "--no-job-cache", "--quiet"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("digits-")  # named as without --keep-models
    assert (run / "results.json").is_file()
    assert sorted(p.name for p in (run / "shadow-models").iterdir()) == ["000", "001", "002"]


def test_the_attack_models_refit_when_anything_they_depend_on_changes(tmp_path, monkeypatch):
    from miaudit.attacks.shokri import ShokriAttack

    execution = Execution(job_cache=tmp_path)
    first = miaudit.audit(dataset="digits", execution=execution, **FAST)
    fits, real = [], ShokriAttack.fit

    def counted(self, *args, **kwargs):
        fits.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ShokriAttack, "fit", counted)
    again = miaudit.audit(dataset="digits", execution=execution, **FAST)
    assert fits == [] and np.array_equal(again.scores["shokri"], first.scores["shokri"])
    miaudit.audit(
        dataset="digits", execution=execution, **{**FAST, "attacks": {"shokri": {"learner": "rf"}}}
    )
    assert len(fits) == 1  # the attack's own settings
    miaudit.audit(dataset="digits", execution=execution, **{**FAST, "shadows": 4})
    assert len(fits) == 2  # other shadow outputs
    miaudit.audit(dataset="digits", execution=execution, **{**FAST, "defense": ["round=1"]})
    assert len(fits) == 3  # other target outputs


def test_chunks_are_near_equal_and_sized_to_the_memory(digits, monkeypatch):
    import os

    from miaudit import jobs
    from miaudit.models.torch_batched import training_bytes

    assert [len(c) for c in jobs._chunks(10)] == [5, 5]
    assert [len(c) for c in jobs._chunks(8)] == [4, 4]  # one stack per core
    assert [len(c) for c in jobs._chunks(7)] == [7]
    assert [len(c) for c in jobs._chunks(17)] == [6, 5, 6]
    assert [len(c) for c in jobs._chunks(3, limit=1)] == [1, 1, 1]
    assert jobs._chunks(0) == []
    # A machine where only 3 models of this recipe fit in the share a stack may take.
    per_model = training_bytes(RECIPE, (64,), 10)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    monkeypatch.setattr(jobs, "MEMORY_SHARE", 3.5 * per_model / memory)
    assert jobs.stack_limit(RECIPE, (64,), 10, "cpu") == 3
    stacks, real = [], classifier.train_models

    def train(recipe, X, y, n_classes, sets, *a, **k):
        stacks.append(len(sets))
        return real(recipe, X, y, n_classes, sets, *a, **k)

    monkeypatch.setattr(classifier, "train_models", train)
    run_jobs(RECIPE, digits.X, digits.y, 10, _jobs(7), execution=Execution(False, workers=1))
    assert stacks == [2, 3, 2]


@pytest.mark.slow
def test_ctrl_c_stops_the_training_threads_and_the_rerun_resumes(tmp_path):
    import os
    import signal
    import time as time_module

    args = [
        sys.executable, "-m", "miaudit.cli", "audit", "--dataset", "digits", "--target-size", "300",
        "--shadows", "16", "--epochs", "3000", "--seed", "4", "--workers", "2", "--quiet",
        "--job-cache", str(tmp_path / "cache"),
    ]  # fmt: skip
    # A suite started in the background (`cmd &` in a script) inherits SIGINT ignored, and
    # Python then never raises KeyboardInterrupt: the child gets the default back.
    proc = subprocess.Popen(
        [*args, "--out", str(tmp_path / "never")], stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    # Interrupt while the shadows' two chunks train on their two threads (the target,
    # trained first, is the only entry until then).
    deadline = time_module.monotonic() + 120
    while not list((tmp_path / "cache" / "models").glob("*/checksum")):
        assert proc.poll() is None and time_module.monotonic() < deadline
        time_module.sleep(0.1)
    time_module.sleep(1.0)
    os.kill(proc.pid, signal.SIGINT)
    sent = time_module.monotonic()
    _, err = proc.communicate(timeout=60)
    # The threads stop at their next epoch, not when their chunks would have ended.
    assert proc.returncode == 130, err
    assert time_module.monotonic() - sent < 8  # a chunk trains for ~18 s
    assert "rerun the same command to resume" in err
    assert not (tmp_path / "never").exists()
    rerun = subprocess.run(
        [*args, "--out", str(tmp_path / "resumed")], capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stderr
    assert (tmp_path / "resumed" / "results.json").is_file()


def test_concurrent_writers_of_one_cached_model_keep_one_valid_entry(tmp_path):
    import threading

    from miaudit.jobs import JobCache

    class Family:
        """Saves a model as a file of its bytes (same key, same content)."""

        def save(self, model, path):
            path.mkdir(parents=True)
            (path / "weights.bin").write_bytes(model)

    cache, model, errors, found = JobCache(tmp_path), b"w" * 4096, [], []

    def write():
        for _ in range(60):
            try:
                cache.put_model("ab" * 32, model, Family())
            except Exception as exc:  # the test counts every failure
                errors.append(exc)

    def read():
        for _ in range(200):
            folder = cache.model_folder("ab" * 32)
            if folder is not None:
                found.append(folder)

    threads = [threading.Thread(target=write) for _ in range(3)]
    threads += [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    folder = cache.model_folder("ab" * 32)
    assert folder is not None and (folder / "weights.bin").read_bytes() == model
    assert cache.corrupt == 0
    # No writer left a temporary entry in the cache (the folder read is a private copy).
    entries = [p for p in tmp_path.rglob(".*") if p.name != ".miaudit-cache"]
    assert entries == [], entries


def test_absurd_recipes_are_refused_before_training_and_huge_batches_are_clamped():
    import miaudit
    from miaudit.errors import ConfigError

    message = r"training one .* would take about [\d,.]+ GiB, more than this"
    with pytest.raises(ConfigError, match=message):
        miaudit.audit(dataset="digits", target_size=100, shadows=2,
                      target={"hidden": 10**9, "epochs": 1},
                      execution=Execution(job_cache=False))  # fmt: skip
    # A minibatch larger than the training set is the whole set: no 256 GB buffer.
    result = miaudit.audit(dataset="digits", target_size=100, shadows=2, attacks=["loss"],
                           target={"batch_size": 10**9, "epochs": 2},
                           execution=Execution(job_cache=False))  # fmt: skip
    assert result.target["n_train"] == 100


def test_array_digests_hash_the_arrays_own_bytes_without_copying_them():
    """Cache keys read each array's buffer in place; the keys are those of the bytes
    tobytes() gave, so every cache entry written before still answers."""
    import hashlib
    import tracemalloc

    from miaudit.jobs import array_digest

    def by_copy(a):
        a = np.ascontiguousarray(a)
        h = hashlib.sha256(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
        return h.hexdigest()

    grid = np.arange(12, dtype=np.float32).reshape(3, 4)
    for a in (grid, grid.T, grid[:, ::2], np.array([True, False]), np.array(["ab", "c"]),
              np.zeros((0, 3)), np.arange(5).astype(">i4")):  # fmt: skip
        assert array_digest(a) == by_copy(a), a
    big = np.ones((1 << 20, 8), dtype=np.float32)  # 32 MiB
    tracemalloc.start()
    try:
        array_digest(big)
        assert tracemalloc.get_traced_memory()[1] < 1 << 20
    finally:
        tracemalloc.stop()
