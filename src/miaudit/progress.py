"""Progress of the long stages, reported through a small interface.

The pipeline calls a :class:`Reporter`. :func:`auto_reporter` picks how progress
is shown: rich progress bars on a terminal (:class:`RichReporter`), HTML bars updated in
place in a notebook (:class:`NotebookReporter`), plain timestamped lines everywhere else
(:class:`LogReporter`: a log file, a CI job, ``nohup``), so that a redirected
audit's log says what it is doing while it runs. The CLI uses it unless
``--quiet``; the Python API when ``audit(progress=True)``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from miaudit.errors import render


class Reporter:
    """Silent reporter: records stage times, shows nothing."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(
        self,
        name: str,
        description: str,
        total: int | None = None,
        unit: str = "",
        estimate: bool = True,
    ) -> Iterator[StageTicker]:
        """Time a stage named ``name``; its ticker counts progress in ``unit``s (models,
        model-epochs) out of ``total``. ``estimate=False`` where units differ too much
        in cost for the pace so far to say what is left (the attacks)."""
        ticker = self._ticker(description, total, unit)
        ticker.estimate = estimate
        start = time.perf_counter()
        try:
            yield ticker
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 3)
            ticker.close()

    def _ticker(self, description: str, total: int | None, unit: str = "") -> StageTicker:
        return StageTicker()

    def message(self, text: str) -> None:
        """A one-line note for the user (a fallback taken, a default chosen)."""

    def warn(self, text: str) -> None:
        """Something the user should act on: a Python warning from the silent reporter
        (the API's), a note on the terminal from the CLI's."""
        import warnings

        # Settings are named as Python names them (see miaudit.errors.key).
        warnings.warn(render(text), UserWarning, stacklevel=3)


class StageTicker:
    """Progress within one stage: ``update(done, total)``."""

    estimate = True

    def update(self, done: int, total: int) -> None:
        pass

    def close(self) -> None:
        pass


class RichReporter(Reporter):
    """Progress bars and notes on standard error (the summary table goes to stdout).

    ``flag`` names the command-line option of a setting named in a note (see
    :func:`miaudit.errors.render`)."""

    def __init__(self, flag: Callable[[str], str | None] | None = None) -> None:
        super().__init__()
        from rich.console import Console

        self.console = Console(stderr=True)
        self.flag = flag

    def _text(self, text: str) -> str:
        from rich.markup import escape

        return escape(render(text, self.flag))

    def _ticker(self, description: str, total: int | None, unit: str = "") -> StageTicker:
        return _RichTicker(self.console, description, total)

    def message(self, text: str) -> None:
        self.console.print(f"[dim]·[/dim] {self._text(text)}", highlight=False)

    def warn(self, text: str) -> None:
        self.console.print(f"[yellow]![/yellow] {self._text(text)}", highlight=False)


class _RichTicker(StageTicker):
    def __init__(self, console, description: str, total: int | None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            disable=not console.is_terminal and "pytest" in sys.modules,
        )
        self.progress.start()
        self.task = self.progress.add_task(description, total=total)

    def update(self, done: int, total: int) -> None:
        self.progress.update(self.task, completed=done, total=total)

    def close(self) -> None:
        task = self.progress.tasks[0]
        if task.total is None:
            self.progress.update(self.task, total=1, completed=1)
        self.progress.stop()


class LogReporter(Reporter):
    """Plain lines on a stream, each stamped with the wall-clock time and flushed as
    written: a stage's start and end, and progress within it at most every
    ``interval`` seconds, with the time elapsed and an estimate of the time left::

        12:03:00 training 64 shadows
        12:03:41 training 64 shadows: 38 % (24/64 models), 41 s elapsed, ~66 s left
        12:04:49 training 64 shadows: done in 109.2 s
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        flag: Callable[[str], str | None] | None = None,
        *,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.stream = stream
        self.flag = flag
        self.interval = interval
        self.clock = clock

    def line(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        stream.flush()

    def _ticker(self, description: str, total: int | None, unit: str = "") -> StageTicker:
        return _LogTicker(self, description, total, unit)

    def message(self, text: str) -> None:
        self.line(render(text, self.flag))

    def warn(self, text: str) -> None:
        self.line(f"warning: {render(text, self.flag)}")


class _LogTicker(StageTicker):
    def __init__(self, log: LogReporter, description: str, total: int | None, unit: str) -> None:
        self.log, self.description, self.unit = log, description, f" {unit}" if unit else ""
        self.start = self.last = log.clock()
        log.line(description + (f" (0/{total}{self.unit})" if total else ""))

    def update(self, done: float, total: int) -> None:
        now = self.log.clock()
        if now - self.last < self.log.interval or not total:
            return
        self.last = now
        elapsed = now - self.start
        left = (
            f", ~{_seconds(elapsed * (total - done) / done)} left"
            if self.estimate and 0 < done < total
            else ""
        )
        count = f"{done:g}" if float(done).is_integer() else f"{done:.1f}"
        self.log.line(
            f"{self.description}: {100 * done / total:.0f} % ({count}/{total}{self.unit}), "
            f"{_seconds(elapsed)} elapsed{left}"
        )

    def close(self) -> None:
        self.log.line(f"{self.description}: done in {self.log.clock() - self.start:.1f} s")


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


class NotebookReporter(Reporter):
    """Progress in a notebook (Jupyter, VS Code, Colab): one line per stage with an HTML
    ``<progress>`` bar, updated in place through IPython's display handles (no widget
    library, no script), and the notes below it. A notebook executed and saved keeps
    each stage's last state: its time, or how far it got."""

    #: Seconds between two redraws of a bar.
    interval = 0.25

    def __init__(self, flag: Callable[[str], str | None] | None = None) -> None:
        super().__init__()
        self.flag = flag

    def _ticker(self, description: str, total: int | None, unit: str = "") -> StageTicker:
        return _NotebookTicker(self, description, total, unit)

    def show(self, html: str, *, handle: bool = False):
        from IPython.display import HTML, display

        return display(HTML(html), display_id=True) if handle else display(HTML(html))

    def message(self, text: str) -> None:
        self.show(f"<div style='color:#555'>· {_escape(render(text, self.flag))}</div>")

    def warn(self, text: str) -> None:
        self.show(f"<div style='color:#8a5a00'>! {_escape(render(text, self.flag))}</div>")


class _NotebookTicker(StageTicker):
    def __init__(self, nb: NotebookReporter, description: str, total: int | None,
                 unit: str) -> None:  # fmt: skip
        self.nb, self.description, self.unit = nb, _escape(description), unit
        self.start = self.drawn = time.monotonic()
        self.handle = nb.show(self._html(0, total, None), handle=True)

    def _html(self, done: float, total: int | None, seconds: float | None) -> str:
        bar = (
            f"<progress value='{done:g}' max='{total}' style='width:14em'></progress> "
            f"{done:g}/{total} {_escape(self.unit)}"
            if total
            else "<progress style='width:14em'></progress>"
        )
        if seconds is not None:
            bar = f"done in {seconds:.1f} s"
        label = f"<span style='display:inline-block;min-width:22em'>{self.description}</span>"
        return f"<div>{label} {bar}</div>"

    def update(self, done: float, total: int) -> None:
        now = time.monotonic()
        if now - self.drawn >= self.nb.interval:
            self.drawn = now
            self.handle.update(_html_object(self._html(done, total, None)))

    def close(self) -> None:
        self.handle.update(_html_object(self._html(0, None, time.monotonic() - self.start)))


def _html_object(html: str):
    from IPython.display import HTML

    return HTML(html)


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def auto_reporter(flag: Callable[[str], str | None] | None = None) -> Reporter:
    """Progress bars where someone watches (a terminal, a notebook), timestamped lines
    where output goes to a file or a pipe."""
    from rich.console import Console

    console = Console(stderr=True)
    if console.is_jupyter:
        return NotebookReporter(flag)
    if console.is_terminal:
        return RichReporter(flag)
    return LogReporter(flag=flag)
