"""How the demo talks: numbered steps, a progress bar for each long one, results indented.

Everything the servers say goes to the demo's log file; the terminal gets the
story alone. Progress bars are drawn on a terminal only (a pipe or a file gets
the step lines and their results).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class Bar:
    """One progress bar: ``advance()`` by one, or ``update(done, total)``."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress, self._task = progress, task

    def advance(self) -> None:
        self._progress.advance(self._task)

    def update(self, done: int, total: int) -> None:
        self._progress.update(self._task, completed=done, total=total)


class Story:
    def __init__(self, steps: int, console: Console | None = None) -> None:
        self.steps = steps
        # soft_wrap: a long line stays one line in a pipe or a file (no cut at 80 columns)
        self.console = console or Console(highlight=False, soft_wrap=True)
        self._step = 0
        self._started = time.monotonic()

    def say(self, text: str) -> None:
        self.console.print(text, markup=False)

    def result(self, text: str) -> None:
        """A line under the current step."""
        self.console.print(f"      {text}", markup=False)

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        """``[n/N] text ...``, the results said inside the block, then ``(1.2 s)``."""
        self._step += 1
        self.console.print(f"[{self._step}/{self.steps}] {text} ...", markup=False)
        started = time.monotonic()
        yield
        self.result(f"({time.monotonic() - started:.1f} s)")

    @contextmanager
    def progress(self, what: str, total: int) -> Iterator[Bar]:
        """A bar for ``total`` things, drawn on a terminal only."""
        with Progress(
            TextColumn(f"      {what}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,
        ) as progress:
            yield Bar(progress, progress.add_task(what, total=total))

    def elapsed(self) -> float:
        return time.monotonic() - self._started
