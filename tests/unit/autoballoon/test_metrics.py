"""The Prometheus exporter: the text exposition of a fixed snapshot (golden file), counts
taken from the timeline's records of a real loop on the fake libvirt, the textfile
replaced atomically and at most once a second, an HTTP scrape on an ephemeral port of
127.0.0.1 (a real socket), and the config keys."""

from __future__ import annotations

import io
import os
import socket
import threading
import urllib.request
from pathlib import Path
from types import MappingProxyType

import pytest
from autoballoon import daemon
from autoballoon.config import ConfigError, load_config
from autoballoon.events import GuestPressure, HostPressure
from autoballoon.loop import Daemon
from autoballoon.metrics import (
    CountingTimeline,
    Counts,
    Exporter,
    Tally,
    VmCounts,
    exposition,
    registry,
    write_textfile,
)
from autoballoon.snapshot import Snapshot
from autoballoon.views import VmView
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests import FIXTURES
from tests.unit.autoballoon.fake_libvirt import FakeDomain, FakeHost, Harness

GOLDEN = FIXTURES / "metrics" / "snapshot.prom"


def view(name: str, target: int, actual: int, taken: int, enabled: bool = True,
         manual: bool = False) -> VmView:
    return VmView(name=name, max_mib=2048, floor_mib=256, target_mib=target, actual_mib=actual,
                  auto_inflated_mib=taken, last_guest_pressure_t=None, last_guest_level=None,
                  enabled=enabled, manual=manual, stats=MappingProxyType({}), stats_t=None,
                  prev_stats=MappingProxyType({}), prev_stats_t=None, last_inflate_t=None,
                  last_deflate_t=None)


def fixed() -> tuple[Snapshot, Counts]:
    snap = Snapshot("auto", True, 3, "medium",
                    {"web": view("web", 1536, 1540, 512),
                     "db": view("db", 2048, 2048, 0, enabled=False, manual=True)}, {}, 4096)
    counts = Counts({"web": VmCounts(7, 2, {"medium": 3, "low": 1}),
                     "gone": VmCounts(1, 1, {})},  # not in the snapshot: not shown
                    {"low": 5, "medium": 2})
    return snap, counts


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


# -- the pure part ------------------------------------------------------------------------

def test_the_exposition_of_a_fixed_snapshot_is_the_golden_text():
    assert exposition(*fixed()).decode() == GOLDEN.read_text()


def test_nothing_goes_to_the_global_registry():
    before = set(REGISTRY._names_to_collectors)  # prometheus_client's process-wide one
    reg = registry(*fixed())
    assert reg is not REGISTRY
    Exporter(None).publish(*fixed()[:1], lambda: fixed()[1])
    assert set(REGISTRY._names_to_collectors) == before


def test_unknowns_are_left_out_not_zero():
    snap = Snapshot("seed", False, 0, None, {})
    got = samples(exposition(snap, Counts()).decode())
    assert not any(name == "autoballoon_host_free_mib" for name, _ in got)
    assert all(v == 0 for (name, _), v in got.items() if name.startswith("autoballoon_host"))
    assert got[("autoballoon_enabled", ())] == 0


def test_counts_come_from_the_timeline_records():
    t = Tally()
    for kind, fields in [
        ("input", {"event": "VmAdded", "vm": {"name": "a", "max_mib": 1024}}),
        ("command", {"vm": "a", "target_mib": 992}),
        ("command-failed", {"vm": "a", "target_mib": 960, "error": "x"}),
        ("input", {"event": "GuestPressure", "vm": "a", "level": "critical", "messages": 4}),
        ("input", {"event": "GuestPressure", "vm": "a", "level": "bogus"}),  # not counted
        ("input", {"event": "HostPressure", "level": "between"}),
        ("libvirt", {"state": "connected"}),
    ]:
        t.record(kind, fields)
    c = t.counts()
    assert c.vms == {"a": VmCounts(2, 1, {"critical": 4})}
    assert c.host_pressure == {"between": 1}
    t.record("input", {"event": "VmRemoved", "vm": "a"})  # a new boot counts from 0
    assert t.counts().vms == {}


def test_a_loop_on_the_fake_libvirt_counts_its_commands_and_messages():
    host = FakeHost.of(FakeDomain("a"), FakeDomain("b"))
    h = Harness(host)
    timeline = CountingTimeline(io.StringIO())
    h.daemon = Daemon(h.config, timeline, clock=h.clock, adapter_factory=host.factory)
    h.settle()
    h.host.fail_set["a"] = 1
    h.put(HostPressure(h.now(), "low"))
    h.settle()
    h.put(GuestPressure(h.now(), "b", "medium", 2))
    h.settle()
    got = samples(exposition(h.daemon.snapshot, timeline.counts()).decode())
    assert got[("autoballoon_vm_commands_total", (("vm", "a"),))] == 1
    assert got[("autoballoon_vm_command_failures_total", (("vm", "a"),))] == 1
    assert got[("autoballoon_vm_command_failures_total", (("vm", "b"),))] == 0
    assert got[("autoballoon_vm_pressure_events_total", (("level", "medium"), ("vm", "b")))] == 2
    assert got[("autoballoon_host_pressure_events_total", (("level", "low"),))] == 1
    assert got[("autoballoon_host_pressure_level", (("level", "low"),))] == 1
    assert got[("autoballoon_vm_target_mib", (("vm", "b"),))] == h.show()["vms"]["b"][
        "target_mib"]


# -- the textfile -------------------------------------------------------------------------

def test_the_textfile_is_replaced_whole_never_seen_in_part(tmp_path):
    path = tmp_path / "autoballoon.prom"
    small, big = b"a 1\n", b"".join(b"b%d 2\n" % i for i in range(20000))
    write_textfile(path, small)
    seen: set[bytes] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.add(path.read_bytes())

    r = threading.Thread(target=reader)
    r.start()
    for i in range(200):
        write_textfile(path, big if i % 2 else small)
    stop.set()
    r.join()
    assert seen <= {small, big}
    assert os.listdir(tmp_path) == ["autoballoon.prom"]  # no temporary file left behind
    assert path.stat().st_mode & 0o777 == 0o644  # node_exporter runs as another user


def test_a_failed_write_leaves_what_was_there_and_no_temporary(tmp_path):
    path = tmp_path / "m.prom"
    path.mkdir()  # the rename over it fails (EISDIR): a real failure, after the write
    (path / "keep").write_text("x")
    with pytest.raises(OSError):
        write_textfile(path, b"new 2\n")
    assert sorted(os.listdir(tmp_path)) == ["m.prom"] and (path / "keep").read_text() == "x"


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_the_exporter_rewrites_the_textfile_at_most_once_a_second(tmp_path):
    path = tmp_path / "autoballoon.prom"
    clock = Clock()
    exporter = Exporter(path, clock)
    snap, counts = fixed()
    reads: list[int] = []

    def counted() -> Counts:
        reads.append(1)
        return counts

    try:
        assert exporter.publish(snap, counted)
        assert exporter.flush()
        assert path.read_text() == GOLDEN.read_text()
        clock.now += 0.5
        assert not exporter.publish(Snapshot("seed", False, 0, None, {}), counted)
        clock.now += 0.5
        assert exporter.publish(Snapshot("seed", False, 0, None, {}), counted)
        assert exporter.flush()
        assert 'autoballoon_policy_info{policy="seed"} 1.0' in path.read_text()
        assert len(reads) == 2  # the counts are copied only when published
    finally:
        exporter.close()


def test_an_unwritable_textfile_is_logged_once_and_the_daemon_goes_on(tmp_path, caplog):
    folder = tmp_path / "gone"
    folder.mkdir()
    clock = Clock()
    exporter = Exporter(folder / "m.prom", clock)
    folder.rmdir()
    try:
        for _ in range(3):
            assert exporter.publish(*fixed()[:1], lambda: fixed()[1])
            assert exporter.flush()
            clock.now += 1.0
    finally:
        exporter.close()
    assert len([r for r in caplog.records if "cannot write the metrics" in r.getMessage()]) == 1


# -- HTTP ---------------------------------------------------------------------------------

def test_an_http_scrape_on_127_0_0_1_gets_the_last_published_metrics():
    exporter = Exporter(None, Clock())
    try:
        host, port = exporter.serve("127.0.0.1", 0)
        assert host == "127.0.0.1" and port > 0
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            assert r.status == 200 and b"autoballoon_" not in r.read()  # nothing yet
        exporter.publish(*fixed()[:1], lambda: fixed()[1])
        with urllib.request.urlopen(url, timeout=5) as r:
            assert r.headers["Content-Type"].startswith("text/plain")
            assert r.read().decode() == GOLDEN.read_text()
    finally:
        exporter.close()
    with pytest.raises(OSError):  # closed: the port no longer answers
        urllib.request.urlopen(url, timeout=2)


def test_main_exits_2_with_one_line_when_the_metrics_port_is_taken(tmp_path, capsys,
                                                                   monkeypatch):
    def must_not_run(_self: object) -> None:
        raise AssertionError("the daemon started")

    monkeypatch.setattr(daemon.Daemon, "run", must_not_run)
    monkeypatch.setattr(daemon.signal, "signal", lambda *_: None)  # keep pytest's handlers
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc = daemon.main(["--no-config", "--uri", "test:///default", "--pressure", "none",
                          "--control-socket", str(tmp_path / "c.sock"),
                          "--metrics-port", str(port)], env={})
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith(
        f"autoballoond: cannot serve the metrics on 127.0.0.1 port {port}: "), err
    assert not (tmp_path / "c.sock").exists()  # the control socket was taken down again


# -- configuration ------------------------------------------------------------------------

def test_metrics_keys_in_the_daemon_table():
    c = load_config('[daemon]\nmetrics_port = 9477\nmetrics_address = "::1"\n'
                    'metrics_textfile = "/var/lib/node_exporter/autoballoon.prom"\n', {})
    assert (c.metrics_port, c.metrics_address) == (9477, "::1")
    assert c.metrics_textfile == "/var/lib/node_exporter/autoballoon.prom"
    d = load_config("", {})
    assert (d.metrics_port, d.metrics_address, d.metrics_textfile) == (None, "127.0.0.1", None)


@pytest.mark.parametrize(("body", "message"), [
    ("metrics_port = 0", "metrics_port must be in [1, 65535], got 0"),
    ("metrics_port = 70000", "metrics_port must be in [1, 65535]"),
    ('metrics_port = "9477"', "metrics_port must be an integer"),
    ('metrics_address = "localhost"', "metrics_address must be an IP address"),
    ('metrics_textfile = "/tmp/m.txt"', "metrics_textfile must end in .prom"),
])
def test_bad_metrics_keys_are_one_line_naming_the_key(body, message):
    with pytest.raises(ConfigError) as e:
        load_config(f"[daemon]\n{body}\n", {})
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_textfile_in_a_missing_directory_exits_2(tmp_path, capsys, monkeypatch):
    def must_not_run(_self: object) -> None:
        raise AssertionError("the daemon started")

    monkeypatch.setattr(daemon.Daemon, "run", must_not_run)
    monkeypatch.setattr(daemon.signal, "signal", lambda *_: None)
    rc = daemon.main(["--no-config", "--pressure", "none",
                      "--control-socket", str(tmp_path / "c.sock"),
                      "--metrics-textfile", str(tmp_path / "nope" / "m.prom")], env={})
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("autoballoond: metrics_textfile: ") and "create it" in err


def test_the_golden_file_is_valid_exposition():
    fams = {f.name for f in text_string_to_metric_families(GOLDEN.read_text())}
    assert {"autoballoon_vm_target_mib", "autoballoon_vm_pressure_events",
            "autoballoon_host_pressure_level"} <= fams
    assert Path(GOLDEN).read_text().endswith("\n")
