"""CI's reproduction verdicts (pure)."""

import pytest

from rig.bench.reproduction import check
from rig.errors import UsageError
from rig.scenario import Reproduction, parse


def summary(mode, swap_out, recs=(9000, 9000), oom=(0, 0), complete=True):
    def m(v):
        return {"mean": v, "stdev": 0.0, "values": [v]}

    metrics = {"host.swap_out": m(swap_out)}
    for vm, r, o in zip(("vm-down", "vm-up"), recs, oom, strict=True):
        metrics[f"{vm}.guest.records_total"] = m(r)
        metrics[f"{vm}.guest.oom_kills"] = m(o)
    return {"mode": mode, "runs": 2, "complete": complete, "metrics": metrics}


def verdicts(**auto):
    return {v.check: v for v in check(Reproduction(), {
        "vanilla": summary("vanilla", 120_000), "auto": summary("auto", **auto)})}


def test_reproduced():
    v = verdicts(swap_out=10_000, recs=(8500, 9100))
    assert all(x.ok for x in v.values()), [x.line() for x in v.values()]
    assert v["host swap-out"].detail.startswith("vanilla 120,000 / auto 10,000 pages = 12.0x")


def test_each_threshold_fails_alone():
    assert not verdicts(swap_out=30_000)["host swap-out"].ok  # 4x
    assert not verdicts(swap_out=1000, oom=(0, 1))["guest OOM kills"].ok
    v = verdicts(swap_out=1000, recs=(8000, 9000))  # -11.1 %
    assert not v["vm-down ebizzy records"].ok and v["vm-up ebizzy records"].ok
    assert not verdicts(swap_out=1000, complete=False)["complete"].ok
    assert verdicts(swap_out=0)["host swap-out"].ok  # no swap at all: no division by zero
    assert check(Reproduction(), {"vanilla": summary("vanilla", 1)})[0].ok is False
    assert verdicts(swap_out=1000)["host swap-out"].line().startswith("PASS  host swap-out")


def test_scenario_table():
    text = "# x\n[[vm]]\nname = \"a\"\nmemory_mib = 512\n[reproduction]\n"
    r = parse(text + "min_swap_out_ratio = 8\n", "t").reproduction
    assert r == Reproduction(min_swap_out_ratio=8.0)
    assert parse(text.replace("[reproduction]\n", ""), "t").reproduction is None
    with pytest.raises(UsageError, match="two different modes"):
        parse(text + 'mode = "vanilla"\n', "t")
    with pytest.raises(UsageError, match="min_swap_out_ratio must be a number"):
        parse(text + "min_swap_out_ratio = 0\n", "t")


def _runs(mode, recs_down, recs_up):
    def m(values):
        return {"mean": sum(values) / len(values), "stdev": 0.0, "values": list(values)}

    return {"mode": mode, "runs": len(recs_down), "complete": True, "metrics": {
        "host.swap_out": m([100_000] if mode == "vanilla" else [0]),
        "vm-down.guest.records_total": m(recs_down), "vm-down.guest.oom_kills": m([0]),
        "vm-up.guest.records_total": m(recs_up), "vm-up.guest.oom_kills": m([0])}}


def test_records_compare_medians_so_one_slow_run_does_not_decide():
    base = _runs("vanilla", (7800, 7700, 7750), (7800, 7730, 7750))
    # one auto run slowed for both VMs by the machine: its mean is 11 % down, its median not
    slow = _runs("auto", (7600, 5000, 7650), (7500, 5100, 7560))
    v = {x.check: x for x in check(Reproduction(), {"vanilla": base, "auto": slow})}
    assert v["vm-down ebizzy records"].ok and v["vm-up ebizzy records"].ok
    assert "(medians)" in v["vm-up ebizzy records"].detail
    # a loss in most runs still fails
    lossy = _runs("auto", (6800, 6900, 7700), (7500, 7600, 7700))
    v = {x.check: x for x in check(Reproduction(), {"vanilla": base, "auto": lossy})}
    assert not v["vm-down ebizzy records"].ok and v["vm-up ebizzy records"].ok


def _with(summary_obj, **metrics):
    out = {**summary_obj, "metrics": dict(summary_obj["metrics"])}
    for name, value in metrics.items():
        if value is None:
            out["metrics"].pop(name.replace("__", "."), None)
        else:
            out["metrics"][name.replace("__", ".")] = {"mean": value, "stdev": 0.0,
                                                       "values": [value]}
    return out


QUICK_GATE = Reproduction(min_swap_out_ratio=50.0, min_baseline_swap_out=20_000,
                          max_guest_swap_out=2048)


def _gate(base, auto):
    return {v.check: v for v in check(QUICK_GATE, {"vanilla": base, "auto": auto})}


def test_quick_gate_fails_when_auto_regresses_to_the_rfc_algorithm():
    base = summary("vanilla", 65_020)
    auto = _with(summary("auto", 10), **{"vm-up__guest__swap_out": 189,
                                         "vm-down__guest__swap_out": 0})
    assert all(v.ok for v in _gate(base, auto).values())
    seed = _with(auto, host__swap_out=11_382)  # auto-seed measured 5.7x
    assert not _gate(base, seed)["host swap-out"].ok


def test_quick_gate_needs_a_stressed_host_and_bounded_guest_swap():
    auto = _with(summary("auto", 0), **{"vm-up__guest__swap_out": 100,
                                        "vm-down__guest__swap_out": 0})
    v = _gate(summary("vanilla", 15_000), auto)
    assert not v["vanilla stresses the host"].ok and v["host swap-out"].ok
    squeezed = _with(auto, **{"vm-up__guest__swap_out": 126_332})
    v = _gate(summary("vanilla", 65_000), squeezed)
    assert not v["auto guest swap-out"].ok
    assert "vm-up 1.263e+05" in v["auto guest swap-out"].detail


def test_a_missing_metric_fails_rather_than_counting_as_zero():
    auto = _with(summary("auto", 0), **{"vm-up__guest__swap_out": 0,
                                        "vm-down__guest__swap_out": 0})
    base = summary("vanilla", 65_000)
    assert all(v.ok for v in _gate(base, auto).values())
    v = _gate(base, _with(auto, **{"vm-up__guest__oom_kills": None}))
    assert not v["guest OOM kills"].ok and "missing for vm-up" in v["guest OOM kills"].detail
    v = _gate(base, _with(auto, **{"vm-down__guest__swap_out": None}))
    assert not v["auto guest swap-out"].ok
    v = _gate(base, _with(auto, **{"vm-down__guest__records_total": None}))
    assert not v["vm-down ebizzy records"].ok
    assert not _gate(base, _with(auto, host__swap_out=None))["host swap-out"].ok
    assert not check(QUICK_GATE, {"vanilla": {**base, "metrics": {}},
                                  "auto": {**auto, "metrics": {}}})[-1].ok
