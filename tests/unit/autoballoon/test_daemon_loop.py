"""The daemon's decision loop against a fake libvirt: disconnects, VMs stopping
mid-command, failed setMemory, restarts during an inflation, reboots during an outage,
a hung QEMU monitor and input floods. Policy `seed` (32 MiB steps, no hysteresis) keeps
the arithmetic obvious."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest
from autoballoon.config import ConfigError, load_config
from autoballoon.events import (
    BalloonActual,
    GuestPressure,
    GuestStats,
    HostPressure,
    SetEnabled,
    VmRemoved,
)
from autoballoon.model import SetPolicy
from autoballoon.policies import Policy
from autoballoon.saved_state import SavedState

from tests.unit.autoballoon.fake_libvirt import FakeDomain, FakeHost, Harness, wait_until


def vm(h: Harness, name: str) -> dict:
    return h.show()["vms"][name]


def inflate(h: Harness, times: int = 1) -> None:
    """Host pressure `times` over; the balloons follow."""
    for _ in range(times):
        h.put(HostPressure(h.now(), "low"))
        h.settle()
        for name, d in h.host.domains.items():
            h.put(BalloonActual(h.now(), name, d.current_mib))
        h.settle()


# -- 1: races with libvirt never end the loop ----------------------------------------------

def test_a_domain_stopping_between_set_memory_and_set_metadata_does_not_end_the_loop():
    h = Harness(FakeHost.of(FakeDomain("a"))).start()
    h.host.stop_after_set.add("a")
    h.put(HostPressure(h.now(), "low"))
    h.settle()
    assert h.host.set_log == [("a", 992)]
    h.put(HostPressure(h.now(), "low"))  # the loop goes on: this one fails, and says so
    h.settle()
    assert [r["target_mib"] for r in h.records("command-failed")] == [960]


class Exploding(Policy):
    name = "exploding"

    def on_host_pressure(self, view, level, now):
        raise RuntimeError("a policy bug")


def test_an_exception_handling_one_input_is_logged_and_the_loop_goes_on(caplog):
    h = Harness(FakeHost.of(FakeDomain("a")), real_time=True)
    h.run_in_thread()
    try:
        wait_until("a managed", lambda: "a" in h.show().get("vms", {}))
        h.put(SetPolicy(h.now(), Exploding()))
        h.put(HostPressure(h.now(), "low"))
        wait_until("the error in the timeline", lambda: h.records("error"))
        assert h.records("error")[0]["input"] == "HostPressure"
        assert "a policy bug" in h.records("error")[0]["error"]
        h.put(SetEnabled(h.now(), "a", False))
        wait_until("the next input handled", lambda: not vm(h, "a")["enabled"])
        assert h.thread is not None and h.thread.is_alive()
    finally:
        h.stop_thread()
    assert any(r.levelno == logging.ERROR for r in caplog.records)
    assert "a policy bug" in caplog.text


def test_commands_during_a_libvirt_outage_are_applied_after_the_reconnect():
    h = Harness(FakeHost.of(FakeDomain("a"))).start()
    h.host.drop_connection(reachable=False)
    h.settle()
    assert h.records("libvirt")[-1]["state"] in ("disconnected", "unreachable")
    h.put(HostPressure(h.now(), "low"))
    h.settle()
    assert h.records("command-failed")[-1]["target_mib"] == 992
    h.advance(10)  # still away: back-off, no crash
    assert h.records("libvirt")[-1]["state"] == "unreachable"
    h.host.reachable = True
    h.advance(10)
    assert h.records("libvirt")[-1]["state"] == "connected"
    h.poll()
    assert h.host.domains["a"].current_mib == 992
    assert vm(h, "a")["target_mib"] == 992


# -- 2: a failed setMemory is retried --------------------------------------------------

def test_a_failed_give_back_is_retried_on_a_later_pass():
    h = Harness(FakeHost.of(FakeDomain("a"))).start()
    inflate(h)
    assert h.host.domains["a"].current_mib == 992
    h.host.fail_set["a"] = 1
    h.put(GuestPressure(h.now(), "a", "low"))
    h.settle()
    assert h.records("command-failed")[-1]["target_mib"] == 1024
    assert h.host.domains["a"].current_mib == 992  # the guest is still short
    h.poll()
    assert h.host.domains["a"].current_mib == 1024  # given back on the next pass
    retry = h.records("command")[-1]
    assert (retry["vm"], retry["target_mib"]) == ("a", 1024)
    assert retry["cause"].startswith("retry")


def test_a_failed_inflation_is_re_decided_not_stacked():
    h = Harness(FakeHost.of(FakeDomain("a"))).start()
    h.host.fail_set["a"] = 1
    h.put(HostPressure(h.now(), "low"))
    h.settle()
    h.put(HostPressure(h.now(), "low"))  # decided on top of the model's 992: 960
    h.settle()
    h.poll()
    assert h.host.set_log == [("a", 960)]
    assert vm(h, "a")["target_mib"] == 960


# -- 3: restarts keep target, taken, disable and manual -----------------------------------

def test_a_restart_during_an_inflation_resumes_from_the_target_not_the_balloon():
    # The daemon had set 800 (224 taken); the balloon is still on its way, at 900.
    h = Harness(FakeHost.of(FakeDomain("a", current_mib=900,
                                       saved=SavedState(800, 224)))).start()
    assert (vm(h, "a")["target_mib"], vm(h, "a")["auto_inflated_mib"]) == (800, 224)
    for actual in (870, 830, 800):
        h.put(BalloonActual(h.now(), "a", actual))
    h.settle()
    assert vm(h, "a")["manual"] is False  # still ours, not yielded to "manual"


def test_target_taken_disable_and_manual_survive_a_restart():
    h = Harness(FakeHost.of(FakeDomain("a"), FakeDomain("b"))).start()
    inflate(h)
    assert h.control({"cmd": "disable", "vm": "a"}) == {"ok": True}
    h.host.setmem("b", 650)  # the operator's setMemory on b
    h.poll()
    assert (vm(h, "b")["target_mib"], vm(h, "b")["manual"]) == (650, True)

    h2 = h.restart()
    a, b = vm(h2, "a"), vm(h2, "b")
    assert (a["target_mib"], a["auto_inflated_mib"], a["enabled"], a["manual"]) == (
        992, 32, False, False)
    assert (b["target_mib"], b["manual"]) == (650, True)


def test_bad_saved_state_is_ignored():
    h = Harness(FakeHost.of(FakeDomain("a", current_mib=900,
                                       saved=SavedState(5000, 224)))).start()
    assert (vm(h, "a")["target_mib"], vm(h, "a")["auto_inflated_mib"]) == (900, 0)


# -- 4: a new boot is a new VM ------------------------------------------------------------

def test_a_vm_that_rebooted_while_libvirt_was_away_starts_afresh():
    h = Harness(FakeHost.of(FakeDomain("a"))).start()
    inflate(h, 2)
    assert vm(h, "a")["target_mib"] == 960
    h.host.drop_connection()
    h.host.reboot("a")  # back at its full 1024 MiB, nothing taken
    h.settle()
    h.advance(1)
    rebooted = len(h.host.set_log)
    h.put(GuestPressure(h.now(), "a", "low"))
    h.settle()
    assert [t for name, t in h.host.set_log[rebooted:] if name == "a" and t < 1024] == []
    assert (vm(h, "a")["target_mib"], vm(h, "a")["auto_inflated_mib"]) == (1024, 0)


# -- 5: a hung VM stalls nothing; nothing that matters is dropped ---------------------------

def test_a_hung_vm_does_not_stall_decisions_for_the_others():
    host = FakeHost.of(FakeDomain("a"), FakeDomain("b"))
    host.hang["a"] = threading.Event()
    h = Harness(host, real_time=True)
    h.run_in_thread()
    try:
        wait_until("both managed", lambda: len(h.show().get("vms", {})) == 2)
        h.put(HostPressure(h.now(), "low"))
        wait_until("b's command while a hangs", lambda: ("b", 992) in host.set_log, 3)
        assert h.control({"cmd": "disable", "vm": "b"}) == {"ok": True}
        wait_until("a control request handled", lambda: not vm(h, "b")["enabled"], 3)
    finally:
        h.stop_thread()


def test_lifecycle_and_control_inputs_are_never_dropped_and_floods_are_coalesced():
    h = Harness(FakeHost.of(FakeDomain("a"), FakeDomain("b")), queue_bound=8).start()
    for i in range(1000):
        h.put(GuestStats(h.now(), "a", {"usable": 10_000 + i}))
        h.put(GuestPressure(h.now(), "b", "critical" if i == 500 else "low"))
    h.put(SetEnabled(h.now(), "b", False))
    h.put(VmRemoved(h.now(), "a"))
    h.settle()
    assert set(h.show()["vms"]) == {"b"}
    assert vm(h, "b")["enabled"] is False
    inputs = h.records("input")
    flood = [r for r in inputs if r["event"] == "GuestStats"
             and r["stats"].get("usable", 0) >= 10_000]
    assert [r["stats"]["usable"] for r in flood] == [10_999]
    guest = [r for r in inputs if r["event"] == "GuestPressure"]
    assert [(r["level"], r["messages"]) for r in guest] == [("critical", 1000)]


# -- 9: errors are visible without a timeline ---------------------------------------------

def test_errors_are_logged_with_their_level_without_a_timeline(caplog):
    caplog.set_level(logging.INFO)
    h = Harness(FakeHost.of(FakeDomain("a")), timeline=False).start()
    h.host.fail_set["a"] = 1
    h.put(HostPressure(h.now(), "low"))
    h.settle()
    assert any(r.levelno == logging.WARNING and "a" in r.getMessage()
               and "unable to change" in r.getMessage() for r in caplog.records)


def test_log_lines_are_json_objects_whatever_the_message():
    from autoballoon.daemon import JsonFormatter

    rec = logging.LogRecord("autoballoond", logging.WARNING, __file__, 1,
                            'vm "a": %s', ("back\\slash\nnew line",), None)
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    d = json.loads(line)
    assert (d["level"], d["msg"]) == ("WARNING", 'vm "a": back\\slash\nnew line')


# -- 6: a bad name_pattern is found before anything starts ---------------------------------

def test_an_invalid_name_pattern_is_a_config_error():
    with pytest.raises(ConfigError, match="name_pattern 'prod-\\(' is not a regex"):
        load_config("", {"name_pattern": "prod-("})
    assert load_config("", {"name_pattern": "prod-.*"}).name_pattern == "prod-.*"


# -- the fake adapter's other cases, and what the rig reads -------------------------------

def test_timeline_records_keep_their_shape():
    h = Harness(FakeHost.of(FakeDomain("a"))).start()
    h.host.fail_set["a"] = 1
    inflate(h, 2)
    connected, command, failed = (h.records("libvirt")[0], h.records("command")[0],
                                  h.records("command-failed")[0])
    assert (connected["state"], connected["domains"]) == ("connected", ["a"])
    assert set(command) == {"wall", "kind", "vm", "target_mib", "cause", "reaction_s"}
    assert set(failed) == {"wall", "kind", "vm", "target_mib", "cause", "error"}
    assert command["cause"] == "host pressure low" and command["reaction_s"] >= 0
    pressure = [r for r in h.records("input") if r["event"] == "HostPressure"]
    assert pressure[0]["level"] == "low"


def test_a_vm_stopping_mid_command_is_dropped_and_not_retried():
    h = Harness(FakeHost.of(FakeDomain("a"), FakeDomain("b"))).start()
    h.host.domains["a"].running = False  # stopped; its lifecycle event is on its way
    h.put(HostPressure(h.now(), "low"))
    h.settle()
    assert h.records("command-failed")[-1]["vm"] == "a"
    h.host.adapter.stop("a")
    h.poll()
    assert set(h.show()["vms"]) == {"b"}
    assert h.host.set_log == [("b", 992)]


def test_the_operators_target_is_adopted_not_sent_back():
    h = Harness(FakeHost.of(FakeDomain("a"))).start()
    inflate(h)
    h.host.setmem("a", 400)  # the operator's setMemory to 400
    h.poll()
    assert (vm(h, "a")["target_mib"], vm(h, "a")["manual"]) == (400, True)
    assert h.control({"cmd": "enable", "vm": "a"}) == {"ok": True}
    h.poll()
    h.poll()
    assert h.host.set_log == [("a", 992)]  # nothing sent since: 400 is the operator's
    assert h.host.domains["a"].saved == SavedState(400, 0, True, False)


def test_a_stale_disconnect_report_is_ignored():
    from autoballoon.adapter import Disconnected

    h = Harness(FakeHost.of(FakeDomain("a"))).start()
    h.put(Disconnected(h.now(), "an older connection closed"))
    h.settle()
    assert [r["state"] for r in h.records("libvirt")] == ["connected"]
    assert h.host.adapter.connects == 1


def test_a_stop_right_after_a_command_still_saves_its_state():
    h = Harness(FakeHost.of(FakeDomain("a")), real_time=True)
    h.run_in_thread()
    try:
        wait_until("a managed", lambda: "a" in h.show().get("vms", {}))
        h.put(HostPressure(h.now(), "low"))
    finally:
        h.stop_thread()
    assert h.host.set_log == [("a", 992)]
    assert h.host.domains["a"].saved == SavedState(992, 32, True, False)


def test_targets_do_not_pile_up_behind_a_hung_vm():
    host = FakeHost.of(FakeDomain("a"), FakeDomain("b"))
    host.hang["a"] = threading.Event()
    h = Harness(host, real_time=True)
    h.run_in_thread()
    try:
        wait_until("both managed", lambda: len(h.show().get("vms", {})) == 2)
        for target in (992, 960, 928, 896):
            h.put(HostPressure(h.now(), "low"))
            wait_until(f"b at {target}", lambda t=target: ("b", t) in host.set_log, 3)
        host.hang["a"].set()
        wait_until("a done", lambda: vm(h, "a")["target_mib"] == 896 and any(
            r["vm"] == "a" and r["target_mib"] == 896 for r in h.records("command")), 3)
    finally:
        h.stop_thread()
    assert [t for name, t in host.set_log if name == "a"] == [992, 896]


# -- manual ballooning: only a target the daemon did not set ------------------------------

def test_the_guests_balloon_size_is_reported_but_never_makes_a_vm_manual():
    h = Harness(FakeHost.of(FakeDomain("a"))).start()
    inflate(h)
    for actual in (700, 650, 400):  # sizes no target of ours explains: the guest's doing
        h.put(BalloonActual(h.now(), "a", actual))
    h.settle()
    h.poll()
    assert (vm(h, "a")["manual"], vm(h, "a")["deviation"]) == (False, "below")
    h.put(HostPressure(h.now(), "low"))  # still automated
    h.settle()
    assert h.host.set_log[-1] == ("a", 960)
    h.put(BalloonActual(h.now(), "a", 960))
    h.settle()
    assert vm(h, "a")["deviation"] is None


def test_a_target_of_ours_that_libvirt_still_holds_is_not_the_operators():
    h = Harness(FakeHost.of(FakeDomain("a"))).start()
    inflate(h)
    h.host.fail_set["a"] = 1
    h.put(HostPressure(h.now(), "low"))  # 960 fails: the hypervisor keeps our 992
    h.settle()
    assert h.host.domains["a"].target_mib == 992
    h.poll()
    assert vm(h, "a")["manual"] is False
    assert h.host.set_log == [("a", 992), ("a", 960)]  # retried, not yielded


def test_an_operators_target_on_a_disabled_vm_makes_it_manual_too():
    h = Harness(FakeHost.of(FakeDomain("a"))).start()
    assert h.control({"cmd": "disable", "vm": "a"}) == {"ok": True}
    h.settle()
    h.host.setmem("a", 700)
    h.poll()
    assert (vm(h, "a")["target_mib"], vm(h, "a")["manual"]) == (700, True)
    h.host.setmem("a", 600)  # and the operator's next one is followed
    h.poll()
    assert vm(h, "a")["target_mib"] == 600
    assert h.host.domains["a"].saved == SavedState(600, 0, False, True)
    assert h.host.set_log == []


# -- VmRss: what each QEMU process holds, before its stats ---------------------------------

STATUS = """Name:\tqemu-system-x86
State:\tS (sleeping)
Pid:\t4242
VmPeak:\t 4000000 kB
VmRSS:\t  409600 kB
RssAnon:\t  400000 kB
HugetlbPages:\t   51200 kB
VmSwap:\t   51200 kB
Threads:\t9
"""


def test_each_poll_feeds_the_qemu_processes_rss_just_before_its_stats(tmp_path):
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "status").write_text(STATUS)  # 400 + 50 + 50 MiB
    h = Harness(FakeHost.of(FakeDomain("a", pid=4242), FakeDomain("b")))
    h.daemon.proc = tmp_path
    h.start()  # its first poll comes after the VMs found at the connect are added
    h.poll()
    h.poll()
    seen = [(r["event"], r["vm"]) for r in h.records("input")
            if r["event"] in ("VmRss", "GuestStats")]
    assert [e for e, name in seen if name == "a"] == ["VmRss", "GuestStats"] * 3
    assert [e for e, name in seen if name == "b"] == ["GuestStats"] * 3  # no pid: none
    assert {r["rss_mib"] for r in h.records("input") if r["event"] == "VmRss"} == {500}
    a = h.daemon.model.vm("a")
    assert a is not None and a.rss_mib == 500
    assert a.stats["usable"] == 1024 - 500  # the guest's 512 cut to what QEMU holds (M1)


def test_a_boots_qemu_pid_is_looked_up_once_not_at_every_poll(tmp_path, monkeypatch):
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "status").write_text(STATUS)
    h = Harness(FakeHost.of(FakeDomain("a", pid=4242)))
    h.daemon.proc = tmp_path
    asked: list[str] = []
    qemu_pid = h.host.adapter.qemu_pid
    monkeypatch.setattr(h.host.adapter, "qemu_pid",
                        lambda ref: (asked.append(ref.name), qemu_pid(ref))[1])
    h.start()
    for _ in range(3):
        h.poll()
    assert asked == ["a"]
    h.host.drop_connection()
    h.host.reboot("a").pid = 4242  # a new boot: a new QEMU process (the same pid here)
    h.settle()
    for _ in range(2):
        h.poll()
    assert asked == ["a", "a"]
    assert {r["rss_mib"] for r in h.records("input") if r["event"] == "VmRss"} == {500}


def test_an_unreadable_qemu_process_is_skipped_quietly(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="autoballoond")
    h = Harness(FakeHost.of(FakeDomain("a", pid=4242)))  # no /proc entry: it is gone
    h.daemon.proc = tmp_path
    h.start()
    h.poll()
    assert [r for r in h.records("input") if r["event"] == "VmRss"] == []
    assert h.records("error") == []
    assert [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG
            and "RSS" in r.getMessage()] == []
    assert any("no RSS of QEMU process 4242" in r.getMessage() for r in caplog.records)
    assert [r for r in h.records("input") if r["event"] == "GuestStats"]


# -- scale: one bulk stats call per poll, one snapshot per pass -----------------------------

def test_each_poll_is_one_bulk_stats_call_for_every_vm():
    names = [f"vm{i}" for i in range(5)]
    h = Harness(FakeHost.of(*(FakeDomain(n) for n in names))).start()
    calls = len(h.host.adapter.stats_calls)
    h.poll()
    h.poll()
    assert h.host.adapter.stats_calls[calls:] == [names, names]
    got = [r["vm"] for r in h.records("input") if r["event"] == "GuestStats"]
    assert got[-10:] == names + names  # every VM's stats reached the model
    assert all(v is not None and v.stats["usable"] == 512
               for v in map(h.daemon.model.vm, names))


def test_a_poll_is_one_input_for_every_vm_and_one_model_event():
    names = [f"vm{i}" for i in range(5)]
    h = Harness(FakeHost.of(*(FakeDomain(n) for n in names))).start()
    seen: list[str] = []
    h.daemon.observe = lambda what, _s: seen.append(what)
    handled: list[object] = []
    handle = h.daemon.model.handle
    h.daemon.model.handle = lambda ev: (handled.append(ev), handle(ev))[1]  # type: ignore
    h.poll()
    assert seen.count("Polled") == 1
    polls = [ev for ev in handled if type(ev).__name__ == "StatsPoll"]
    assert len(polls) == 1 and sorted(polls[0].stats) == names  # type: ignore[attr-defined]
    assert not [ev for ev in handled if type(ev).__name__ in ("GuestStats", "VmRss")]


def test_a_hung_monitor_leaves_its_vm_out_of_a_poll_not_the_others():
    host = FakeHost.of(FakeDomain("a"), FakeDomain("b"))
    h = Harness(host).start()
    host.hang["a"] = threading.Event()  # its monitor hangs: NOWAIT leaves it out
    seen = len(h.records("input"))
    h.poll()
    assert [r["vm"] for r in h.records("input")[seen:] if r["event"] == "GuestStats"] == ["b"]
    host.hang["a"].set()


def test_a_poll_still_running_is_skipped_not_stacked():
    from autoballoon.adapter import DomainRef, DomainStats
    from autoballoon.workers import Polled, StatsPoller, VmFigures

    release, entered = threading.Event(), threading.Event()
    ref = DomainRef("a", "u", 1)

    class Slow:
        calls = 0

        def domain_stats(self, refs):
            Slow.calls += 1
            entered.set()
            release.wait(5)
            return {ref: DomainStats({"usable": 1})}

        def qemu_pid(self, _ref):
            return None

    reports: list[object] = []
    poller = StatsPoller(Slow(), reports.append, lambda: 7.0)  # type: ignore[arg-type]
    try:
        assert poller.submit([ref], Path("/proc"))
        assert entered.wait(5)
        assert not poller.submit([ref], Path("/proc"))  # still running: skipped
        release.set()
        wait_until("the poll done", poller.idle)
        assert reports == [Polled(7.0, (VmFigures(ref, None, {"usable": 1}),), 7.0)]
        assert Slow.calls == 1
    finally:
        release.set()
        poller.stop()


def test_the_snapshot_is_published_once_per_pass_after_every_queued_input(monkeypatch):
    h = Harness(FakeHost.of(FakeDomain("a"), FakeDomain("b"))).start()
    published = []
    publish = h.daemon._publish
    monkeypatch.setattr(h.daemon, "_publish", lambda: (published.append(1), publish()))
    for i in range(50):
        h.put(SetEnabled(h.now(), "a", i % 2 == 1))
    h.put(SetEnabled(h.now(), "b", False))
    h.daemon.step(0.0)
    assert len(published) == 1 and len(h.daemon.inbox) == 0
    assert (vm(h, "a")["enabled"], vm(h, "b")["enabled"]) == (True, False)


def test_the_snapshot_shows_what_the_model_and_the_detector_hold():
    """Only the VMs that changed are looked up again at each pass: none is missed."""
    h = Harness(FakeHost.of(*(FakeDomain(n) for n in "abcd"))).start()
    inflate(h, 2)
    h.put(GuestPressure(h.now(), "b", "low"))
    h.put(BalloonActual(h.now(), "c", 500))  # a size no target explains
    h.host.setmem("d", 700)  # the operator's target
    h.put(SetEnabled(h.now(), "a", False))
    h.host.adapter.stop("b")
    h.poll()
    d = h.daemon
    expected = {n: (v.target_mib, v.actual_mib, v.auto_inflated_mib, v.enabled, v.manual,
                    d.manual.deviation(n)) for n, v in d.model.vms.items()}
    shown = {n: (r["target_mib"], r["actual_mib"], r["auto_inflated_mib"], r["enabled"],
                 r["manual"], r["deviation"]) for n, r in h.show()["vms"].items()}
    assert shown == expected
    assert set(shown) == {"a", "c", "d"} and shown["c"][-1] == "below" and shown["d"][4]


def test_a_command_and_its_state_to_save_are_one_job_of_its_worker(monkeypatch):
    from autoballoon.workers import VmWorker

    h = Harness(FakeHost.of(FakeDomain("a"), FakeDomain("b"))).start()
    saves: list[object] = []
    submit = VmWorker.submit
    monkeypatch.setattr(VmWorker, "submit", lambda self, command=None, save=None, **kw: (
        saves.append(save) if save is not None else None,
        submit(self, command, save, **kw))[1])
    inflate(h, 2)
    h.poll()
    assert sorted(h.host.set_log) == [("a", 960), ("a", 992), ("b", 960), ("b", 992)]
    assert saves == []  # no save handed over apart from the commands
    assert {n: d.saved for n, d in h.host.domains.items()} == {
        n: SavedState(960, 64) for n in "ab"}
    h.host.fail_set["a"] = 1
    h.put(GuestPressure(h.now(), "a", "low"))
    h.settle()  # failed: libvirt still has 960, and so has the metadata
    assert h.host.domains["a"].saved == SavedState(960, 64) and saves == []


def test_a_failed_save_is_written_again_at_the_next_poll_and_only_it(monkeypatch):
    from autoballoon.adapter import AdapterError

    h = Harness(FakeHost.of(FakeDomain("a"))).start()
    adapter, calls = h.host.adapter, []
    save_state = adapter.save_state

    def flaky(ref, state):
        calls.append(ref.name)
        if len(calls) == 1:
            raise AdapterError("setMetadata failed")
        save_state(ref, state)

    monkeypatch.setattr(adapter, "save_state", flaky)
    h.put(HostPressure(h.now(), "low"))
    h.settle()
    assert calls == ["a"] and h.host.domains["a"].saved != SavedState(992, 32)
    h.poll()
    assert calls == ["a", "a"] and h.host.domains["a"].saved == SavedState(992, 32)
    h.poll()
    assert calls == ["a", "a"]  # nothing else to write


def test_a_state_handed_over_while_a_command_runs_is_saved_instead_of_its_own():
    from autoballoon.adapter import DomainRef
    from autoballoon.workers import Command, CommandDone, VmWorker

    entered, release = threading.Event(), threading.Event()
    log: list[object] = []

    class Adapter:
        def set_target(self, ref, target):
            if target == 800:  # the second command hangs until released
                entered.set()
                release.wait(5)
            log.append(target)

        def save_state(self, ref, state):
            log.append(state)

    reports: list[object] = []
    w = VmWorker(DomainRef("a", "u", 1), Adapter(), reports.append,  # type: ignore[arg-type]
                 lambda: 1.0)
    try:
        w.submit(command=Command(900, 100, "take", 1.0, SavedState(900, 100), 3))
        wait_until("the command sent and its state saved", lambda: len(log) == 2)
        w.submit(command=Command(800, 200, "take", 1.0, SavedState(800, 200), 3))
        assert entered.wait(5)
        w.submit(save=SavedState(1000, 0, False))  # the loop's newer state, meanwhile
        release.set()
        wait_until("all done", lambda: w.idle() and len(reports) == 2)
    finally:
        release.set()
        w.stop()
    assert log == [900, SavedState(900, 100), 800, SavedState(1000, 0, False)]
    assert [(r.target_mib, r.saved, r.saves) for r in reports
            if isinstance(r, CommandDone)] == [(900, SavedState(900, 100), 3), (800, None, 3)]


def test_each_input_and_poll_can_be_timed():
    h = Harness(FakeHost.of(FakeDomain("a"))).start()
    seen: list[tuple[str, float]] = []
    h.daemon.observe = lambda what, s: seen.append((what, s))
    h.put(HostPressure(h.now(), "low"))
    h.poll()
    kinds = {what for what, _ in seen}
    assert {"HostPressure", "CommandDone", "Tick", "stats poll", "HostMemory",
            "Polled"} <= kinds
    assert all(s >= 0 for _, s in seen)


# -- seed is the RFC exactly: no host critical override, however it was chosen -------------

def sustained_critical(h: Harness) -> None:
    """5 s of critical, events 2 s apart; the balloons follow every take."""
    for step in (0, 2, 2, 1):
        h.advance(step)
        h.put(HostPressure(h.now(), "critical"))
        h.settle()
        for name, d in h.host.domains.items():
            h.put(BalloonActual(h.now(), name, d.current_mib))
        h.settle()


def test_seed_runs_without_the_host_critical_override_even_when_switched_to():
    h = Harness(FakeHost.of(FakeDomain("a"), FakeDomain("b")), "seed", params={}).start()
    h.put(GuestPressure(h.now(), "a", "low"))  # a: 60 s of the RFC's hysteresis
    h.settle()
    sustained_critical(h)
    assert h.daemon.model.host_override() is False
    assert {name for name, _ in h.host.set_log} == {"b"}  # a stays out of reach
    assert h.control({"cmd": "policy", "name": "auto"}) == {"ok": True}
    h.settle()
    assert h.daemon.model.host_override() is True  # every other policy is under it
    assert h.control({"cmd": "policy", "name": "seed", "params": {"step_mib": 64}}) == {
        "ok": True}
    h.settle()
    assert (h.show()["policy"], h.daemon.model.host_override()) == ("seed", False)
    h.put(HostPressure(h.now(), "critical"))
    h.settle()
    assert "a" not in {name for name, _ in h.host.set_log}
