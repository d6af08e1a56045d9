"""The guest side of a benchmark run (pure): the shell script one VM runs for its
schedule, and the parse of what that script prints.

The script writes everything the host needs to its stdout, framed by `@@` lines, so one
SSH channel per VM carries live progress and the raw results:

    @@binary PATH                 (the workload program this run uses)
    @@vmstat start / ... /proc/vmstat ... / @@end
    @@step 1 start 512            (ebizzy run 1 starts with 512 chunks)
    @@out 1 / ... ebizzy output ... / @@end 1 0   (its output, then its exit status)
    @@vmstat end / ... / @@end
    @@done
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from rig.bench.ebizzy import EbizzyResult, parse
from rig.scenario import Schedule, Workload

GUEST_EBIZZY = "/opt/autoballoon/bin/ebizzy"
RUN_DIR = "/tmp/ab-run"


def guest_script(workload: Workload, schedule: Schedule, binary: str = GUEST_EBIZZY) -> str:
    """busybox sh: wait for the schedule's start, run each step, frame every output."""
    q = shlex.quote
    args = f"-s {workload.chunk_bytes} -S {workload.step_s} -t {workload.threads}"
    lines = [
        f"B={q(binary)}; D={RUN_DIR}",
        'rm -rf "$D"; mkdir -p "$D"; echo "@@binary $B"',
        'echo "@@vmstat start"; cat /proc/vmstat; echo "@@end"',
        f"sleep {schedule.start_s:g}",
        "i=0",
        f"for n in {' '.join(str(c) for c in schedule.chunks)}; do",
        "  i=$((i + 1))",
        '  echo "@@step $i start $n"',
        f'  "$B" -n "$n" {args} > "$D/out.$i" 2>&1; rc=$?',
        '  echo "@@out $i"; cat "$D/out.$i"; echo "@@end $i $rc"',
        "done",
        'echo "@@vmstat end"; cat /proc/vmstat; echo "@@end"',
        'echo "@@oom"; dmesg | grep -c "Killed process" ; echo "@@end"',
        'echo "@@done"',
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Step:
    n: int
    chunks: int
    status: int
    output: str
    result: EbizzyResult | None  # None when the output is not ebizzy output (killed, ...)
    error: str | None = None


@dataclass
class GuestRun:
    """What one VM's script printed (complete when `@@done` was seen)."""

    vmstat_start: str = ""
    vmstat_end: str = ""
    dmesg_oom_kills: int = 0
    steps: list[Step] = field(default_factory=list)
    current_step: int = 0
    current_chunks: int = 0
    done: bool = False

    @property
    def records_total(self) -> int:
        """The RFC's "total recs": records/s summed over the steps."""
        return sum(s.result.records_per_s for s in self.steps if s.result is not None)

    @property
    def failed_steps(self) -> int:
        return sum(s.result is None or s.status != 0 for s in self.steps)


@dataclass
class StreamParser:
    """Feed lines as they arrive; `run` is always the parse so far."""

    run: GuestRun = field(default_factory=GuestRun)
    _block: str | None = None
    _buf: list[str] = field(default_factory=list)

    def feed(self, line: str) -> None:
        line = line.rstrip("\r\n")
        if self._block is not None:
            if line.startswith("@@end"):
                self._close(line)
            else:
                self._buf.append(line)
            return
        words = line.split()
        if not words or not words[0].startswith("@@"):
            return  # stray output (a shell message): ignored, kept in the raw file
        tag = words[0]
        if tag == "@@step" and len(words) >= 4:
            self.run.current_step, self.run.current_chunks = int(words[1]), int(words[3])
        elif tag in ("@@vmstat", "@@oom") or (tag == "@@out" and len(words) == 2):
            self._block, self._buf = " ".join(words), []
        elif tag == "@@done":
            self.run.done = True

    def _close(self, end_line: str) -> None:
        block, text = self._block or "", "\n".join(self._buf) + "\n"
        self._block, self._buf = None, []
        if block == "@@vmstat start":
            self.run.vmstat_start = text
        elif block == "@@vmstat end":
            self.run.vmstat_end = text
        elif block == "@@oom":
            self.run.dmesg_oom_kills = int(text.strip() or 0)
        elif block.startswith("@@out"):
            n = int(block.split()[1])
            words = end_line.split()
            status = int(words[2]) if len(words) >= 3 else -1
            try:
                result, error = parse(text), None
            except ValueError as e:
                result, error = None, str(e)
            self.run.steps.append(Step(n, self.run.current_chunks, status, text, result,
                                       error))


def parse_stream(text: str) -> GuestRun:
    p = StreamParser()
    for line in text.splitlines():
        p.feed(line)
    return p.run
