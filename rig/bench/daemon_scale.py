"""How autoballoond's decisions scale with the number of VMs (``rig daemon-scale``).

For each size N: the daemon's real decision loop, per-VM workers and stats poller (policy
``auto``, 1 s ticks and stats polls, its timeline written to /dev/null) run against a
simulated host of N VMs (``scale_sim.py``: libvirt's calls with their latencies, host
pressure events and guest messages at realistic rates, the balloon changes that follow
each setMemory) on real wall time: ``warmup_s`` to connect and settle, then ``seconds``
measured. Two figures per size:

- **decision time per input**: from the input's dequeue to the return of its handling,
  its commands handed to the VMs' workers (``Daemon.observe``), over every input of the
  window (host and guest pressure, balloon changes, each VM's polled figures, command
  reports, ticks, host memory); p50 and p99, and per kind in the JSON. The stats poll's
  own pass (the loop's side of it: retries, metadata, handing the VMs to the poller) is
  reported apart, as it is no input;
- **the daemon's CPU**: the CPU time of the daemon's own threads (the loop, the stats
  poller, every VM's worker) over the window, as a percent of one core. Each thread's
  CPU clock (``time.pthread_getcpuclockid``) is read from this thread at both ends of the
  window: per-thread clocks are exact (nanoseconds, not the scheduler ticks of
  /proc/PID/task/*/stat), readable for another thread (``time.thread_time`` and
  ``getrusage(RUSAGE_THREAD)`` only measure the calling one), and they leave out what
  is not the daemon: the simulator's event thread and this one (process CPU would count
  them). What the simulated libvirt does on the daemon's threads (building and
  converting each VM's stats) counts, as the libvirt client library's work would.

The targets (issue 12): at 500 VMs, p99 decision time < 10 ms and CPU < 5 % of one core.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoballoon.config import DaemonConfig
from autoballoon.loop import Daemon
from autoballoon.timeline import Timeline

from rig.bench.reaction import Stats
from rig.bench.scale_sim import EventSource, Latencies, Rates, SimHost
from rig.errors import RigError

WARMUP_S = 5.0
TARGET_VMS, TARGET_P99_MS, TARGET_CPU_PERCENT = 500, 10.0, 5.0
POLL = "stats poll"  # what Daemon.observe calls the loop's side of a stats poll
RESULT_JSON = "daemon-scale.json"


@dataclass(frozen=True)
class SizeResult:
    """One size's measurement: inputs handled in the window, their decision times, the
    daemon's CPU."""

    vms: int
    seconds: float  # the window, measured
    inputs: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_percent: float
    by_kind: dict[str, Stats]  # decision times per input kind
    poll: Stats  # the loop's side of each stats poll
    set_memory_calls: int
    stats_calls: int
    sim_events: dict[str, int]  # what the simulator put in the window's run
    cpu_by_thread: dict[str, float]  # percent of a core: loop, stats poller, VM workers

    def meets_targets(self) -> bool | None:
        """Whether the issue's targets hold (None: they are for TARGET_VMS only)."""
        if self.vms != TARGET_VMS:
            return None
        return self.p99_ms < TARGET_P99_MS and self.cpu_percent < TARGET_CPU_PERCENT


def summarize(vms: int, seconds: float, timed: Iterable[tuple[str, float]],
              cpu_s: dict[str, float], set_memory_calls: int = 0, stats_calls: int = 0,
              sim_events: dict[str, int] | None = None) -> SizeResult:
    """One size's result from the (what, seconds) the daemon observed and the CPU seconds
    its threads used over ``seconds`` of wall time, by group of threads (pure)."""
    kinds: dict[str, list[float]] = defaultdict(list)
    for what, s in timed:
        kinds[what].append(s)
    polls = kinds.pop(POLL, [])
    every = [s for times in kinds.values() for s in times]
    overall = Stats.of(every)

    def percent(cpu: float) -> float:
        return 100.0 * cpu / seconds if seconds > 0 else float("nan")

    return SizeResult(vms, seconds, overall.n, overall.median_ms, overall.p99_ms,
                      overall.max_ms, percent(sum(cpu_s.values())),
                      {k: Stats.of(v) for k, v in sorted(kinds.items())}, Stats.of(polls),
                      set_memory_calls, stats_calls, dict(sim_events or {}),
                      {k: percent(v) for k, v in sorted(cpu_s.items())})


def _ms(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"  # NaN: no inputs


def table(results: Iterable[SizeResult]) -> str:
    """VMs, inputs, p50 ms, p99 ms, CPU % (of one core), one row per size."""
    lines = [f"{'VMs':>5} {'inputs':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU %':>7}"]
    for r in results:
        mark = {True: "  (targets met)", False: "  (targets MISSED)"}.get(
            r.meets_targets(), "")
        lines.append(f"{r.vms:>5} {r.inputs:>8} {_ms(r.p50_ms):>8} {_ms(r.p99_ms):>8} "
                     f"{r.cpu_percent:>7.2f}{mark}")
    return "\n".join(lines)


def to_json(results: list[SizeResult], *, seconds: float, warmup_s: float,
            latencies: Latencies, rates: Rates, command: str,
            timeline: bool = False) -> dict[str, Any]:
    """The JSON document of a run: the rows, their breakdowns, what was simulated and
    where it ran (a niced or busy machine's numbers are no measurement of the daemon)."""
    return {
        "command": command,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "loadavg": list(os.getloadavg()),
                    "nice": os.nice(0), "python": sys.version.split()[0]},
        "seconds": seconds,
        "warmup_s": warmup_s,
        "timeline": timeline,
        "targets": {"vms": TARGET_VMS, "p99_ms": TARGET_P99_MS,
                    "cpu_percent": TARGET_CPU_PERCENT},
        "latencies": dataclasses.asdict(latencies),
        "rates": dataclasses.asdict(rates),
        "sizes": [_finite(dataclasses.asdict(r) | {"meets_targets": r.meets_targets()})
                  for r in results],
    }


def _finite(value: Any) -> Any:
    """NaN (no inputs of a kind) as null: JSON has no NaN."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


# -- the measurement (real time) -----------------------------------------------------------

def thread_cpu_s(threads: Iterable[threading.Thread]) -> dict[threading.Thread, float]:
    """Each live thread's CPU time so far (its per-thread CPU clock)."""
    out = {}
    for t in threads:
        if t.ident is not None and t.is_alive():
            try:
                out[t] = time.clock_gettime(time.pthread_getcpuclockid(t.ident))
            except OSError:
                continue  # ended meanwhile
    return out


def thread_group(t: threading.Thread) -> str:
    """Which of the daemon's threads: its VMs' workers (pool.py names its threads
    vm-pool-N; a worker with a thread of its own has vm-NAME),
    the stats poller, the loop (the rest)."""
    if t.name.startswith("vm-"):
        return "workers"
    return "stats poller" if t.name == "stats-poller" else "loop"


def measure(vms: int, seconds: float, warmup_s: float = WARMUP_S,
            latencies: Latencies | None = None, rates: Rates | None = None,
            seed: int = 0, timeline: bool = False) -> SizeResult:
    """One size: a daemon on a simulated host of ``vms`` VMs, ``seconds`` measured; as a
    host runs it (no timeline) or, ``timeline``, writing one (to /dev/null: its encoding,
    not the disk)."""
    latencies, rates = latencies or Latencies(), rates or Rates()
    with tempfile.TemporaryDirectory(prefix="daemon-scale-") as tmp, \
            open(os.devnull, "w") as devnull:
        host = SimHost(vms, Path(tmp), latencies, seed=seed)
        config = DaemonConfig(uri="sim:///", policy="auto", pressure_kind=None, tick_s=1.0,
                              stats_period_s=1.0)
        before = set(threading.enumerate())
        daemon = Daemon(config, Timeline(devnull if timeline else None),
                        adapter_factory=host.factory)
        daemon.proc = host.proc_dir
        loop = threading.Thread(target=daemon.run, name="autoballoond-loop", daemon=True)
        loop.start()
        events = EventSource(host, rates, seed + 1)
        try:
            _wait(lambda: len(daemon.snapshot.vms) == vms, 30 + vms / 10,
                  f"the daemon to manage {vms} VMs")
            events.start()
            time.sleep(warmup_s)
            ours = [t for t in threading.enumerate()  # the daemon's threads
                    if t not in before and t.name != EventSource.THREAD]
            timed: list[tuple[str, float]] = []
            sets, polls, sim = host.set_calls, host.stats_calls, dict(events.counts)
            cpu0, wall0 = thread_cpu_s(ours), time.monotonic()
            daemon.observe = lambda what, s: timed.append((what, s))
            time.sleep(seconds)
            daemon.observe = None
            cpu1, wall1 = thread_cpu_s(ours), time.monotonic()
            cpu: dict[str, float] = defaultdict(float)
            for t, end in cpu1.items():
                cpu[thread_group(t)] += end - cpu0.get(t, 0.0)
            sim = {k: v - sim.get(k, 0) for k, v in events.counts.items()}
            return summarize(vms, wall1 - wall0, list(timed), dict(cpu),
                             host.set_calls - sets, host.stats_calls - polls, sim)
        finally:
            events.stop()
            daemon.stop()
            loop.join(30)


def _wait(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > end:
            raise RigError(f"daemon-scale: waited {timeout_s:.0f} s for {what}")
        time.sleep(0.05)


def run(sizes: Iterable[int], seconds: float, results_root: Path, command: str,
        progress: Callable[[str], None] = print, warmup_s: float = WARMUP_S,
        timeline: bool = False) -> tuple[list[SizeResult], Path]:
    """Every size in turn; the JSON under ``results_root``/daemon-scale/<stamp>/."""
    latencies, rates = Latencies(), Rates()
    results = []
    for n in sizes:
        progress(f"daemon-scale: {n} VMs, {warmup_s:.0f} s warm-up + {seconds:.0f} s")
        results.append(measure(n, seconds, warmup_s, latencies, rates, timeline=timeline))
    out = results_root / "daemon-scale" / time.strftime("%Y%m%dT%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    doc = to_json(results, seconds=seconds, warmup_s=warmup_s, latencies=latencies,
                  rates=rates, command=command, timeline=timeline)
    (out / RESULT_JSON).write_text(json.dumps(doc, indent=2) + "\n")
    return results, out


__all__ = ["SizeResult", "measure", "run", "summarize", "table", "thread_cpu_s",
           "to_json"]
