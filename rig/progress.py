"""Progress for a person watching: one line when a step starts, one when it ends."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class StepResult:
    name: str
    seconds: float
    outcome: str  # "done", "cached", "failed"


@dataclass
class Progress:
    """Prints steps to a stream; `clock` is injected so tests need no wall time."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    clock: Callable[[], float] = time.monotonic
    steps: list[StepResult] = field(default_factory=list)

    def info(self, message: str) -> None:
        print(f"    {message}", file=self.stream, flush=True)

    @contextmanager
    def step(self, name: str) -> Iterator[StepSkip]:
        """Wrap one step. Call ``.cached(reason)`` on the yielded handle if no work was done."""
        handle = StepSkip()
        start = self.clock()
        print(f"==> {name} ...", file=self.stream, flush=True)
        try:
            yield handle
        except BaseException:
            elapsed = self.clock() - start
            self.steps.append(StepResult(name, elapsed, "failed"))
            print(f"<== {name}: FAILED after {elapsed:.1f} s", file=self.stream, flush=True)
            raise
        elapsed = self.clock() - start
        outcome = "cached" if handle.reason is not None else "done"
        self.steps.append(StepResult(name, elapsed, outcome))
        detail = f" ({handle.reason})" if handle.reason else ""
        print(f"<== {name}: {outcome}{detail} in {elapsed:.1f} s", file=self.stream, flush=True)

    def summary(self) -> str:
        width = max((len(s.name) for s in self.steps), default=4)
        lines = [f"{'step':<{width}}  {'outcome':<7}  seconds"]
        lines += [f"{s.name:<{width}}  {s.outcome:<7}  {s.seconds:7.1f}" for s in self.steps]
        return "\n".join(lines)


@dataclass
class StepSkip:
    reason: str | None = None

    def cached(self, reason: str) -> None:
        self.reason = reason
