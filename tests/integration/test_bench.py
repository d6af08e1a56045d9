"""The benchmark runner end to end on a tiny scenario: a complete run's files and
summaries, the daemon's timeline in an automated mode, and an interrupted run that is
marked incomplete and leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rig import scenario
from rig.bench import results, run_metrics
from rig.bench import runner as bench
from rig.progress import Progress

from .conftest import interrupt_rig, leftovers

pytestmark = pytest.mark.vm

TINY = """\
# tiny: the benchmark runner's own test. Two small VMs, two short workload steps each,
# vm-b starting 3 s later; stresses nothing, proves the run's plumbing.
[host]
ram_mib = 1024
swap_mib = 1024

[[vm]]
name = "vm-a"
memory_mib = 384
guest_swap_mib = 128

[[vm]]
name = "vm-b"
memory_mib = 384
guest_swap_mib = 128

[workload]
chunk_bytes = 1048576
step_s = 3
threads = 1

[[workload.schedule]]
vm = "vm-a"
chunks = [96, 48]

[[workload.schedule]]
vm = "vm-b"
start_s = 3
chunks = [48, 96]

[bench]
runs = 1
modes = ["vanilla", "auto"]
"""


@pytest.mark.parametrize("mode", ["vanilla", "auto"])
def test_a_run_writes_raw_files_and_summaries(layout, stack, daemons_before, mode,
                                              tmp_path: Path):
    sc = scenario.parse(TINY, "tiny")
    ctx = bench.BenchContext(layout, stack, sc, TINY, Progress(), command="test")
    mode_dir = tmp_path / "tiny" / "20260101T000000" / mode  # results/<scenario>/<stamp>/
    summary = bench.run_mode(ctx, mode, 1, mode_dir)
    run = mode_dir / "run-1"
    assert summary["complete"] is True and summary["runs"] == 1
    assert results.run_state(run) == "complete"
    m = {k: v["mean"] for k, v in summary["metrics"].items()}
    for name in results.metric_names(["vm-a", "vm-b"]):
        assert name in m, name
    assert m["vm-a.guest.records_total"] > 0 and m["vm-b.guest.step2.records_s"] > 0
    assert m["vm-a.guest.oom_kills"] == 0 and m["vm-a.guest.failed_steps"] == 0
    assert 6 <= m["elapsed_s"] < 120 and m["vm-a.qemu.user_s"] > 0
    for f in ("host-vmstat.start", "vm-a.qemu-stat.end", "vm-b.stream.txt",
              "vm-a.ebizzy-2.txt", "samples.jsonl", "env.json", "timing.json"):
        assert (run / f).is_file(), f
    env = json.loads((run / "env.json").read_text())
    assert env["mode"] == mode and env["accel"] in ("tcg", "kvm") and env["image"]
    # The summary's numbers are exactly what the raw files give.
    complete, recomputed = run_metrics.compute(run, ["vm-a", "vm-b"])
    assert complete and recomputed == results.RunSummary.from_json(
        json.loads((run / "summary.json").read_text())).metrics
    if mode == "auto":
        assert (run / "timeline.jsonl").is_file() and "daemon.commands" in m
    else:
        assert not (run / "timeline.jsonl").exists()
    assert leftovers(layout, daemons_before) == []


def test_a_user_supplied_ebizzy_binary_runs_instead_of_ours(layout, stack, tmp_path: Path):
    """--ebizzy: the binary is copied into each guest byte for byte and run there (here a
    copy of our own static build stands in for a real ebizzy)."""
    theirs = tmp_path / "ebizzy"
    theirs.write_bytes((stack.tools / "ebizzy").read_bytes())
    sc = scenario.parse(TINY, "tiny")
    ctx = bench.BenchContext(layout, stack, sc, TINY, Progress(), command="test", ebizzy=theirs)
    mode_dir = tmp_path / "tiny" / "20260101T000000" / "vanilla"
    summary = bench.run_mode(ctx, "vanilla", 1, mode_dir)
    assert summary["complete"] is True
    assert summary["metrics"]["vm-b.guest.records_total"]["mean"] > 0
    stream = (mode_dir / "run-1" / "vm-a.stream.txt").read_text()
    assert "@@binary /tmp/ebizzy.user\n" in stream and "@@done" in stream
    env = json.loads((mode_dir / "run-1" / "env.json").read_text())
    assert env["workload"] == f"ebizzy binary {theirs}"


KINDS = TINY.replace('memory_mib = 384\nguest_swap_mib = 128\n\n[[vm]]',
                    'memory_mib = 384\nguest_swap_mib = 128\ndata_disk_mib = 512\n\n[[vm]]', 1
                    ).replace('vm = "vm-a"\nchunks = [96, 48]',
                              'vm = "vm-a"\nkind = "stream"\nsteps = 2'
                              ).replace('start_s = 3\nchunks = [48, 96]',
                                        'start_s = 1\nkind = "idle"\nmib = [64]\nstep_s = 5')


def test_abload_kinds_run_in_real_guests(layout, stack, daemons_before, tmp_path: Path):
    """vm-a streams its data disk (/dev/vdb, after the swap disk), vm-b writes and holds
    64 MiB: each kind's score is a required metric, recomputed from the raw files."""
    assert KINDS.count('kind = "stream"') == 1 and "data_disk_mib = 512" in KINDS
    sc = scenario.parse(KINDS, "kinds")
    ctx = bench.BenchContext(layout, stack, sc, KINDS, Progress(), command="test")
    mode_dir = tmp_path / "kinds" / "20260101T000000" / "vanilla"
    summary = bench.run_mode(ctx, "vanilla", 1, mode_dir)
    run = mode_dir / "run-1"
    assert summary["complete"] is True, (run / "vm-a.stream.txt").read_text()[-2000:]
    m = {k: v["mean"] for k, v in summary["metrics"].items()}
    kinds = {"vm-a": "stream", "vm-b": "idle"}
    for name in results.metric_names(["vm-a", "vm-b"], kinds):
        assert name in m, name
    assert m["vm-a.guest.mb_s"] > 0 and m["vm-a.guest.step2.mb_s"] > 0
    assert m["vm-b.guest.touch_s"] > 0 and m["vm-b.guest.failed_steps"] == 0
    assert "vm-a.guest.records_total" not in m
    stream = (run / "vm-a.stream-1.txt").read_text()
    assert stream.startswith("abload stream: bytes=") and "path=/dev/vdb" in stream
    assert "end=time" in (run / "vm-b.idle-1.txt").read_text()
    env = json.loads((run / "env.json").read_text())
    assert env["workload"] == "abload (ours): idle, stream"
    complete, recomputed = run_metrics.compute(run, ["vm-a", "vm-b"])
    assert complete and recomputed == results.RunSummary.from_json(
        json.loads((run / "summary.json").read_text())).metrics
    assert leftovers(layout, daemons_before) == []


def test_an_interrupted_run_is_marked_incomplete(layout, stack, daemons_before,
                                                 tmp_path: Path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    rc = interrupt_rig(["run", str(path), "--mode", "vanilla",
                        "--results", str(tmp_path / "results")], "==> workload")
    assert rc == 130
    [run] = (tmp_path / "results" / "tiny").glob("*/vanilla/run-1")
    assert results.run_state(run) == "incomplete"
    assert json.loads((run / "summary.json").read_text())["complete"] is False
    assert leftovers(layout, daemons_before) == []
