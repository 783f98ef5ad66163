"""Progress of the long stages, reported through a small interface.

The pipeline calls a :class:`Reporter`; the CLI passes one that draws rich progress
bars on standard error, the Python API a silent one by default.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from miaudit.errors import render


class Reporter:
    """Silent reporter: records stage times, shows nothing."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, description: str, total: int | None = None) -> Iterator[StageTicker]:
        ticker = self._ticker(description, total)
        start = time.perf_counter()
        try:
            yield ticker
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 3)
            ticker.close()

    def _ticker(self, description: str, total: int | None) -> StageTicker:
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

    def _ticker(self, description: str, total: int | None) -> StageTicker:
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
