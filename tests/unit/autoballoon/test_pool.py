"""The threads the VMs' workers share (host/autoballoon/pool.py), and a worker's jobs on
them: in order, one at a time, a hung call holding only its own thread."""

from __future__ import annotations

import threading

from autoballoon.adapter import DomainRef
from autoballoon.pool import WorkerPool
from autoballoon.saved_state import SavedState
from autoballoon.workers import Command, CommandDone, VmWorker

from tests.unit.autoballoon.fake_libvirt import wait_until


def test_jobs_run_in_the_order_they_came_on_the_pools_threads():
    pool = WorkerPool(2, "test-pool")
    ran: list[int] = []
    try:
        for i in range(50):
            pool.enqueue(lambda i=i: ran.append(i))
        wait_until("every job ran", lambda: len(ran) == 50)
        assert pool.threads() == 2
    finally:
        pool.close()
    assert sorted(ran) == list(range(50))
    wait_until("its threads ended", lambda: pool.threads() == 0)


def test_a_stuck_job_gets_the_waiting_ones_a_thread_of_their_own():
    pool = WorkerPool(1, "test-pool", stuck_s=0.05)
    release, ran = threading.Event(), threading.Event()
    try:
        pool.enqueue(lambda: release.wait(5))  # a hung call
        pool.enqueue(ran.set)
        assert not ran.wait(0.1)  # every thread is busy: the job waits ...
        pool.check()  # ... until the busy one counts as stuck
        assert ran.wait(5)  # on a new thread, which ends once idle (one is enough)
        wait_until("the extra thread ended", lambda: pool.threads() == 1)
    finally:
        release.set()
        pool.close()
    wait_until("its threads ended", lambda: pool.threads() == 0)


def test_a_workers_jobs_run_one_at_a_time_and_in_order_on_a_shared_pool():
    calls: list[tuple[str, object]] = []
    running: set[str] = set()

    class Adapter:
        def set_target(self, ref: DomainRef, target: int) -> None:
            assert ref.name not in running  # never two jobs of one VM at once
            running.add(ref.name)
            threading.Event().wait(0.001)
            calls.append((ref.name, target))
            running.discard(ref.name)

        def save_state(self, ref: DomainRef, state: SavedState) -> None:
            calls.append((ref.name, state))

    pool = WorkerPool(4, "test-pool")
    reports: list[object] = []
    workers = [VmWorker(DomainRef(n, "u", 1), Adapter(), reports.append,  # type: ignore[arg-type]
                        lambda: 1.0, pool=pool) for n in "abcdef"]
    try:
        for target in (900, 800, 700):
            for w in workers:
                w.submit(command=Command(target, 0, "take", 1.0, SavedState(target)))
            wait_until("all done", lambda: all(w.idle() for w in workers))
        for w in workers:
            w.stop(finish_saves=True)
        for w in workers:
            w.join(5)
    finally:
        pool.close()
    for name in "abcdef":
        sent = [c for n, c in calls if n == name and isinstance(c, int)]
        assert sent == [900, 800, 700]
    assert sum(isinstance(r, CommandDone) for r in reports) == 18
