"""Progress you can log: timestamped lines when output is not a terminal."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time

import pytest

from miaudit.errors import ConfigError
from miaudit.progress import LogReporter, RichReporter, auto_reporter

STAMP = r"\d\d:\d\d:\d\d "


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_log_lines_are_stamped_rate_limited_and_estimate_the_time_left():
    stream, clock = io.StringIO(), Clock()
    log = LogReporter(stream, interval=10, clock=clock)
    with log.stage("train_shadows", "training 64 shadows", total=64, unit="models") as tick:
        clock.now += 4
        tick.update(8, 64)  # within 10 s of the start: not written
        clock.now += 37
        tick.update(24, 64)  # 41 s in: written, with what is left at this pace
        clock.now += 5
        tick.update(30, 64)  # 5 s after the last line: not written
        clock.now += 68
    log.message("a note")
    lines = stream.getvalue().splitlines()
    assert all(re.match(STAMP, line) for line in lines), lines
    assert [line[9:] for line in lines] == [
        "training 64 shadows (0/64 models)",
        "training 64 shadows: 38 % (24/64 models), 41 s elapsed, ~68 s left",
        "training 64 shadows: done in 114.0 s",
        "a note",
    ]
    assert log.timings["train_shadows"] >= 0


def test_the_reporter_follows_where_output_goes(monkeypatch):
    # Under pytest standard error is captured: not a terminal, not a notebook.
    assert isinstance(auto_reporter(), LogReporter)
    from rich.console import Console

    monkeypatch.setattr(Console, "is_terminal", property(lambda self: True))
    assert isinstance(auto_reporter(), RichReporter)


def test_the_python_api_shows_progress_when_asked(capsys):
    from miaudit import audit

    settings = {"dataset": "digits", "target_size": 100, "shadows": 2, "attacks": ["loss"]}
    audit(**settings)
    assert capsys.readouterr().err == ""  # silent by default
    audit(**settings, progress=True)
    err = capsys.readouterr().err
    assert re.search(rf"^{STAMP}training 2 shadows", err, re.M), err
    assert re.search(rf"^{STAMP}fitting and scoring the attacks: done in", err, re.M), err
    with pytest.raises(ConfigError, match="progress='yes'"):
        audit(**settings, progress="yes")


def test_a_redirected_audit_logs_progress_while_it_runs(tmp_path):
    log = tmp_path / "audit.log"
    args = ["audit", "--dataset", "digits", "--shadows", "16", "--out", str(tmp_path / "o")]
    with log.open("w") as stream:
        proc = subprocess.Popen(
            [sys.executable, "-m", "miaudit.cli", *args],
            stdout=stream,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MIAUDIT_JOB_CACHE": str(tmp_path / "jobs")},
        )
    try:
        seen_while_running = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            running = proc.poll() is None
            text = log.read_text()
            if re.search(rf"^{STAMP}training \d+ shadows", text, re.M):
                seen_while_running = running
                break
            if not running:
                break
            time.sleep(0.05)
        proc.wait(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 0, log.read_text()
    assert seen_while_running, log.read_text()
    text = log.read_text()
    for stage in ("loading data", "training 16 shadows", "fitting and scoring the attacks"):
        assert re.search(rf"^{STAMP}{stage}.*done in [\d.]+ s$", text, re.M), (stage, text)


def test_shokri_reports_its_attack_models_as_they_are_fitted():
    # Before, the attack stage said nothing between its start and its end (0/?), while
    # Shokri's per-class models took most of a 64-shadow audit's attack time.
    from miaudit import audit
    from miaudit.jobs import Execution

    stream = io.StringIO()
    log = LogReporter(stream, interval=0)
    audit(
        dataset="digits", target_size=200, shadows=2, attacks=["shokri", "loss"], progress=log,
        execution=Execution(job_cache=False),  # fitted, not answered from the cache
    )  # fmt: skip
    lines = [x[9:] for x in stream.getvalue().splitlines() if "scoring the attacks:" in x]
    fractions = [x for x in lines if re.search(r"\(0\.\d/2 attacks\)", x)]
    # Shokri's 11 networks (one per digit and the class-agnostic one) report their
    # steps every 32: at least 500 steps each, so many fractions of the first attack.
    assert len(fractions) >= 9, lines
    assert not any("left" in x for x in lines)  # attacks differ too much for an estimate
    assert lines[-1].startswith("fitting and scoring the attacks: done in")
