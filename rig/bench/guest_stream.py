"""One VM's side of a run over SSH: the script it runs (its workload, or a lying guest's
flood), streamed line by line to a raw file and a parser, in a thread of its own."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from rig.bench.workload import GuestRun, StreamParser
from rig.vm import domains as vm


@dataclass
class GuestStream:
    """Runs one VM's schedule over SSH in a thread, parsing as lines arrive."""

    rec: vm.VmRecord
    script: str
    raw: Path
    silence_s: float
    #: Where the script is written in the guest: one path per concurrent stream.
    remote: str = "/tmp/ab-run.sh"
    parser: StreamParser = field(default_factory=StreamParser)
    status: int | None = None
    error: str | None = None
    _thread: threading.Thread | None = None

    def start(self) -> GuestStream:
        self._thread = threading.Thread(target=self._run, name=f"guest-{self.rec.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        with self.raw.open("w") as raw:
            def on_line(line: str) -> None:
                raw.write(line if line.endswith("\n") else line + "\n")
                raw.flush()
                self.parser.feed(line)

            try:
                self.status = vm.ssh_stream(
                    self.rec, f"cat > {self.remote} && sh {self.remote}", on_line,
                    timeout_s=self.silence_s, stdin=self.script)
            except Exception as e:
                self.error = f"{type(e).__name__}: {e}"

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    @property
    def run(self) -> GuestRun:
        return self.parser.run


__all__ = ["GuestStream"]
