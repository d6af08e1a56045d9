"""Results layout, run markers, summaries and their aggregation."""

import json
import math
import os
import statistics
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rig.bench import results
from rig.bench.procstat import QemuUsage
from rig.bench.results import (
    INCOMPLETE,
    SCHEMA_VERSION,
    SUMMARY,
    RunSummary,
    aggregate,
    begin_run,
    finish_run,
    guest_metrics,
    host_metrics,
    load_mode,
    metric_names,
    mode_dir,
    qemu_metrics,
    run_dir,
    run_state,
    validate_run_metrics,
    write_json_atomic,
    write_mode_summary,
)

VMS = ["vm-down", "vm-up"]


def full_metrics(base: float = 1.0) -> dict[str, float]:
    return {name: base + i for i, name in enumerate(metric_names(VMS))}


def summary(run: int, metrics: dict, complete: bool = True, mode: str = "auto") -> RunSummary:
    return RunSummary("quick", mode, run, complete, metrics, {"accel": "tcg"})


# --- layout and names -----------------------------------------------------------------------

def test_run_dir_layout(tmp_path: Path):
    d = run_dir(tmp_path, "seed-2013", "20240101T000000Z", "auto-seed", 3)
    assert d == tmp_path / "seed-2013" / "20240101T000000Z" / "auto-seed" / "run-3"
    assert d.parent == mode_dir(tmp_path, "seed-2013", "20240101T000000Z", "auto-seed")
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="run number"):
            run_dir(tmp_path, "s", "t", "m", bad)
    for bad in ("", "..", "a/b"):
        with pytest.raises(ValueError, match="one path component"):
            run_dir(tmp_path, bad, "t", "m", 1)


def test_metric_names():
    names = metric_names(VMS)
    assert names[:2] == ["host.swap_in", "host.swap_out"]
    assert names[2:12] == [
        "vm-down.qemu.elapsed_s", "vm-down.qemu.user_s", "vm-down.qemu.sys_s",
        "vm-down.qemu.cpu_pct", "vm-down.qemu.major_faults", "vm-down.qemu.minor_faults",
        "vm-down.guest.records_total", "vm-down.guest.swap_in", "vm-down.guest.swap_out",
        "vm-down.guest.oom_kills",
    ]
    assert names[12:] == [n.replace("vm-down", "vm-up") for n in names[2:12]]
    assert len(set(names)) == len(names)


def test_metric_builders_give_exactly_the_required_names():
    usage = QemuUsage(10.0, 7.0, 1.0, 80.0, 3, 400)
    m = host_metrics({"pswpin": 5, "pswpout": 9, "pgfault": 1})
    for vm in VMS:
        m |= qemu_metrics(vm, usage)
        m |= guest_metrics(vm, score=4692, vmstat_delta={"pswpin": 0, "pswpout": 2},
                           oom_kills=0)
    assert sorted(m) == sorted(metric_names(VMS))
    assert m["host.swap_out"] == 9
    assert m["vm-up.qemu.cpu_pct"] == 80.0
    assert m["vm-up.guest.swap_out"] == 2
    validate_run_metrics(m, VMS)


def test_validate_names_the_missing_metric():
    m = full_metrics()
    validate_run_metrics(m, VMS)
    validate_run_metrics(m | {"vm-up.guest.extra": 1}, VMS)  # extra metrics are fine
    del m["vm-up.qemu.cpu_pct"]
    with pytest.raises(ValueError, match=r"missing metric vm-up\.qemu\.cpu_pct"):
        validate_run_metrics(m, VMS)
    with pytest.raises(ValueError, match="missing metric host.swap_in"):
        validate_run_metrics({}, VMS)
    for bad in (True, "3", None, math.nan, math.inf):
        with pytest.raises(ValueError, match="host.swap_out"):
            validate_run_metrics(full_metrics() | {"host.swap_out": bad}, VMS)


# --- RunSummary JSON ------------------------------------------------------------------------

def test_run_summary_round_trip():
    s = summary(2, full_metrics() | {"host.swap_in": 36478}, complete=True)
    obj = s.to_json()
    assert obj["schema"] == SCHEMA_VERSION == 1
    assert set(obj) == {"schema", "scenario", "mode", "run", "complete", "metrics", "env"}
    again = RunSummary.from_json(json.loads(json.dumps(obj)))
    assert again == s
    assert isinstance(again.metrics["host.swap_in"], int)


def test_run_summary_ignores_unknown_fields_but_not_other_schemas():
    obj = summary(1, {"host.swap_in": 1}).to_json()
    assert RunSummary.from_json(obj | {"note": "added later"}).run == 1
    with pytest.raises(ValueError, match="newer rig"):
        RunSummary.from_json(obj | {"schema": 2})
    with pytest.raises(ValueError, match="schema"):
        RunSummary.from_json({k: v for k, v in obj.items() if k != "schema"})


@pytest.mark.parametrize("change, message", [
    ({"run": "1"}, "'run' must be int"),
    ({"run": True}, "'run' must be int"),
    ({"run": 0}, ">= 1"),
    ({"complete": 1}, "'complete' must be bool"),
    ({"metrics": []}, "'metrics' must be dict"),
    ({"metrics": {"host.swap_in": "1"}}, "host.swap_in must be a number"),
    ({"metrics": {"host.swap_in": False}}, "host.swap_in must be a number"),
])
def test_run_summary_rejects_bad_fields(change, message):
    obj = summary(1, {"host.swap_in": 1}).to_json() | change
    with pytest.raises(ValueError, match=message):
        RunSummary.from_json(obj)


def test_run_summary_rejects_missing_fields_and_non_objects():
    obj = summary(1, {"host.swap_in": 1}).to_json()
    for key in ("scenario", "mode", "run", "complete", "metrics", "env"):
        with pytest.raises(ValueError, match=f"no '{key}'"):
            RunSummary.from_json({k: v for k, v in obj.items() if k != key})
    with pytest.raises(ValueError, match="JSON object"):
        RunSummary.from_json([obj])


# --- aggregation ----------------------------------------------------------------------------

def test_aggregate_math_and_shape():
    runs = [summary(n, {"host.swap_out": v, "x": 1.0}) for n, v in ((1, 10), (2, 20), (3, 60))]
    agg = aggregate(runs)
    assert set(agg) == {"schema", "scenario", "mode", "runs", "complete", "incomplete_runs",
                        "metrics"}
    assert (agg["schema"], agg["scenario"], agg["mode"]) == (1, "quick", "auto")
    assert (agg["runs"], agg["complete"], agg["incomplete_runs"]) == (3, True, [])
    m = agg["metrics"]["host.swap_out"]
    assert m["values"] == [10, 20, 60]
    assert m["from_runs"] == [1, 2, 3]
    assert m["mean"] == 30.0
    assert m["stdev"] == pytest.approx(math.sqrt(((20**2) + 10**2 + 30**2) / 2))  # sample
    assert agg["metrics"]["x"] == {"mean": 1.0, "stdev": 0.0, "values": [1.0, 1.0, 1.0],
                                   "from_runs": [1, 2, 3]}
    json.dumps(agg, allow_nan=False)  # plain JSON


def test_aggregate_one_run_has_zero_stdev_and_values_in_run_order():
    agg = aggregate([summary(1, {"a": 7})])
    assert agg["metrics"]["a"] == {"mean": 7.0, "stdev": 0.0, "values": [7], "from_runs": [1]}
    agg = aggregate([summary(3, {"a": 3}), summary(1, {"a": 1}), summary(2, {"a": 2})])
    assert agg["metrics"]["a"]["values"] == [1, 2, 3]


def test_aggregate_leaves_incomplete_runs_out_of_the_numbers():
    runs = [summary(1, {"a": 10}), summary(2, {"a": 1000}, complete=False),
            summary(3, {"a": 20}), summary(4, {}, complete=False)]
    agg = aggregate(runs)
    assert agg["runs"] == 2
    assert agg["complete"] is False
    assert agg["incomplete_runs"] == [2, 4]
    assert agg["metrics"]["a"] == {"mean": 15.0, "stdev": pytest.approx(math.sqrt(50)),
                                   "values": [10, 20], "from_runs": [1, 3]}


def test_aggregate_all_incomplete():
    agg = aggregate([summary(1, {"a": 1}, complete=False)])
    assert (agg["runs"], agg["complete"], agg["incomplete_runs"], agg["metrics"]) == (
        0, False, [1], {})


def test_aggregate_metric_missing_in_some_runs():
    agg = aggregate([summary(1, {"a": 1, "b": 5}), summary(2, {"a": 3}),
                     summary(3, {"a": 5, "b": 7})])
    assert agg["metrics"]["a"]["values"] == [1, 3, 5]
    assert agg["metrics"]["b"] == {"mean": 6.0, "stdev": pytest.approx(math.sqrt(2)),
                                   "values": [5, 7], "from_runs": [1, 3]}


def test_aggregate_rejects_mixed_or_repeated_or_no_runs():
    with pytest.raises(ValueError, match="no runs"):
        aggregate([])
    with pytest.raises(ValueError, match="different modes"):
        aggregate([summary(1, {}), summary(2, {}, mode="vanilla")])
    with pytest.raises(ValueError, match="repeat"):
        aggregate([summary(1, {}), summary(1, {})])


finite = st.one_of(st.integers(-(10**12), 10**12),
                   st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False))


@given(st.lists(finite, min_size=1, max_size=12), st.lists(st.booleans(), min_size=12,
                                                           max_size=12))
def test_aggregate_properties(values, completes):
    runs = [summary(i + 1, {"m": v}, complete=completes[i]) for i, v in enumerate(values)]
    agg = aggregate(runs)
    kept = [v for v, c in zip(values, completes, strict=False) if c]
    assert agg["runs"] == len(kept)
    assert agg["complete"] == (len(kept) == len(values))
    assert agg["incomplete_runs"] == [i + 1 for i in range(len(values)) if not completes[i]]
    if not kept:
        assert agg["metrics"] == {}
        return
    m = agg["metrics"]["m"]
    assert m["values"] == kept
    eps = 1e-9 * max(1.0, *(abs(v) for v in kept))
    assert min(kept) - eps <= m["mean"] <= max(kept) + eps
    assert m["stdev"] >= 0.0
    if len(set(kept)) == 1:
        assert m["stdev"] == pytest.approx(0.0, abs=eps)
    else:
        assert m["stdev"] == pytest.approx(statistics.stdev(kept))


# --- files ----------------------------------------------------------------------------------

def test_write_json_atomic_replaces_and_leaves_no_temporary(tmp_path: Path):
    p = tmp_path / SUMMARY
    write_json_atomic(p, {"a": 1})
    write_json_atomic(p, {"b": [1, 2.5]})
    assert json.loads(p.read_text()) == {"b": [1, 2.5]}
    assert os.listdir(tmp_path) == [SUMMARY]


def test_write_json_atomic_failure_keeps_old_file_and_leaves_no_temporary(tmp_path: Path):
    p = tmp_path / SUMMARY
    write_json_atomic(p, {"a": 1})
    with pytest.raises(ValueError):
        write_json_atomic(p, {"a": math.nan})  # not JSON
    with pytest.raises(TypeError):
        write_json_atomic(p, {"a": object()})
    assert json.loads(p.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == [SUMMARY]


def test_write_json_atomic_failure_during_replace(tmp_path: Path, monkeypatch):
    p = tmp_path / SUMMARY

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(results.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        write_json_atomic(p, {"a": 1})
    assert os.listdir(tmp_path) == []


def test_incomplete_marker_lifecycle(tmp_path: Path):
    d = run_dir(tmp_path, "quick", "stamp", "auto", 1)
    assert run_state(d) == "missing"
    begin_run(d)
    assert (d / INCOMPLETE).is_file()
    assert run_state(d) == "incomplete"
    (d / "host-vmstat.start").write_text("pswpin 0\n")  # raw files go in meanwhile
    finish_run(d, summary(1, full_metrics()), vms=VMS)
    assert not (d / INCOMPLETE).exists()
    assert run_state(d) == "complete"
    assert sorted(os.listdir(d)) == ["host-vmstat.start", SUMMARY]
    with pytest.raises(ValueError, match="already has"):
        begin_run(d)


def test_failed_run_keeps_its_marker(tmp_path: Path):
    d = run_dir(tmp_path, "quick", "stamp", "auto", 1)
    begin_run(d)
    finish_run(d, summary(1, {"host.swap_in": 3}, complete=False), vms=VMS)
    assert (d / INCOMPLETE).exists()
    assert run_state(d) == "incomplete"


def test_complete_summary_must_have_every_metric(tmp_path: Path):
    d = run_dir(tmp_path, "quick", "stamp", "auto", 1)
    begin_run(d)
    m = full_metrics()
    del m["vm-down.guest.oom_kills"]
    with pytest.raises(ValueError, match="vm-down.guest.oom_kills"):
        finish_run(d, summary(1, m), vms=VMS)
    assert run_state(d) == "incomplete"
    assert not (d / SUMMARY).exists()


def test_run_state_trusts_marker_over_summary(tmp_path: Path):
    d = tmp_path / "run-1"
    d.mkdir()
    assert run_state(d) == "incomplete"  # no summary
    write_json_atomic(d / SUMMARY, summary(1, {}).to_json())
    assert run_state(d) == "complete"
    (d / INCOMPLETE).touch()  # e.g. a crash between writing the summary and unmarking
    assert run_state(d) == "incomplete"
    (d / INCOMPLETE).unlink()
    write_json_atomic(d / SUMMARY, summary(1, {}, complete=False).to_json())
    assert run_state(d) == "incomplete"
    (d / SUMMARY).write_text("{trunc")
    with pytest.raises(ValueError, match="not valid JSON"):
        run_state(d)


def test_load_mode_and_write_mode_summary(tmp_path: Path):
    def rd(n: int) -> Path:
        return run_dir(tmp_path, "quick", "stamp", "auto", n)

    for n, base in ((1, 1.0), (3, 3.0)):
        begin_run(rd(n))
        finish_run(rd(n), summary(n, full_metrics(base)), vms=VMS)
    begin_run(rd(2))  # crashed: marker, no summary
    begin_run(rd(4))  # failed: marker and a partial summary claiming completeness
    write_json_atomic(rd(4) / SUMMARY, summary(4, {"host.swap_in": 1e9}).to_json())
    rd(5).mkdir()  # directory only
    (rd(1).parent / "run-x").mkdir()  # not a run directory: ignored
    (rd(1).parent / "notes.txt").write_text("")

    runs = load_mode(rd(1).parent)
    assert [(r.run, r.complete) for r in runs] == [
        (1, True), (2, False), (3, True), (4, False), (5, False)]
    assert runs[1] == RunSummary("quick", "auto", 2, False, {}, {})
    assert runs[3].metrics == {"host.swap_in": 1e9}

    agg = write_mode_summary(rd(1).parent)
    assert json.loads((rd(1).parent / SUMMARY).read_text()) == agg
    assert (agg["runs"], agg["complete"], agg["incomplete_runs"]) == (2, False, [2, 4, 5])
    assert agg["metrics"]["host.swap_in"] == {"mean": 2.0, "stdev": pytest.approx(math.sqrt(2)),
                                              "values": [1.0, 3.0], "from_runs": [1, 3]}
    assert set(agg["metrics"]) == set(metric_names(VMS))


def test_load_mode_rejects_a_summary_in_the_wrong_place(tmp_path: Path):
    d = run_dir(tmp_path, "quick", "stamp", "auto", 2)
    begin_run(d)
    finish_run(d, summary(1, full_metrics()), vms=VMS)  # says run 1
    with pytest.raises(ValueError, match="not quick/auto run 2"):
        load_mode(d.parent)


def test_load_mode_of_nothing(tmp_path: Path):
    assert load_mode(tmp_path / "quick" / "stamp" / "auto") == []
    with pytest.raises(ValueError, match="no run-<n>"):
        write_mode_summary(tmp_path / "quick" / "stamp" / "auto")


def test_read_jsonl_skips_a_cut_last_line_only(tmp_path):
    from rig.bench.results import read_jsonl

    f = tmp_path / "t.jsonl"
    assert read_jsonl(f) == []
    f.write_text('{"a": 1}\n\n{"b": 2}\n{"c": ')
    assert read_jsonl(f) == [{"a": 1}, {"b": 2}]
    f.write_text('{"a": 1}\nnot json\n{"b": 2}\n')
    with pytest.raises(ValueError, match="t.jsonl:2: not a JSON line"):
        read_jsonl(f)


def test_guest_msg_metrics_count_messages_sent_during_the_workload(tmp_path: Path):
    from rig.bench.run_metrics import guest_msg_metrics

    assert guest_msg_metrics(tmp_path, "vm-a") == {}  # a guest without the message queue
    (tmp_path / "vm-a.guest-msgstats.start").write_text(
        "samples 10\nsent 3\nsent_low 1\nsent_medium 2\nsent_critical 0\nseq 3\n")
    (tmp_path / "vm-a.guest-msgstats.end").write_text(
        "samples 250\nsent 9\nsent_low 4\nsent_medium 3\nsent_critical 2\nseq 9\n")
    assert guest_msg_metrics(tmp_path, "vm-a") == {
        "vm-a.guest.msg_low": 3, "vm-a.guest.msg_medium": 1, "vm-a.guest.msg_critical": 2}
