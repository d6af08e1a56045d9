"""The decision loop's queue: order kept, floods coalesced, lifecycle and control never
dropped."""

import threading

from autoballoon.adapter import Disconnected
from autoballoon.events import (
    BalloonActual,
    GuestPressure,
    GuestStats,
    HostPressure,
    SetEnabled,
    VmRemoved,
)
from autoballoon.inbox import MAX_MESSAGES, Inbox


def drain(box: Inbox) -> list[object]:
    out = []
    while (item := box.get(0)) is not None:
        out.append(item)
    return out


def test_inputs_come_out_in_arrival_order():
    box = Inbox(10)
    items = [HostPressure(1, "low"), VmRemoved(2, "a"), GuestStats(3, "b", {}),
             SetEnabled(4, None, False), BalloonActual(5, "b", 512)]
    for item in items:
        box.put(item)
    assert drain(box) == items


def test_a_flood_keeps_its_first_place_and_its_latest_value():
    box = Inbox(10)
    box.put(BalloonActual(1, "a", 900))
    box.put(HostPressure(2, "low"))
    for i in range(100):
        box.put(BalloonActual(3 + i, "a", 800 - i))
    assert drain(box) == [BalloonActual(102, "a", 701), HostPressure(2, "low")]


def test_pressure_keeps_the_highest_level_the_message_count_and_the_first_arrival():
    box = Inbox(10)
    for t, level in enumerate(("low", "critical", "low")):
        box.put(HostPressure(t, level))
        box.put(GuestPressure(t, "a", level, MAX_MESSAGES // 2))
    assert drain(box) == [HostPressure(0, "critical"),
                          GuestPressure(0, "a", "critical", MAX_MESSAGES)]


def test_no_merge_across_a_lifecycle_or_control_input():
    box = Inbox(10)
    box.put(BalloonActual(1, "a", 900))
    box.put(VmRemoved(2, "a"))
    box.put(BalloonActual(3, "a", 1024))
    assert drain(box) == [BalloonActual(1, "a", 900), VmRemoved(2, "a"),
                          BalloonActual(3, "a", 1024)]


def test_only_coalescable_inputs_are_dropped_beyond_the_bound():
    box = Inbox(2)
    for vm in "abcd":
        box.put(GuestStats(0, vm, {}))
    for i in range(50):
        box.put(SetEnabled(i, None, True))
    box.put(Disconnected(60, "gone"))
    out = drain(box)
    assert box.dropped == 2
    assert [type(x).__name__ for x in out] == ["GuestStats"] * 2 + ["SetEnabled"] * 50 + [
        "Disconnected"]
    box.put(GuestStats(0, "c", {}))  # room again
    assert drain(box) == [GuestStats(0, "c", {})]


def test_get_waits_and_wake_ends_the_wait():
    box = Inbox(1)
    assert box.get(0.01) is None
    box.wake()
    assert box.get(0) is None


def test_polls_coalesce_each_vms_latest_figures_winning():
    from autoballoon.adapter import DomainRef
    from autoballoon.workers import Polled, VmFigures

    a, b = DomainRef("a", "u-a", 1), DomainRef("b", "u-b", 2)
    box = Inbox(10)
    box.put(Polled(1, (VmFigures(a, 500, {"usable": 1}), VmFigures(b, None, {"usable": 2})), 1))
    box.put(Polled(2, (VmFigures(a, 510, None),), 2))
    # b's figures only the first poll has are kept, at their own time, handled first
    assert drain(box) == [Polled(2, (VmFigures(a, 510, None),), 2,
                                 Polled(1, (VmFigures(b, None, {"usable": 2}),), 1))]
    box.put(Polled(1, (VmFigures(a, 500, None),), 1))
    box.put(Polled(2, (VmFigures(a, 510, None),), 2))  # nothing left of the first
    assert drain(box) == [Polled(2, (VmFigures(a, 510, None),), 2)]


def test_reports_wake_a_waiting_loop_once_per_lazy_window_in_their_place():
    import time

    from autoballoon.adapter import DomainRef
    from autoballoon.inbox import LAZY_S
    from autoballoon.workers import CommandDone

    done = CommandDone(1, DomainRef("a", "u", 1), 900, 100, "take", 0.001)
    box = Inbox(10)
    start = time.monotonic()
    threading.Timer(0.01, box.put, [done]).start()
    threading.Timer(0.02, box.put, [BalloonActual(2, "a", 900)]).start()
    assert box.get(5.0) == done  # a report waits for the window, not for the timeout
    assert LAZY_S * 0.9 <= time.monotonic() - start < 2.0
    assert box.get(0.0) == BalloonActual(2, "a", 900)
    box.put(done)
    box.put(HostPressure(3, "low"))  # anything else wakes the loop at once...
    start = time.monotonic()
    assert box.get(5.0) == done  # ... and finds the reports before it handled first
    assert box.get(0.0) == HostPressure(3, "low")
    assert time.monotonic() - start < LAZY_S / 2
    box.wake()
    assert box.get(5.0) is None
