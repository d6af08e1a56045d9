"""The threads the VMs' workers run their jobs on (``workers.py``): a few, shared.

A VM's worker hands its job (a bound method) to the pool when it has one and none is
running (``enqueue``); the pool runs the jobs in the order they came, each on one of its
threads, so a worker's jobs run one at a time and in order. Up to ``size`` threads are
started as jobs come (a job finding none idle), and kept. A burst of commands (a host
pressure event takes from ~400 VMs at once) is then a queue a few threads work through
back to back, not hundreds of threads woken at once that fight over the GIL: with 500
VMs, 400 commands at a time and the simulated latencies of ``rig daemon-scale``
(setMemory 1 ms, setMetadata 2 ms), a command costs 23-30 us of the threads' CPU, not the
78-117 us of a thread per VM (16 or 32 threads: the same). 32 threads drain such a burst
in ~40 ms: in ``rig daemon-scale`` at 500 VMs a command's reaction (its input's arrival to
the return of its setMemory) was p50 33 ms, p99 58 ms; with a thread per VM 41 and
68 ms (they queued for the GIL), with 16 threads 57 and 111 ms. (A real libvirtd serves
20 calls at once by default, its ``max_workers``: the sim does not model that limit.)

A hung call (a QEMU monitor that does not answer: libvirt gives up after 30 s) holds
only its own thread: a job waiting while every thread is busy and those not stuck (in
their job for ``stuck_s``) are fewer than ``size`` gets a new thread (``check``: the
daemon's loop calls it at each stats poll). Such extra threads end once idle again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("autoballoond")

POOL_SIZE = 32
STUCK_S = 1.0


class WorkerPool:
    def __init__(self, size: int = POOL_SIZE, name: str = "vm-pool",
                 stuck_s: float = STUCK_S, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.size, self.name, self.stuck_s, self.clock = size, name, stuck_s, clock
        self._lock = threading.Lock()
        self._ready: deque[Callable[[], None]] = deque()  # jobs not started, in order
        self._idle: list[threading.Lock] = []  # held wake locks of the threads waiting
        self._started: dict[int, float] = {}  # thread number -> when its job started
        self._threads = 0  # alive
        self._spawned = 0  # ever (names)
        self._closing = False

    def enqueue(self, job: Callable[[], None]) -> None:
        """Run ``job`` on a thread of the pool, after the jobs queued before it."""
        with self._lock:
            self._ready.append(job)
            if self._idle:
                self._idle.pop().release()
            elif self._threads < self.size and not self._closing:
                self._spawn()  # (stuck threads are counted by check only: once a poll)

    def check(self) -> None:
        """A thread for the waiting jobs if those able to take one are too few (stuck)."""
        with self._lock:
            if self._ready and not self._idle:
                self._grow()

    def close(self) -> None:
        """End the threads once the jobs queued are done."""
        with self._lock:
            self._closing = True
            for wake in self._idle:
                wake.release()
            self._idle.clear()

    def threads(self) -> int:
        with self._lock:
            return self._threads

    def _grow(self) -> None:  # under _lock
        now = self.clock()
        stuck = sum(1 for t in self._started.values() if now - t >= self.stuck_s)
        if self._threads - stuck < self.size and not self._closing:
            self._spawn()

    def _spawn(self) -> None:  # under _lock
        number, self._spawned = self._spawned, self._spawned + 1
        self._threads += 1
        wake = threading.Lock()
        wake.acquire()
        threading.Thread(target=self._run, args=(number, wake), daemon=True,
                         name=f"{self.name}-{number}" if self.size > 1 else self.name
                         ).start()

    def _run(self, number: int, wake: threading.Lock) -> None:
        while True:
            with self._lock:
                if self._ready:
                    job = self._ready.popleft()
                    self._started[number] = self.clock()
                elif self._closing or self._threads > self.size:
                    self._threads -= 1  # an extra thread, idle again: no longer needed
                    return
                else:
                    self._idle.append(wake)
                    job = None
            if job is None:
                wake.acquire()
                continue
            try:
                job()
            except Exception:  # a bug in a job must not end the thread
                log.exception("worker job failed")
            finally:
                with self._lock:
                    del self._started[number]


__all__ = ["POOL_SIZE", "STUCK_S", "WorkerPool"]
