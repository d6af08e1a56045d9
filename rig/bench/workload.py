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

The schedule's kind (rig.scenario.Schedule) picks the program of each step; the framing is
the same for every kind. ebizzy's script is the original one (no `@@kind` line); abload's
kinds (stream, reread, idle: images/tools/abload.c) add `@@kind KIND` after `@@binary`,
and their `@@step` line carries the step's size (reread: hot MiB, idle: MiB, stream: 0).
Each step's output is parsed by its kind: ebizzy's records/s, or abload's one result line.
A step's `score` is records/s (ebizzy), MB/s (stream, reread: higher is better) or, for
idle, touch_seconds: how long writing its MiB took (lower is better; the MiB it then
holds are asked for, not measured). SCORE_UNITS names them.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from rig.bench import abload
from rig.bench.abload import IdleResult, ReadResult
from rig.bench.ebizzy import EbizzyResult, parse
from rig.scenario import Schedule, Workload

GUEST_EBIZZY = "/opt/autoballoon/bin/ebizzy"
GUEST_ABLOAD = "/opt/autoballoon/bin/abload"
RUN_DIR = "/tmp/ab-run"
#: What Step.score counts, per kind.
SCORE_UNITS = {"ebizzy": "records/s", "stream": "MB/s", "reread": "MB/s",
               "idle": "touch seconds (lower is better)"}


def guest_script(workload: Workload, schedule: Schedule, binary: str | None = None,
                 data_dev: str | None = None) -> str:
    """busybox sh: wait for the schedule's start, run each step, frame every output.

    `binary` is the program in the guest (default: ours, ebizzy or abload by kind);
    `data_dev` the data disk's guest device, as rig.vm.domain_xml.data_disk_dev gives it
    ("vdb") or a path, needed by stream and reread."""
    q = shlex.quote
    kind = schedule.kind
    step_s = workload.step_of(schedule)
    hold = None
    if binary is None:
        binary = GUEST_EBIZZY if kind == "ebizzy" else GUEST_ABLOAD
    if kind == "ebizzy":
        args = f"-s {workload.chunk_bytes} -S {step_s} -t {workload.threads}"
        command = f'"$B" -n "$n" {args}'
    elif kind == "idle":
        command = f'"$B" idle -m "$n" -S {step_s}'
    else:
        if not data_dev:
            raise ValueError(f"a {kind} schedule needs the data disk's device (data_dev)")
        dev = q(data_dev if data_dev.startswith("/") else f"/dev/{data_dev}")
        hot = ' -H "$n"' if kind == "reread" else ""
        command = f'"$B" {kind} -d {dev}{hot} -S {step_s}'
        # Linux drops a block device's page cache when its last opener closes it (measured
        # in the guest: 306 MiB cached during a stream step, 18 MiB after): hold the disk
        # open for the whole schedule, as a mounted filesystem would, so the cache a step
        # leaves behind stays in the guest until reclaim (or a balloon) takes it.
        hold = f"exec 3< {dev}"
    lines = [
        f"B={q(binary)}; D={RUN_DIR}",
        'rm -rf "$D"; mkdir -p "$D"; echo "@@binary $B"',
        *([] if kind == "ebizzy" else [f'echo "@@kind {kind}"']),
        *([hold] if hold else []),
        'echo "@@vmstat start"; cat /proc/vmstat; echo "@@end"',
        f"sleep {schedule.start_s:g}",
        "i=0",
        f"for n in {' '.join(str(c) for c in schedule.sizes())}; do",
        "  i=$((i + 1))",
        '  echo "@@step $i start $n"',
        f'  {command} > "$D/out.$i" 2>&1; rc=$?',
        '  echo "@@out $i"; cat "$D/out.$i"; echo "@@end $i $rc"',
        "done",
        'echo "@@vmstat end"; cat /proc/vmstat; echo "@@end"',
        'echo "@@oom"; dmesg | grep -c "Killed process" ; echo "@@end"',
        'echo "@@done"',
    ]
    return "\n".join(lines) + "\n"


StepResult = EbizzyResult | ReadResult | IdleResult


@dataclass(frozen=True)
class Step:
    n: int
    chunks: int  # the step's size: ebizzy chunks, reread hot MiB, idle MiB; 0 for stream
    status: int
    output: str
    # ebizzy's or abload's result by kind; None when the output is not the kind's result
    # (killed, abload's error line, ...): `error` says why
    result: StepResult | None
    error: str | None = None
    kind: str = "ebizzy"

    @property
    def score(self) -> float | None:
        """records/s (ebizzy), MB/s (stream, reread), touch seconds (idle): SCORE_UNITS."""
        r = self.result
        if isinstance(r, EbizzyResult):
            return float(r.records_per_s)
        if isinstance(r, ReadResult):
            return r.mb_s
        return r.touch_seconds if r is not None else None

    @property
    def ok(self) -> bool:
        """Exit status 0 and a complete result (abload: not interrupted)."""
        return (self.status == 0 and self.result is not None
                and getattr(self.result, "complete", True))


@dataclass
class GuestRun:
    """What one VM's script printed (complete when `@@done` was seen)."""

    kind: str = "ebizzy"  # from `@@kind` (ebizzy's script prints none)
    vmstat_start: str = ""
    vmstat_end: str = ""
    dmesg_oom_kills: int = 0
    steps: list[Step] = field(default_factory=list)
    current_step: int = 0
    current_chunks: int = 0
    done: bool = False

    @property
    def records_total(self) -> int:
        """The RFC's "total recs": records/s summed over the steps (0 for abload kinds)."""
        return sum(s.result.records_per_s for s in self.steps
                   if isinstance(s.result, EbizzyResult))

    @property
    def score_total(self) -> float:
        """The run's score (rig.bench.results.SCORES): records/s summed (ebizzy), MB/s
        averaged (stream, reread) or touch seconds summed (idle) over the steps that have
        a result; 0 when none has."""
        scores = [s.score for s in self.steps if s.score is not None]
        if self.kind in ("stream", "reread"):
            return round(sum(scores) / len(scores), 3) if scores else 0.0
        return self.records_total if self.kind == "ebizzy" else round(sum(scores), 3)

    @property
    def failed_steps(self) -> int:
        """Steps without a result, with a non-zero status or an interrupted abload run."""
        return sum(not s.ok for s in self.steps)


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
        elif tag == "@@kind" and len(words) == 2:
            self.run.kind = words[1]
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
            kind = self.run.kind
            result: StepResult | None
            try:
                result = parse(text) if kind == "ebizzy" else abload.parse(text, kind)
                error = None
            except ValueError as e:
                result, error = None, str(e)
            self.run.steps.append(Step(n, self.run.current_chunks, status, text, result,
                                       error, kind))


def parse_stream(text: str) -> GuestRun:
    p = StreamParser()
    for line in text.splitlines():
        p.feed(line)
    return p.run
