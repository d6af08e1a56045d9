"""`rig daemon-scale`'s pure parts: the summary of what the daemon observed (percentiles,
CPU percent), the table, the JSON document, the simulated host's figures, and the
command's argument checks. Nothing here runs the daemon in real time: no timing."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from autoballoon.adapter import DomainRef
from autoballoon.events import STATS_KEYS
from autoballoon.libvirt_adapter import bulk_memory_stats

from rig.bench import daemon_scale as ds
from rig.bench.scale_sim import Latencies, Rates, SimHost
from rig.cli import main


def timed(kind: str, ms: list[float]) -> list[tuple[str, float]]:
    return [(kind, m / 1000) for m in ms]


def test_summary_percentiles_are_over_every_input_but_the_polls_own_pass():
    inputs = timed("Polled", [float(i) for i in range(1, 99)]) + timed(
        "HostPressure", [500.0, 900.0])
    r = ds.summarize(500, 10.0, [*inputs, *timed(ds.POLL, [7000.0] * 3)],
                     {"loop": 0.3, "workers": 0.1, "stats poller": 0.1})
    assert r.inputs == 100 and r.p50_ms == pytest.approx(50.5)
    assert r.p99_ms == pytest.approx(500.0)  # nearest rank: the 99th of 100
    assert r.max_ms == pytest.approx(900.0)
    assert r.poll.n == 3 and r.poll.median_ms == pytest.approx(7000.0)
    assert set(r.by_kind) == {"Polled", "HostPressure"}
    assert r.by_kind["HostPressure"].p99_ms == pytest.approx(900.0)
    assert r.cpu_percent == pytest.approx(5.0)  # 0.5 s of CPU over 10 s: 5 % of a core
    assert r.cpu_by_thread == pytest.approx({"loop": 3.0, "stats poller": 1.0,
                                             "workers": 1.0})


def test_the_targets_are_judged_at_500_vms_only():
    fast = ds.summarize(500, 10.0, timed("Tick", [1.0] * 100), {"loop": 0.4})
    busy = ds.summarize(500, 10.0, timed("Tick", [1.0] * 100), {"loop": 0.6})
    slow = ds.summarize(500, 10.0, timed("Tick", [1.0] * 98 + [20.0] * 2), {"loop": 0.1})
    assert (fast.meets_targets(), busy.meets_targets(), slow.meets_targets()) == (
        True, False, False)
    assert ds.summarize(50, 10.0, [], {"loop": 5.0}).meets_targets() is None


def test_the_table_has_a_row_per_size_and_says_whether_the_targets_hold():
    rows = [ds.summarize(10, 10.0, timed("Polled", [0.1, 0.2, 0.3]), {"loop": 0.01}),
            ds.summarize(500, 10.0, [], {"loop": 1.0})]
    lines = ds.table(rows).splitlines()
    assert lines[0].split() == ["VMs", "inputs", "p50", "ms", "p99", "ms", "CPU", "%"]
    assert lines[1].split() == ["10", "3", "0.20", "0.30", "0.10"]
    assert lines[2].split()[:5] == ["500", "0", "-", "-", "10.00"]  # no inputs: no times
    assert lines[2].endswith("(targets MISSED)")


def test_the_json_names_what_was_simulated_and_has_no_nan():
    rows = [ds.summarize(500, 10.0, timed("Polled", [0.5] * 10), {"loop": 0.2})]
    doc = ds.to_json(rows, seconds=10.0, warmup_s=5.0, latencies=Latencies(),
                     rates=Rates(), command="rig daemon-scale --vms 500")
    text = json.dumps(doc, allow_nan=False)  # strict JSON: a kind without inputs is null
    back = json.loads(text)
    assert back["targets"] == {"vms": 500, "p99_ms": 10.0, "cpu_percent": 5.0}
    assert back["latencies"]["set_memory_s"] == Latencies().set_memory_s
    assert back["rates"]["host_pressure_per_s"] == Rates().host_pressure_per_s
    assert {"cpus", "loadavg", "nice"} <= set(back["machine"])
    (size,) = back["sizes"]
    assert size["meets_targets"] is True and size["poll"]["median_ms"] is None
    assert size["by_kind"]["Polled"]["n"] == 10


def test_thread_cpu_reads_only_live_threads():
    done = threading.Thread(target=lambda: None)
    done.start()
    done.join()
    cpu = ds.thread_cpu_s([threading.current_thread(), done])
    assert list(cpu) == [threading.current_thread()] and cpu[threading.current_thread()] > 0
    assert ds.thread_group(threading.Thread(name="vm-sim-0001")) == "workers"
    assert ds.thread_group(threading.Thread(name="stats-poller")) == "stats poller"
    assert ds.thread_group(threading.Thread(name="autoballoond-loop")) == "loop"


def test_the_simulated_host_reports_what_libvirt_would(tmp_path: Path):
    host = SimHost(3, tmp_path, seed=4)
    adapter = host.factory(lambda _item: None, lambda: 0.0)
    ups = adapter.connect()
    assert [u.vm for u in ups] == ["sim-0000", "sim-0001", "sim-0002"]
    refs = [u.ref for u in ups[:2]]
    got = adapter.domain_stats([*refs, DomainRef("gone", "x", 1)])
    assert list(got) == refs  # the others are not asked for, and left out
    stats = got[refs[0]].stats
    assert set(stats) <= STATS_KEYS | {"last_update", "hugetlb_pgalloc", "hugetlb_pgfail"}
    assert stats["actual"] == 2048 and 0 <= stats["usable"] <= 2048  # MiB, as memoryStats
    assert set(stats) == set(bulk_memory_stats(host.guests["sim-0000"].record(0.0)))
    pid = adapter.qemu_pid(refs[0])
    assert pid is not None and (tmp_path / str(pid) / "status").is_file()
    assert host.stats_calls == 1 and got[refs[0]].target_mib is None


@pytest.mark.parametrize(("argv", "message"), [
    (["--vms", "0"], "--vms: every size must be at least 1"),
    (["--seconds", "0"], "--seconds must be more than 0"),
    (["--seconds", "nan"], "--seconds must be more than 0"),
])
def test_the_command_refuses_bad_arguments_before_anything(monkeypatch, capsys, argv,
                                                           message):
    def refuse(*_a, **_k):
        raise AssertionError("daemon-scale ran")
    monkeypatch.setattr(ds, "run", refuse)
    assert main(["daemon-scale", *argv]) == 2
    assert message in capsys.readouterr().err


def test_the_command_prints_the_table_and_where_the_json_is(monkeypatch, capsys,
                                                            tmp_path: Path):
    seen = {}

    def fake_run(sizes, seconds, root, command, progress, timeline):
        seen.update(sizes=list(sizes), seconds=seconds, root=root, timeline=timeline)
        out = root / "daemon-scale" / "stamp"
        return [ds.summarize(n, seconds, [], {"loop": 0.0}) for n in sizes], out
    monkeypatch.setattr(ds, "run", fake_run)
    assert main(["daemon-scale", "--vms", "10", "500", "--seconds", "2",
                 "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert seen == {"sizes": [10, 500], "seconds": 2.0, "root": tmp_path, "timeline": False}
    assert out.splitlines()[0].split()[0] == "VMs" and "500" in out
    assert f"daemon-scale.json in {tmp_path}/daemon-scale/stamp" in out
