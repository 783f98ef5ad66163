"""Cache entries that someone who can write the cache folder, but cannot read the user's
cache key, edits or writes are never used: the job, query and data caches."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import threading
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import miaudit
from miaudit.cache_key import KEY_ENV, CacheKeyError, key_path, load_key
from miaudit.cli import main
from miaudit.data import cache as data_cache
from miaudit.data import load_dataset
from miaudit.jobs import Execution, JobCache, ShadowJob, run_jobs
from miaudit.models import Recipe
from miaudit.progress import Reporter
from miaudit.protocol import InputSchema
from miaudit.remote import HttpTarget, QueryCache
from miaudit.serve import PredictionService, ServiceLimits, create_app, serve_in_thread

RECIPE = Recipe(model="mlp", epochs=2, batch_size=64, hidden=16)
FAST = {"target_size": 150, "shadows": 5, "target": {"epochs": 5}, "seed": 9}


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """This test's own key and caches (so no other test's entries meet its key)."""
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "config" / "cache.key"))
    monkeypatch.setenv("MIAUDIT_DATA_CACHE", str(tmp_path / "data-cache"))
    monkeypatch.setenv("MIAUDIT_JOB_CACHE", str(tmp_path / "job-cache"))
    monkeypatch.setenv("MIAUDIT_QUERY_CACHE", str(tmp_path / "query-cache"))
    return tmp_path


class Notes(Reporter):
    """A reporter that keeps the run's one-line notes."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)

    def warn(self, text: str) -> None:
        self.lines.append(text)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _rewrite_npz(path: Path, change) -> None:
    """Replace the arrays of ``path`` by ``change(arrays)`` and write beside it the plain
    SHA-256 that miaudit used to trust (what anyone who can write the folder can do)."""
    with np.load(path) as f:
        arrays = change({name: f[name] for name in f.files})
    np.savez(path.with_suffix(""), **arrays)
    path.with_suffix(".sha256").write_text(_sha256(path.read_bytes()) + "\n")


def _reversed(arrays: dict) -> dict:
    """Every array of numbers in reverse order (rows of answers, scores): still valid."""
    return {
        k: a[::-1].copy() if a.dtype.kind == "f" and a.ndim and len(a) > 1 else a
        for k, a in arrays.items()
    }


def _digits_jobs():
    rng = np.random.default_rng(0)
    return [
        ShadowJob(np.sort(rng.choice(1797, 200, replace=False)), 100 + k, np.arange(50))
        for k in range(3)
    ]


# ------------------------------------------------------------------ the job cache


@pytest.mark.parametrize("forge", ["sha256-recomputed", "another-key", "moved", "not-text"])
def test_a_forged_job_cache_entry_is_never_used(caches, monkeypatch, forge):
    digits = load_dataset("digits")
    root = caches / "jobs"
    execution = Execution(job_cache=root, workers=1)

    def run():
        notes = []
        out, facts = run_jobs(
            RECIPE, digits.X, digits.y, 10, _digits_jobs(), execution=execution,
            notify=notes.append,
        )  # fmt: skip
        return out, facts, notes

    genuine, _, _ = run()
    entries = sorted(root.glob("*/*.npz"))
    assert len(entries) == 3
    if forge == "sha256-recomputed":
        for entry in entries:
            _rewrite_npz(entry, _reversed)
    elif forge == "another-key":
        # Written by miaudit itself, for the right names, under someone else's key.
        monkeypatch.setenv(KEY_ENV, str(caches / "someone-else" / "cache.key"))
        for entry in entries:
            with np.load(entry) as f:
                JobCache(root).put(entry.stem, np.full_like(f["outputs"], 0.1))
        monkeypatch.setenv(KEY_ENV, str(caches / "config" / "cache.key"))
    elif forge == "not-text":
        # A MAC file of bytes that are no text (damage, or a forger's guess): a miss.
        for entry in entries:
            entry.with_suffix(".sha256").write_bytes(b"\xff\xfe \xe9 not a mac")
    else:
        # Genuine entries, each under another job's name (as a rename would leave them).
        blobs = [(e.read_bytes(), e.with_suffix(".sha256").read_bytes()) for e in entries]
        for entry, (data, check) in zip(entries, blobs[1:] + blobs[:1], strict=True):
            entry.write_bytes(data)
            entry.with_suffix(".sha256").write_bytes(check)
    again, facts, notes = run()
    for a, b in zip(genuine, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert facts == {"trained": 3, "from_cache": 0, "corrupt": 3}
    assert len(notes) == 1 and "3 job-cache entries failed authentication" in notes[0]
    # Replaced by genuine entries: the next run reads them.
    _, facts, notes = run()
    assert facts == {"trained": 0, "from_cache": 3, "corrupt": 0} and notes == []


def _forge_model_folder(folder: Path) -> None:
    """The cached target's weights negated, its ``checksum`` recomputed as miaudit
    used to compute it."""
    from safetensors.numpy import load_file, save_file

    weights = folder / "weights.safetensors"
    save_file({k: -v for k, v in load_file(weights).items()}, weights)
    h = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name != "checksum":
            h.update(path.name.encode())
            h.update(path.read_bytes())
    (folder / "checksum").write_text(h.hexdigest() + "\n")


def _results(folder: Path) -> dict:
    d = json.loads((folder / "results.json").read_text())
    for volatile in ("timings_s", "run_id"):
        d.pop(volatile, None)
    return d


def test_an_audit_never_uses_forged_shadows_attack_scores_or_target(caches):
    root = caches / "jobs"
    execution = Execution(job_cache=root)
    miaudit.audit(dataset="digits", execution=execution, out=caches / "a", **FAST)
    # Five shadows' outputs and Shokri's scores, and the target's folder.
    entries = sorted(root.glob("*/*.npz"))
    assert len(entries) == 6
    for entry in entries:
        _rewrite_npz(entry, _reversed)
    (target,) = (root / "models").iterdir()
    _forge_model_folder(target)
    notes = Notes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        second = miaudit.audit(
            dataset="digits", execution=execution, out=caches / "b", progress=notes, **FAST
        )
    assert _results(caches / "b") == _results(caches / "a")
    assert second.execution["jobs"] == {"trained": 5, "from_cache": 0, "corrupt": 5}
    said = notes.lines + [str(w.message) for w in caught]
    failed = [line for line in said if "failed authentication" in line]
    assert any("5 job-cache entries" in line for line in failed), said  # the shadows
    assert any(line.startswith("shokri: 1 job-cache entry") for line in failed), said
    assert any("target is trained again" in line for line in failed), said


# ------------------------------------------------------------------ the query cache


@pytest.fixture(scope="module")
def adult():
    return load_dataset("adult", use_cache=False)


@pytest.fixture(scope="module")
def service(saved_adult):
    app = create_app(
        PredictionService.from_folder(saved_adult, []),
        ServiceLimits(tokens=("tok",), max_batch=100),
    )
    with serve_in_thread(app) as url:
        yield url


@pytest.mark.parametrize("forge", ["sha256-recomputed", "another-key"])
def test_a_forged_query_cache_chunk_is_never_used(caches, monkeypatch, adult, service, forge):
    X = adult.X[:150]

    def target():
        return HttpTarget(
            service, InputSchema.for_dataset(adult), adult.class_names, token="tok",
            cache_dir=caches / "queries",
        )  # fmt: skip

    with target() as first:
        truth = first.predict_proba(X)
        folder = first.cache.folder
    chunks = sorted(folder.glob("chunk-*.npz"))
    assert len(chunks) == 2  # batches of at most 100
    if forge == "sha256-recomputed":
        # Every answer reversed, as a probe of this cache did.
        for chunk in chunks:
            _rewrite_npz(chunk, lambda a: {**a, "answers": a["answers"][:, ::-1].copy()})
    else:
        keys, rows = [], []
        for chunk in chunks:
            with np.load(chunk) as f:
                keys += [bytes(k) for k in f["keys"]]
                rows.append(f["answers"][:, ::-1])
            chunk.unlink()
            chunk.with_suffix(".sha256").unlink()
        monkeypatch.setenv(KEY_ENV, str(caches / "someone-else" / "cache.key"))
        QueryCache(folder, len(adult.class_names)).add(keys, np.concatenate(rows))
        monkeypatch.setenv(KEY_ENV, str(caches / "config" / "cache.key"))
    with target() as again:
        np.testing.assert_array_equal(again.predict_proba(X), truth)
        assert again.cached_ == 0 and again.queries_ == len(X)
        assert len(again.cache.skipped_chunks) == len(list(folder.glob("*.bad"))) >= 1


def test_a_query_cache_chunk_moved_to_another_services_folder_is_never_used(caches):
    rng = np.random.default_rng(0)
    keys = [bytes(rng.integers(0, 256, 32, dtype=np.uint8)) for _ in range(5)]
    QueryCache(caches / "q" / "service-a", 2).add(keys, rng.dirichlet([1, 1], 5))
    other = caches / "q" / "service-b"
    shutil.copytree(caches / "q" / "service-a", other)
    moved = QueryCache(other, 2)
    assert not moved.get(keys)[0].any()
    assert len(moved) == 0 and len(moved.skipped_chunks) == 1
    assert QueryCache(caches / "q" / "service-a", 2).get(keys)[0].all()


def test_an_audit_over_http_never_uses_forged_answers(caches, saved_adult, service):
    common = {
        "dataset": "adult", "shadows": 2, "seed": 3, "target": {"epochs": 10},
        "attacks": ["loss", "gap"], "target_url": service, "token": "tok",
        "membership": str(saved_adult), "query_cache": caches / "queries",
    }  # fmt: skip
    miaudit.audit(out=caches / "a", **common)
    for chunk in (caches / "queries").glob("*/chunk-*.npz"):
        _rewrite_npz(chunk, lambda a: {**a, "answers": a["answers"][:, ::-1].copy()})
    notes = Notes()
    second = miaudit.audit(out=caches / "b", progress=notes, **common)
    assert _results(caches / "b") == _results(caches / "a")
    assert second.target["queries"]["from_cache"] == 0
    assert any("query-cache chunks failed" in line for line in notes.lines), notes.lines


# ------------------------------------------------------------------ the data cache


def _write_csv(path: Path, n: int = 60) -> Path:
    rng = np.random.default_rng(0)
    pd.DataFrame(
        {
            "colour": rng.choice(["red", "green", "blue"], n),
            "weight": rng.normal(size=n).round(3),
            "label": rng.choice(["a", "b"], n),
        }
    ).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("forge", ["sha256-recomputed", "another-key"])
def test_a_forged_data_cache_entry_is_never_used(caches, monkeypatch, forge):
    path = _write_csv(caches / "t.csv")
    genuine = load_dataset(str(path), label="label")
    (entry,) = [p for p in (caches / "data-cache").iterdir() if not p.name.startswith(".")]
    flipped = 1 - genuine.y  # every label the other one
    if forge == "sha256-recomputed":
        np.save(entry / "y.npy", flipped)
        meta = json.loads((entry / "meta.json").read_text())
        names = ["X", "y", "row", *(["ids"] if meta.get("ids") else [])]
        digests = {n: _sha256((entry / f"{n}.npy").read_bytes()) for n in names}
        if "sha256" in meta:  # the digests miaudit used to trust
            meta["sha256"] = digests
        (entry / "meta.json").write_text(json.dumps(meta))
        if (entry / "mac").exists():  # the best a forger without the key can do
            (entry / "mac").write_text(_sha256((entry / "meta.json").read_bytes()) + "\n")
    else:
        monkeypatch.setenv(KEY_ENV, str(caches / "someone-else" / "cache.key"))
        forged = replace(load_dataset(str(path), label="label", use_cache=False), y=flipped)
        shutil.rmtree(entry)
        data_cache.write_entry(entry, forged)
        monkeypatch.setenv(KEY_ENV, str(caches / "config" / "cache.key"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = load_dataset(str(path), label="label")
    np.testing.assert_array_equal(again.y, genuine.y)
    np.testing.assert_array_equal(again.X, genuine.X)
    said = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert len(said) == 1 and "failed authentication" in said[0], said
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rewritten: read back without a word
        np.testing.assert_array_equal(load_dataset(str(path), label="label").y, genuine.y)


def test_the_data_cache_is_keyed_by_content(caches, monkeypatch):
    path = _write_csv(caches / "t.csv")
    first = load_dataset(str(path), label="label")
    # The same bytes in a new file (new inode, new times): still the same entry.
    copy = caches / "copy.csv"
    shutil.copyfile(path, copy)
    os.replace(copy, path)

    def refuse(*a, **k):
        raise AssertionError("read again a file whose content did not change")

    monkeypatch.setattr("miaudit.data.load_file", refuse)
    np.testing.assert_array_equal(load_dataset(str(path), label="label").X, first.X)
    monkeypatch.undo()
    monkeypatch.setenv(KEY_ENV, str(caches / "config" / "cache.key"))
    monkeypatch.setenv("MIAUDIT_DATA_CACHE", str(caches / "data-cache"))
    # One byte changed, size and times kept: another entry.
    before = path.stat()
    text = path.read_text()
    path.write_text(text.replace(",a\n", ",b\n", 1))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    assert (load_dataset(str(path), label="label").y != first.y).sum() == 1


# ------------------------------------------------------------------ a second user


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="needs root to run a second user (uid 65534) writing the shared cache",
)
def test_entries_another_user_writes_into_a_shared_cache_are_never_used(caches):
    digits = load_dataset("digits")
    jobs = _digits_jobs()
    # The names of the entries, and a first use of everything the child needs: once it
    # has dropped to another user it may not be able to import anything more.
    private = caches / "private-jobs"
    genuine, _ = run_jobs(RECIPE, digits.X, digits.y, 10, jobs,
                          execution=Execution(job_cache=private, workers=1))  # fmt: skip
    names = sorted(p.stem for p in private.glob("*/*.npz"))
    shared = Path(tempfile.mkdtemp(prefix="miaudit-shared-"))
    home = Path(tempfile.mkdtemp(prefix="miaudit-nobody-"))
    try:
        os.chmod(shared, 0o777)
        os.chown(home, 65534, 65534)
        pid = os.fork()
        if pid == 0:  # the second user: its own key, writing forged outputs
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                os.environ[KEY_ENV] = str(home / "cache.key")
                for name in names:
                    JobCache(shared).put(name, np.full((50, 10), 0.1, dtype=np.float32))
                os._exit(0)
            except BaseException as exc:  # said on stderr: the test reports the status
                os.write(2, f"second user: {exc!r}\n".encode())
            finally:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        theirs = sorted(shared.glob("*/*.npz"))
        assert [p.stem for p in theirs] == names
        assert {p.stat().st_uid for p in theirs} == {65534}
        notes = []
        again, facts = run_jobs(
            RECIPE, digits.X, digits.y, 10, jobs,
            execution=Execution(job_cache=shared, workers=1), notify=notes.append,
        )  # fmt: skip
        for a, b in zip(genuine, again, strict=True):
            np.testing.assert_array_equal(a, b)
        assert facts == {"trained": 3, "from_cache": 0, "corrupt": 3}
        assert "failed authentication" in notes[0]
    finally:
        shutil.rmtree(shared, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


# ------------------------------------------------------------------ the key file


def test_the_key_is_made_0600_in_a_0700_folder_outside_the_caches(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert key_path() == tmp_path / "config" / "miaudit" / "cache.key"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert key_path() == tmp_path / "home" / ".config" / "miaudit" / "cache.key"
    old = os.umask(0o022)  # the usual one, which would make 0644 files
    try:
        key = load_key()
    finally:
        os.umask(old)
    path = key_path()
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "home" / ".config").stat().st_mode) == 0o700
    assert load_key() == key  # made once, then read


def test_processes_racing_to_make_the_key_share_one(tmp_path):
    path = tmp_path / "fresh" / "cache.key"
    start, keys = threading.Barrier(8), []

    def make():
        start.wait()
        keys.append(load_key(path))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and len(set(keys)) == 1 and path.read_bytes() == keys[0]


def test_a_loose_key_file_is_refused_in_one_line(caches, capsys):
    path = Path(os.environ[KEY_ENV])
    load_key()
    os.chmod(path, 0o644)
    with pytest.raises(CacheKeyError, match=rf"mode 0644.*chmod 600 {path}"):
        load_key()
    # From the command line: one line naming the file and the fix, status 2.
    code = main(["audit", "--dataset", "digits", "--quiet", "--out", str(caches / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert str(path) in err and f"chmod 600 {path}" in err and "Traceback" not in err


def test_a_key_that_is_a_link_or_not_the_users_own_is_refused(tmp_path):
    real = tmp_path / "real.key"
    load_key(real)
    link = tmp_path / "link.key"
    link.symlink_to(real)
    with pytest.raises(CacheKeyError, match="symbolic link"):
        load_key(link)
    if os.geteuid() == 0:
        os.chown(real, 65534, 65534)
        with pytest.raises(CacheKeyError, match="not to you"):
            load_key(real)


def test_a_key_that_cannot_be_made_names_the_variable(caches, monkeypatch, capsys):
    blocker = caches / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(KEY_ENV, str(blocker / "miaudit" / "cache.key"))  # as a read-only home
    with pytest.raises(CacheKeyError, match=f"cannot create the cache key .*set {KEY_ENV}"):
        load_key()
    code = main(["audit", "--dataset", "digits", "--quiet", "--out", str(caches / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and KEY_ENV in err


# ------------------------------------------------------------------ modes


def test_every_file_a_cache_writes_is_0600_and_every_folder_0700(caches, adult, service):
    old = os.umask(0o022)
    try:
        miaudit.audit(dataset="digits", out=caches / "out", **{**FAST, "shadows": 2})
        path = _write_csv(caches / "t.csv")
        load_dataset(str(path), label="label")
        with HttpTarget(
            service, InputSchema.for_dataset(adult), adult.class_names, token="tok"
        ) as target:
            target.predict_proba(adult.X[:10])
    finally:
        os.umask(old)
    for name in ("job-cache", "data-cache", "query-cache", "config"):
        root = caches / name
        seen = [root, *root.rglob("*")]
        assert len(seen) >= 2, name
        for p in seen:
            mode = stat.S_IMODE(p.lstat().st_mode)
            assert mode == (0o700 if p.is_dir() else 0o600), (p, oct(mode))


def test_a_key_that_cannot_be_made_stops_an_audit_before_anything_trains(
    caches, monkeypatch, capsys
):
    from miaudit.cli import main

    monkeypatch.setenv(KEY_ENV, "/proc/no-such-folder/cache.key")
    trained = []
    monkeypatch.setattr("miaudit.models.classifier.train_models", lambda *a, **k: trained.append(1))
    assert main(["audit", "--dataset", "digits", "--shadows", "2", "--quiet",
                 "--out", str(caches / "run")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "cannot create the cache key" in err and KEY_ENV in err
    assert trained == [] and not (caches / "run").exists()
